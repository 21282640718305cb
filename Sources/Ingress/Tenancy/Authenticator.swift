import Foundation
import HTTPTypes
import Logging
import NIOConcurrencyHelpers
import Protocol
import Redis
import ResultStore

/// Turns a request's `Authorization` header into a tenant: an API key (looked up in Redis, with a short
/// in-process cache that revocations clear on every replica through pub/sub) or a JWT.
public final class Authenticator: Sendable {
    private struct CachedKey {
        var stored: KeyStore.StoredKey
        var expires: ContinuousClock.Instant
    }

    let keys: KeyStore
    let jwt: JWTVerifier?
    let configuration: TenancyConfiguration
    let logger: Logger
    private struct Cache {
        var entries: [String: CachedKey] = [:]
        /// Bumped by every revocation, so that a lookup that raced with one is not cached.
        var generation: UInt64 = 0
    }

    private let cache = NIOLockedValueBox(Cache())
    private let subscriber: RedisSubscriber?

    public init(keys: KeyStore, jwt: JWTVerifier?, configuration: TenancyConfiguration, endpoint: RedisEndpointSettings, timeoutMs: Int, logger: Logger) {
        self.keys = keys
        self.jwt = jwt
        self.configuration = configuration
        self.logger = logger
        guard configuration.authEnabled else {
            subscriber = nil
            return
        }
        subscriber = RedisSubscriber(endpoint: endpoint, channels: [RedisKeys.apiKeyRevocations], timeoutMs: timeoutMs, logger: logger)
        subscriber?.start(
            onMessage: { [weak self] _, payload in
                self?.forget(String(decoding: payload, as: UTF8.self))
            },
            onSubscribed: { [weak self] in
                // A revocation may have been published while not subscribed.
                self?.cache.withLockedValue {
                    $0.entries.removeAll()
                    $0.generation += 1
                }
            }
        )
    }

    /// The single 401 every missing, unknown, revoked or invalid credential gets, so that none can be told apart.
    static let unauthorized = GatewayError(
        status: 401,
        message: "Incorrect API key provided. Send 'Authorization: Bearer <key>' with a valid gateway API key or token.",
        type: "invalid_request_error", code: "invalid_api_key")

    /// The tenant of a request.
    /// - Throws: `GatewayError` 401 for a bad credential, 503 when Redis cannot be asked (fail closed).
    public func authenticate(_ headers: HTTPFields) async throws(GatewayError) -> Tenant {
        guard configuration.authEnabled else {
            return .anonymous
        }
        guard let header = headers[.authorization], let token = Self.credential(header) else { throw Self.unauthorized }
        if let key = APIKey(parsing: token) {
            return try await tenant(for: key)
        }
        if let jwt, JWTVerifier.looksLikeJWT(token) {
            do {
                return try jwt.verify(String(token), now: Date().timeIntervalSince1970)
            } catch {
                logger.debug("JWT refused", metadata: ["reason": "\(error.rawValue)"])
                throw Self.unauthorized
            }
        }
        throw Self.unauthorized
    }

    /// The credential in an `Authorization` value: the value without the spaces and tabs around it and without a
    /// leading `Bearer ` (in any case); a bare credential is taken as it is, as in the seed. `nil` when nothing is
    /// left. Works on the UTF-8 bytes: it runs on every request.
    static func credential(_ value: String) -> Substring? {
        let utf8 = value.utf8
        let isBlank = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        guard var start = utf8.firstIndex(where: { !isBlank($0) }), let last = utf8.lastIndex(where: { !isBlank($0) }) else { return nil }
        let end = utf8.index(after: last)
        let scheme = "bearer ".utf8
        if utf8.distance(from: start, to: end) > scheme.count,
           zip(utf8[start...], scheme).allSatisfy({ byte, expected in byte | 0x20 == expected })
        {
            // `| 0x20` lower-cases letters; the scheme's space only matches a space (0x20) or NUL, which a field
            // value cannot hold.
            start = utf8.index(start, offsetBy: scheme.count)
            guard let first = utf8[start..<end].firstIndex(where: { !isBlank($0) }) else { return nil }
            start = first
        }
        return Substring(utf8[start..<end])
    }

    private func tenant(for key: APIKey) async throws(GatewayError) -> Tenant {
        let now = ContinuousClock.now
        var (stored, generation) = cache.withLockedValue { cache -> (KeyStore.StoredKey?, UInt64) in
            guard let entry = cache.entries[key.id], entry.expires > now else { return (nil, cache.generation) }
            return (entry.stored, cache.generation)
        }
        if stored == nil {
            do {
                stored = try await keys.lookup(id: key.id)
            } catch {
                logger.warning("API key lookup failed: Redis unavailable", metadata: ["error": "\(error)"])
                throw .unavailable("Authentication is unavailable; retry shortly.", code: "store_unavailable")
            }
            if let stored, configuration.keyCacheSeconds > 0 {
                let entry = CachedKey(stored: stored, expires: now + .milliseconds(Int64(configuration.keyCacheSeconds * 1000)))
                cache.withLockedValue { if $0.generation == generation { $0.entries[key.id] = entry } }
            }
        }
        guard let stored, stored.record.revokedAt == nil,
              APIKey.constantTimeEquals(key.secretHash, stored.secretHash)
        else { throw Self.unauthorized }
        return stored.record.tenant
    }

    /// Drops a key from the lookup cache (it was revoked).
    func forget(_ id: String) {
        cache.withLockedValue {
            $0.entries[id] = nil
            $0.generation += 1
        }
    }

    public func shutdown() {
        subscriber?.shutdown()
    }
}

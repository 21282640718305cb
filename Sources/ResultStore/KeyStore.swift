import Foundation
import Protocol
import Redis

/// API keys in Redis: each key's metadata and the SHA-256 of its secret, never the secret itself.
public struct KeyStore: Sendable {
    public let redis: RedisClient

    public init(redis: RedisClient) {
        self.redis = redis
    }

    /// A key as stored: its metadata and the hex SHA-256 of its secret.
    public struct StoredKey: Sendable {
        public var record: APIKeyRecord
        public var secretHash: String
    }

    /// Stores a new key's record and secret hash.
    /// - Throws: `ResultStoreError` when Redis is unavailable, or `.unexpected` when the id is already taken.
    public func create(_ record: APIKeyRecord, secretHash: String) async throws(ResultStoreError) {
        let json = try encode(record)
        let replies = try await storeCall {
            try await redis.pipeline([
                ["HSETNX", RedisArgument(RedisKeys.apiKey(record.id)), "secret_hash", RedisArgument(secretHash)],
                ["HSET", RedisArgument(RedisKeys.apiKey(record.id)), "record", RedisArgument(json)],
                ["SADD", RedisArgument(RedisKeys.apiKeyIndex), RedisArgument(record.id)],
            ])
        }
        if case .error(let message) = replies[0] { throw ResultStoreError(code: .unavailable, message: message) }
        guard replies[0].integer == 1 else { throw ResultStoreError(code: .unexpected, message: "key id \(record.id) already exists") }
    }

    /// The key with public id `id`, or `nil` when there is none.
    public func lookup(id: String) async throws(ResultStoreError) -> StoredKey? {
        let reply = try await storeCall {
            try await redis.command("HMGET", RedisArgument(RedisKeys.apiKey(id)), "record", "secret_hash")
        }
        guard let values = reply.array, values.count == 2, let json = values[0].bytes, let hash = values[1].string,
              let record = try? JSONDecoder().decode(APIKeyRecord.self, from: Data(json))
        else { return nil }
        return StoredKey(record: record, secretHash: hash)
    }

    /// Every key's metadata, oldest first.
    public func list() async throws(ResultStoreError) -> [APIKeyRecord] {
        let ids = try await storeCall { try await redis.command("SMEMBERS", RedisArgument(RedisKeys.apiKeyIndex)) }.array?.compactMap(\.string) ?? []
        guard !ids.isEmpty else { return [] }
        let replies = try await storeCall {
            try await redis.pipeline(ids.map { ["HGET", RedisArgument(RedisKeys.apiKey($0)), "record"] })
        }
        return replies.compactMap { reply in
            reply.bytes.flatMap { try? JSONDecoder().decode(APIKeyRecord.self, from: Data($0)) }
        }.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }

    /// Marks a key revoked and tells every ingress replica to drop it from its lookup cache.
    /// - Returns: the revoked record, or `nil` for an unknown id. Revoking twice keeps the first time.
    public func revoke(id: String, now: Double) async throws(ResultStoreError) -> APIKeyRecord? {
        guard var record = try await lookup(id: id)?.record else { return nil }
        if record.revokedAt == nil { record.revokedAt = now }
        let json = try encode(record)
        _ = try await storeCall {
            try await redis.pipeline([
                ["HSET", RedisArgument(RedisKeys.apiKey(id)), "record", RedisArgument(json)],
                ["PUBLISH", RedisArgument(RedisKeys.apiKeyRevocations), RedisArgument(id)],
            ])
        }
        return record
    }

    private func encode(_ record: APIKeyRecord) throws(ResultStoreError) -> [UInt8] {
        do {
            return Array(try JSONEncoder().encode(record))
        } catch {
            throw ResultStoreError(code: .unexpected, message: "cannot encode key record")
        }
    }
}

/// Runs Redis calls, mapping their errors to `ResultStoreError`.
func storeCall<T>(_ body: () async throws -> T) async throws(ResultStoreError) -> T {
    do {
        return try await body()
    } catch let error as RedisError {
        throw ResultStoreError(code: error.isRetryable || error.code == .shutdown ? .unavailable : .unexpected, message: error.message)
    } catch let error as ResultStoreError {
        throw error
    } catch {
        throw ResultStoreError(code: .unexpected, message: "\(error)")
    }
}

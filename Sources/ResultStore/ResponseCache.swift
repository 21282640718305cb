import Foundation
import Protocol
import Redis

/// The exact-match response cache in Redis. Keys come from `ResponseCacheKey`, so they carry their namespace.
public struct ResponseCache: Sendable {
    public let redis: RedisClient

    public init(redis: RedisClient) {
        self.redis = redis
    }

    /// The entry under `key`, or `nil` on a miss.
    public func read(key: String) async throws(ResultStoreError) -> CachedResponse? {
        let reply = try await storeCall { try await redis.command("GET", RedisArgument(key)) }
        guard let bytes = reply.bytes else { return nil }
        return try? JSONDecoder().decode(CachedResponse.self, from: Data(bytes))
    }

    /// Stores a successful completion for `ttl` seconds.
    public func write(key: String, _ entry: CachedResponse, ttl: Int) async throws(ResultStoreError) {
        guard ttl > 0, let data = try? JSONEncoder().encode(entry) else { return }
        _ = try await storeCall {
            try await redis.command("SET", RedisArgument(key), RedisArgument(Array(data)), "EX", RedisArgument(ttl))
        }
    }
}

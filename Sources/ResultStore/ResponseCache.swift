import Foundation
import Protocol
import Redis

/// The exact-match response cache in Redis. Keys come from `ResponseCacheKey`, so they carry their namespace.
/// The ingress reads entries in its admission script (`UsageStore.admitScript`); the worker writes them in the
/// round trip that persists the job's outcome.
public enum ResponseCache {
    private static let encoder = StreamingJSONEncoder()

    /// The command that stores a successful completion for `ttl` seconds; `nil` when nothing is stored.
    public static func writeCommand(key: String, _ entry: CachedResponse, ttl: Int) -> RedisCommand? {
        guard ttl > 0, let data = try? encoder.encode(entry) else { return nil }
        return RedisCommand(["SET", RedisArgument(key), RedisArgument(data), "EX", RedisArgument(ttl)])
    }
}

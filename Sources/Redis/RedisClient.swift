import Foundation
import Logging
import NIOConcurrencyHelpers

/// A pool of pipelined Redis connections. Safe to share between tasks.
public final class RedisClient: Sendable {
    private let connections: [RedisConnection]
    private let next = NIOLockedValueBox(0)

    /// - Parameters:
    ///   - endpoint: where Redis is.
    ///   - connections: how many connections to open; each pipelines the commands submitted while it is busy.
    ///   - timeoutMs: connect and reply timeout.
    public init(endpoint: RedisEndpointSettings, connections: Int = 4, timeoutMs: Int = 2_000, logger: Logger) {
        self.connections = (0..<max(1, connections)).map {
            RedisConnection(endpoint: endpoint, timeoutMs: timeoutMs, logger: logger, name: "redis-\($0)")
        }
    }

    /// Runs one command.
    /// - Throws: `RedisError` with code `.server` for an error reply, `.connection`/`.timeout` when Redis is unreachable.
    @discardableResult
    public func command(_ arguments: RedisArgument...) async throws(RedisError) -> RedisValue {
        try await command(arguments)
    }

    @discardableResult
    public func command(_ arguments: [RedisArgument]) async throws(RedisError) -> RedisValue {
        let reply = try await pipeline([arguments])[0]
        if case .error(let message) = reply { throw RedisError(code: .server, message: message) }
        return reply
    }

    /// Runs several commands in one round trip; replies (including error replies) come back in order.
    public func pipeline(_ commands: [[RedisArgument]]) async throws(RedisError) -> [RedisValue] {
        try await pipeline(commands: commands.map(RedisCommand.init))
    }

    /// Runs several commands, scripts among them, in one round trip; replies come back in order.
    public func pipeline(commands: [RedisCommand]) async throws(RedisError) -> [RedisValue] {
        let index = next.withLockedValue { value in
            defer { value = (value + 1) % connections.count }
            return value
        }
        do {
            return try await connections[index].send(commands)
        } catch let error as RedisError {
            throw error
        } catch {
            throw RedisError(code: .connection, message: "\(error)")
        }
    }

    /// Runs a Lua script (by `EVALSHA` once the connection loaded it).
    /// - Throws: `RedisError` with code `.server` when the script fails.
    public func eval(_ script: RedisScript, keys: [String], arguments: [RedisArgument]) async throws(RedisError) -> RedisValue {
        let reply = try await pipeline(commands: [.eval(script, keys: keys, arguments: arguments)])[0]
        if case .error(let message) = reply { throw RedisError(code: .server, message: message) }
        return reply
    }

    /// Whether Redis answers `PING`.
    public func ping() async -> Bool {
        (try? await command("PING"))?.string == "PONG"
    }

    public func shutdown() {
        for connection in connections { connection.shutdown() }
    }
}

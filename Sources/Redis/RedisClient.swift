import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A pool of pipelined Redis connections, spread over the event loops that also run the gateway's tasks. A task
/// running on an event loop uses a connection of that loop, so neither the command nor its reply changes thread.
/// Safe to share between tasks.
public final class RedisClient: Sendable {
    private let connections: [RedisConnection]
    /// The indices in `connections` of each event loop's connections.
    private let connectionsByLoop: [ObjectIdentifier: [Int]]
    private let next = NIOLockedValueBox(0)

    /// - Parameters:
    ///   - endpoint: where Redis is.
    ///   - connections: how many connections to open, spread over the event loops (give at least one per loop);
    ///     each pipelines the commands submitted while earlier ones are in flight.
    ///   - timeoutMs: connect and reply timeout.
    public init(endpoint: RedisEndpointSettings, connections: Int = 4, timeoutMs: Int = 2_000, logger: Logger,
                eventLoopGroup: MultiThreadedEventLoopGroup = .singleton) {
        let loops = Array(eventLoopGroup.makeIterator())
        let connections = (0..<max(1, connections)).map {
            RedisConnection(endpoint: endpoint, timeoutMs: timeoutMs, logger: logger, eventLoop: loops[$0 % loops.count])
        }
        self.connections = connections
        self.connectionsByLoop = Dictionary(grouping: connections.indices) { ObjectIdentifier(connections[$0].eventLoop) }
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
        try await connection().send(commands)
    }

    /// Sends commands whose outcome nobody needs (a best-effort `PUBLISH`, say) without waiting for the round
    /// trip: the replies, error replies and failures included, are dropped.
    public func post(commands: [RedisCommand]) {
        connection().post(commands)
    }

    /// A connection of the current event loop, else any, taken in turn.
    private func connection() -> RedisConnection {
        let turn = next.withLockedValue { value in
            defer { value = (value + 1) & 0xFFFF_FFFF }
            return value
        }
        if let loop = MultiThreadedEventLoopGroup.currentEventLoop, let local = connectionsByLoop[ObjectIdentifier(loop)] {
            return connections[local[turn % local.count]]
        }
        return connections[turn % connections.count]
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

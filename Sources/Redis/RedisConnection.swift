import Foundation
import Logging

/// One Redis connection served by a dedicated thread. Commands submitted while the thread is busy are sent
/// together as a pipeline, so concurrent callers share round trips. A broken connection fails the commands in
/// flight and is re-established on the next command.
/// Marked `@unchecked Sendable` because all mutable state is guarded by `condition`.
final class RedisConnection: @unchecked Sendable {
    private struct Pending {
        var commands: [RedisCommand]
        var continuation: CheckedContinuation<[RedisValue], any Error>
    }

    private let endpoint: RedisEndpointSettings
    private let timeoutMs: Int
    private let logger: Logger
    private let condition = NSCondition()
    private var pending: [Pending] = []
    private var running = true
    private var context: RedisContext?
    /// Digests of the scripts this connection's server has loaded (sent by `EVAL` since the connection opened).
    /// A restarted server breaks the connection, and a new connection starts empty.
    private var loadedScripts: Set<String> = []
    private var lastConnectFailure: (at: Date, error: RedisError)?

    init(endpoint: RedisEndpointSettings, timeoutMs: Int, logger: Logger, name: String) {
        self.endpoint = endpoint
        self.timeoutMs = timeoutMs
        self.logger = logger
        let thread = Thread { [self] in run() }
        thread.name = name
        thread.start()
    }

    /// Sends commands as one pipeline and returns their replies in order. Error replies are returned, not thrown.
    func send(_ commands: [RedisCommand]) async throws -> [RedisValue] {
        try await withCheckedThrowingContinuation { continuation in
            condition.lock()
            guard running else {
                condition.unlock()
                continuation.resume(throwing: RedisError(code: .shutdown, message: "the Redis client is shut down"))
                return
            }
            pending.append(Pending(commands: commands, continuation: continuation))
            condition.signal()
            condition.unlock()
        }
    }

    func shutdown() {
        condition.lock()
        running = false
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while pending.isEmpty && running { condition.wait() }
            let batch = pending
            pending = []
            let stop = !running
            condition.unlock()
            if stop {
                for entry in batch { entry.continuation.resume(throwing: RedisError(code: .shutdown, message: "the Redis client is shut down")) }
                context = nil
                return
            }
            execute(batch)
        }
    }

    private func execute(_ batch: [Pending]) {
        let context: RedisContext
        do {
            context = try connected()
        } catch {
            for entry in batch { entry.continuation.resume(throwing: error) }
            return
        }
        for entry in batch {
            for command in entry.commands { append(command, to: context) }
        }
        var index = 0
        do {
            while index < batch.count {
                var replies: [RedisValue] = []
                replies.reserveCapacity(batch[index].commands.count)
                for command in batch[index].commands {
                    replies.append(try scriptReply(for: command, reply: context.readReply(), context: context))
                }
                batch[index].continuation.resume(returning: replies)
                index += 1
            }
        } catch {
            // The connection is in an unknown state: drop it, fail what has no reply yet.
            self.context = nil
            loadedScripts = []
            logger.warning("Redis connection lost", metadata: ["error": "\(error)"])
            for entry in batch[index...] { entry.continuation.resume(throwing: error) }
        }
    }

    /// Buffers a command; a script goes by `EVALSHA` when this connection already loaded it.
    private func append(_ command: RedisCommand, to context: RedisContext) {
        guard let script = command.script else { return context.append(command.arguments) }
        if loadedScripts.contains(script.digest) {
            context.append(["EVALSHA", RedisArgument(script.digest)] + command.arguments)
        } else {
            context.append(["EVAL", script.source] + command.arguments)
        }
    }

    /// Notes that a script is loaded once `EVAL` answered. When the server forgot it (`SCRIPT FLUSH`), runs it
    /// again by `EVAL`; it then runs after the commands that followed it in the pipeline.
    private func scriptReply(for command: RedisCommand, reply: RedisValue, context: RedisContext) throws(RedisError) -> RedisValue {
        guard let script = command.script else { return reply }
        if case .error(let message) = reply {
            guard message.hasPrefix("NOSCRIPT") else { return reply }
            loadedScripts = []
            let retried = try context.roundTrip(["EVAL", script.source] + command.arguments)
            if case .error = retried { return retried }
            loadedScripts.insert(script.digest)
            return retried
        }
        loadedScripts.insert(script.digest)
        return reply
    }

    private func connected() throws(RedisError) -> RedisContext {
        if let context { return context }
        // Fail fast while the server is known to be down, instead of paying the connect timeout per command.
        if let failure = lastConnectFailure, Date().timeIntervalSince(failure.at) < 0.2 {
            throw failure.error
        }
        do {
            let context = try RedisContext(endpoint: endpoint, timeoutMs: timeoutMs)
            self.context = context
            if lastConnectFailure != nil {
                logger.info("Redis connection restored")
                lastConnectFailure = nil
            }
            return context
        } catch {
            lastConnectFailure = (Date(), error)
            throw error
        }
    }
}

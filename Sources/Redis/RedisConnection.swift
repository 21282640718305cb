import CHiredis
import Logging
import NIOCore
import NIOPosix

/// One Redis connection driven by a NIO event loop: commands are written as RESP from whichever task sends them,
/// and replies are parsed by hiredis's reader on the loop, which resumes the waiting task there. Commands sent
/// while earlier ones are in flight are pipelined behind them, and the writes of one loop tick go out in one flush.
/// A broken connection fails the commands in flight and is re-established on the next command.
/// Marked `@unchecked Sendable` because all mutable state is confined to `eventLoop`.
final class RedisConnection: @unchecked Sendable {
    let eventLoop: any EventLoop
    private let endpoint: RedisEndpointSettings
    private let timeout: TimeAmount
    private let logger: Logger

    // Confined to `eventLoop`.
    private var channel: (any Channel)?
    private var connecting = false
    private var running = true
    /// Requests sent while the connection was being opened.
    private var waiting: [Request] = []
    /// One entry per reply still to come, in the order the commands were written.
    private var inFlight = CircularBuffer<Slot>()
    private var flushScheduled = false
    /// Fires at the oldest unanswered command's deadline. Replies come in order, so one timer per connection
    /// watches them all; it re-arms for the next command still waiting.
    private var watchdog: Scheduled<Void>?
    /// Digests of the scripts this connection's server has loaded (sent by `EVAL` since the connection opened).
    /// A restarted server breaks the connection, and a new connection starts empty.
    private var loadedScripts: Set<String> = []
    private var lastConnectFailure: (at: NIODeadline, error: RedisError)?

    init(endpoint: RedisEndpointSettings, timeoutMs: Int, logger: Logger, eventLoop: any EventLoop) {
        self.endpoint = endpoint
        self.timeout = .milliseconds(Int64(timeoutMs))
        self.logger = logger
        self.eventLoop = eventLoop
    }

    /// Sends commands as one pipeline and returns their replies in order. Error replies are returned, not thrown.
    func send(_ commands: [RedisCommand]) async throws(RedisError) -> [RedisValue] {
        do {
            return try await withCheckedThrowingContinuation { continuation in
                enqueue(Request(commands: commands, continuation: continuation))
            }
        } catch let error as RedisError {
            throw error
        } catch {
            throw RedisError(code: .connection, message: "\(error)")
        }
    }

    /// Sends commands without waiting for their replies, which are read and dropped, errors included.
    func post(_ commands: [RedisCommand]) {
        enqueue(Request(commands: commands, continuation: nil))
    }

    /// Hands a request to the event loop: at once when called on it.
    private func enqueue(_ request: Request) {
        if eventLoop.inEventLoop {
            submit(request)
        } else {
            eventLoop.execute { self.submit(request) }
        }
    }

    func shutdown() {
        eventLoop.execute {
            self.running = false
            self.fail(self.waiting, RedisError(code: .shutdown, message: "the Redis client is shut down"))
            self.waiting = []
            self.channel?.close(promise: nil)
        }
    }

    // MARK: - On the event loop

    private func submit(_ request: Request) {
        guard running else {
            return request.fail(RedisError(code: .shutdown, message: "the Redis client is shut down"))
        }
        guard !request.commands.isEmpty else { return request.succeed() }
        if let channel {
            return write(request, to: channel)
        }
        // Fail fast while the server is known to be down, instead of paying the connect timeout per command.
        if let failure = lastConnectFailure, NIODeadline.now() - failure.at < .milliseconds(200) {
            return request.fail(failure.error)
        }
        waiting.append(request)
        if !connecting { connect() }
    }

    private func connect() {
        connecting = true
        ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ReplyHandler(connection: self))
                }
            }
            .connect(host: endpoint.host, port: endpoint.port)
            .whenComplete { result in
                self.connecting = false
                switch result {
                case .success(let channel):
                    self.opened(channel)
                case .failure(let error):
                    let failure = RedisError(code: .connection, message: "\(self.endpoint.host):\(self.endpoint.port): \(error)")
                    self.lastConnectFailure = (.now(), failure)
                    self.fail(self.waiting, failure)
                    self.waiting = []
                }
            }
    }

    private func opened(_ channel: any Channel) {
        guard running else {
            channel.close(promise: nil)
            return
        }
        self.channel = channel
        loadedScripts = []
        // AUTH and SELECT go first; the commands queued meanwhile are pipelined right behind them.
        if let password = endpoint.password {
            var arguments: [RedisArgument] = ["AUTH"]
            if let username = endpoint.username { arguments.append(RedisArgument(username)) }
            arguments.append(RedisArgument(password))
            writeHandshake(arguments, failure: "authentication failed", to: channel)
        }
        if endpoint.database != 0 {
            writeHandshake(["SELECT", RedisArgument(endpoint.database)], failure: "SELECT \(endpoint.database) failed", to: channel)
        }
        let queued = waiting
        waiting = []
        for request in queued { write(request, to: channel) }
        if lastConnectFailure != nil {
            logger.info("Redis connection restored")
            lastConnectFailure = nil
        }
    }

    private func writeHandshake(_ arguments: [RedisArgument], failure: String, to channel: any Channel) {
        var buffer = channel.allocator.buffer(capacity: 64)
        buffer.writeRESP(arguments)
        inFlight.append(Slot(kind: .handshake(failure)))
        channel.write(buffer, promise: nil)
        scheduleFlush(channel)
    }

    private func write(_ request: Request, to channel: any Channel) {
        var buffer = channel.allocator.buffer(capacity: 256)
        for (index, command) in request.commands.enumerated() {
            append(command, to: &buffer)
            inFlight.append(Slot(kind: .reply(request, index)))
        }
        request.deadline = .now() + timeout
        if watchdog == nil { armWatchdog(at: request.deadline, channel) }
        channel.write(buffer, promise: nil)
        scheduleFlush(channel)
    }

    /// Drops the connection when the oldest command still without a reply is past its deadline; otherwise
    /// watches the next one.
    private func armWatchdog(at deadline: NIODeadline, _ channel: any Channel) {
        watchdog = eventLoop.scheduleTask(deadline: deadline) { [weak channel] in
            self.watchdog = nil
            guard let channel, channel === self.channel else { return }
            let oldest = self.inFlight.lazy.compactMap { slot -> NIODeadline? in
                if case .reply(let request, _) = slot.kind { return request.deadline }
                return nil
            }.first
            guard let oldest else { return }
            guard oldest <= .now() else { return self.armWatchdog(at: oldest, channel) }
            self.logger.warning("Redis reply timed out; reconnecting")
            self.drop(channel, RedisError(code: .timeout, message: "no reply from Redis within \(self.timeout.nanoseconds / 1_000_000) ms"))
        }
    }

    /// A script goes by `EVALSHA` when this connection already loaded it.
    private func append(_ command: RedisCommand, to buffer: inout ByteBuffer) {
        guard let script = command.script else { return buffer.writeRESP(command.arguments) }
        if loadedScripts.contains(script.digest) {
            buffer.writeRESP(["EVALSHA", RedisArgument(script.digest)] + command.arguments)
        } else {
            buffer.writeRESP(["EVAL", script.source] + command.arguments)
        }
    }

    /// Flushes at the end of this loop tick, so that the writes of the tick go out together.
    private func scheduleFlush(_ channel: any Channel) {
        guard !flushScheduled else { return }
        flushScheduled = true
        eventLoop.execute {
            self.flushScheduled = false
            self.channel?.flush()
        }
    }

    /// Hands a reply to the command it answers.
    fileprivate func received(_ reply: RedisValue, on channel: any Channel) {
        guard channel === self.channel, let slot = inFlight.popFirst() else { return }
        switch slot.kind {
        case .handshake(let failure):
            if case .error(let message) = reply {
                let error = RedisError(code: .connection, message: failure)
                logger.warning("Redis handshake failed", metadata: ["error": "\(message.prefix(80))"])
                lastConnectFailure = (.now(), error)
                drop(channel, error)
            }
        case .reply(let request, let index):
            let command = request.commands[index]
            if let script = command.script {
                if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
                    // The server forgot the script (`SCRIPT FLUSH`): run it again by `EVAL`, after the commands
                    // already written behind it.
                    loadedScripts = []
                    var buffer = channel.allocator.buffer(capacity: 256)
                    buffer.writeRESP(["EVAL", script.source] + command.arguments)
                    inFlight.append(Slot(kind: .reply(request, index)))
                    channel.write(buffer, promise: nil)
                    scheduleFlush(channel)
                    return
                }
                if case .error = reply {} else { loadedScripts.insert(script.digest) }
            }
            request.replies[index] = reply
            request.remaining -= 1
            if request.remaining == 0 { request.succeed() }
        }
    }

    /// The connection closed or broke: fail what has no reply yet.
    fileprivate func closed(_ channel: any Channel, error: RedisError?) {
        guard channel === self.channel else { return }
        self.channel = nil
        loadedScripts = []
        watchdog?.cancel()
        watchdog = nil
        let lost = error ?? RedisError(code: .connection, message: "connection lost")
        if running { logger.warning("Redis connection lost", metadata: ["error": "\(lost)"]) }
        var failed: [ObjectIdentifier: Request] = [:]
        while let slot = inFlight.popFirst() {
            if case .reply(let request, _) = slot.kind { failed[ObjectIdentifier(request)] = request }
        }
        fail(Array(failed.values), lost)
    }

    private func drop(_ channel: any Channel, _ error: RedisError) {
        closed(channel, error: error)
        channel.close(promise: nil)
    }

    private func fail(_ requests: [Request], _ error: RedisError) {
        for request in requests { request.fail(error) }
    }
}

extension RedisConnection {
    /// One `send`: its commands, the replies gathered so far, and its caller.
    /// Marked `@unchecked Sendable`: after `send` hands it to the event loop, only the loop touches it.
    fileprivate final class Request: @unchecked Sendable {
        let commands: [RedisCommand]
        var replies: [RedisValue]
        var remaining: Int
        /// When the connection gives up on the reply (set when the commands are written).
        var deadline = NIODeadline.distantFuture
        private var continuation: CheckedContinuation<[RedisValue], any Error>?

        /// - Parameter continuation: `nil` for commands whose replies nobody waits for (`post`).
        init(commands: [RedisCommand], continuation: CheckedContinuation<[RedisValue], any Error>?) {
            self.commands = commands
            self.replies = Array(repeating: .null, count: commands.count)
            self.remaining = commands.count
            self.continuation = continuation
        }

        func succeed() {
            continuation?.resume(returning: replies)
            continuation = nil
        }

        func fail(_ error: RedisError) {
            continuation?.resume(throwing: error)
            continuation = nil
        }
    }

    /// A reply the connection waits for.
    fileprivate struct Slot {
        enum Kind {
            /// AUTH or SELECT when connecting; an error reply fails the connection with this message.
            case handshake(String)
            /// The reply to `request.commands[index]`.
            case reply(Request, Int)
        }

        var kind: Kind
    }

    /// Parses replies with hiredis's reader and hands them to the connection.
    fileprivate final class ReplyHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer

        private let connection: RedisConnection
        private let reader: UnsafeMutablePointer<redisReader>
        private var error: RedisError?

        init(connection: RedisConnection) {
            self.connection = connection
            self.reader = redisReaderCreate()
        }

        deinit {
            redisReaderFree(reader)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            let fed = buffer.withUnsafeReadableBytes { bytes in
                redisReaderFeed(reader, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
            }
            while true {
                var raw: UnsafeMutableRawPointer?
                guard fed == REDIS_OK, redisReaderGetReply(reader, &raw) == REDIS_OK else {
                    error = RedisError(code: .unexpectedReply, message: "Redis protocol error")
                    return context.close(promise: nil)
                }
                guard let raw else { return }
                let reply = RedisContext.value(raw.assumingMemoryBound(to: redisReply.self))
                freeReplyObject(raw)
                connection.received(reply, on: context.channel)
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            connection.closed(context.channel, error: error)
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            self.error = RedisError(code: .connection, message: "\(error)")
            context.close(promise: nil)
        }
    }
}

extension ByteBuffer {
    /// Writes a command as a RESP array of bulk strings.
    mutating func writeRESP(_ arguments: [RedisArgument]) {
        writeStaticString("*")
        writeString(String(arguments.count))
        writeStaticString("\r\n")
        for argument in arguments {
            writeStaticString("$")
            writeString(String(argument.bytes.count))
            writeStaticString("\r\n")
            writeBytes(argument.bytes)
            writeStaticString("\r\n")
        }
    }
}

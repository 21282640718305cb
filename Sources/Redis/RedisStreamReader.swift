import Foundation
import Logging
import NIOPosix

/// Follows Redis Streams with `XREAD BLOCK` on a connection and thread of its own. A blocking read must never run
/// on `RedisClient`'s pipelined connections: it would hold up every command queued behind it. One thread serves
/// every open subscription with a single `XREAD` over all their keys, so readers cost no thread each.
///
/// A subscription starts after a given entry id and receives every later entry in order, without gaps, across
/// reconnections (the next read resumes from the last delivered id). When nothing arrived for `idleInterval`, it
/// receives `.idle`, so its owner can send keep-alives or re-check state without a timer of its own.
/// Marked `@unchecked Sendable` because its mutable state is guarded by `condition`, and the connection is used
/// only by the reader's thread.
public final class RedisStreamReader: @unchecked Sendable {
    /// One stream entry: its id (`<ms>-<seq>`) and fields.
    public struct Entry: Sendable, Hashable {
        public var id: String
        public var fields: [String: [UInt8]]

        public init(id: String, fields: [String: [UInt8]]) {
            self.id = id
            self.fields = fields
        }
    }

    /// What a subscription yields.
    public enum Element: Sendable, Hashable {
        case entry(Entry)
        /// Nothing arrived for the subscription's idle interval.
        case idle
    }

    private struct Subscription {
        var key: String
        var lastID: StreamID
        var idleInterval: Duration
        var lastDelivery: ContinuousClock.Instant
        var continuation: AsyncStream<Element>.Continuation
    }

    private let endpoint: RedisEndpointSettings
    private let timeoutMs: Int
    private let blockMs: Int
    private let logger: Logger
    private let condition = NSCondition()
    private var subscriptions: [UInt64: Subscription] = [:]
    private var nextToken: UInt64 = 0
    private var running = true
    private let stopped = DispatchSemaphore(value: 0)
    /// The reader connection's `CLIENT ID` while it is inside a blocking read, so that a new subscription can cut
    /// the block short with `CLIENT UNBLOCK` instead of waiting for it to time out.
    private var blockedClientID: Int64?
    private let control: RedisConnection

    /// - Parameters:
    ///   - timeoutMs: connect and reply timeout; each blocking read waits less than this.
    public init(endpoint: RedisEndpointSettings, timeoutMs: Int = 2_000, logger: Logger) {
        self.endpoint = endpoint
        self.timeoutMs = timeoutMs
        // Short blocks bound how long a new subscription waits to join the shared read; entries for keys already
        // in the read arrive as soon as they are written.
        self.blockMs = max(1, min(25, timeoutMs / 2))
        self.logger = logger
        self.control = RedisConnection(endpoint: endpoint, timeoutMs: timeoutMs, logger: logger, eventLoop: MultiThreadedEventLoopGroup.singleton.next())
        let thread = Thread { [self] in run() }
        thread.name = "redis-stream-reader"
        thread.start()
    }

    /// Follows the stream at `key` from after `afterID` (`0` for all of it) while `body` runs: `body` receives every
    /// later entry in order, as it is written, and `.idle` after `idleInterval` without one. The subscription ends
    /// when `body` returns; the sequence also ends when the reader shuts down.
    public func withEntries<T>(
        key: String,
        after afterID: String = "0",
        idleInterval: Duration = .seconds(1),
        _ body: (AsyncStream<Element>) async throws -> T
    ) async rethrows -> T {
        let (stream, continuation) = AsyncStream<Element>.makeStream(bufferingPolicy: .unbounded)
        let token = subscribe(key: key, after: afterID, idleInterval: idleInterval, continuation: continuation)
        if token == nil { continuation.finish() }
        await interruptBlockingRead()
        defer {
            if let token { remove(token) }
            continuation.finish()
        }
        return try await body(stream)
    }

    /// Makes a blocking read in progress return now, so that the next one includes new subscriptions.
    private func interruptBlockingRead() async {
        guard let clientID = currentBlockedClientID() else { return }
        _ = try? await control.send([RedisCommand(["CLIENT", "UNBLOCK", RedisArgument(String(clientID))])])
    }

    private func currentBlockedClientID() -> Int64? {
        condition.lock()
        defer { condition.unlock() }
        return blockedClientID
    }

    /// Ends every subscription and the reader's thread.
    public func shutdown() {
        control.shutdown()
        condition.lock()
        let wasRunning = running
        running = false
        condition.signal()
        condition.unlock()
        if wasRunning { stopped.wait() }
    }

    /// Adds a subscription; `nil` once the reader is shut down.
    private func subscribe(key: String, after afterID: String, idleInterval: Duration, continuation: AsyncStream<Element>.Continuation) -> UInt64? {
        condition.lock()
        defer { condition.unlock() }
        guard running else { return nil }
        nextToken += 1
        subscriptions[nextToken] = Subscription(
            key: key, lastID: StreamID(afterID) ?? StreamID(milliseconds: 0, sequence: 0),
            idleInterval: idleInterval, lastDelivery: .now, continuation: continuation)
        condition.signal()
        return nextToken
    }

    private func remove(_ token: UInt64) {
        condition.lock()
        subscriptions[token] = nil
        condition.unlock()
    }

    // MARK: - The reader's thread

    private func run() {
        var context: RedisContext?
        var clientID: Int64?
        var failures = 0
        while true {
            condition.lock()
            while subscriptions.isEmpty && running { condition.wait() }
            if !running {
                let open = subscriptions.values.map(\.continuation)
                subscriptions = [:]
                condition.unlock()
                open.forEach { $0.finish() }
                stopped.signal()
                return
            }
            // Several subscriptions may follow one key from different places: read it from the earliest.
            var from: [String: StreamID] = [:]
            for subscription in subscriptions.values {
                from[subscription.key] = min(from[subscription.key] ?? subscription.lastID, subscription.lastID)
            }
            condition.unlock()

            do throws(RedisError) {
                let connection: RedisContext
                if let context { connection = context } else {
                    connection = try RedisContext(endpoint: endpoint, timeoutMs: timeoutMs)
                    context = connection
                    clientID = try connection.roundTrip(["CLIENT", "ID"]).integer
                    if failures > 0 { logger.info("Redis stream reader reconnected") }
                    failures = 0
                }
                let keys = Array(from.keys)
                let arguments: [RedisArgument] = ["XREAD", "COUNT", "512", "BLOCK", RedisArgument(blockMs), "STREAMS"]
                    + keys.map { RedisArgument($0) } + keys.map { RedisArgument(from[$0]!.description) }
                condition.lock()
                blockedClientID = clientID
                condition.unlock()
                let reply: RedisValue
                do {
                    reply = try connection.roundTrip(arguments)
                    condition.lock()
                    blockedClientID = nil
                    condition.unlock()
                } catch {
                    condition.lock()
                    blockedClientID = nil
                    condition.unlock()
                    throw error
                }
                if case .error(let message) = reply {
                    throw RedisError(code: .server, message: message)
                }
                deliver(Self.parse(reply))
            } catch {
                if error.code != .server { context = nil }
                if failures == 0 { logger.warning("Redis stream read failed", metadata: ["error": "\(error)"]) }
                failures += 1
                deliver([:])
                Thread.sleep(forTimeInterval: min(1.0, 0.05 * Double(failures)))
            }
        }
    }

    /// Hands new entries to their subscriptions, and `.idle` to those that waited long enough; yields happen
    /// outside the lock.
    private func deliver(_ entriesByKey: [String: [(StreamID, Entry)]]) {
        var yields: [(AsyncStream<Element>.Continuation, Element)] = []
        let now = ContinuousClock.now
        condition.lock()
        for (token, var subscription) in subscriptions {
            var delivered = false
            for (id, entry) in entriesByKey[subscription.key] ?? [] where id > subscription.lastID {
                yields.append((subscription.continuation, .entry(entry)))
                subscription.lastID = id
                delivered = true
            }
            if delivered {
                subscription.lastDelivery = now
            } else if now - subscription.lastDelivery >= subscription.idleInterval {
                yields.append((subscription.continuation, .idle))
                subscription.lastDelivery = now
            }
            subscriptions[token] = subscription
        }
        condition.unlock()
        for (continuation, element) in yields { continuation.yield(element) }
    }

    /// `XREAD`'s reply: `nil` on timeout, else `[[key, [[id, [field, value, …]], …]], …]`.
    static func parse(_ reply: RedisValue) -> [String: [(StreamID, Entry)]] {
        var result: [String: [(StreamID, Entry)]] = [:]
        for stream in reply.array ?? [] {
            guard let parts = stream.array, parts.count == 2, let key = parts[0].string else { continue }
            for item in parts[1].array ?? [] {
                guard let pair = item.array, pair.count == 2, let idText = pair[0].string, let id = StreamID(idText) else { continue }
                var fields: [String: [UInt8]] = [:]
                let values = pair[1].array ?? []
                var index = 0
                while index + 1 < values.count {
                    if let name = values[index].string, let value = values[index + 1].bytes { fields[name] = value }
                    index += 2
                }
                result[key, default: []].append((id, Entry(id: idText, fields: fields)))
            }
        }
        return result
    }
}

/// A stream entry id, `<milliseconds>-<sequence>`, ordered as Redis orders them.
struct StreamID: Comparable, Hashable, CustomStringConvertible {
    var milliseconds: UInt64
    var sequence: UInt64

    init(milliseconds: UInt64, sequence: UInt64) {
        self.milliseconds = milliseconds
        self.sequence = sequence
    }

    /// Parses `<ms>-<seq>` or `<ms>`.
    init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2, let milliseconds = UInt64(parts[0]) else { return nil }
        let sequence = parts.count == 2 ? UInt64(parts[1]) : 0
        guard let sequence else { return nil }
        self.init(milliseconds: milliseconds, sequence: sequence)
    }

    static func < (lhs: StreamID, rhs: StreamID) -> Bool {
        (lhs.milliseconds, lhs.sequence) < (rhs.milliseconds, rhs.sequence)
    }

    var description: String { "\(milliseconds)-\(sequence)" }
}

import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// A pub/sub subscription on its own connection and thread. It reconnects after a failure, and calls
/// `onSubscribed` each time the subscription is in place (the first time too), so that owners can re-check state
/// whose messages they may have missed while not subscribed. The channels can change while it runs
/// (`setChannels(_:)`).
///
/// An owner whose handlers capture itself creates its subscriber first and starts it at the end of its own
/// initialisation (`init(endpoint:channels:timeoutMs:logger:)`, then `start(onMessage:onSubscribed:)`).
/// Marked `@unchecked Sendable` because its mutable state is confined to its thread or guarded by `lock`.
public final class RedisSubscriber: @unchecked Sendable {
    public typealias MessageHandler = @Sendable (_ channel: String, _ payload: [UInt8]) -> Void

    private let endpoint: RedisEndpointSettings
    private let timeoutMs: Int
    private let logger: Logger
    private let lock = NSLock()
    private var running = true
    private var started = false
    /// The channels wanted; the thread brings the connection's subscription in line with them.
    private var wanted: Set<String>
    private let stopped = DispatchSemaphore(value: 0)
    /// Wakes the thread's `poll` when the channels change or at shutdown: `wake[1]` is written, `wake[0]` polled.
    private let wake: [Int32]

    /// A subscriber that connects once started.
    /// - Parameter channels: the channels to subscribe to first (`setChannels(_:)` changes them).
    public init(endpoint: RedisEndpointSettings, channels: [String], timeoutMs: Int = 2_000, logger: Logger) {
        self.endpoint = endpoint
        self.timeoutMs = timeoutMs
        self.logger = logger
        self.wanted = Set(channels)
        var descriptors: [Int32] = [-1, -1]
        if pipe(&descriptors) == 0 {
            for descriptor in descriptors { _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK) }
        }
        self.wake = descriptors
    }

    /// A subscriber started at once (see `start(onMessage:onSubscribed:)`).
    public convenience init(
        endpoint: RedisEndpointSettings,
        channels: [String],
        timeoutMs: Int = 2_000,
        logger: Logger,
        onMessage: @escaping MessageHandler,
        onSubscribed: @escaping @Sendable () -> Void
    ) {
        self.init(endpoint: endpoint, channels: channels, timeoutMs: timeoutMs, logger: logger)
        start(onMessage: onMessage, onSubscribed: onSubscribed)
    }

    deinit {
        // A started subscriber's thread closes the pipe when it ends.
        if !started { for descriptor in wake where descriptor >= 0 { close(descriptor) } }
    }

    /// Starts the subscription on its own thread. Only the first call does, and none after `shutdown()`.
    /// - Parameters:
    ///   - onMessage: called on the subscriber's thread for every message.
    ///   - onSubscribed: called on the subscriber's thread once the subscription is in place: at first, and after
    ///     each re-established connection.
    public func start(onMessage: @escaping MessageHandler, onSubscribed: @escaping @Sendable () -> Void = {}) {
        lock.lock()
        defer { lock.unlock() }
        guard running, !started else { return }
        started = true
        let thread = Thread { [self] in
            var wasConnected = false
            var failures = 0
            while isRunning {
                do {
                    let context = try RedisContext(endpoint: endpoint, timeoutMs: timeoutMs)
                    var subscribed = Set<String>()
                    let first = wantedChannels(consumingWake: true)
                    if !first.isEmpty {
                        context.append([RedisArgument("SUBSCRIBE")] + first.map { RedisArgument($0) })
                        for _ in first { _ = try context.readReply() }
                        subscribed = first
                    }
                    if wasConnected { logger.info("Redis subscription restored") }
                    wasConnected = true
                    onSubscribed()
                    failures = 0
                    try listen(context, subscribed: &subscribed, onMessage: onMessage)
                } catch {
                    guard isRunning else { break }
                    if failures == 0 { logger.warning("Redis subscription lost", metadata: ["error": "\(error)"]) }
                    failures += 1
                    Thread.sleep(forTimeInterval: min(1.0, 0.05 * Double(failures)))
                }
            }
            // Every write to the pipe happens under the lock while running, so none can follow this.
            lock.lock()
            for descriptor in wake where descriptor >= 0 { close(descriptor) }
            lock.unlock()
            stopped.signal()
        }
        thread.name = "redis-subscriber"
        thread.start()
    }

    /// Replaces the channels subscribed to. The change reaches Redis within a moment; messages of a channel
    /// dropped here may still arrive until it did.
    public func setChannels(_ channels: Set<String>) {
        lock.lock()
        defer { lock.unlock() }
        guard running, channels != wanted else { return }
        wanted = channels
        signalWake()
    }

    private var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        return running
    }

    private func wantedChannels(consumingWake: Bool) -> Set<String> {
        if consumingWake, wake[0] >= 0 {
            var buffer = [UInt8](repeating: 0, count: 64)
            while read(wake[0], &buffer, buffer.count) > 0 {}
        }
        lock.lock()
        defer { lock.unlock() }
        return wanted
    }

    /// Called with `lock` held, while running.
    private func signalWake() {
        guard wake[1] >= 0 else { return }
        var byte: UInt8 = 1
        _ = write(wake[1], &byte, 1)
    }

    private func listen(_ context: RedisContext, subscribed: inout Set<String>, onMessage: MessageHandler) throws(RedisError) {
        while isRunning {
            var descriptors = [
                pollfd(fd: context.fileDescriptor, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wake[0], events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&descriptors, nfds_t(wake[0] >= 0 ? 2 : 1), 200)
            if ready < 0 && errno != EINTR { throw RedisError(code: .connection, message: "poll failed") }
            guard ready > 0 else { continue }
            if descriptors[1].revents != 0 {
                // Confirmations of (un)subscribing arrive among the messages and are skipped there.
                let target = wantedChannels(consumingWake: true)
                let added = target.subtracting(subscribed)
                let removed = subscribed.subtracting(target)
                if !added.isEmpty { context.append([RedisArgument("SUBSCRIBE")] + added.map { RedisArgument($0) }) }
                if !removed.isEmpty { context.append([RedisArgument("UNSUBSCRIBE")] + removed.map { RedisArgument($0) }) }
                if !added.isEmpty || !removed.isEmpty { try context.flush() }
                subscribed = target
            }
            guard descriptors[0].revents != 0 else { continue }
            for reply in try context.drainAvailable() {
                guard let parts = reply.array, parts.count == 3, parts[0].string == "message",
                      let channel = parts[1].string, let payload = parts[2].bytes
                else { continue }
                onMessage(channel, payload)
            }
        }
    }

    /// Stops listening and waits for the thread to end.
    public func shutdown() {
        lock.lock()
        let threadRuns = running && started
        if threadRuns { signalWake() }
        running = false
        lock.unlock()
        if threadRuns { stopped.wait() }
    }
}

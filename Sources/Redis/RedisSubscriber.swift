import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// A pub/sub subscription on its own connection and thread. It reconnects after a failure, and calls
/// `onSubscribed` each time the subscription is in place (the first time too), so that owners can re-check state
/// whose messages they may have missed while not subscribed.
/// Marked `@unchecked Sendable` because its mutable state is confined to its thread or guarded by `lock`.
public final class RedisSubscriber: @unchecked Sendable {
    public typealias MessageHandler = @Sendable (_ channel: String, _ payload: [UInt8]) -> Void

    private let lock = NSLock()
    private var running = true
    private let stopped = DispatchSemaphore(value: 0)

    /// - Parameters:
    ///   - channels: the channels to subscribe to.
    ///   - onMessage: called on the subscriber's thread for every message.
    ///   - onSubscribed: called on the subscriber's thread once the subscription is in place: at first, and after
    ///     each re-established connection.
    public init(
        endpoint: RedisEndpointSettings,
        channels: [String],
        timeoutMs: Int = 2_000,
        logger: Logger,
        onMessage: @escaping MessageHandler,
        onSubscribed: @escaping @Sendable () -> Void
    ) {
        let thread = Thread { [self] in
            var wasConnected = false
            var failures = 0
            while isRunning {
                do {
                    let context = try RedisContext(endpoint: endpoint, timeoutMs: timeoutMs)
                    context.append([RedisArgument("SUBSCRIBE")] + channels.map { RedisArgument($0) })
                    for _ in channels { _ = try context.readReply() }
                    if wasConnected { logger.info("Redis subscription restored") }
                    wasConnected = true
                    onSubscribed()
                    failures = 0
                    try listen(context, onMessage: onMessage)
                } catch {
                    guard isRunning else { break }
                    if failures == 0 { logger.warning("Redis subscription lost", metadata: ["error": "\(error)"]) }
                    failures += 1
                    Thread.sleep(forTimeInterval: min(1.0, 0.05 * Double(failures)))
                }
            }
            stopped.signal()
        }
        thread.name = "redis-subscriber"
        thread.start()
    }

    private var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        return running
    }

    private func listen(_ context: RedisContext, onMessage: MessageHandler) throws(RedisError) {
        while isRunning {
            var descriptor = pollfd(fd: context.fileDescriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, 200)
            if ready < 0 && errno != EINTR { throw RedisError(code: .connection, message: "poll failed") }
            guard ready > 0 else { continue }
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
        let wasRunning = running
        running = false
        lock.unlock()
        if wasRunning { stopped.wait() }
    }
}

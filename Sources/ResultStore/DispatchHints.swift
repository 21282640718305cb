import Logging
import Protocol
import Redis

extension ResultStore {
    /// Publishes a `DispatchHint` for an acknowledged record. Best effort: a hint that is not delivered only means
    /// the job starts when its record is fetched.
    /// - Returns: the number of workers that received it, or `nil` when Redis did not answer.
    @discardableResult
    public func publish(_ hint: DispatchHint, topic: String) async -> Int? {
        let reply = try? await redis.command("PUBLISH", RedisArgument(RedisKeys.dispatchChannel(topic: topic)), RedisArgument(hint.encoded))
        guard case .integer(let receivers) = reply else { return nil }
        return Int(receivers)
    }
}

/// A worker's subscription to the dispatch hints of its job topics. Hints missed while the subscription is down
/// need no recovery: their records arrive from the broker anyway.
public final class DispatchHintListener: Sendable {
    /// The hints of one topic.
    public struct Feed: Sendable {
        public let topic: String
        /// The newest hints are kept when the reader falls behind: a stale hint is worth nothing.
        public let hints: AsyncStream<DispatchHint>
        let continuation: AsyncStream<DispatchHint>.Continuation

        /// Ends `hints`; the reader stops taking hints (at shutdown).
        public func close() {
            continuation.finish()
        }
    }

    /// The feed of each topic.
    public let feeds: [String: Feed]
    private let subscriber: RedisSubscriber

    public init(topics: [String], endpoint: RedisEndpointSettings, timeoutMs: Int, logger: Logger) {
        var feeds: [String: Feed] = [:]
        var feedsByChannel: [String: Feed] = [:]
        for topic in topics {
            let (hints, continuation) = AsyncStream.makeStream(of: DispatchHint.self, bufferingPolicy: .bufferingNewest(16))
            let feed = Feed(topic: topic, hints: hints, continuation: continuation)
            feeds[topic] = feed
            feedsByChannel[RedisKeys.dispatchChannel(topic: topic)] = feed
        }
        self.feeds = feeds
        let routes = feedsByChannel
        self.subscriber = RedisSubscriber(
            endpoint: endpoint,
            channels: Array(routes.keys),
            timeoutMs: timeoutMs,
            logger: logger,
            onMessage: { channel, payload in
                guard let feed = routes[channel], let hint = DispatchHint.parse(payload) else {
                    logger.debug("Malformed dispatch hint ignored", metadata: ["channel": "\(channel)"])
                    return
                }
                feed.continuation.yield(hint)
            },
            onSubscribed: {})
    }

    /// Unsubscribes and ends every feed.
    public func shutdown() {
        subscriber.shutdown()
        for feed in feeds.values { feed.close() }
    }
}

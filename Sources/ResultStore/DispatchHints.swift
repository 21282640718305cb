import Logging
import Protocol
import Redis
import Synchronization

extension ResultStore {
    /// Publishes a `DispatchHint` for an acknowledged record, without waiting for Redis's answer: the request that
    /// waits for the job needs no round trip for it. Best effort: a hint that is not delivered only means the job
    /// starts when its record is fetched.
    public func publish(_ hint: DispatchHint, topic: String) {
        let channel = RedisKeys.dispatchChannel(topic: topic, partition: hint.partition)
        redis.post(commands: [RedisCommand(["PUBLISH", RedisArgument(channel), RedisArgument(hint.encoded)])])
    }
}

/// A worker's subscription to the dispatch hints of the partitions it owns: one channel per partition, kept in
/// line with the consumer group's assignment (`assign(topic:partitions:)`). Hints missed while the subscription is
/// down or catching up with a rebalance need no recovery: their records arrive from the broker anyway.
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
    /// The subscribed channels of each topic.
    private let channels = Mutex<[String: Set<String>]>([:])

    /// Subscribes to nothing until the first `assign(topic:partitions:)`.
    public init(topics: [String], endpoint: RedisEndpointSettings, timeoutMs: Int, logger: Logger) {
        var feeds: [String: Feed] = [:]
        for topic in topics {
            let (hints, continuation) = AsyncStream.makeStream(of: DispatchHint.self, bufferingPolicy: .bufferingNewest(16))
            feeds[topic] = Feed(topic: topic, hints: hints, continuation: continuation)
        }
        self.feeds = feeds
        let routes = feeds
        self.subscriber = RedisSubscriber(
            endpoint: endpoint,
            channels: [],
            timeoutMs: timeoutMs,
            logger: logger,
            onMessage: { channel, payload in
                guard let (topic, partition) = RedisKeys.dispatchPartition(ofChannel: channel), let feed = routes[topic],
                      let hint = DispatchHint.parse(payload), hint.partition == partition
                else {
                    logger.debug("Malformed dispatch hint ignored", metadata: ["channel": "\(channel)"])
                    return
                }
                feed.continuation.yield(hint)
            },
            onSubscribed: {})
    }

    /// Follows a rebalance: from now on, the hints of exactly `partitions` of `topic` (none after a revocation).
    public func assign(topic: String, partitions: [Int32]) {
        guard feeds[topic] != nil else { return }
        let all = channels.withLock { channels in
            channels[topic] = Set(partitions.map { RedisKeys.dispatchChannel(topic: topic, partition: $0) })
            return channels.values.reduce(into: Set<String>()) { $0.formUnion($1) }
        }
        subscriber.setChannels(all)
    }

    /// Unsubscribes and ends every feed.
    public func shutdown() {
        subscriber.shutdown()
        for feed in feeds.values { feed.close() }
    }
}

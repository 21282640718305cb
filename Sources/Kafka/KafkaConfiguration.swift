/// The settings the gateway gives librdkafka. `properties` is the single place that maps them to
/// librdkafka's configuration keys.
public struct KafkaConfiguration: Sendable {
    /// `host:port[,host:port…]`.
    public var brokers: String
    public var clientID = "llm-gateway"
    /// How long a produced message may wait for the broker's acknowledgement before it fails.
    public var messageTimeoutMs = 5_000
    /// How long the producer batches before sending, in milliseconds (fractions allowed); 0 sends at once.
    public var lingerMs: Double = 0
    /// The consumer group session timeout.
    public var sessionTimeoutMs = 10_000
    /// The longest the broker holds a fetch open when no data is there; it bounds queue latency.
    public var fetchWaitMaxMs = 50
    /// librdkafka debug contexts (`eos,msg,broker,cgrp`…), logged at debug level; nil for none.
    public var debugContexts: String?
    /// Extra librdkafka properties, applied last.
    public var overrides: [String: String] = [:]

    public init(brokers: String) {
        self.brokers = brokers
    }

    func producerProperties() -> [String: String] {
        var properties = common()
        properties["acks"] = "all"
        properties["enable.idempotence"] = "true"
        properties["message.timeout.ms"] = String(messageTimeoutMs)
        properties["linger.ms"] = Self.milliseconds(lingerMs)
        properties["compression.type"] = "none"
        return properties.merging(overrides) { $1 }
    }

    func consumerProperties(groupID: String) -> [String: String] {
        var properties = common()
        properties["group.id"] = groupID
        properties["enable.auto.offset.store"] = "false"
        properties["enable.auto.commit"] = "true"
        properties["auto.commit.interval.ms"] = "500"
        properties["auto.offset.reset"] = "earliest"
        properties["session.timeout.ms"] = String(sessionTimeoutMs)
        properties["heartbeat.interval.ms"] = String(max(100, sessionTimeoutMs / 5))
        properties["fetch.wait.max.ms"] = String(fetchWaitMaxMs)
        properties["fetch.error.backoff.ms"] = "50"
        // Prefetch a bounded backlog (librdkafka's defaults hold up to 100,000 records or 64 MB per partition in
        // memory): a worker runs at most `workerConcurrency` jobs anyway, and the rest waits better in the broker.
        properties["queued.min.messages"] = "1000"
        properties["queued.max.messages.kbytes"] = "4096"
        // …and look again soon once it drained (librdkafka waits 1 s by default).
        properties["fetch.queue.backoff.ms"] = "5"
        properties["enable.partition.eof"] = "false"
        properties["max.poll.interval.ms"] = "600000"
        return properties.merging(overrides) { $1 }
    }

    /// `1.0` as `"1"`, `0.25` as `"0.25"`: librdkafka reads both.
    static func milliseconds(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }

    private func common() -> [String: String] {
        var properties = [
            "bootstrap.servers": brokers,
            "client.id": clientID,
            "socket.keepalive.enable": "true",
            // Small requests (one job each) go out at once instead of waiting for the previous one's ACK.
            "socket.nagle.disable": "true",
            "reconnect.backoff.ms": "50",
            "reconnect.backoff.max.ms": "1000",
            "topic.metadata.refresh.interval.ms": "10000",
            "log.connection.close": "false",
        ]
        if let debugContexts { properties["debug"] = debugContexts }
        return properties
    }
}

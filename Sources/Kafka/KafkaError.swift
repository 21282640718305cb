import CRdKafka

/// An error from the Kafka client, with librdkafka's error code mirrored as a Swift value.
public struct KafkaError: Error, Sendable, Hashable, CustomStringConvertible {
    /// librdkafka's `rd_kafka_resp_err_t`, as a value. Named codes are the ones the gateway acts on.
    public struct Code: RawRepresentable, Sendable, Hashable {
        public var rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }

        init(_ error: rd_kafka_resp_err_t) { self.rawValue = error.rawValue }

        public static let messageTimedOut = Code(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT)
        public static let queueFull = Code(RD_KAFKA_RESP_ERR__QUEUE_FULL)
        public static let transport = Code(RD_KAFKA_RESP_ERR__TRANSPORT)
        public static let allBrokersDown = Code(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        public static let timedOut = Code(RD_KAFKA_RESP_ERR__TIMED_OUT)
        public static let unknownTopic = Code(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
        public static let unknownTopicOrPartition = Code(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        public static let partitionEOF = Code(RD_KAFKA_RESP_ERR__PARTITION_EOF)
        public static let fatal = Code(RD_KAFKA_RESP_ERR__FATAL)
        public static let invalidConfiguration = Code(RD_KAFKA_RESP_ERR__INVALID_ARG)
        public static let producerFenced = Code(RD_KAFKA_RESP_ERR_PRODUCER_FENCED)
        public static let invalidProducerEpoch = Code(RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH)
        public static let unknownProducerID = Code(RD_KAFKA_RESP_ERR_UNKNOWN_PRODUCER_ID)
        public static let outOfOrderSequence = Code(RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER)
        public static let shutdown = Code(rawValue: -10_000)
    }

    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    init(_ error: rd_kafka_resp_err_t) {
        self.code = Code(error)
        self.message = String(cString: rd_kafka_err2str(error))
    }

    /// Whether the same operation may succeed later: broker outages and full queues, not bad configuration.
    public var isRetryable: Bool {
        switch code {
        case .messageTimedOut, .queueFull, .transport, .allBrokersDown, .timedOut, .unknownTopicOrPartition:
            return true
        default:
            return false
        }
    }

    /// Whether the broker no longer knows the idempotent producer's id, epoch or sequence, so the producer must
    /// start over with a new id.
    public var meansProducerStateLost: Bool {
        [.producerFenced, .invalidProducerEpoch, .unknownProducerID, .outOfOrderSequence].contains(code)
    }

    public var description: String { "Kafka error \(code.rawValue): \(message)" }
}

/// The version of the librdkafka the process loaded at run time (not the one it was compiled against).
public var librdkafkaVersion: String { String(cString: rd_kafka_version_str()) }

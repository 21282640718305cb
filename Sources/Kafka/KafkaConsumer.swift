import CRdKafka
import Foundation
import Logging
import NIOConcurrencyHelpers

/// A member of a consumer group that hands out at most `maxInFlight` unfinished records and stores a record's
/// offset only after `finished(_:)` was called for it and for every record before it in its partition.
/// Marked `@unchecked Sendable` because librdkafka's consumer is thread-safe for the calls made off the poll
/// thread (`rd_kafka_offsets_store`), and our own state is behind locks.
public final class KafkaConsumer: @unchecked Sendable {
    /// The records, in the order of each partition; ends after `shutdown()`.
    public let messages: AsyncStream<KafkaMessage>

    private let handle: RdKafkaHandle
    private let logger: Logger
    private let slots: InFlightLimit
    private let tracker = NIOLockedValueBox(OffsetTracker())
    private let continuation: AsyncStream<KafkaMessage>.Continuation
    private var pollThread: PollThread!
    private let closed = NIOLockedValueBox(false)
    private let assignment = NIOLockedValueBox(Set<TopicPartition>())

    /// The number of partitions the group gave this consumer.
    public var assignedPartitions: Int { assignment.withLockedValue { $0.count } }

    /// Whether the record at `offset` is this consumer's to hand out and has not been handed out yet: its
    /// partition is assigned here, and no record at or after `offset` was delivered since the assignment.
    public func isPending(_ partition: TopicPartition, offset: Int64) -> Bool {
        guard assignment.withLockedValue({ $0.contains(partition) }) else { return false }
        return !tracker.withLockedValue { $0.delivered(partition, offset: offset) }
    }

    /// - Parameter onAssignment: called on the poll thread after each rebalance with the partitions now assigned
    ///   here (none after a revocation).
    public init(
        configuration: KafkaConfiguration, groupID: String, topics: [String], maxInFlight: Int, logger: Logger,
        onAssignment: (@Sendable (_ partitions: [TopicPartition]) -> Void)? = nil
    ) throws(KafkaError) {
        let tracker = self.tracker
        let handle = try RdKafkaHandle(kind: .consumer, properties: configuration.consumerProperties(groupID: groupID), logger: logger) { conf in
            rd_kafka_conf_set_rebalance_cb(conf) { handle, error, partitions, opaque in
                guard let handle, let opaque else { return }
                let context = Unmanaged<RdKafkaHandle.CallbackContext>.fromOpaque(opaque).takeUnretainedValue()
                let list = partitions.map(topicPartitions) ?? []
                if error == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
                    rd_kafka_assign(handle, partitions)
                    context.rebalance?(true, list)
                } else {
                    context.rebalance?(false, list)
                    rd_kafka_assign(handle, nil)
                }
            }
        }
        let assignment = self.assignment
        handle.context.rebalance = { assigned, partitions in
            assignment.withLockedValue { $0 = assigned ? Set(partitions) : [] }
            if assigned {
                logger.info("Partitions assigned", metadata: ["partitions": "\(partitions.map(\.description).joined(separator: ","))"])
            } else {
                logger.info("Partitions revoked", metadata: ["partitions": "\(partitions.map(\.description).joined(separator: ","))"])
                tracker.withLockedValue { tracker in
                    for partition in partitions { tracker.revoke(partition) }
                }
            }
            onAssignment?(assigned ? partitions : [])
        }
        rd_kafka_poll_set_consumer(handle.pointer)
        let list = rd_kafka_topic_partition_list_new(Int32(topics.count))
        for topic in topics { rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA) }
        let error = rd_kafka_subscribe(handle.pointer, list)
        rd_kafka_topic_partition_list_destroy(list)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(error) }

        self.handle = handle
        self.logger = logger
        self.slots = InFlightLimit(maxInFlight)
        (self.messages, self.continuation) = AsyncStream.makeStream(of: KafkaMessage.self, bufferingPolicy: .unbounded)
        self.pollThread = PollThread(name: "kafka-consumer-poll") { [handle, slots, continuation, logger] thread in
            while thread.isRunning {
                // Take a slot before taking a record: the consumer never holds more than it can run.
                guard slots.acquire(waitingAtMost: 0.1) else { continue }
                var delivered = false
                while thread.isRunning, !delivered {
                    guard let raw = rd_kafka_consumer_poll(handle.pointer, 100) else { continue }
                    defer { rd_kafka_message_destroy(raw) }
                    let record = raw.pointee
                    guard record.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                        if record.err != RD_KAFKA_RESP_ERR__PARTITION_EOF {
                            logger.warning("Kafka consumer error", metadata: ["error": "\(KafkaError(record.err))"])
                        }
                        continue
                    }
                    let message = KafkaMessage(raw)
                    tracker.withLockedValue { $0.started(TopicPartition(topic: message.topic, partition: message.partition), offset: message.offset) }
                    continuation.yield(message)
                    delivered = true
                }
                if !delivered { slots.release() }
            }
        }
        logger.info("Kafka consumer started", metadata: ["group": "\(groupID)", "topics": "\(topics.joined(separator: ","))", "librdkafka": "\(librdkafkaVersion)"])
    }

    /// Marks a record done: its slot is free again, and its offset is stored once every earlier record of the
    /// partition is done too. Stored offsets are committed in the background and on shutdown.
    public func finished(_ message: KafkaMessage) {
        let partition = TopicPartition(topic: message.topic, partition: message.partition)
        let committable = tracker.withLockedValue { $0.finished(partition, offset: message.offset) }
        if let committable {
            let list = rd_kafka_topic_partition_list_new(1)
            let entry = rd_kafka_topic_partition_list_add(list, message.topic, message.partition)
            entry?.pointee.offset = committable
            let error = rd_kafka_offsets_store(handle.pointer, list)
            rd_kafka_topic_partition_list_destroy(list)
            if error != RD_KAFKA_RESP_ERR_NO_ERROR {
                // The partition was revoked meanwhile; the new owner re-reads from the last commit.
                logger.debug("Offset not stored", metadata: ["partition": "\(partition)", "error": "\(KafkaError(error))"])
            }
        }
        slots.release()
    }

    /// Stops handing out records and ends `messages`; records already handed out may still finish.
    public func stopFetching() {
        pollThread.stop()
        continuation.finish()
    }

    /// Stops fetching, commits the stored offsets and leaves the group. Call after in-flight records finished.
    public func shutdown() {
        let alreadyClosed = closed.withLockedValue { closed in
            defer { closed = true }
            return closed
        }
        guard !alreadyClosed else { return }
        stopFetching()
        let error = rd_kafka_consumer_close(handle.pointer)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            logger.warning("Kafka consumer close", metadata: ["error": "\(KafkaError(error))"])
        }
    }

    /// Consumer lag per assigned partition: the high watermark minus the group's committed offset.
    public func lag(timeoutMs: Int32 = 1_000) -> [(partition: TopicPartition, lag: Int64)] {
        var assignment: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(handle.pointer, &assignment) == RD_KAFKA_RESP_ERR_NO_ERROR, let assignment else { return [] }
        defer { rd_kafka_topic_partition_list_destroy(assignment) }
        guard rd_kafka_committed(handle.pointer, assignment, timeoutMs) == RD_KAFKA_RESP_ERR_NO_ERROR else { return [] }
        var result: [(partition: TopicPartition, lag: Int64)] = []
        for index in 0..<Int(assignment.pointee.cnt) {
            let element = assignment.pointee.elems[index]
            let topic = String(cString: element.topic)
            var low: Int64 = 0
            var high: Int64 = 0
            guard rd_kafka_query_watermark_offsets(handle.pointer, topic, element.partition, &low, &high, timeoutMs) == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
            let committed = element.offset >= 0 ? element.offset : low
            result.append((TopicPartition(topic: topic, partition: element.partition), max(0, high - committed)))
        }
        return result
    }

    /// Whether a broker answers a metadata request within `timeoutMs`. The blocking call runs off the
    /// cooperative pool.
    public func isBrokerReachable(timeoutMs: Int32 = 1_000) async -> Bool {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { [handle] in
                continuation.resume(returning: brokerReachable(handle.pointer, timeoutMs: timeoutMs))
            }
        }
    }
}

private func topicPartitions(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> [TopicPartition] {
    (0..<Int(list.pointee.cnt)).map { index in
        let element = list.pointee.elems[index]
        return TopicPartition(topic: String(cString: element.topic), partition: element.partition)
    }
}

extension KafkaMessage {
    init(_ raw: UnsafeMutablePointer<rd_kafka_message_t>) {
        let record = raw.pointee
        let topic = String(cString: rd_kafka_topic_name(record.rkt))
        let key = record.key.map { Array(UnsafeRawBufferPointer(start: $0, count: record.key_len)) }
        let value = record.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: record.len)) } ?? []
        var headers: [(name: String, value: [UInt8])] = []
        var list: OpaquePointer?
        if rd_kafka_message_headers(raw, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list {
            var index = 0
            var name: UnsafePointer<CChar>?
            var bytes: UnsafeRawPointer?
            var size = 0
            while rd_kafka_header_get_all(list, index, &name, &bytes, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                if let name {
                    headers.append((String(cString: name), bytes.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []))
                }
                index += 1
            }
        }
        self.init(topic: topic, partition: record.partition, offset: record.offset, key: key, value: value, headers: headers)
    }
}

/// A counting limit on unfinished records. Unlike `DispatchSemaphore`, it may be destroyed while slots are taken.
final class InFlightLimit: @unchecked Sendable {
    // Marked `@unchecked Sendable` because `available` is only touched under `condition`.
    private let condition = NSCondition()
    private var available: Int

    init(_ limit: Int) {
        available = limit
    }

    /// Takes a slot, waiting at most `seconds`; returns `false` when none freed up in time.
    func acquire(waitingAtMost seconds: Double) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date(timeIntervalSinceNow: seconds)
        while available == 0 {
            if !condition.wait(until: deadline) { return false }
        }
        available -= 1
        return true
    }

    func release() {
        condition.lock()
        available += 1
        condition.signal()
        condition.unlock()
    }
}

import CRdKafka
import Foundation
import Logging
import NIOConcurrencyHelpers

/// An idempotent producer (`acks=all`) whose `send` returns only once the broker acknowledged the record.
///
/// An idempotent producer can enter a fatal state (for example when a restarted broker fences its producer id).
/// librdkafka cannot leave that state, so the producer then replaces its client with a new one: the record that
/// hit the fatal error fails, and the next `send` goes through the new client.
public final class KafkaProducer: Sendable {
    private let configuration: KafkaConfiguration
    private let logger: Logger
    private let current: NIOLockedValueBox<ProducerClient>

    public init(configuration: KafkaConfiguration, logger: Logger) throws(KafkaError) {
        self.configuration = configuration
        self.logger = logger
        self.current = NIOLockedValueBox(try ProducerClient(configuration: configuration, logger: logger))
        logger.info("Kafka producer started", metadata: ["librdkafka": "\(librdkafkaVersion)", "brokers": "\(configuration.brokers)"])
    }

    /// Produces one record and waits for the broker's acknowledgement.
    /// - Returns: where the broker stored the record.
    /// - Throws: `KafkaError` when the record was not accepted within the message timeout.
    @discardableResult
    public func send(topic: String, key: [UInt8], value: [UInt8], headers: [(name: String, value: [UInt8])] = []) async throws(KafkaError) -> RecordPosition {
        let client = current.withLockedValue { $0 }
        let error: KafkaError
        switch await client.send(topic: topic, key: key, value: value, headers: headers) {
        case .success(let position): return position
        case .failure(let failure): error = failure
        }
        if let fatal = client.fatalError {
            replace(client, because: fatal)
        } else if error.meansProducerStateLost {
            replace(client, because: error)
        } else if error.code == .messageTimedOut, await client.isBrokerReachable(timeoutMs: 500) {
            // The broker answers, yet records time out: a broker that lost its state (a restarted in-memory
            // broker) can leave the idempotent producer waiting forever on sequence numbers it no longer knows.
            replace(client, because: error)
        }
        throw error
    }

    private func replace(_ failed: ProducerClient, because fatal: KafkaError) {
        let replaced: Bool = current.withLockedValue { current in
            guard current === failed, let fresh = try? ProducerClient(configuration: configuration, logger: logger) else { return false }
            current = fresh
            return true
        }
        guard replaced else { return }
        logger.warning("Kafka producer hit a fatal error; replaced it with a new client", metadata: ["error": "\(fatal)"])
        DispatchQueue.global().async { failed.retire() }
    }

    /// Waits for outstanding records, then stops the poll thread. Call once, at shutdown.
    public func shutdown(timeoutMs: Int32 = 10_000) {
        let client = current.withLockedValue { $0 }
        client.flush(timeoutMs: timeoutMs, logger: logger)
        client.stop()
    }

    /// Whether a broker answers a metadata request within `timeoutMs`. The blocking call runs off the
    /// cooperative pool.
    public func isBrokerReachable(timeoutMs: Int32 = 1_000) async -> Bool {
        await current.withLockedValue { $0 }.isBrokerReachable(timeoutMs: timeoutMs)
    }
}

/// One librdkafka producer and the thread that serves its delivery reports.
final class ProducerClient: Sendable {
    let handle: RdKafkaHandle
    private let pollThread: PollThread

    init(configuration: KafkaConfiguration, logger: Logger) throws(KafkaError) {
        let handle = try RdKafkaHandle(kind: .producer, properties: configuration.producerProperties(), logger: logger) { conf in
            rd_kafka_conf_set_dr_msg_cb(conf) { _, message, _ in
                guard let message, let opaque = message.pointee._private else { return }
                let delivery = Unmanaged<DeliveryReport>.fromOpaque(opaque).takeRetainedValue()
                let record = message.pointee
                if record.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                    delivery.complete(.success(RecordPosition(partition: record.partition, offset: record.offset)))
                } else {
                    delivery.complete(.failure(KafkaError(record.err)))
                }
            }
        }
        self.handle = handle
        self.pollThread = PollThread(name: "kafka-producer-poll") { thread in
            while thread.isRunning {
                rd_kafka_poll(handle.pointer, 100)
            }
        }
    }

    /// Produces one record; returns where the broker stored it once acknowledged, or the delivery error.
    func send(topic: String, key: [UInt8], value: [UInt8], headers: [(name: String, value: [UInt8])]) async -> Result<RecordPosition, KafkaError> {
        await withCheckedContinuation { continuation in
            let delivery = DeliveryReport(continuation)
            let opaque = Unmanaged.passRetained(delivery).toOpaque()
            var headerList: OpaquePointer?
            if !headers.isEmpty {
                headerList = rd_kafka_headers_new(headers.count)
                for header in headers {
                    _ = header.value.withUnsafeBytes { bytes in
                        rd_kafka_header_add(headerList, header.name, -1, bytes.baseAddress, bytes.count)
                    }
                }
            }
            let error = key.withUnsafeBytes { keyBytes in
                value.withUnsafeBytes { valueBytes in
                    llmgw_produce(handle.pointer, topic, keyBytes.baseAddress, keyBytes.count, valueBytes.baseAddress, valueBytes.count, headerList, opaque)
                }
            }
            if error != RD_KAFKA_RESP_ERR_NO_ERROR {
                if let headerList { rd_kafka_headers_destroy(headerList) }
                Unmanaged<DeliveryReport>.fromOpaque(opaque).release()
                continuation.resume(returning: .failure(KafkaError(error)))
            }
        }
    }

    /// A metadata round trip, off the cooperative pool.
    func isBrokerReachable(timeoutMs: Int32) async -> Bool {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { [handle] in
                continuation.resume(returning: brokerReachable(handle.pointer, timeoutMs: timeoutMs))
            }
        }
    }

    /// The fatal error the client is in, if any.
    var fatalError: KafkaError? {
        var text = [CChar](repeating: 0, count: 512)
        let code = rd_kafka_fatal_error(handle.pointer, &text, text.count)
        guard code != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return KafkaError(code: KafkaError.Code(code), message: cText(text))
    }

    func flush(timeoutMs: Int32, logger: Logger) {
        let error = rd_kafka_flush(handle.pointer, timeoutMs)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            logger.warning("Kafka producer flush incomplete", metadata: ["error": "\(KafkaError(error))"])
        }
    }

    /// Fails whatever is still queued (each waiting `send` gets an error), then stops.
    func retire() {
        rd_kafka_purge(handle.pointer, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
        _ = rd_kafka_flush(handle.pointer, 1_000)
        stop()
    }

    func stop() {
        pollThread.stop()
    }
}

/// Resumes one `send` when librdkafka reports the delivery.
private final class DeliveryReport: Sendable {
    let continuation: CheckedContinuation<Result<RecordPosition, KafkaError>, Never>

    init(_ continuation: CheckedContinuation<Result<RecordPosition, KafkaError>, Never>) {
        self.continuation = continuation
    }

    func complete(_ result: Result<RecordPosition, KafkaError>) {
        continuation.resume(returning: result)
    }
}

/// A metadata round trip to any broker.
func brokerReachable(_ pointer: OpaquePointer, timeoutMs: Int32) -> Bool {
    var metadata: UnsafePointer<rd_kafka_metadata>?
    let error = rd_kafka_metadata(pointer, 0, nil, &metadata, Int32(timeoutMs))
    if let metadata { rd_kafka_metadata_destroy(metadata) }
    return error == RD_KAFKA_RESP_ERR_NO_ERROR
}

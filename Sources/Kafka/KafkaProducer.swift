import CRdKafka
import Foundation
import Logging

/// An idempotent producer (`acks=all`) whose `send` returns only once the broker acknowledged the record.
/// Marked `@unchecked Sendable` because librdkafka's producer is thread-safe and our own state is immutable.
public final class KafkaProducer: @unchecked Sendable {
    private let handle: RdKafkaHandle
    private let pollThread: PollThread
    private let logger: Logger

    public init(configuration: KafkaConfiguration, logger: Logger) throws(KafkaError) {
        let handle = try RdKafkaHandle(kind: .producer, properties: configuration.producerProperties(), logger: logger) { conf in
            rd_kafka_conf_set_dr_msg_cb(conf) { _, message, _ in
                guard let message, let opaque = message.pointee._private else { return }
                let delivery = Unmanaged<DeliveryReport>.fromOpaque(opaque).takeRetainedValue()
                let error = message.pointee.err
                delivery.complete(error == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(error))
            }
        }
        self.handle = handle
        self.logger = logger
        self.pollThread = PollThread(name: "kafka-producer-poll") { thread in
            while thread.isRunning {
                rd_kafka_poll(handle.pointer, 100)
            }
        }
        logger.info("Kafka producer started", metadata: ["librdkafka": "\(librdkafkaVersion)", "brokers": "\(configuration.brokers)"])
    }

    /// Produces one record and waits for the broker's acknowledgement.
    /// - Throws: `KafkaError` when the record was not accepted within the message timeout.
    public func send(topic: String, key: [UInt8], value: [UInt8], headers: [(name: String, value: [UInt8])] = []) async throws(KafkaError) {
        let result: KafkaError? = await withCheckedContinuation { continuation in
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
                continuation.resume(returning: KafkaError(error))
            }
        }
        if let result { throw result }
    }

    /// Waits for outstanding records, then stops the poll thread. Call once, at shutdown.
    public func shutdown(timeoutMs: Int32 = 10_000) {
        let error = rd_kafka_flush(handle.pointer, timeoutMs)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            logger.warning("Kafka producer flush incomplete", metadata: ["error": "\(KafkaError(error))"])
        }
        pollThread.stop()
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

/// Resumes one `send` when librdkafka reports the delivery.
private final class DeliveryReport: Sendable {
    let continuation: CheckedContinuation<KafkaError?, Never>

    init(_ continuation: CheckedContinuation<KafkaError?, Never>) {
        self.continuation = continuation
    }

    func complete(_ error: KafkaError?) {
        continuation.resume(returning: error)
    }
}

/// A metadata round trip to any broker.
func brokerReachable(_ pointer: OpaquePointer, timeoutMs: Int32) -> Bool {
    var metadata: UnsafePointer<rd_kafka_metadata>?
    let error = rd_kafka_metadata(pointer, 0, nil, &metadata, Int32(timeoutMs))
    if let metadata { rd_kafka_metadata_destroy(metadata) }
    return error == RD_KAFKA_RESP_ERR_NO_ERROR
}

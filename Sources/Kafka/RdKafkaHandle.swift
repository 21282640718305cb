import CRdKafka
import Foundation
import Logging

/// Owns one `rd_kafka_t` and the context its callbacks reach through the opaque pointer.
/// Marked `@unchecked Sendable` because librdkafka's handle is thread-safe for every call made on it here.
final class RdKafkaHandle: @unchecked Sendable {
    enum Kind {
        case producer
        case consumer
    }

    let pointer: OpaquePointer
    let context: CallbackContext

    /// State the C callbacks need. Retained for the lifetime of the handle.
    final class CallbackContext: @unchecked Sendable {
        // Marked `@unchecked Sendable` because its fields are immutable after init, or guarded by a lock where mutable.
        let logger: Logger
        var rebalance: (@Sendable (_ assigned: Bool, _ partitions: [TopicPartition]) -> Void)?

        init(logger: Logger) {
            self.logger = logger
        }
    }

    init(kind: Kind, properties: [String: String], logger: Logger, configure: (OpaquePointer) -> Void = { _ in }) throws(KafkaError) {
        let configuration = rd_kafka_conf_new()!
        var errorText = [CChar](repeating: 0, count: 512)
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            let result = rd_kafka_conf_set(configuration, key, value, &errorText, errorText.count)
            guard result == RD_KAFKA_CONF_OK else {
                rd_kafka_conf_destroy(configuration)
                throw KafkaError(code: .invalidConfiguration, message: "\(key): \(cText(errorText))")
            }
        }
        let context = CallbackContext(logger: logger)
        rd_kafka_conf_set_opaque(configuration, Unmanaged.passUnretained(context).toOpaque())
        rd_kafka_conf_set_log_cb(configuration) { handle, level, facility, message in
            guard let handle, let opaque = rd_kafka_opaque(handle) else { return }
            let context = Unmanaged<CallbackContext>.fromOpaque(opaque).takeUnretainedValue()
            let text = message.map { String(cString: $0) } ?? ""
            let facilityText = facility.map { String(cString: $0) } ?? ""
            // syslog levels: 0–3 error, 4 warning, 5–6 info, 7 debug.
            let swiftLevel: Logger.Level = level <= 3 ? .error : level == 4 ? .warning : level <= 6 ? .info : .debug
            context.logger.log(level: swiftLevel, "librdkafka: \(text)", metadata: ["facility": "\(facilityText)"])
        }
        rd_kafka_conf_set_error_cb(configuration) { handle, error, reason, opaque in
            guard let opaque else { return }
            let context = Unmanaged<CallbackContext>.fromOpaque(opaque).takeUnretainedValue()
            let text = reason.map { String(cString: $0) } ?? ""
            context.logger.warning("Kafka client error", metadata: ["code": "\(error)", "reason": "\(text)"])
        }
        configure(configuration)
        guard let pointer = rd_kafka_new(kind == .producer ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER, configuration, &errorText, errorText.count) else {
            // rd_kafka_new frees the configuration only on success.
            rd_kafka_conf_destroy(configuration)
            throw KafkaError(code: .invalidConfiguration, message: cText(errorText))
        }
        self.pointer = pointer
        self.context = context
    }

    deinit {
        rd_kafka_destroy(pointer)
    }
}

/// A dedicated thread that runs a polling loop until told to stop, so blocking librdkafka calls never run on
/// the cooperative thread pool.
final class PollThread: @unchecked Sendable {
    // Marked `@unchecked Sendable` because `running` is only touched under `lock`.
    private let lock = NSLock()
    private var running = true
    private let stopped = DispatchSemaphore(value: 0)

    init(name: String, body: @escaping @Sendable (PollThread) -> Void) {
        let thread = Thread { [self] in
            body(self)
            stopped.signal()
        }
        thread.name = name
        thread.start()
    }

    var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        return running
    }

    /// Asks the loop to stop and waits for it.
    func stop() {
        lock.lock()
        let wasRunning = running
        running = false
        lock.unlock()
        if wasRunning { stopped.wait() }
    }
}

/// A NUL-terminated C buffer as a String.
func cText(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

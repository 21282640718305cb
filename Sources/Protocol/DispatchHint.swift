/// A copy of a job record that the ingress publishes on Redis after the broker acknowledged the record, so that
/// an idle worker can start the job without waiting for its next fetch from the broker.
///
/// The hint is only an early start: the record on the topic stays the job's durable copy. A worker acts on a hint
/// only for a partition it owns and a record it has not been handed yet; the job's lease in Redis keeps the hint
/// and the record from running it twice, and the record's offset is committed once the job has ended.
///
/// On the wire: one line `<partition> <offset> <job id> [<traceparent>]`, a line feed, then the record's value.
public struct DispatchHint: Sendable, Equatable {
    public var partition: Int32
    public var offset: Int64
    public var jobID: String
    /// The W3C `traceparent` the record carries in its headers, if any.
    public var traceparent: String?
    /// The record's value: the encoded `JobEnvelope`.
    public var payload: [UInt8]

    public init(partition: Int32, offset: Int64, jobID: String, traceparent: String? = nil, payload: [UInt8]) {
        self.partition = partition
        self.offset = offset
        self.jobID = jobID
        self.traceparent = traceparent
        self.payload = payload
    }

    /// The message published on `RedisKeys.dispatchChannel(topic:partition:)`.
    public var encoded: [UInt8] {
        var line = "\(partition) \(offset) \(jobID)"
        if let traceparent { line += " \(traceparent)" }
        var bytes = Array(line.utf8)
        bytes.reserveCapacity(bytes.count + 1 + payload.count)
        bytes.append(UInt8(ascii: "\n"))
        bytes.append(contentsOf: payload)
        return bytes
    }

    /// Reads a published hint; `nil` for anything malformed, which a worker ignores (the record still arrives).
    public static func parse(_ bytes: [UInt8]) -> DispatchHint? {
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")), newline <= 256 else { return nil }
        let fields = bytes[..<newline].split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard fields.count == 3 || fields.count == 4,
              let partition = Int32(String(decoding: fields[0], as: UTF8.self)), partition >= 0,
              let offset = Int64(String(decoding: fields[1], as: UTF8.self)), offset >= 0
        else { return nil }
        let jobID = String(decoding: fields[2], as: UTF8.self)
        guard JobID.isValid(jobID) else { return nil }
        var traceparent: String?
        if fields.count == 4 {
            guard !fields[3].isEmpty, fields[3].allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
            traceparent = String(decoding: fields[3], as: UTF8.self)
        }
        let payload = Array(bytes[(newline + 1)...])
        guard !payload.isEmpty else { return nil }
        return DispatchHint(partition: partition, offset: offset, jobID: jobID, traceparent: traceparent, payload: payload)
    }
}

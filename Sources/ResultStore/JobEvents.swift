import Foundation
import Protocol
import Redis

/// One entry of a job's event stream.
public struct JobEvent: Sendable, Hashable {
    /// The Redis Stream entry id; the SSE `id:` a client sends back as `Last-Event-ID`.
    public var id: String
    public var type: JobEventType
    /// The JSON payload, as written (see `JobEventType`).
    public var data: [UInt8]

    public init(id: String, type: JobEventType, data: [UInt8]) {
        self.id = id
        self.type = type
        self.data = data
    }
}

/// Appends to a job's event stream (`RedisKeys.jobEvents`): bounded to about `maxLength` entries, and expiring
/// `ttl` seconds after the last write.
public struct JobEventLog: Sendable {
    public let redis: RedisClient
    public var ttl: Int
    public var maxLength: Int
    private static let encoder = StreamingJSONEncoder()

    public init(redis: RedisClient, ttl: Int, maxLength: Int) {
        self.redis = redis
        self.ttl = ttl
        self.maxLength = maxLength
    }

    /// Appends one event and returns its entry id.
    /// - Throws: `ResultStoreError` `.unavailable` when Redis cannot be reached.
    @discardableResult
    public func append(jobID: String, type: JobEventType, data: [UInt8]) async throws(ResultStoreError) -> String {
        let replies: [RedisValue]
        do {
            replies = try await redis.pipeline(commands(jobID: jobID, type: type, data: data))
        } catch {
            throw ResultStoreError(code: error.isRetryable || error.code == .shutdown ? .unavailable : .unexpected, message: error.message)
        }
        if case .error(let message) = replies[0] { throw ResultStoreError(code: .unexpected, message: message) }
        guard let id = replies[0].string else { throw ResultStoreError(code: .unexpected, message: "unexpected reply to XADD") }
        return id
    }

    /// The commands that append one event, for callers that send them in a pipeline of their own.
    public func commands(jobID: String, type: JobEventType, _ payload: some Encodable) -> [[RedisArgument]] {
        let data = (try? Self.encoder.encode(payload)) ?? Array("{}".utf8)
        return commands(jobID: jobID, type: type, data: data)
    }

    func commands(jobID: String, type: JobEventType, data: [UInt8]) -> [[RedisArgument]] {
        let key = RedisArgument(RedisKeys.jobEvents(jobID))
        return [
            ["XADD", key, "MAXLEN", "~", RedisArgument(maxLength), "*",
             RedisArgument(RedisKeys.JobEventField.type), RedisArgument(type.rawValue),
             RedisArgument(RedisKeys.JobEventField.data), RedisArgument(data)],
            ["EXPIRE", key, RedisArgument(ttl)],
        ]
    }

    /// An event for a job's status-changing script to append in the same step (see `Scripts.appendEvent`).
    public func write(jobID: String, type: JobEventType, _ payload: some Encodable) -> JobEventWrite {
        let data = (try? Self.encoder.encode(payload)) ?? Array("{}".utf8)
        return JobEventWrite(
            key: RedisKeys.jobEvents(jobID),
            arguments: [RedisArgument(maxLength), RedisArgument(ttl), RedisArgument(type.rawValue), RedisArgument(data)])
    }

    /// Appends an encodable payload.
    @discardableResult
    public func append(jobID: String, type: JobEventType, _ payload: some Encodable) async throws(ResultStoreError) -> String {
        let data = (try? Self.encoder.encode(payload)) ?? Array("{}".utf8)
        return try await append(jobID: jobID, type: type, data: data)
    }
}

/// An event appended by the script that changes the job's status, so that the two happen together or not at all.
public struct JobEventWrite: Sendable {
    /// The job's event stream.
    public var key: String
    /// Maximum length, TTL seconds, type, JSON payload.
    public var arguments: [RedisArgument]
}

/// Follows jobs' event streams for the ingress, on a dedicated blocking reader.
public struct JobEventFeed: Sendable {
    public let reader: RedisStreamReader

    public init(reader: RedisStreamReader) {
        self.reader = reader
    }

    /// What following a job yields.
    public enum Element: Sendable, Hashable {
        case event(JobEvent)
        /// Nothing arrived for the idle interval.
        case idle
    }

    /// Follows the job's events after `lastEventID` (all of them when `nil`) while `body` runs.
    public func withEvents<T>(
        jobID: String,
        after lastEventID: String?,
        idleInterval: Duration = .seconds(1),
        _ body: (AsyncCompactMapSequence<AsyncStream<RedisStreamReader.Element>, Element>) async throws -> T
    ) async rethrows -> T {
        try await reader.withEntries(key: RedisKeys.jobEvents(jobID), after: lastEventID ?? "0", idleInterval: idleInterval) { entries in
            try await body(entries.compactMap { element in
                switch element {
                case .idle:
                    return .idle
                case .entry(let entry):
                    // An entry type this version does not know is skipped.
                    guard let type = entry.fields[RedisKeys.JobEventField.type].flatMap({ JobEventType(rawValue: String(decoding: $0, as: UTF8.self)) }) else {
                        return nil
                    }
                    return .event(JobEvent(id: entry.id, type: type, data: entry.fields[RedisKeys.JobEventField.data] ?? Array("{}".utf8)))
                }
            })
        }
    }

    /// Whether `text` is a valid stream entry id, as a client's `Last-Event-ID` must be.
    public static func isValidEventID(_ text: String) -> Bool {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        return (1...2).contains(parts.count) && parts.allSatisfy { !$0.isEmpty && $0.count <= 20 && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }
    }
}

import Foundation
import Logging
import Protocol
import Redis

/// Job records, results and completion notifications in Redis. Every write that changes a job's status is one
/// Lua script, so that concurrent workers, redeliveries and cancellations agree on a single outcome.
public struct ResultStore: Sendable {
    public let redis: RedisClient
    /// Seconds a finished job's record is kept.
    public var resultTTL: Int
    private let encoder = StreamingJSONEncoder()

    public init(redis: RedisClient, resultTTL: Int) {
        self.redis = redis
        self.resultTTL = resultTTL
    }

    // MARK: - Ingress side

    /// Records a new job as `queued`, with the channel of the ingress replica that waits for it.
    /// - Parameter deadline: seconds since 1970 after which the job must not start (it then ends `expired`).
    public func create(_ record: JobRecord, request: [UInt8], replyTo: String?, deadline: Double? = nil) async throws(ResultStoreError) {
        try await write(createCommands(record, request: request, replyTo: replyTo, deadline: deadline))
    }

    /// Sends writes in one round trip.
    /// - Throws: `ResultStoreError` `.unavailable` when Redis cannot be reached or refused one of them.
    public func write(_ commands: [RedisCommand]) async throws(ResultStoreError) {
        let replies = try await storeCall { try await redis.pipeline(commands: commands) }
        for reply in replies {
            if case .error(let message) = reply { throw ResultStoreError(code: .unavailable, message: message) }
        }
    }

    /// The commands that record a new job as `queued` (see `create`), for a caller that sends them itself.
    /// - Parameter owner: the tenant that submitted the job (`Tenant.id`); only it can read or cancel the job
    ///   through `record(id:readableBy:)`. `nil` for jobs submitted without authentication.
    public func createCommands(_ record: JobRecord, request: [UInt8], replyTo: String?, deadline: Double? = nil, owner: String? = nil) -> [RedisCommand] {
        let key = RedisKeys.job(record.id)
        var fields: [RedisArgument] = [
            "HSET", RedisArgument(key),
            "id", RedisArgument(record.id),
            "status", RedisArgument(record.status.rawValue),
            "provider", RedisArgument(record.provider),
            "model", RedisArgument(record.model),
            "created_at", RedisArgument(Self.format(record.createdAt)),
            "attempts", "0",
            "request", RedisArgument(request),
        ]
        if let replyTo { fields += ["reply_to", RedisArgument(replyTo)] }
        if let deadline { fields += ["deadline", RedisArgument(Self.format(deadline))] }
        if let owner { fields += [RedisArgument(Self.ownerField), RedisArgument(owner)] }
        return [RedisCommand(fields), RedisCommand(["EXPIRE", RedisArgument(key), RedisArgument(resultTTL)])]
    }

    /// The job hash's field naming the tenant that submitted the job.
    static let ownerField = "owner"

    /// The job's document, or `nil` for an unknown id.
    /// - Parameter tenant: the caller's `Tenant.id`; a job that another tenant submitted is `nil` to it, as if it
    ///   did not exist. `nil` reads any job (workers, admin routes, unauthenticated gateways).
    public func record(id: String, readableBy tenant: String? = nil) async throws(ResultStoreError) -> JobRecord? {
        let reply = try await storeCall { try await redis.command("HGETALL", RedisArgument(RedisKeys.job(id))) }
        guard let values = reply.array, !values.isEmpty else { return nil }
        var fields: [String: [UInt8]] = [:]
        var index = 0
        while index + 1 < values.count {
            if let name = values[index].string, let value = values[index + 1].bytes { fields[name] = value }
            index += 2
        }
        if let tenant, let owner = fields[Self.ownerField], owner != Array(tenant.utf8) { return nil }
        guard var record = JobRecordCodec.decode(fields) else { return nil }
        if let ids = fields["webhooks"], !ids.isEmpty {
            record.webhookDeliveries = try await webhookDeliveries(ids: String(decoding: ids, as: UTF8.self).split(separator: " ").map(String.init))
        }
        return record
    }

    /// The request a job was submitted with, as JSON.
    public func request(id: String) async throws(ResultStoreError) -> [UInt8]? {
        try await storeCall { try await redis.command("HGET", RedisArgument(RedisKeys.job(id)), "request") }.bytes
    }

    // MARK: - Worker side

    /// What a worker may do with a job it received.
    public enum StartDecision: Sendable, Equatable {
        /// Run it; this is attempt number `attempt`.
        case run(attempt: Int)
        /// The job already ended with this status: acknowledge the record and do nothing.
        case alreadyFinished(JobStatus)
        /// Another live worker holds the job; look again after this many milliseconds.
        case leasedElsewhere(retryAfterMs: Int)
        /// No record: it expired or never existed.
        case unknown
    }

    /// Claims a job for `worker` with a lease, and marks it `in_progress`; a queued job past its deadline ends
    /// `expired` instead.
    /// - Parameters:
    ///   - event: appended to the job's event stream when this call claims the job (the `started` event).
    ///   - expiryWebhooks: the `job.expired` deliveries, recorded when this call expires the job.
    ///   - webhookRetention: seconds their records are kept (at least the result TTL).
    public func start(
        id: String, worker: String, leaseMs: Int, now: Double, event: JobEventWrite? = nil,
        expiryWebhooks: [WebhookDeliveryPlan] = [], webhookRetention: Int = 0
    ) async throws(ResultStoreError) -> StartDecision {
        let reply = try await storeCall {
            try await redis.eval(
                Scripts.start,
                keys: [RedisKeys.job(id), RedisKeys.jobLease(id)] + (event.map { [$0.key] } ?? [])
                    + [RedisKeys.webhooksDue] + expiryWebhooks.map { RedisKeys.webhookDelivery($0.id) },
                arguments: [
                    RedisArgument(worker), RedisArgument(leaseMs), RedisArgument(Self.format(now)),
                    RedisArgument(RedisKeys.notifyChannel(instance: "")), RedisArgument(id), RedisArgument(event == nil ? 0 : 1),
                ] + (event?.arguments ?? [])
                    + Self.webhookArguments(expiryWebhooks, dueAt: now, retention: max(webhookRetention, resultTTL)))
        }
        guard let parts = reply.array, let kind = parts.first?.string else {
            throw ResultStoreError(code: .unexpected, message: "unexpected reply to start")
        }
        switch kind {
        case "run": return .run(attempt: Int(parts.count > 1 ? parts[1].integer ?? 1 : 1))
        case "final": return .alreadyFinished(JobStatus(rawValue: parts[1].string ?? "") ?? .completed)
        case "leased": return .leasedElsewhere(retryAfterMs: Int(parts[1].integer ?? 1000))
        default: return .unknown
        }
    }

    /// What renewing a job's lease found.
    public enum LeaseRenewal: Sendable, Hashable {
        case renewed
        /// Another worker holds the lease (this one's expired and the job was claimed again).
        case heldElsewhere
        /// No lease: it expired unclaimed, or the job's finish released it.
        case lapsed

        init(_ reply: RedisValue) {
            switch reply.integer {
            case 1: self = .renewed
            case 0: self = .heldElsewhere
            default: self = .lapsed
            }
        }
    }

    /// Extends the lease while the job runs.
    public func renewLease(id: String, worker: String, leaseMs: Int) async throws(ResultStoreError) -> LeaseRenewal {
        let reply = try await storeCall {
            try await redis.eval(Scripts.renew, keys: [RedisKeys.jobLease(id)], arguments: [RedisArgument(worker), RedisArgument(leaseMs)])
        }
        return LeaseRenewal(reply)
    }

    /// Extends the leases of several jobs in one round trip; returns what each renewal found, in the order of `ids`.
    public func renewLeases(ids: [String], worker: String, leaseMs: Int) async throws(ResultStoreError) -> [LeaseRenewal] {
        guard !ids.isEmpty else { return [] }
        let commands = ids.map { id in
            RedisCommand.eval(Scripts.renew, keys: [RedisKeys.jobLease(id)], arguments: [RedisArgument(worker), RedisArgument(leaseMs)])
        }
        let replies = try await storeCall { try await redis.pipeline(commands: commands) }
        return replies.map(LeaseRenewal.init)
    }

    /// Writes the final outcome, releases the lease and notifies the waiting ingress replica, atomically.
    /// A job that already ended is left as it is.
    /// - Parameters:
    ///   - event: appended to the job's event stream when this call ends the job (`completed` or `failed`).
    ///   - preceding: commands sent in the same round trip just before (idempotent ones: they are sent again when
    ///     the call is retried); `precedingFailed` hears of their error replies.
    /// - Returns: `false` when the job had already ended (a duplicate), `true` when this call ended it.
    @discardableResult
    public func finish(
        id: String,
        worker: String,
        outcome: JobOutcome,
        attemptLog: [AttemptRecord],
        provider: String,
        model: String,
        now: Double,
        webhooks: [WebhookDeliveryPlan] = [],
        webhookRetention: Int = 0,
        event: JobEventWrite? = nil,
        preceding: [RedisCommand] = [],
        precedingFailed: (String) -> Void = { _ in }
    ) async throws(ResultStoreError) -> Bool {
        let status: String
        let payload: [UInt8]
        var usage: [UInt8] = []
        switch outcome {
        case .completed(let completion):
            status = "completed"
            payload = (try? encoder.encode(completion)) ?? []
            if let value = completion.usage, let data = try? encoder.encode(value) { usage = data }
        case .failed(let failure):
            status = "failed"
            payload = (try? encoder.encode(failure)) ?? []
        }
        let log = (try? encoder.encode(attemptLog)) ?? Array("[]".utf8)
        let arguments: [RedisArgument] = [
            RedisArgument(worker), RedisArgument(resultTTL), RedisArgument(Self.format(now)),
            RedisArgument(RedisKeys.notifyChannel(instance: "")), RedisArgument(id), RedisArgument(status),
            RedisArgument(payload), RedisArgument(usage), RedisArgument(log), RedisArgument(attemptLog.count),
            RedisArgument(provider), RedisArgument(model),
        ] + Self.webhookArguments(webhooks, dueAt: now, retention: max(webhookRetention, resultTTL)) + (event?.arguments ?? [])
        let keys = [RedisKeys.job(id), RedisKeys.jobLease(id), RedisKeys.webhooksDue] + webhooks.map { RedisKeys.webhookDelivery($0.id) }
            + (event.map { [$0.key] } ?? [])
        let replies = try await storeCall {
            try await redis.pipeline(commands: preceding + [.eval(Scripts.finish, keys: keys, arguments: arguments)])
        }
        for reply in replies.dropLast() {
            if case .error(let message) = reply { precedingFailed(message) }
        }
        if case .error(let message) = replies.last {
            throw ResultStoreError(code: .unexpected, message: message)
        }
        return replies.last?.integer == 1
    }

    // MARK: -

    static func format(_ seconds: Double) -> String {
        DecimalText.seconds(seconds)
    }
}

/// How a job ended.
public enum JobOutcome: Sendable {
    case completed(ChatCompletion)
    case failed(JobFailure)
}

/// A failed Result Store operation.
public struct ResultStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: RawRepresentable, Sendable, Hashable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// Redis is unreachable or timed out: worth retrying, and a 503 at the edge.
        public static let unavailable = Code(rawValue: "unavailable")
        /// Redis answered something the store did not expect.
        public static let unexpected = Code(rawValue: "unexpected")
    }

    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var isRetryable: Bool { code == .unavailable }
    public var description: String { "result store \(code.rawValue): \(message)" }
}

/// Builds a `JobRecord` from the fields of the job hash.
enum JobRecordCodec {
    private static let decoder = IndexedJSONDecoder()

    static func decode(_ fields: [String: [UInt8]]) -> JobRecord? {
        func text(_ name: String) -> String? { fields[name].map { String(decoding: $0, as: UTF8.self) } }
        func number(_ name: String) -> Double? { text(name).flatMap(Double.init) }
        func json<T: Decodable>(_ type: T.Type, _ name: String) -> T? {
            guard let bytes = fields[name], !bytes.isEmpty else { return nil }
            return try? decoder.decode(type, from: bytes)
        }
        guard let id = text("id"), let status = text("status").flatMap(JobStatus.init(rawValue:)) else { return nil }
        return JobRecord(
            id: id,
            status: status,
            provider: text("provider") ?? "",
            model: text("model") ?? "",
            createdAt: number("created_at") ?? 0,
            startedAt: number("started_at"),
            completedAt: number("completed_at"),
            attempts: Int(text("attempts") ?? "0") ?? 0,
            result: json(ChatCompletion.self, "result"),
            usage: json(Usage.self, "usage"),
            error: json(JobFailure.self, "error"),
            attemptLog: json([AttemptRecord].self, "attempt_log")
        )
    }
}

extension ResultStore {
    /// Removes a job that was never enqueued.
    public func discard(id: String) async throws(ResultStoreError) {
        do {
            try await redis.command("DEL", RedisArgument(RedisKeys.job(id)))
        } catch {
            throw ResultStoreError(code: .unavailable, message: error.message)
        }
    }
}

/// A message on an ingress replica's notification channel (`RedisKeys.notifyChannel`): the id of a job that ended,
/// followed, when the finish script sent it, by the job's fields (`\n<name> <byte count> <value>` each), so that
/// the waiting request needs no read of the record.
public enum JobNotification {
    /// The job id and, when the message carries it, the finished record.
    public static func parse(_ payload: [UInt8]) -> (id: String, record: JobRecord?) {
        guard let newline = payload.firstIndex(of: UInt8(ascii: "\n")) else {
            return (String(decoding: payload, as: UTF8.self), nil)
        }
        let id = String(decoding: payload[..<newline], as: UTF8.self)
        var fields: [String: [UInt8]] = [:]
        var index = newline + 1
        while index < payload.endIndex {
            guard let nameEnd = payload[index...].firstIndex(of: UInt8(ascii: " ")),
                  let countEnd = payload[(nameEnd + 1)...].firstIndex(of: UInt8(ascii: " ")),
                  let count = Int(String(decoding: payload[(nameEnd + 1)..<countEnd], as: UTF8.self)),
                  count >= 0, countEnd + 1 + count <= payload.endIndex
            else { return (id, nil) }
            let name = String(decoding: payload[index..<nameEnd], as: UTF8.self)
            fields[name] = Array(payload[(countEnd + 1)..<(countEnd + 1 + count)])
            index = countEnd + 1 + count
            if index < payload.endIndex {
                guard payload[index] == UInt8(ascii: "\n") else { return (id, nil) }
                index += 1
            }
        }
        // A record with webhook deliveries is read in full (`ResultStore.record(id:)` adds their states).
        guard fields["webhooks"] == nil, let record = JobRecordCodec.decode(fields), record.id == id else { return (id, nil) }
        return (id, record)
    }
}

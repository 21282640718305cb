import Foundation
import Protocol
import Redis

/// The Lua scripts of cancellation, re-driving and idempotency. Keys and arguments are documented per script.
enum LifecycleScripts {
    /// KEYS: job hash, due webhooks (sorted set), then one hash per delivery of the cancellation.
    /// ARGV: now, notify channel prefix, job id, cancellation channel, then the deliveries (`record_deliveries`).
    /// Returns `{"cancelled", previous status}`, `{"final", status}` or `{"unknown", ""}`. A running job is
    /// announced on the cancellation channel, so that its worker aborts the upstream call. The deliveries are
    /// recorded only by the call that cancels the job (its worker's later `finish` records none).
    static let cancel = RedisScript("""
    \(Scripts.recordDeliveries)
    local status = redis.call('HGET', KEYS[1], 'status')
    if not status then return {'unknown', ''} end
    if status ~= 'queued' and status ~= 'in_progress' then return {'final', status} end
    redis.call('HSET', KEYS[1], 'status', 'cancelled', 'completed_at', ARGV[1])
    record_deliveries(KEYS[1], KEYS[2], 3, 5)
    local waiting = redis.call('HGET', KEYS[1], 'reply_to')
    if waiting then redis.call('PUBLISH', ARGV[2] .. waiting, ARGV[3]) end
    if status == 'in_progress' then redis.call('PUBLISH', ARGV[4], ARGV[3]) end
    return {'cancelled', status}
    """)

    /// KEYS: job hash. ARGV: ttl seconds, then the fields a re-drive clears (`requeuedFields`).
    /// Returns `{"queued", previous status, request, {field, value, …}}` when a failed or expired job was reset to
    /// queued (the cleared fields that had a value, for `restore`), `{"refused", status}` for any other status,
    /// `{"no_request", status}` when the job kept no request to run (nothing changed), or `{"unknown", ""}`.
    static let requeue: RedisScript = """
    local status = redis.call('HGET', KEYS[1], 'status')
    if not status then return {'unknown', ''} end
    if status ~= 'failed' and status ~= 'expired' then return {'refused', status} end
    local request = redis.call('HGET', KEYS[1], 'request')
    if not request then return {'no_request', status} end
    local fields = {unpack(ARGV, 2)}
    local values = redis.call('HMGET', KEYS[1], unpack(fields))
    local cleared = {}
    for i, field in ipairs(fields) do
      if values[i] then
        cleared[#cleared + 1] = field
        cleared[#cleared + 1] = values[i]
      end
    end
    redis.call('HDEL', KEYS[1], unpack(fields))
    redis.call('HSET', KEYS[1], 'status', 'queued')
    redis.call('EXPIRE', KEYS[1], ARGV[1])
    return {'queued', status, request, cleared}
    """

    /// What a re-drive clears: the previous run's outcome, and what tied the job to its first request.
    static let requeuedFields = ["error", "result", "usage", "completed_at", "started_at", "reply_to", "deadline", "webhooks"]

    /// KEYS: job hash. ARGV: the status to restore, then the cleared fields and their values.
    /// Returns 1 when the job was put back, 0 when it is no longer `queued` (a worker has it, or it ended).
    static let restore: RedisScript = """
    if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
    redis.call('HSET', KEYS[1], 'status', unpack(ARGV))
    return 1
    """

    /// KEYS: idempotency key. ARGV: `<job id> <request fingerprint>`, ttl seconds.
    /// Returns `{1, value}` when this call took the key, `{0, the holder's value}` otherwise.
    static let claimIdempotency: RedisScript = """
    if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return {1, ARGV[1]} end
    return {0, redis.call('GET', KEYS[1])}
    """

    /// KEYS: idempotency key. ARGV: the value this request stored. Deletes the key when it still holds it.
    static let releaseIdempotency: RedisScript = """
    if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
    return 0
    """
}

extension ResultStore {
    /// What `cancel(id:)` did.
    public enum CancelResult: Sendable, Equatable {
        /// The job was `queued` or `in_progress` and is now `cancelled`.
        case cancelled(previous: JobStatus)
        /// The job had already ended with this status; nothing changed.
        case alreadyFinished(JobStatus)
        case unknown
    }

    /// Cancels a job that has not ended; a running one's worker is told to abort the upstream call.
    /// - Parameters:
    ///   - webhooks: the `job.cancelled` deliveries, recorded when this call cancels the job.
    ///   - webhookRetention: seconds their records are kept (at least the result TTL).
    public func cancel(id: String, now: Double, webhooks: [WebhookDeliveryPlan] = [], webhookRetention: Int = 0) async throws(ResultStoreError) -> CancelResult {
        let reply = try await storeCall {
            try await redis.eval(
                LifecycleScripts.cancel,
                keys: [RedisKeys.job(id), RedisKeys.webhooksDue] + webhooks.map { RedisKeys.webhookDelivery($0.id) },
                arguments: [
                    RedisArgument(Self.format(now)), RedisArgument(RedisKeys.notifyChannel(instance: "")), RedisArgument(id),
                    RedisArgument(RedisKeys.jobCancellations),
                ] + Self.webhookArguments(webhooks, dueAt: now, retention: max(webhookRetention, resultTTL)))
        }
        let parts = reply.array ?? []
        let status = parts.count > 1 ? JobStatus(rawValue: parts[1].string ?? "") : nil
        switch parts.first?.string {
        case "cancelled": return .cancelled(previous: status ?? .queued)
        case "final": return .alreadyFinished(status ?? .completed)
        default: return .unknown
        }
    }

    /// A failed or expired job that `requeue(id:)` reset to `queued`.
    public struct Requeued: Sendable, Equatable {
        public var previous: JobStatus
        /// The original request's envelope, to produce again.
        public var envelope: [UInt8]
        /// The fields the reset cleared, with their values, for `restore(_:id:)`.
        var cleared: [Field]

        struct Field: Sendable, Equatable {
            var name: String
            var value: [UInt8]
        }
    }

    /// What `requeue(id:)` did.
    public enum RequeueResult: Sendable, Equatable {
        /// The job is `queued` again; produce its envelope (the original request) to re-drive it.
        case queued(Requeued)
        /// The job's status does not allow a retry.
        case refused(JobStatus)
        /// The job kept no request to run again; it was left as it was.
        case noRequest(JobStatus)
        case unknown
    }

    /// Resets a failed or expired job to `queued` and returns its request, in one step, for
    /// `POST /admin/jobs/{id}/retry`.
    public func requeue(id: String) async throws(ResultStoreError) -> RequeueResult {
        let reply = try await storeCall {
            try await redis.eval(
                LifecycleScripts.requeue, keys: [RedisKeys.job(id)],
                arguments: [RedisArgument(resultTTL)] + LifecycleScripts.requeuedFields.map { RedisArgument($0) })
        }
        let parts = reply.array ?? []
        let status = parts.count > 1 ? JobStatus(rawValue: parts[1].string ?? "") : nil
        switch parts.first?.string {
        case "queued":
            guard parts.count > 3, let envelope = parts[2].bytes else { return .noRequest(status ?? .failed) }
            let pairs = parts[3].array ?? []
            let cleared = stride(from: 0, to: pairs.count - 1, by: 2).compactMap { index -> Requeued.Field? in
                guard let name = pairs[index].string, let value = pairs[index + 1].bytes else { return nil }
                return Requeued.Field(name: name, value: value)
            }
            return .queued(Requeued(previous: status ?? .failed, envelope: envelope, cleared: cleared))
        case "refused": return .refused(status ?? .completed)
        case "no_request": return .noRequest(status ?? .failed)
        default: return .unknown
        }
    }

    /// Puts a re-driven job back as it was before `requeue(id:)` (status, outcome, timestamps), when the re-drive
    /// could not be produced. Nothing changes once the job has left `queued`.
    /// - Returns: whether the job was put back.
    @discardableResult
    public func restore(_ requeued: Requeued, id: String) async throws(ResultStoreError) -> Bool {
        let reply = try await storeCall {
            try await redis.eval(
                LifecycleScripts.restore, keys: [RedisKeys.job(id)],
                arguments: [RedisArgument(requeued.previous.rawValue)]
                    + requeued.cleared.flatMap { [RedisArgument($0.name), RedisArgument($0.value)] })
        }
        return reply.integer == 1
    }

    /// Maps an idempotency key to `claim` unless it already maps to a job.
    /// - Returns: `nil` when this call took the key, else the claim it holds.
    public func claimIdempotency(namespace: String, keyHash: String, claim: IdempotencyClaim, ttl: Int) async throws(ResultStoreError) -> IdempotencyClaim? {
        let reply = try await storeCall {
            try await redis.eval(LifecycleScripts.claimIdempotency, keys: [RedisKeys.idempotency(namespace: namespace, keyHash: keyHash)], arguments: [
                RedisArgument(claim.value), RedisArgument(ttl),
            ])
        }
        let parts = reply.array ?? []
        guard parts.first?.integer == 0 else { return nil }
        return parts.count > 1 ? parts[1].string.map(IdempotencyClaim.init(value:)) : nil
    }

    /// Frees an idempotency key whose job was not accepted, so that the client's retry can create it.
    public func releaseIdempotency(namespace: String, keyHash: String, claim: IdempotencyClaim) async throws(ResultStoreError) {
        _ = try await storeCall {
            try await redis.eval(LifecycleScripts.releaseIdempotency, keys: [RedisKeys.idempotency(namespace: namespace, keyHash: keyHash)], arguments: [RedisArgument(claim.value)])
        }
    }
}

/// What an `Idempotency-Key` maps to: the job created for it and the fingerprint of the request that created it,
/// so that the key reused with another request is told apart from a retry.
public struct IdempotencyClaim: Sendable, Equatable {
    public var jobID: String
    /// A digest of the request; `nil` for a claim stored before fingerprints were kept (it matches any request).
    public var fingerprint: String?

    public init(jobID: String, fingerprint: String) {
        self.jobID = jobID
        self.fingerprint = fingerprint
    }

    /// Reads a stored value: `<job id> <fingerprint>`, or a bare job id.
    init(value: String) {
        let parts = value.split(separator: " ", maxSplits: 1)
        jobID = parts.first.map(String.init) ?? value
        fingerprint = parts.count > 1 ? String(parts[1]) : nil
    }

    var value: String { fingerprint.map { "\(jobID) \($0)" } ?? jobID }

    /// Whether a request with `fingerprint` repeats the one that took the key.
    public func matches(_ fingerprint: String) -> Bool {
        self.fingerprint == nil || self.fingerprint == fingerprint
    }
}

extension ResultStore {
    /// The job's status alone, or `nil` for an unknown id.
    public func status(id: String) async throws(ResultStoreError) -> JobStatus? {
        let reply = try await storeCall { try await redis.command("HGET", RedisArgument(RedisKeys.job(id)), "status") }
        return reply.string.flatMap(JobStatus.init(rawValue:))
    }
}

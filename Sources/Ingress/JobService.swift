import Foundation
import Kafka
import Logging
import Protocol
import Redis
import ResultStore
import Telemetry
import Tracing

/// Accepts jobs: records them in Redis, produces them to their provider's topic, and waits for results.
public struct JobService: Sendable {
    public let configuration: GatewayConfiguration
    public let store: ResultStore
    public let producer: KafkaProducer
    public let waiters: JobWaiters
    /// Follows jobs' event streams for the streaming routes.
    public let feed: JobEventFeed
    public let metrics: GatewayMetrics
    let logger: Logger

    private static let encoder = StreamingJSONEncoder()

    public init(configuration: GatewayConfiguration, store: ResultStore, producer: KafkaProducer, waiters: JobWaiters, metrics: GatewayMetrics, feed: JobEventFeed, logger: Logger) {
        self.configuration = configuration
        self.store = store
        self.producer = producer
        self.waiters = waiters
        self.feed = feed
        self.metrics = metrics
        self.logger = logger
    }

    /// Where each job's `queued` event is written.
    public var events: JobEventLog {
        JobEventLog(redis: store.redis, ttl: configuration.jobEventsTTL, maxLength: configuration.jobEventsMaxLength)
    }

    /// A job that the broker acknowledged.
    public struct Accepted: Sendable {
        public var record: JobRecord
        public var registration: JobWaiters.Registration?
        /// The job was created earlier for the same `Idempotency-Key`; this request created nothing.
        public var replayed = false
    }

    /// A job about to be submitted, before admission: its id, record and envelope.
    public struct Draft: Sendable {
        public let record: JobRecord
        let envelope: JobEnvelope
        let wait: Bool
        let options: JobOptions
    }

    /// What records a drafted job: its envelope's bytes (produced as they are) and the commands that write the
    /// job's record and its `queued` event.
    public struct Recording: Sendable {
        let payload: [UInt8]
        public let commands: [RedisCommand]
    }

    /// Drafts a job: a new id (or `options.jobID`), the `queued` record and the envelope.
    /// - Parameters:
    ///   - wait: a synchronous answer: the worker notifies this replica.
    ///   - stream: have the worker stream the provider's answer into the job's event stream.
    public func draft(_ job: NormalizedJob, wait: Bool, stream: Bool = false, options: JobOptions = JobOptions()) -> Draft {
        let now = Date().timeIntervalSince1970
        let id = options.jobID ?? JobID.make(milliseconds: UInt64(now * 1000))
        var envelope = JobEnvelope(
            id: id,
            provider: job.provider,
            request: job.request,
            fallbacks: job.fallbacks,
            enqueuedAt: UInt64(now * 1000),
            replyTo: wait ? waiters.instanceID : nil,
            stream: stream ? true : nil
        )
        options.apply(to: &envelope)
        // Every route's jobs carry the submitting key: its secret signs their webhooks, its endpoints receive them.
        if envelope.keyID == nil { envelope.keyID = TenancyRequestState.current?.tenant.keyID }
        let record = JobRecord(id: id, status: .queued, provider: job.provider, model: job.request.model, createdAt: now)
        return Draft(record: record, envelope: envelope, wait: wait, options: options)
    }

    /// The envelope with the admission's `tenancy`, encoded, and the commands that record the job.
    /// The `queued` event goes with the record, before the produce, so that it is always the job's first event.
    public func recording(_ draft: Draft, tenancy: JobTenancy?) throws(GatewayError) -> Recording {
        var envelope = draft.envelope
        envelope.tenancy = tenancy
        let payload: [UInt8]
        do {
            payload = try Self.encoder.encode(envelope)
        } catch {
            throw .invalidRequest("The request could not be encoded.")
        }
        let record = draft.record
        let queued = events.commands(
            jobID: record.id, type: .queued, JobEventStatus(id: record.id, status: .queued, provider: record.provider, model: record.model))
        let commands = store.createCommands(record, request: payload, replyTo: envelope.replyTo, deadline: draft.options.deadline, owner: Self.caller)
            + queued.map(RedisCommand.init)
        return Recording(payload: payload, commands: commands)
    }

    /// Records the job as `queued` and returns once the broker acknowledged it.
    /// - Parameters:
    ///   - wait: register a waiter first, for a synchronous answer.
    ///   - stream: have the worker stream the provider's answer into the job's event stream.
    ///   - options: webhook, lane, deadline and idempotency key (see `JobOptions`).
    /// - Throws: `GatewayError` 503 when Redis or the broker is unavailable; the job then does not exist.
    public func submit(_ job: NormalizedJob, wait: Bool, stream: Bool = false, options: JobOptions = JobOptions()) async throws(GatewayError) -> Accepted {
        if options.idempotency != nil, options.jobID == nil { return try await submitIdempotently(job, wait: wait, stream: stream, options: options) }
        return try await submit(draft(job, wait: wait, stream: stream, options: options), recorded: nil)
    }

    /// Submits a drafted job.
    /// - Parameter recorded: the recording that admission already ran (`TenancyGate.admit(_:recording:)`); `nil`
    ///   records the job here, with the tenancy admission left for the request.
    public func submit(_ draft: Draft, recorded: Recording?) async throws(GatewayError) -> Accepted {
        let id = draft.record.id
        let recording: Recording
        if let recorded {
            recording = recorded
        } else {
            recording = try self.recording(draft, tenancy: TenancyRequestState.jobTenancy)
            do {
                try await store.write(recording.commands)
            } catch {
                logger.warning("Job not recorded: Redis unavailable", metadata: ["job_id": "\(id)", "error": "\(error)"])
                try? await store.discard(id: id)
                await releaseAdmission()
                throw .unavailable("The result store is unavailable; the job was not accepted. Retry shortly.", code: "store_unavailable")
            }
        }
        let registration = draft.wait ? waiters.register(id) : nil
        let topic = Topics.jobs(provider: draft.envelope.provider, lane: draft.options.lane)
        let enqueued: Enqueued
        switch await enqueue(id: id, topic: topic, payload: recording.payload) {
        case .success(let value):
            enqueued = value
        case .failure(let error):
            if let registration { waiters.cancel(registration) }
            logger.warning("Job not enqueued: broker unavailable", metadata: ["job_id": "\(id)", "error": "\(error)"])
            // The client gets a 503 and no id, so the record must not linger as `queued`, nor its charge.
            try? await store.discard(id: id)
            await releaseAdmission()
            throw .unavailable("The job queue is unavailable; the job was not accepted. Retry shortly.", code: "queue_unavailable")
        }
        logger.debug("Job enqueued", metadata: ["job_id": "\(id)", "provider": "\(draft.envelope.provider)"])
        // A client waits for this job: let an idle worker start it now rather than after its next fetch.
        if configuration.dispatchHints, draft.wait || draft.envelope.stream == true, draft.options.lane == .interactive {
            let hint = DispatchHint(
                partition: enqueued.position.partition, offset: enqueued.position.offset, jobID: id,
                traceparent: enqueued.traceparent, payload: recording.payload)
            store.publish(hint, topic: topic)
        }
        return Accepted(record: draft.record, registration: registration)
    }

    /// Gives back what the current request's admission charged (tokens, budgets), for a job that will not run.
    /// Best effort: a failure leaves the estimate charged, as before the release existed.
    func releaseAdmission() async {
        guard let tenancy = TenancyRequestState.jobTenancy else { return }
        do {
            try await store.write([UsageStore.releaseCommand(tenancy)])
        } catch {
            logger.warning("Admission estimate not released", metadata: ["tenant": "\(tenancy.tenant)", "error": "\(error)"])
        }
    }

    /// Where an acknowledged record went, and the `traceparent` it carries.
    private struct Enqueued {
        var position: RecordPosition
        var traceparent: String?
    }

    /// Produces a job record whose headers carry the request's `traceparent`, so that the worker joins the
    /// request's trace: from a producer span when spans are exported, else from the request's context.
    private func enqueue(id: String, topic: String, payload: [UInt8]) async -> Result<Enqueued, KafkaError> {
        guard configuration.exportsSpans else {
            return await produce(id: id, topic: topic, payload: payload, headers: (ServiceContext.current ?? .topLevel).kafkaHeaders())
        }
        return await withSpan("\(topic) publish", ofKind: .producer) { span -> Result<Enqueued, KafkaError> in
            span.attributes["messaging.system"] = "kafka"
            span.attributes["messaging.destination.name"] = topic
            span.attributes["messaging.message.id"] = id
            let result = await produce(id: id, topic: topic, payload: payload, headers: span.context.kafkaHeaders())
            if case .failure(let error) = result { span.recordError(error) }
            return result
        }
    }

    private func produce(id: String, topic: String, payload: [UInt8], headers: [(name: String, value: [UInt8])]) async -> Result<Enqueued, KafkaError> {
        let started = ContinuousClock.now
        do throws(KafkaError) {
            let position = try await producer.send(topic: topic, key: Array(id.utf8), value: payload, headers: headers)
            metrics.enqueue(duration: ContinuousClock.now - started)
            let traceparent = headers.last(where: { $0.name == "traceparent" }).map { String(decoding: $0.value, as: UTF8.self) }
            return .success(Enqueued(position: position, traceparent: traceparent))
        } catch {
            return .failure(error)
        }
    }

    /// Waits for an accepted job; returns its final record, or `nil` when the wait timed out.
    public func result(of accepted: Accepted, timeout: Double) async throws(GatewayError) -> JobRecord? {
        if accepted.replayed { return try await waitForReplay(accepted.record.id, timeout: timeout) }
        guard let registration = accepted.registration else { return nil }
        let waitStarted = ContinuousClock.now
        let outcome = await waiters.wait(for: registration, timeout: .milliseconds(Int64(timeout * 1000)))
        metrics.syncWait(duration: ContinuousClock.now - waitStarted)
        guard case .finished(let notified) = outcome else { return nil }
        if let notified { return notified }
        return try await record(id: accepted.record.id)
    }

    /// The authenticated tenant of the current request, which owns the jobs it submits; `nil` without
    /// authentication (every caller is `anonymous` then) or outside a request.
    static var caller: String? {
        guard let tenant = TenancyRequestState.current?.tenant, tenant.id != Tenant.anonymous.id else { return nil }
        return tenant.id
    }

    /// The job's document; `nil` for an unknown id, and for a job another tenant submitted.
    /// - Throws: `GatewayError` 503 when Redis is unavailable.
    public func record(id: String) async throws(GatewayError) -> JobRecord? {
        guard JobID.isValid(id) else { return nil }
        do {
            return try await store.record(id: id, readableBy: Self.caller)
        } catch {
            throw .unavailable("The result store is unavailable. Retry shortly.", code: "store_unavailable")
        }
    }

    /// The wait a sync request asked for, capped by configuration.
    public func syncTimeout(requested: Double?) throws(GatewayError) -> Double {
        guard let requested else { return configuration.syncTimeout }
        guard requested > 0, requested.isFinite else { throw .invalidRequest("'timeout' must be a positive number of seconds.", param: "timeout") }
        return min(requested, configuration.syncTimeoutMax)
    }
}

extension GatewayError {
    /// The error a client sees for a job that failed.
    public static func jobFailed(_ failure: JobFailure?, jobID: String) -> GatewayError {
        guard let failure else {
            return GatewayError(status: 502, message: "The job \(jobID) failed.", type: "upstream_error", code: "job_failed")
        }
        let status: Int
        switch failure.code {
        case "rate_limited": status = 429
        case "invalid_request": status = 400
        case "timeout": status = 504
        default: status = 502
        }
        return GatewayError(status: status, message: failure.message, type: failure.type, code: failure.code)
    }
}

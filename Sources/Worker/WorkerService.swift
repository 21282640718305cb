import Foundation
import Kafka
import Logging
import Protocol
import ResultStore
import ServiceLifecycle
import Telemetry
import Tracing

/// Consumes the job topics of some providers and runs each job once: claim it with a lease, call the provider,
/// persist the outcome, and only then let the record's offset be committed (at-least-once, with redeliveries of
/// finished jobs recognised and skipped).
public final class WorkerService: Service, Sendable {
    public let workerID: String
    /// Decodes the records' job envelopes.
    static let envelopeDecoder = IndexedJSONDecoder()

    let configuration: GatewayConfiguration
    let consumer: KafkaConsumer
    let producer: KafkaProducer
    let store: ResultStore
    let runner: JobRunner
    let metrics: GatewayMetrics
    let logger: Logger
    /// The jobs' event streams: lifecycle events, and the deltas of streamed jobs.
    let events: JobEventLog
    /// Cancellation and webhooks; `nil` runs jobs without them.
    let lifecycle: WorkerLifecycle?
    /// The dispatch hints of the consumer's topic; `nil` runs jobs from their records only.
    let hints: DispatchHintListener.Feed?
    /// The jobs running here, from records or hints.
    let localJobs = LocalJobs()
    /// Renews the leases of the jobs running here.
    let leases: LeaseKeeper

    public init(
        workerID: String,
        configuration: GatewayConfiguration,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        store: ResultStore,
        runner: JobRunner,
        metrics: GatewayMetrics,
        logger: Logger,
        lifecycle: WorkerLifecycle? = nil,
        hints: DispatchHintListener.Feed? = nil
    ) {
        self.lifecycle = lifecycle
        self.hints = hints
        self.workerID = workerID
        self.configuration = configuration
        self.consumer = consumer
        self.producer = producer
        self.store = store
        self.runner = runner
        self.metrics = metrics
        self.logger = logger
        self.events = JobEventLog(redis: store.redis, ttl: configuration.jobEventsTTL, maxLength: configuration.jobEventsMaxLength)
        self.leases = LeaseKeeper(store: store, workerID: workerID, leaseMs: configuration.jobLeaseSeconds * 1000, logger: logger)
    }

    public func run() async throws {
        let consumer = self.consumer
        let hints = self.hints
        let leases = Task { await self.leases.run() }
        defer { leases.cancel() }
        let jobs = Task {
            await withDiscardingTaskGroup { group in
                if let hints {
                    group.addTask { await self.follow(hints) }
                }
                // The consumer hands out at most `workerConcurrency` unfinished records: that bound is the backpressure.
                for await message in consumer.messages {
                    group.addTask { await self.handle(message) }
                }
            }
        }
        // Graceful shutdown stops intake; running jobs get `drainSeconds` to finish before they are cancelled.
        try? await gracefulShutdown()
        let drainSeconds = configuration.drainSeconds
        logger.info("Draining in-flight jobs", metadata: ["drain_seconds": "\(drainSeconds)"])
        consumer.stopFetching()
        hints?.close()
        await withTaskGroup(of: Bool.self) { race in
            race.addTask {
                await jobs.value
                return true
            }
            race.addTask {
                try? await Task.sleep(for: .milliseconds(Int64(drainSeconds * 1000)))
                return false
            }
            if await race.next() == false {
                logger.warning("Drain deadline passed; cancelling running jobs, which will be redelivered")
                jobs.cancel()
            }
            race.cancelAll()
        }
        consumer.shutdown()
        logger.info("Worker stopped")
    }

    /// Runs one record to its end and marks it finished for offset tracking, unless shutdown interrupted it. A
    /// record whose job a dispatch hint started here waits for that run instead.
    func handle(_ message: KafkaMessage) async {
        if hints != nil, let key = message.key {
            let id = String(decoding: key, as: UTF8.self)
            arrival: while true {
                switch await localJobs.recordArrived(id) {
                case .run:
                    break arrival
                case .ranFromHint(true):
                    consumer.finished(message)
                    return
                case .ranFromHint(false):
                    // The hint run was interrupted, or its copy of the record was unreadable: the record decides.
                    if Task.isCancelled { return }
                }
            }
            defer { localJobs.endRecord(id) }
            await run(message)
        } else {
            await run(message)
        }
    }

    /// Starts the jobs of dispatch hints while this worker has room, for records it owns and has not been handed
    /// yet. Each hint run is the job's one run here; its record, when it arrives, waits for it (`handle(_:)`).
    func follow(_ feed: DispatchHintListener.Feed) async {
        await withDiscardingTaskGroup { group in
            for await hint in feed.hints {
                let partition = TopicPartition(topic: feed.topic, partition: hint.partition)
                guard consumer.isPending(partition, offset: hint.offset),
                      localJobs.count < configuration.workerConcurrency,
                      localJobs.beginHint(hint.jobID)
                else {
                    metrics.dispatchHint(started: false)
                    continue
                }
                metrics.dispatchHint(started: true)
                let message = KafkaMessage(
                    topic: feed.topic, partition: hint.partition, offset: hint.offset, key: Array(hint.jobID.utf8),
                    value: hint.payload, headers: hint.traceparent.map { [("traceparent", Array($0.utf8))] } ?? [])
                group.addTask {
                    let finished = await self.runCopy(message, of: hint.jobID)
                    self.localJobs.endHint(hint.jobID, finished: finished)
                }
            }
        }
    }

    /// Runs a record from the broker; an undecodable one is dead-lettered.
    private func run(_ message: KafkaMessage) async {
        let envelope: JobEnvelope
        do {
            envelope = try Self.envelopeDecoder.decode(JobEnvelope.self, from: message.value)
        } catch {
            // The record key is the job id.
            var logger = self.logger
            logger[metadataKey: "job_id"] = message.key.map { .string(String(decoding: $0, as: UTF8.self)) }
            await deadLetter(message, reason: "undecodable job record", attempts: [], logger: logger)
            consumer.finished(message)
            return
        }
        // The job's span continues the trace of the request that enqueued it (`traceparent` in the record headers).
        let finished = await processInSpan(envelope, message)
        if finished {
            consumer.finished(message)
        }
    }

    /// Runs a hint's copy of a record. An undecodable copy, or one of another job, is left to the record.
    /// - Returns: `true` when the job's outcome is persisted (or it needs no work).
    private func runCopy(_ copy: KafkaMessage, of id: String) async -> Bool {
        guard let envelope = try? Self.envelopeDecoder.decode(JobEnvelope.self, from: copy.value), envelope.id == id else {
            logger.debug("Dispatch hint with an unreadable record ignored", metadata: ["job_id": "\(id)"])
            return false
        }
        return await processInSpan(envelope, copy)
    }

    /// Processes a decoded job in the trace of the request that enqueued it: in a consumer span when spans are
    /// exported, else in the trace context the record carries (its log lines and provider call join that trace).
    private func processInSpan(_ envelope: JobEnvelope, _ message: KafkaMessage) async -> Bool {
        var logger = self.logger
        logger[metadataKey: "job_id"] = "\(envelope.id)"
        guard configuration.exportsSpans else {
            return await ServiceContext.$current.withValue(.extracted(fromKafkaHeaders: message.headers)) {
                await process(envelope, message: message, logger: logger)
            }
        }
        return await withSpan("\(message.topic) process", context: .extracted(fromKafkaHeaders: message.headers), ofKind: .consumer) { span in
            span.attributes["messaging.system"] = "kafka"
            span.attributes["messaging.destination.name"] = message.topic
            span.attributes["messaging.message.id"] = envelope.id
            return await process(envelope, message: message, logger: logger)
        }
    }

    /// - Returns: `true` when the job's outcome is persisted (or it needs no work), so its offset may be stored.
    func process(_ envelope: JobEnvelope, message: KafkaMessage, logger: Logger) async -> Bool {
        let leaseMs = configuration.jobLeaseSeconds * 1000
        // Watched before the claim, so that no cancellation between the claim and the call goes unnoticed.
        let cancellations = lifecycle?.cancellations
        let watch = cancellations?.watch(envelope.id)
        defer { if let watch { cancellations?.end(watch) } }
        // Claim the job; a lease held by another live worker means it runs there: wait for it to end or expire.
        var attempt = 0
        while true {
            attempt += 1
            let decision: ResultStore.StartDecision
            do {
                // A job past its deadline ends `expired` in this claim, with its webhooks.
                let now = Date().timeIntervalSince1970
                decision = try await store.start(
                    id: envelope.id, worker: workerID, leaseMs: leaseMs, now: now,
                    event: events.write(jobID: envelope.id, type: .started, JobEventStatus(id: envelope.id, status: .inProgress)),
                    expiryWebhooks: try await expiryWebhooks(envelope, now: now), webhookRetention: lifecycle?.webhookRetention ?? 0)
            } catch {
                guard await pause(attempt: attempt, reason: "claim", error: error, logger: logger) else { return false }
                continue
            }
            switch decision {
            case .run:
                break
            case .alreadyFinished(let status):
                logger.debug("Redelivered job already ended", metadata: ["status": "\(status.rawValue)"])
                return true
            case .unknown:
                logger.warning("Job record missing; skipping")
                return true
            case .leasedElsewhere(let retryAfterMs):
                try? await Task.sleep(for: .milliseconds(Int64(min(max(retryAfterMs, 50), leaseMs))))
                if Task.isCancelled { return false }
                continue
            }
            break
        }
        let started = recordStarted(envelope, logger: logger)
        defer { metrics.jobsInFlight(provider: envelope.provider, -1) }

        let relay = envelope.stream == true ? deltaRelay(for: envelope.id, logger: logger) : nil
        leases.hold(envelope.id, logger: logger)
        defer { leases.release(envelope.id) }
        // The call runs in a task of its own, which a cancellation of the job (or of this worker) cancels: that
        // aborts the upstream call. A job cancelled meanwhile ends `cancelled`, whatever the call returned.
        let call = Task { await self.runner.run(envelope, logger: logger, relay: relay) }
        if let cancellations, let watch { cancellations.onCancel(watch) { call.cancel() } }
        var run: JobRunner.Run? = await withTaskCancellationHandler { await call.value } onCancel: { call.cancel() }
        if let cancellations, let watch, cancellations.isCancelled(watch) { run = WorkerLifecycle.cancelledRun(envelope) }
        guard let run, !Task.isCancelled else { return false }
        guard let webhooks = await webhookPlans(envelope, run: run, logger: logger) else { return false }
        let status: JobStatus = if case .completed = run.outcome { .completed } else { .failed }
        let finalEvent = events.write(
            jobID: envelope.id, type: status == .completed ? .completed : .failed,
            JobEventStatus(id: envelope.id, status: status, provider: run.provider, model: run.model))
        let tenancy = tenancyCommands(envelope, run: run)

        // Persist the outcome; retry through Redis outages, since the offset must not move before it is stored.
        leases.finishing(envelope.id)
        attempt = 0
        while true {
            attempt += 1
            do {
                let ended = try await store.finish(
                    id: envelope.id, worker: workerID, outcome: run.outcome, attemptLog: run.attempts,
                    provider: run.provider, model: run.model, now: Date().timeIntervalSince1970,
                    webhooks: webhooks, webhookRetention: lifecycle?.webhookRetention ?? 0,
                    event: finalEvent, preceding: tenancy,
                    precedingFailed: { logger.warning("Usage or response cache not written", metadata: ["error": "\($0)"]) })
                if case .failed(let failure) = run.outcome, ended {
                    await deadLetter(message, reason: failure.message, attempts: run.attempts, logger: logger)
                }
                if ended { recordEnded(envelope, run: run, started: started) }
                logger.debug("Job finished", metadata: ["outcome": "\(ended ? "recorded" : "duplicate")"])
                return true
            } catch {
                guard await pause(attempt: attempt, reason: "finish", error: error, logger: logger) else { return false }
            }
        }
    }

    /// Appends to the job's event stream. Best effort: the job record stays the source of truth, and readers of the
    /// stream fall back to it when an event is missing.
    func appendEvent(_ id: String, _ type: JobEventType, _ payload: some Encodable & Sendable, logger: Logger) async {
        do {
            try await events.append(jobID: id, type: type, payload)
        } catch {
            logger.debug("Job event not written", metadata: ["type": "\(type.rawValue)", "error": "\(error)"])
        }
    }

    /// Sends a streamed job's deltas to its event stream, in order, as they arrive.
    func deltaRelay(for id: String, logger: Logger) -> DeltaRelay {
        { delta in await self.appendEvent(id, .delta, delta, logger: logger) }
    }

    /// Waits before retrying a Result Store call. Returns `false` when the worker is shutting down.
    private func pause(attempt: Int, reason: String, error: ResultStoreError, logger: Logger) async -> Bool {
        if attempt == 1 || attempt % 20 == 0 {
            logger.warning("Result store unavailable; retrying", metadata: ["step": "\(reason)", "error": "\(error)"])
        }
        let delay = Backoff(base: 0.1, maximum: 2).delay(attempt: attempt)
        try? await Task.sleep(for: .milliseconds(Int64(delay * 1000)))
        return !Task.isCancelled
    }

    /// Sends a record that cannot complete to the dead-letter topic, with its error and attempt history.
    func deadLetter(_ message: KafkaMessage, reason: String, attempts: [AttemptRecord], logger: Logger) async {
        let letter = DeadLetter(
            topic: message.topic, partition: message.partition, offset: message.offset,
            key: message.key.map { String(decoding: $0, as: UTF8.self) },
            error: reason, attempts: attempts,
            record: String(decoding: message.value, as: UTF8.self),
            deadAt: Date().timeIntervalSince1970)
        do {
            let value = try JSONEncoder().encode(letter)
            try await producer.send(topic: Topics.deadLetters, key: message.key ?? [], value: Array(value))
            logger.warning("Record dead-lettered", metadata: ["topic": "\(message.topic)", "offset": "\(message.offset)", "reason": "\(reason)"])
        } catch {
            logger.error("Dead-letter produce failed", metadata: ["error": "\(error)"])
        }
    }
}

/// A record on the dead-letter topic.
public struct DeadLetter: Codable, Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: String?
    public var error: String
    public var attempts: [AttemptRecord]
    /// The original record's value, as text.
    public var record: String
    public var deadAt: Double

    enum CodingKeys: String, CodingKey {
        case topic, partition, offset, key, error, attempts, record
        case deadAt = "dead_at"
    }
}

import Foundation
import Logging
import Protocol
import Telemetry

extension WorkerService {
    /// Records a job that starts running: queue wait, one more job in flight, and a debug line (with the
    /// messages only when `LLMGW_LOG_PROMPTS` is on). Returns the start time, for `recordEnded`.
    func recordStarted(_ envelope: JobEnvelope, logger: Logger) -> ContinuousClock.Instant {
        let queueWait = Self.elapsed(sinceEpochMilliseconds: envelope.enqueuedAt)
        metrics.jobStarted(provider: envelope.provider, queueWait: queueWait)
        metrics.jobsInFlight(provider: envelope.provider, 1)
        logger.debug("Job started", metadata: [
            "provider": "\(envelope.provider)", "model": "\(envelope.request.model)",
            "queue_wait_ms": "\(Int(queueWait.seconds * 1000))",
        ])
        if configuration.logPrompts, logger.logLevel <= .debug,
           let messages = try? String(decoding: JSONEncoder().encode(envelope.request.messages), as: UTF8.self) {
            logger.debug("Job prompt", metadata: ["messages": "\(messages)"])
        }
        return .now
    }

    /// Records a job whose outcome this worker stored: its outcome, durations, provider calls and usage.
    func recordEnded(_ envelope: JobEnvelope, run: JobRunner.Run, started: ContinuousClock.Instant) {
        let outcome: GatewayMetrics.JobOutcome
        switch run.outcome {
        case .completed(let completion):
            outcome = .completed
            if let usage = completion.usage {
                let cost = configuration.tenancy.prices.costMicros(
                    provider: run.provider, model: run.model,
                    promptTokens: usage.promptTokens, completionTokens: usage.completionTokens)
                metrics.usage(
                    provider: run.provider, model: run.model,
                    keyID: envelope.tenancy?.tenant ?? envelope.keyID ?? GatewayMetrics.anonymousKey,
                    promptTokens: usage.promptTokens, completionTokens: usage.completionTokens,
                    costUSD: Double(cost) / 1_000_000)
            }
        case .failed:
            outcome = .failed
        }
        metrics.jobEnded(
            provider: envelope.provider, model: run.model, outcome: outcome,
            run: ContinuousClock.now - started, endToEnd: Self.elapsed(sinceEpochMilliseconds: envelope.enqueuedAt))
        JobCallMetrics(attempts: run.attempts).record(primaryProvider: envelope.provider, into: metrics)
    }

    static func elapsed(sinceEpochMilliseconds milliseconds: UInt64) -> Duration {
        let now = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
        return .milliseconds(Int64(now >= milliseconds ? now - milliseconds : 0))
    }
}

/// What a job's attempt log says about its provider calls: errors, retries and fallbacks.
struct JobCallMetrics {
    struct Call {
        var provider: String
        var duration: Duration
        /// A streamed call's first delta; the first token of a non-streamed call arrives with the response.
        var timeToFirstToken: Duration?
    }

    var calls: [Call] = []
    var errors: [(provider: String, errorClass: String)] = []
    /// The provider of each call that repeated the previous call's model.
    var retries: [String] = []
    /// Models tried after the first.
    var fallbacks = 0

    init(attempts: [AttemptRecord]) {
        var previous: (provider: String, model: String)?
        for attempt in attempts {
            // Models that were never called (unconfigured provider, missing key) have no HTTP status and take no time.
            let called = attempt.httpStatus != nil || attempt.latencyMs > 0 || attempt.outcome == "ok"
            let duration = Duration.milliseconds(attempt.latencyMs)
            if called {
                let firstToken = attempt.timeToFirstTokenMs.map { Duration.milliseconds($0) } ?? (attempt.outcome == "ok" ? duration : nil)
                calls.append(Call(provider: attempt.provider, duration: duration, timeToFirstToken: firstToken))
            }
            if attempt.outcome != "ok" {
                errors.append((attempt.provider, attempt.outcome))
            }
            if let previous {
                if previous.provider == attempt.provider, previous.model == attempt.model {
                    retries.append(attempt.provider)
                } else {
                    fallbacks += 1
                }
            }
            previous = (attempt.provider, attempt.model)
        }
    }

    func record(primaryProvider: String, into metrics: GatewayMetrics) {
        for call in calls {
            metrics.upstreamRequest(provider: call.provider, duration: call.duration, firstByte: call.timeToFirstToken)
        }
        for error in errors {
            metrics.upstreamError(provider: error.provider, errorClass: error.errorClass)
        }
        for provider in retries { metrics.retry(provider: provider) }
        for _ in 0..<fallbacks { metrics.fallback(provider: primaryProvider) }
    }
}

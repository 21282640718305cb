import Foundation
import Logging
import Protocol
import Providers
import ResultStore

/// Runs one job: the primary model with retries, then each fallback in turn.
public struct JobRunner: Sendable {
    let providers: [String: ProviderSettings]
    let adapters: [String: any ProviderAdapter]
    let client: ProviderClient
    let maxAttempts: Int
    let backoff: Backoff

    public init(providers: [String: ProviderSettings], client: ProviderClient, maxAttempts: Int, backoff: Backoff = Backoff()) {
        self.providers = providers
        self.adapters = providers.mapValues { ProviderAdapters.make($0) }
        self.client = client
        self.maxAttempts = maxAttempts
        self.backoff = backoff
    }

    /// The result of running a job.
    public struct Run: Sendable {
        public var outcome: JobOutcome
        public var attempts: [AttemptRecord]
        /// The provider and model that produced the outcome (the last one tried).
        public var provider: String
        public var model: String
    }

    /// - Parameter relay: when given, each model is called with streaming and its deltas go to `relay` as they
    ///   arrive. Once a delta was relayed the job is committed to that call: a failure then fails the job, without
    ///   a retry or fallback that would repeat text the client already has.
    public func run(_ envelope: JobEnvelope, logger: Logger, relay: DeltaRelay? = nil) async -> Run {
        let chain = [ModelRef(provider: envelope.provider, model: envelope.request.model)] + envelope.fallbacks
        var attempts: [AttemptRecord] = []
        var lastError = UpstreamError(errorClass: .client, status: nil, message: "no model to try")
        for (position, reference) in chain.enumerated() {
            if position > 0 {
                logger.info("Falling back", metadata: ["job_id": "\(envelope.id)", "model": "\(reference)"])
            }
            guard let adapter = adapters[reference.provider], let settings = providers[reference.provider] else {
                lastError = UpstreamError(errorClass: .client, status: nil, message: "provider '\(reference.provider)' is not configured")
                attempts.append(AttemptRecord(provider: reference.provider, model: reference.model, outcome: "client", httpStatus: nil, latencyMs: 0, error: lastError.message))
                continue
            }
            if settings.apiKey == nil, ProviderDescriptor.builtIn.contains(where: { $0.id == settings.id }) {
                let variable = GatewayConfiguration.environmentPrefix(settings.id) + "_API_KEY"
                lastError = UpstreamError(errorClass: .auth, status: nil, message: "provider '\(settings.id)' has no API key configured (set \(variable))")
                attempts.append(AttemptRecord(provider: reference.provider, model: reference.model, outcome: "auth", httpStatus: nil, latencyMs: 0, error: lastError.message))
                continue
            }
            var chat = envelope.request
            chat.model = reference.model
            for attempt in 1...maxAttempts {
                let started = ContinuousClock.now
                let result: Result<(ChatCompletion, Duration?), AttemptFailure>
                if let relay {
                    do {
                        let streamed = try await client.stream(chat, adapter: adapter, relay: relay)
                        result = .success((streamed.completion, streamed.timeToFirstToken))
                    } catch {
                        result = .failure(AttemptFailure(error: error.error, timeToFirstToken: error.timeToFirstToken, relayedDeltas: error.relayedDeltas))
                    }
                } else {
                    do {
                        result = .success((try await client.complete(chat, adapter: adapter), nil))
                    } catch {
                        result = .failure(AttemptFailure(error: error, timeToFirstToken: nil, relayedDeltas: false))
                    }
                }
                let failure: AttemptFailure
                switch result {
                case .success(let (completion, timeToFirstToken)):
                    attempts.append(AttemptRecord(
                        provider: reference.provider, model: reference.model, outcome: "ok", httpStatus: 200,
                        latencyMs: started.millisecondsSince, error: nil, timeToFirstTokenMs: timeToFirstToken?.milliseconds))
                    return Run(outcome: .completed(completion), attempts: attempts, provider: reference.provider, model: completion.model)
                case .failure(let value):
                    failure = value
                }
                let error = failure.error
                lastError = error
                attempts.append(AttemptRecord(
                    provider: reference.provider, model: reference.model, outcome: error.errorClass.rawValue,
                    httpStatus: error.status, latencyMs: started.millisecondsSince, error: error.message,
                    timeToFirstTokenMs: failure.timeToFirstToken?.milliseconds))
                logger.info("Provider call failed", metadata: [
                    "job_id": "\(envelope.id)", "provider": "\(reference.provider)", "attempt": "\(attempt)",
                    "class": "\(error.errorClass.rawValue)", "status": "\(error.status.map(String.init) ?? "-")",
                ])
                if failure.relayedDeltas {
                    return Run(outcome: .failed(Self.failure(error)), attempts: attempts, provider: reference.provider, model: reference.model)
                }
                guard error.isRetryable, attempt < maxAttempts, !Task.isCancelled else { break }
                let delay = backoff.delay(attempt: attempt, retryAfter: error.retryAfter)
                try? await Task.sleep(for: .milliseconds(Int64(delay * 1000)))
            }
        }
        let last = chain.last!
        return Run(outcome: .failed(Self.failure(lastError)), attempts: attempts, provider: last.provider, model: last.model)
    }

    /// The job-level failure for the last upstream error. An upstream 401 is the gateway's credential problem,
    /// never reported as the client's own authentication failure.
    static func failure(_ error: UpstreamError) -> JobFailure {
        let code: String
        switch error.errorClass {
        case .rateLimited: code = "rate_limited"
        case .auth: code = "upstream_auth_error"
        case .client: code = "invalid_request"
        case .timeout: code = "timeout"
        case .connect: code = "upstream_unreachable"
        default: code = "upstream_error"
        }
        let prefix = error.status.map { "upstream returned HTTP \($0): " } ?? ""
        return JobFailure(message: prefix + error.message, type: "upstream_error", code: code, providerStatus: error.status)
    }
}

/// One failed call, with its time to first token when it streamed.
struct AttemptFailure: Error {
    var error: UpstreamError
    var timeToFirstToken: Duration?
    /// A streamed call that already relayed deltas is not retried.
    var relayedDeltas: Bool
}

extension ContinuousClock.Instant {
    var millisecondsSince: Int {
        let elapsed = ContinuousClock.now - self
        return Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
    }
}

import Foundation
import Logging
import Protocol
import ResultStore

/// What a worker needs for the job lifecycle beyond running jobs: cancellation of running jobs, and the webhook
/// deliveries recorded together with each job's outcome.
public struct WorkerLifecycle: Sendable {
    public let cancellations: JobCancellations
    public let planner: WebhookPlanner
    /// Seconds a delivery record is kept (`WebhookRetrySchedule.retention`).
    public let webhookRetention: Int

    public init(cancellations: JobCancellations, planner: WebhookPlanner, webhookRetention: Int) {
        self.cancellations = cancellations
        self.planner = planner
        self.webhookRetention = webhookRetention
    }

    /// The run of a job whose cancellation arrived while it ran; its record already says `cancelled`.
    static func cancelledRun(_ envelope: JobEnvelope) -> JobRunner.Run {
        JobRunner.Run(
            outcome: .failed(JobFailure(message: "The job was cancelled.", type: "cancelled", code: "cancelled")),
            attempts: [], provider: envelope.provider, model: envelope.request.model)
    }
}

extension WorkerService {
    /// The `job.expired` deliveries of a job whose deadline passed by `now` (the claim then expires it); none
    /// before the deadline, or for a job without webhooks.
    func expiryWebhooks(_ envelope: JobEnvelope, now: Double) async throws(ResultStoreError) -> [WebhookDeliveryPlan] {
        guard let lifecycle, let deadline = envelope.deadline, now > deadline, envelope.webhook != nil || envelope.keyID != nil else { return [] }
        let registered: [String]
        do {
            registered = try await lifecycle.planner.registeredEndpoints(envelope)
        } catch {
            throw ResultStoreError(code: .unavailable, message: "webhook endpoints: \(error)")
        }
        let event = WebhookEvent.ended(jobID: envelope.id, status: .expired, provider: envelope.provider, model: envelope.request.model, at: now)
        return WebhookDeliveryPlan.plans(for: envelope, registered: registered, event: event)
    }

    /// The webhook deliveries of a finished run, retried through Redis outages; `nil` when shutdown interrupted.
    /// The key's endpoints come from the worker's cache (`WebhookEndpointCache`): Redis is read once per key and
    /// cache period, not once per job.
    func webhookPlans(_ envelope: JobEnvelope, run: JobRunner.Run, logger: Logger) async -> [WebhookDeliveryPlan]? {
        guard let lifecycle, envelope.webhook != nil || envelope.keyID != nil else { return [] }
        var registered: [String]?
        var attempt = 0
        while registered == nil {
            attempt += 1
            do {
                registered = try await lifecycle.planner.registeredEndpoints(envelope)
            } catch {
                if attempt == 1 { logger.warning("Webhook endpoints unavailable; retrying", metadata: ["error": "\(error)"]) }
                try? await Task.sleep(for: .milliseconds(Int64(Backoff(base: 0.1, maximum: 2).delay(attempt: attempt) * 1000)))
                if Task.isCancelled { return nil }
            }
        }
        return lifecycle.planner.plan(envelope, registered: registered ?? [], outcome: run.outcome, provider: run.provider, model: run.model, now: Date().timeIntervalSince1970)
    }
}

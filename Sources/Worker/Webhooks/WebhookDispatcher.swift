import Foundation
import Logging
import Protocol
import ResultStore
import ServiceLifecycle
import Synchronization

/// Sends due webhook deliveries: claims them from Redis under a lease (a crashed dispatcher's claims fall due again),
/// signs and sends each, records the attempt in the delivery log, and schedules the retry, the dead letter, or the
/// endpoint's disabling. Every worker process runs one; they share the work through the claims.
public final class WebhookDispatcher: Service, Sendable {
    let store: ResultStore
    let sender: WebhookSender
    let secrets: any WebhookSecrets
    let schedule: WebhookRetrySchedule
    let concurrency: Int
    let logger: Logger
    /// How long a claim lasts: longer than one attempt can take.
    let leaseMs: Int
    /// How often Redis is asked for due deliveries when none were due.
    let pollInterval: Duration = .milliseconds(200)
    /// Seconds a delivery is kept, so that dead letters stay visible after the job expired.
    let retention: Int
    private let running = Mutex(0)

    public init(store: ResultStore, sender: WebhookSender, secrets: any WebhookSecrets, configuration: LifecycleConfiguration, logger: Logger) {
        self.store = store
        self.sender = sender
        self.secrets = secrets
        self.schedule = configuration.webhookSchedule
        self.concurrency = configuration.webhookConcurrency
        self.logger = logger
        self.leaseMs = Int((configuration.webhookTimeout * 2 + 10) * 1000)
        self.retention = configuration.webhookSchedule.retention
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            var failures = 0
            while !Task.isShuttingDownGracefully, !Task.isCancelled {
                let free = concurrency - running.withLock { $0 }
                var claimed: [ClaimedWebhook] = []
                if free > 0 {
                    do {
                        claimed = try await store.claimDueWebhooks(now: Date().timeIntervalSince1970, leaseMs: leaseMs, limit: free)
                        failures = 0
                    } catch {
                        if failures == 0 { logger.warning("Webhook claims unavailable; retrying", metadata: ["error": "\(error)"]) }
                        failures += 1
                    }
                }
                for delivery in claimed {
                    running.withLock { $0 += 1 }
                    group.addTask {
                        await self.deliver(delivery)
                        self.running.withLock { $0 -= 1 }
                    }
                }
                if claimed.isEmpty { try? await Task.sleep(for: pollInterval) }
            }
            logger.info("Webhook dispatcher stopping", metadata: ["in_flight": "\(running.withLock { $0 })"])
        }
    }

    /// One attempt of one delivery, recorded.
    func deliver(_ claimed: ClaimedWebhook) async {
        let plan = claimed.plan
        let attemptNumber = claimed.previousAttempts + 1
        var logger = self.logger
        logger[metadataKey: "job_id"] = "\(plan.jobID)"
        logger[metadataKey: "delivery_id"] = "\(plan.id)"

        let response: WebhookSender.Response
        do {
            if let secret = try await secrets.secret(forKey: plan.keyID) {
                response = await sender.send(url: plan.url, messageID: plan.messageID, body: plan.body, secret: secret)
            } else {
                response = .init(statusCode: nil, retryAfter: nil, error: "no signing secret for the job's key", latencyMs: 0)
            }
        } catch {
            response = .init(statusCode: nil, retryAfter: nil, error: "the signing secret could not be read", latencyMs: 0)
        }
        let now = Date().timeIntervalSince1970
        let outcome: WebhookAttemptOutcome
        var nextAt: Double?
        if response.succeeded {
            outcome = .delivered
        } else if response.statusCode == 410 {
            outcome = .disabled
            if plan.registered, let keyID = plan.keyID {
                do {
                    try await secrets.disableEndpoint(url: plan.url, forKey: keyID)
                    logger.notice("Webhook endpoint disabled: the receiver answered 410 Gone")
                } catch {
                    logger.warning("Webhook endpoint not disabled", metadata: ["error": "\(error)"])
                }
            }
        } else {
            var generator = SystemRandomNumberGenerator()
            if let delay = schedule.delay(afterAttempt: attemptNumber, retryAfter: response.retryAfter, using: &generator) {
                outcome = .retry
                nextAt = now + delay
            } else {
                outcome = .dead
            }
        }
        let attempt = WebhookAttempt(at: now, statusCode: response.statusCode, latencyMs: response.latencyMs, error: response.error)
        do {
            try await store.recordWebhookAttempt(id: plan.id, attempt: attempt, outcome: outcome, nextAt: nextAt, now: now)
        } catch {
            // The claim's lease runs out and the delivery is sent again: at least once.
            logger.warning("Webhook attempt not recorded", metadata: ["error": "\(error)"])
        }
        let level: Logger.Level = outcome == .dead ? .warning : .debug
        logger.log(level: level, "Webhook attempt", metadata: [
            "attempt": "\(attemptNumber)", "outcome": "\(outcome.rawValue)",
            "status": "\(response.statusCode.map(String.init) ?? "-")", "error": "\(response.error ?? "-")",
        ])
    }
}

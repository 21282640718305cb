/// Webhook delivery and job lifecycle settings. Defaults are documented in the README's "Webhooks" and "Job lifecycle".
public struct LifecycleConfiguration: Sendable {
    /// `LLMGW_WEBHOOK_ALLOW_HTTP` and `LLMGW_WEBHOOK_ALLOWLIST`: the SSRF guard; https only and no internal
    /// addresses by default.
    public var webhookPolicy = WebhookAddressPolicy()
    /// `LLMGW_WEBHOOK_SECRET`: the `whsec_…` secret that signs webhooks of jobs submitted without an API key.
    public var webhookFallbackSecret: WebhookSecret?
    /// `LLMGW_WEBHOOK_RETRY_SCHEDULE`: seconds between attempts, default Standard Webhooks' 5 s … 10 h.
    public var webhookSchedule = WebhookRetrySchedule.standard
    /// `LLMGW_WEBHOOK_TIMEOUT_SECONDS`: the whole deadline of one delivery attempt, 10.
    public var webhookTimeout: Double = 10
    /// `LLMGW_WEBHOOK_CONCURRENCY`: deliveries a worker sends at once, 16.
    public var webhookConcurrency = 16
    /// `LLMGW_WORKER_BATCH_CONCURRENCY`: batch-lane jobs a worker runs at once per provider, on top of (never out of)
    /// `LLMGW_WORKER_CONCURRENCY`, 8.
    public var batchConcurrency = 8
    /// `LLMGW_IDEMPOTENCY_TTL_SECONDS`: how long an `Idempotency-Key` maps to its job, 24 h.
    public var idempotencyTTL = 86_400

    public init() {}

    static func load(_ reader: EnvironmentReader) throws(ConfigurationError) -> LifecycleConfiguration {
        var lifecycle = LifecycleConfiguration()
        let allowHTTP = try reader.boolean("LLMGW_WEBHOOK_ALLOW_HTTP") ?? false
        guard let policy = WebhookAddressPolicy(allowHTTP: allowHTTP, allowlist: reader.string("LLMGW_WEBHOOK_ALLOWLIST") ?? "") else {
            throw ConfigurationError(variable: "LLMGW_WEBHOOK_ALLOWLIST", message: "expected comma-separated host names or CIDRs (10.0.0.0/8, ::1/128)")
        }
        lifecycle.webhookPolicy = policy
        if let raw = reader.string("LLMGW_WEBHOOK_SECRET") {
            // The value itself is never echoed: it is a secret.
            guard let secret = WebhookSecret(parsing: raw) else {
                throw ConfigurationError(variable: "LLMGW_WEBHOOK_SECRET", message: "expected whsec_ followed by base64")
            }
            lifecycle.webhookFallbackSecret = secret
        }
        if let raw = reader.string("LLMGW_WEBHOOK_RETRY_SCHEDULE") {
            guard let schedule = WebhookRetrySchedule(parsing: raw) else {
                throw ConfigurationError(variable: "LLMGW_WEBHOOK_RETRY_SCHEDULE", message: "expected comma-separated positive seconds, got '\(raw)'")
            }
            lifecycle.webhookSchedule = schedule
        }
        lifecycle.webhookTimeout = try reader.seconds("LLMGW_WEBHOOK_TIMEOUT_SECONDS") ?? lifecycle.webhookTimeout
        lifecycle.webhookConcurrency = try reader.integer("LLMGW_WEBHOOK_CONCURRENCY", in: 1...1_000) ?? lifecycle.webhookConcurrency
        lifecycle.batchConcurrency = try reader.integer("LLMGW_WORKER_BATCH_CONCURRENCY", in: 1...10_000) ?? lifecycle.batchConcurrency
        lifecycle.idempotencyTTL = try reader.integer("LLMGW_IDEMPOTENCY_TTL_SECONDS", in: 1...(30 * 86_400)) ?? lifecycle.idempotencyTTL
        return lifecycle
    }
}

/// Which queue a job waits in. Interactive work (sync waits, streams, async jobs by default) never queues behind the
/// batch lane, which has its own topics and its own in-flight bound in every worker.
public enum JobLane: String, Sendable, Hashable, Codable, CaseIterable {
    case interactive
    case batch
}

/// The Redis key schema: the only place keys and channels are spelled. Every key starts with `llmgw:`.
public enum RedisKeys {
    public static let prefix = "llmgw:"

    /// Hash holding a job's record (`status`, `record`, `request`, …).
    public static func job(_ id: String) -> String { "\(prefix)job:\(id)" }

    /// A worker's exclusive claim on a running job; expires unless renewed, so a dead worker's job is taken over.
    public static func jobLease(_ id: String) -> String { "\(prefix)job:\(id):lease" }

    /// Pub/sub channel on which workers announce finished jobs to the ingress replica that waits for them.
    public static func notifyChannel(instance: String) -> String { "\(prefix)notify:\(instance)" }

    /// Pub/sub channel on which the ingress publishes a `DispatchHint` for each acknowledged record of a job
    /// topic's partition that a client waits for, so that the worker that owns the partition can start it before
    /// its fetch from the broker returns. One channel per partition: only the owner subscribes, so a hint costs
    /// one delivery however many workers the group has.
    public static func dispatchChannel(topic: String, partition: Int32) -> String { "\(prefix)dispatch:\(topic):\(partition)" }

    /// The topic and partition of a `dispatchChannel(topic:partition:)` name; `nil` for any other name.
    public static func dispatchPartition(ofChannel channel: String) -> (topic: String, partition: Int32)? {
        let head = "\(prefix)dispatch:"
        guard channel.hasPrefix(head) else { return nil }
        let rest = channel.dropFirst(head.count)
        guard let colon = rest.lastIndex(of: ":") else { return nil }
        let topic = rest[..<colon]
        guard !topic.isEmpty, let partition = Int32(rest[rest.index(after: colon)...]), partition >= 0 else { return nil }
        return (String(topic), partition)
    }

    /// Redis Stream of a job's life: `queued`, `started`, each streamed `delta`, then `completed` or `failed`.
    /// Bounded in length and given a TTL by the writers; read by the ingress with `XREAD BLOCK` on a dedicated
    /// connection. Entries carry the fields of `JobEventField`.
    public static func jobEvents(_ id: String) -> String { "\(prefix)job:\(id):events" }

    /// Fields of an entry in `jobEvents`.
    public enum JobEventField {
        /// The event type, a `JobEventType` raw value.
        public static let type = "type"
        /// The event's JSON payload.
        public static let data = "data"
    }

    // MARK: Tenancy

    /// Hash of one API key: `secret_hash` (hex SHA-256 of the secret, never the secret) and `record`
    /// (`APIKeyRecord` JSON).
    public static func apiKey(_ id: String) -> String { "\(prefix)apikey:\(id)" }

    /// Set of every API key's public id, for listing.
    public static let apiKeyIndex = "\(prefix)apikeys"

    /// Pub/sub channel on which a revoked key's public id is announced, so every ingress replica drops it from
    /// its lookup cache at once.
    public static let apiKeyRevocations = "\(prefix)apikeys:revoked"

    /// Pub/sub channel on which a key's public id is announced when its webhook endpoints change, so every worker
    /// drops the key's cached endpoints at once.
    public static let webhookEndpointChanges = "\(prefix)apikeys:endpoints-changed"

    /// Hash of a tenant's rate-limit state: the GCRA theoretical arrival times `req` and `tok`, in ms.
    public static func rateLimit(tenant: String) -> String { "\(prefix)ratelimit:\(tenant)" }

    /// Hash of a tenant's budget spend in one period (`2025-01-31` or `2025-01`): `tokens`, `cost_micros`.
    public static func budget(tenant: String, period: String) -> String { "\(prefix)budget:\(tenant):\(period)" }

    /// Hash of a tenant's usage on one UTC day, fields `<provider/model>|<counter>` (`requests`, `prompt_tokens`,
    /// `completion_tokens`, `cost_micros`, `cache_hits`).
    public static func usage(tenant: String, day: String) -> String { "\(prefix)usage:\(tenant):\(day)" }

    /// Set of the tenants that have usage on one UTC day, for `GET /admin/usage`.
    public static func usageTenants(day: String) -> String { "\(prefix)usage-tenants:\(day)" }

    /// Marker that a job's usage was reconciled, so that a redelivered job is never accounted twice.
    public static func jobSettled(_ id: String) -> String { "\(prefix)job:\(id):settled" }

    /// A cached completion (`CachedResponse` JSON) in a cache namespace, by the request digest.
    public static func responseCache(namespace: String, digest: String) -> String { "\(prefix)cache:\(namespace):\(digest)" }

    // MARK: Webhooks and lifecycle

    /// Hash of one webhook delivery (`WebhookDeliveryPlan` fields, `state`, `attempts`, `log`), by delivery id.
    public static func webhookDelivery(_ id: String) -> String { "\(prefix)webhook:\(id)" }

    /// Sorted set of pending delivery ids by the unix milliseconds they are due; a claim pushes the score forward by
    /// the lease, so a crashed dispatcher's claim falls due again.
    public static let webhooksDue = "\(prefix)webhooks:due"

    /// Sorted set of dead-lettered delivery ids by the unix milliseconds they died.
    public static let webhooksDead = "\(prefix)webhooks:dead"

    /// String mapping an `Idempotency-Key` (SHA-256 hex) in a namespace (the API key id, or `global`) to its job id.
    public static func idempotency(namespace: String, keyHash: String) -> String { "\(prefix)idem:\(namespace):\(keyHash)" }

    /// Pub/sub channel on which cancelled running jobs are announced to the workers, which abort the upstream call.
    public static let jobCancellations = "\(prefix)jobs:cancelled"

    /// Fields of the job hash.
    public enum JobField {
        public static let status = "status"
        public static let record = "record"
        public static let request = "request"
        public static let attempts = "attempts"
        public static let replyTo = "reply_to"
    }
}

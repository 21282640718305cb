/// The Redis key schema: the only place keys and channels are spelled. Every key starts with `llmgw:`.
public enum RedisKeys {
    public static let prefix = "llmgw:"

    /// Hash holding a job's record (`status`, `record`, `request`, …).
    public static func job(_ id: String) -> String { "\(prefix)job:\(id)" }

    /// A worker's exclusive claim on a running job; expires unless renewed, so a dead worker's job is taken over.
    public static func jobLease(_ id: String) -> String { "\(prefix)job:\(id):lease" }

    /// Pub/sub channel on which workers announce finished jobs to the ingress replica that waits for them.
    public static func notifyChannel(instance: String) -> String { "\(prefix)notify:\(instance)" }

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

    /// Fields of the job hash.
    public enum JobField {
        public static let status = "status"
        public static let record = "record"
        public static let request = "request"
        public static let attempts = "attempts"
        public static let replyTo = "reply_to"
    }
}

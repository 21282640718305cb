/// The Redis key schema: the only place keys and channels are spelled. Every key starts with `llmgw:`.
public enum RedisKeys {
    public static let prefix = "llmgw:"

    /// Hash holding a job's record (`status`, `record`, `request`, …).
    public static func job(_ id: String) -> String { "\(prefix)job:\(id)" }

    /// A worker's exclusive claim on a running job; expires unless renewed, so a dead worker's job is taken over.
    public static func jobLease(_ id: String) -> String { "\(prefix)job:\(id):lease" }

    /// Pub/sub channel on which workers announce finished jobs to the ingress replica that waits for them.
    public static func notifyChannel(instance: String) -> String { "\(prefix)notify:\(instance)" }

    /// Fields of the job hash.
    public enum JobField {
        public static let status = "status"
        public static let record = "record"
        public static let request = "request"
        public static let attempts = "attempts"
        public static let replyTo = "reply_to"
    }
}

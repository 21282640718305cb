/// The kinds of entry in a job's event stream (`RedisKeys.jobEvents`), and the SSE event names of
/// `GET /gateway/jobs/{id}/events`.
public enum JobEventType: String, Sendable, Hashable, Codable, CaseIterable {
    /// The ingress accepted the job. Data: `{"id","status":"queued","provider","model"}`.
    case queued
    /// A worker claimed the job. Data: `{"id","status":"in_progress"}`.
    case started
    /// A streamed increment. Data: a `ChatDelta` (`{"text"}`, and `tool_calls`, `finish_reason`, `usage` when present).
    case delta
    /// The job completed. Data as written: `{"id","status"}`; readers send the job document instead.
    case completed
    /// The job failed. Data as written: `{"id","status"}`; readers send the job document instead.
    case failed

    /// Whether the job's stream ends with this event.
    public var isTerminal: Bool { self == .completed || self == .failed }
}

/// The small status payload of `queued`, `started`, `completed` and `failed` entries.
public struct JobEventStatus: Sendable, Hashable, Codable {
    public var id: String
    public var status: JobStatus
    public var provider: String?
    public var model: String?

    public init(id: String, status: JobStatus, provider: String? = nil, model: String? = nil) {
        self.id = id
        self.status = status
        self.provider = provider
        self.model = model
    }
}

/// The life of a job. `queued → in_progress → completed | failed`; a job may also end `cancelled` or `expired`.
public enum JobStatus: String, Sendable, Hashable, Codable, CaseIterable {
    case queued
    case inProgress = "in_progress"
    case completed
    case failed
    case cancelled
    case expired

    public var isFinal: Bool {
        switch self {
        case .queued, .inProgress: return false
        case .completed, .failed, .cancelled, .expired: return true
        }
    }
}

/// What a client posts to `/gateway/jobs` and `/gateway/query`: the seed's `{provider, prompt}`, or the chat form.
public struct JobSubmission: Sendable, Decodable {
    public var provider: String?
    public var prompt: String?
    public var model: String?
    public var messages: [ChatMessage]?
    public var maxTokens: Int?
    public var temperature: Double?
    public var topP: Double?
    public var stop: [String]?
    public var seed: Int?
    public var responseFormat: JSONValue?
    public var tools: [JSONValue]?
    public var toolChoice: JSONValue?
    public var fallbacks: [String]?
    /// Seconds `/gateway/query` waits for the result before answering 202.
    public var timeout: Double?
    public var stream: Bool?
    /// Where to deliver the outcome, signed (see `WebhookTarget`).
    public var webhook: WebhookTarget?
    /// `interactive` (the default) or `batch`, the bulk lane; `batch` is for async jobs only.
    public var priority: JobLane?
    /// Seconds since 1970 by which the job must have started, else it ends `expired`: `"deadline"` (RFC 3339 or
    /// unix seconds) or `"ttl_seconds"` from now.
    public var deadline: Double?
    public var ttlSeconds: Double?

    enum CodingKeys: String, CodingKey {
        case provider, prompt, model, messages, temperature, stop, seed, tools, fallbacks, timeout, stream
        case webhook, priority, deadline
        case ttlSeconds = "ttl_seconds"
        case maxTokens = "max_tokens"
        case topP = "top_p"
        case responseFormat = "response_format"
        case toolChoice = "tool_choice"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        provider = try container.decodeIfPresent(String.self, forKey: .provider)
        prompt = try container.decodeIfPresent(String.self, forKey: .prompt)
        model = try container.decodeIfPresent(String.self, forKey: .model)
        messages = try container.decodeIfPresent([ChatMessage].self, forKey: .messages)
        maxTokens = try container.decodeIfPresent(Int.self, forKey: .maxTokens)
        temperature = try container.decodeIfPresent(Double.self, forKey: .temperature)
        topP = try container.decodeIfPresent(Double.self, forKey: .topP)
        if let single = try? container.decodeIfPresent(String.self, forKey: .stop) {
            stop = [single]
        } else {
            stop = try container.decodeIfPresent([String].self, forKey: .stop)
        }
        seed = try container.decodeIfPresent(Int.self, forKey: .seed)
        responseFormat = try container.decodeIfPresent(JSONValue.self, forKey: .responseFormat)
        tools = try container.decodeIfPresent([JSONValue].self, forKey: .tools)
        toolChoice = try container.decodeIfPresent(JSONValue.self, forKey: .toolChoice)
        fallbacks = try container.decodeIfPresent([String].self, forKey: .fallbacks)
        timeout = try container.decodeIfPresent(Double.self, forKey: .timeout)
        stream = try container.decodeIfPresent(Bool.self, forKey: .stream)
        webhook = try container.decodeIfPresent(WebhookTarget.self, forKey: .webhook)
        priority = try container.decodeIfPresent(JobLane.self, forKey: .priority)
        deadline = try JobDeadline.decode(from: container, forKey: .deadline)
        ttlSeconds = try container.decodeIfPresent(Double.self, forKey: .ttlSeconds)
    }
}

/// A provider and model pair, written `provider/model` on the wire.
public struct ModelRef: Sendable, Hashable, Codable, CustomStringConvertible {
    public var provider: String
    public var model: String

    public init(provider: String, model: String) {
        self.provider = provider
        self.model = model
    }

    /// Parses `provider/model`; the model part may itself contain slashes (`openrouter/meta-llama/llama-3`).
    public init?(parsing value: String) {
        guard let slash = value.firstIndex(of: "/") else { return nil }
        let provider = String(value[..<slash])
        let model = String(value[value.index(after: slash)...])
        guard !provider.isEmpty, !model.isEmpty else { return nil }
        self.init(provider: provider, model: model)
    }

    public var description: String { "\(provider)/\(model)" }
}

/// A job as it travels on Kafka: everything a worker needs to run it.
public struct JobEnvelope: Sendable, Codable {
    public var id: String
    public var provider: String
    public var request: ChatRequest
    /// Models to try, in order, when the primary fails after its retries.
    public var fallbacks: [ModelRef]
    /// Milliseconds since 1970 when the ingress accepted the job.
    public var enqueuedAt: UInt64
    /// The notification channel of the ingress replica waiting on this job, if any.
    public var replyTo: String?
    /// What the ingress charged the caller at admission, and where to cache the answer. Absent on records
    /// written before tenancy existed.
    public var tenancy: JobTenancy?
    /// When `true`, the worker calls the provider with streaming and relays each delta to the job's event stream
    /// (`RedisKeys.jobEvents`) as it arrives. Absent on records written before streaming existed.
    public var stream: Bool?
    /// Where the outcome is delivered; absent without a webhook.
    public var webhook: WebhookTarget?
    /// The lane the job was produced to; absent means interactive.
    public var lane: JobLane?
    /// Seconds since 1970 after which the job must not start.
    public var deadline: Double?
    /// The public id of the API key that submitted the job: its secret signs the job's webhooks.
    public var keyID: String?

    public init(id: String, provider: String, request: ChatRequest, fallbacks: [ModelRef] = [], enqueuedAt: UInt64, replyTo: String?, stream: Bool? = nil) {
        self.id = id
        self.provider = provider
        self.request = request
        self.fallbacks = fallbacks
        self.enqueuedAt = enqueuedAt
        self.replyTo = replyTo
        self.stream = stream
    }

    enum CodingKeys: String, CodingKey {
        case id, provider, request, fallbacks, stream, tenancy, webhook, lane, deadline
        case keyID = "key_id"
        case enqueuedAt = "enqueued_at"
        case replyTo = "reply_to"
    }
}

/// One call of a provider made for a job.
public struct AttemptRecord: Sendable, Hashable, Codable {
    public var provider: String
    public var model: String
    /// `ok`, or the error class (`rate_limited`, `server`, `timeout`, `client`, `connect`).
    public var outcome: String
    public var httpStatus: Int?
    public var latencyMs: Int
    public var error: String?
    /// Milliseconds from the start of a streamed call to its first delta; `nil` for calls that were not streamed
    /// or produced no delta.
    public var timeToFirstTokenMs: Int?

    public init(provider: String, model: String, outcome: String, httpStatus: Int?, latencyMs: Int, error: String?, timeToFirstTokenMs: Int? = nil) {
        self.provider = provider
        self.model = model
        self.outcome = outcome
        self.httpStatus = httpStatus
        self.latencyMs = latencyMs
        self.error = error
        self.timeToFirstTokenMs = timeToFirstTokenMs
    }

    enum CodingKeys: String, CodingKey {
        case provider, model, outcome, error
        case httpStatus = "http_status"
        case latencyMs = "latency_ms"
        case timeToFirstTokenMs = "time_to_first_token_ms"
    }
}

/// Why a job failed, as recorded on the job.
public struct JobFailure: Sendable, Hashable, Codable {
    public var message: String
    public var type: String
    public var code: String?
    /// The provider's HTTP status, when the failure came from upstream.
    public var providerStatus: Int?

    public init(message: String, type: String, code: String?, providerStatus: Int? = nil) {
        self.message = message
        self.type = type
        self.code = code
        self.providerStatus = providerStatus
    }

    enum CodingKeys: String, CodingKey {
        case message, type, code
        case providerStatus = "provider_status"
    }
}

/// The job document returned by `GET /gateway/jobs/{id}`.
public struct JobRecord: Sendable, Codable {
    public var id: String
    public var object = "gateway.job"
    public var status: JobStatus
    public var provider: String
    public var model: String
    /// Seconds since 1970, with millisecond precision.
    public var createdAt: Double
    public var startedAt: Double?
    public var completedAt: Double?
    public var attempts: Int
    public var result: ChatCompletion?
    public var usage: Usage?
    public var error: JobFailure?
    public var attemptLog: [AttemptRecord]?
    /// Every webhook delivery of the job, with its attempts.
    public var webhookDeliveries: [WebhookDeliveryStatus]?

    public init(
        id: String,
        status: JobStatus,
        provider: String,
        model: String,
        createdAt: Double,
        startedAt: Double? = nil,
        completedAt: Double? = nil,
        attempts: Int = 0,
        result: ChatCompletion? = nil,
        usage: Usage? = nil,
        error: JobFailure? = nil,
        attemptLog: [AttemptRecord]? = nil
    ) {
        self.id = id
        self.status = status
        self.provider = provider
        self.model = model
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.completedAt = completedAt
        self.attempts = attempts
        self.result = result
        self.usage = usage
        self.error = error
        self.attemptLog = attemptLog
    }

    enum CodingKeys: String, CodingKey {
        case id, object, status, provider, model, attempts, result, usage, error
        case createdAt = "created_at"
        case startedAt = "started_at"
        case completedAt = "completed_at"
        case attemptLog = "attempt_log"
        case webhookDeliveries = "webhook_deliveries"
    }
}

import Crypto
import Foundation

/// Where a job's outcome is delivered: `"webhook": {"url": "…"}` on a submission.
public struct WebhookTarget: Sendable, Hashable, Codable {
    public var url: String

    public init(url: String) {
        self.url = url
    }
}

/// The thin event a webhook receives when a job ends.
public struct WebhookEvent: Sendable, Codable {
    /// `job.completed`, `job.failed`, `job.cancelled` or `job.expired`.
    public var type: String
    /// Seconds since 1970 when the job ended.
    public var timestamp: Double
    public var data: Payload

    public struct Payload: Sendable, Codable {
        public var id: String
        public var object = "gateway.job"
        public var status: JobStatus
        public var provider: String
        public var model: String
        /// The result, inline while its JSON is at most `WebhookEvent.inlineLimit` bytes.
        public var result: ChatCompletion?
        public var usage: Usage?
        public var error: JobFailure?
        /// Set when the result was too large to inline: fetch the job here (relative to the gateway's base URL).
        public var url: String?

        enum CodingKeys: String, CodingKey {
            case id, object, status, provider, model, result, usage, error, url
        }
    }

    /// The largest result, in bytes of JSON, carried inline.
    public static let inlineLimit = 64 * 1024

    /// The event for a job that ended with `result` or `error`.
    public static func make(jobID: String, provider: String, model: String, result: ChatCompletion?, error: JobFailure?, at timestamp: Double) -> WebhookEvent {
        var payload = Payload(id: jobID, status: result == nil ? .failed : .completed, provider: provider, model: model)
        if let result {
            let size = (try? JSONEncoder().encode(result).count) ?? Int.max
            if size <= inlineLimit {
                payload.result = result
            } else {
                payload.url = "/gateway/jobs/\(jobID)"
            }
            payload.usage = result.usage
        }
        payload.error = error
        return WebhookEvent(type: result == nil ? "job.failed" : "job.completed", timestamp: timestamp, data: payload)
    }

    /// The event for a job that ended without running to an outcome: `job.cancelled` or `job.expired`.
    public static func ended(jobID: String, status: JobStatus, provider: String, model: String, at timestamp: Double) -> WebhookEvent {
        WebhookEvent(type: "job.\(status.rawValue)", timestamp: timestamp, data: Payload(id: jobID, status: status, provider: provider, model: model))
    }
}

/// A Standard Webhooks signing secret, `whsec_<base64>`; the base64 part is the HMAC key.
public struct WebhookSecret: Sendable, Hashable {
    public static let prefix = "whsec_"
    /// The HMAC-SHA256 key.
    public var key: [UInt8]

    public init(key: [UInt8]) {
        self.key = key
    }

    /// Parses `whsec_<base64>`; `nil` for anything else or an empty key.
    public init?(parsing text: String) {
        guard text.hasPrefix(Self.prefix), let data = Data(base64Encoded: String(text.dropFirst(Self.prefix.count))), !data.isEmpty else { return nil }
        self.init(key: Array(data))
    }

    /// A new 32-byte secret from the system's secure random number generator.
    public static func generate() -> WebhookSecret {
        var generator = SystemRandomNumberGenerator()
        return WebhookSecret(key: (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    /// The text handed to the key's owner once.
    public var text: String { Self.prefix + Data(key).base64EncodedString() }

    /// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, the value of the `webhook-signature` header.
    public func signature(messageID: String, timestamp: Int, body: [UInt8]) -> String {
        var signed = Array("\(messageID).\(timestamp).".utf8)
        signed += body
        let mac = HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: key))
        return "v1," + Data(mac).base64EncodedString()
    }
}

/// One try of sending a webhook, as kept in the delivery log.
public struct WebhookAttempt: Sendable, Hashable, Codable {
    /// Seconds since 1970.
    public var at: Double
    /// The receiver's status code; absent when no response came.
    public var statusCode: Int?
    public var latencyMs: Int
    /// Why the attempt failed: a refused address, a timeout, a status code.
    public var error: String?

    public init(at: Double, statusCode: Int?, latencyMs: Int, error: String?) {
        self.at = at
        self.statusCode = statusCode
        self.latencyMs = latencyMs
        self.error = error
    }

    enum CodingKeys: String, CodingKey {
        case at, error
        case statusCode = "status_code"
        case latencyMs = "latency_ms"
    }
}

/// A webhook delivery of one job to one endpoint: `webhook_deliveries` on the job document and the admin API.
public struct WebhookDeliveryStatus: Sendable, Codable {
    /// The delivery's id, used by `POST /admin/webhooks/{id}/redeliver`.
    public var id: String
    /// The `webhook-id` header, the same on every attempt.
    public var messageID: String
    public var jobID: String
    public var url: String
    /// `pending`, `delivered`, `dead` (every attempt failed) or `disabled` (the receiver answered 410).
    public var state: String
    /// Seconds since 1970 of the next attempt, while `pending`.
    public var nextAttemptAt: Double?
    public var attempts: [WebhookAttempt]

    public init(id: String, messageID: String, jobID: String, url: String, state: String, nextAttemptAt: Double?, attempts: [WebhookAttempt]) {
        self.id = id
        self.messageID = messageID
        self.jobID = jobID
        self.url = url
        self.state = state
        self.nextAttemptAt = nextAttemptAt
        self.attempts = attempts
    }

    enum CodingKeys: String, CodingKey {
        case id, url, state, attempts
        case messageID = "message_id"
        case jobID = "job_id"
        case nextAttemptAt = "next_attempt_at"
    }
}

/// A delivery as the finish script records it: what to send where, signed with whose secret.
public struct WebhookDeliveryPlan: Sendable, Hashable {
    /// `<job id>.<index>`.
    public var id: String
    public var messageID: String
    public var jobID: String
    public var url: String
    /// The API key whose secret signs it; `nil` for the configured fallback secret.
    public var keyID: String?
    /// Whether `url` is one of the key's registered endpoints (a 410 then disables it).
    public var registered: Bool
    /// The event body, fixed once so that every attempt sends the same bytes.
    public var body: [UInt8]

    public init(id: String, messageID: String, jobID: String, url: String, keyID: String?, registered: Bool, body: [UInt8]) {
        self.id = id
        self.messageID = messageID
        self.jobID = jobID
        self.url = url
        self.keyID = keyID
        self.registered = registered
        self.body = body
    }

    /// The `webhook-id` of a job's event: the same for every endpoint and every retry.
    public static func messageID(jobID: String) -> String { "msg_\(jobID)" }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        return encoder
    }()

    /// The deliveries of `event` for the job of `envelope`: to its own `webhook`, then to `registered`, the
    /// enabled default endpoints of the key that submitted it (each URL once).
    public static func plans(for envelope: JobEnvelope, registered: [String], event: WebhookEvent) -> [WebhookDeliveryPlan] {
        var urls: [(url: String, registered: Bool)] = []
        if let webhook = envelope.webhook { urls.append((webhook.url, false)) }
        for url in registered where !urls.contains(where: { $0.url == url }) {
            urls.append((url, true))
        }
        guard !urls.isEmpty else { return [] }
        let body = Array((try? encoder.encode(event)) ?? Data("{}".utf8))
        let messageID = messageID(jobID: envelope.id)
        return urls.enumerated().map { index, target in
            WebhookDeliveryPlan(
                id: "\(envelope.id).\(index)", messageID: messageID, jobID: envelope.id, url: target.url,
                keyID: envelope.keyID, registered: target.registered, body: body)
        }
    }
}

/// A key's default webhook endpoint, registered through the admin API.
public struct WebhookEndpoint: Sendable, Hashable, Codable {
    public var url: String
    /// Set when a receiver answered 410 Gone; disabled endpoints get no deliveries.
    public var disabledAt: Double?

    public init(url: String, disabledAt: Double? = nil) {
        self.url = url
        self.disabledAt = disabledAt
    }

    enum CodingKeys: String, CodingKey {
        case url
        case disabledAt = "disabled_at"
    }
}

/// The delay before each retry of a failed delivery, with jitter, and the cap on attempts.
public struct WebhookRetrySchedule: Sendable, Hashable {
    /// Seconds to wait after the first, second, … failed attempt; the delivery is dead after `delays.count + 1` attempts.
    public var delays: [Double]
    /// The fraction of each delay added or removed at random (0.2 = ±20 %).
    public var jitter: Double

    /// Standard Webhooks' suggested schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (about 28 hours in all).
    public static let standard = WebhookRetrySchedule(delays: [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000], jitter: 0.2)

    public init(delays: [Double], jitter: Double = 0.2) {
        self.delays = delays
        self.jitter = jitter
    }

    /// Seconds a delivery record is kept: the longest the retries can take, plus a week to inspect it.
    public var retention: Int {
        Int(delays.reduce(0, +) * (1 + jitter)) + 7 * 86_400
    }

    public var maxAttempts: Int { delays.count + 1 }

    /// Seconds until the next attempt after `attempt` failed attempts, or `nil` when the delivery is dead.
    /// A receiver's `Retry-After` (on 429 and 503) replaces the scheduled delay, capped at one day.
    public func delay<G: RandomNumberGenerator>(afterAttempt attempt: Int, retryAfter: Double?, using generator: inout G) -> Double? {
        guard attempt >= 1, attempt <= delays.count else { return nil }
        if let retryAfter, retryAfter >= 0 { return min(retryAfter, 86_400) }
        let base = delays[attempt - 1]
        guard jitter > 0, base > 0 else { return base }
        return max(0, base * (1 + Double.random(in: -jitter...jitter, using: &generator)))
    }

    /// Parses `LLMGW_WEBHOOK_RETRY_SCHEDULE`: comma-separated seconds, each > 0.
    public init?(parsing text: String, jitter: Double = 0.2) {
        let parts = text.split(separator: ",").map { $0.trimmingSpaces }
        var delays: [Double] = []
        for part in parts {
            guard let value = Double(part), value > 0, value.isFinite else { return nil }
            delays.append(value)
        }
        guard !delays.isEmpty else { return nil }
        self.init(delays: delays, jitter: jitter)
    }
}

import Protocol

/// An HTTP request to a provider, ready to send.
public struct UpstreamRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(method: String = "POST", url: String, headers: [(name: String, value: String)], body: [UInt8]) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}

/// A failed provider call, classified for retries, metrics and the job record.
public struct UpstreamError: Error, Sendable, Hashable {
    /// The error classes used in metrics and attempt logs.
    public struct Class: RawRepresentable, Sendable, Hashable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        public static let rateLimited = Class(rawValue: "rate_limited")
        public static let server = Class(rawValue: "server")
        public static let timeout = Class(rawValue: "timeout")
        public static let client = Class(rawValue: "client")
        public static let connect = Class(rawValue: "connect")
        /// The provider rejected the gateway's own credentials (401/403 upstream).
        public static let auth = Class(rawValue: "auth")
        /// The provider answered, but not in its documented format.
        public static let protocolViolation = Class(rawValue: "protocol")
    }

    public var errorClass: Class
    /// The provider's HTTP status, if it answered.
    public var status: Int?
    /// The provider's own message, with any credential removed.
    public var message: String
    /// The provider's error type or code, if it sent one.
    public var providerCode: String?
    /// Seconds the provider asked us to wait (`Retry-After`, `retry-after-ms`).
    public var retryAfter: Double?

    public init(errorClass: Class, status: Int?, message: String, providerCode: String? = nil, retryAfter: Double? = nil) {
        self.errorClass = errorClass
        self.status = status
        self.message = message
        self.providerCode = providerCode
        self.retryAfter = retryAfter
    }

    /// 429, 5xx, connect errors and timeouts are worth another try; everything else fails at once.
    public var isRetryable: Bool {
        switch errorClass {
        case .rateLimited, .server, .timeout, .connect: return true
        default: return false
        }
    }

    /// Classifies an HTTP status the way every adapter does.
    public static func classify(status: Int) -> Class {
        switch status {
        case 429: return .rateLimited
        case 401, 403: return .auth
        case 408: return .timeout
        case 500...599: return .server
        default: return .client
        }
    }

    /// Reads `retry-after-ms` (OpenAI) or `Retry-After` in seconds.
    public static func retryAfter(headers: [(name: String, value: String)]) -> Double? {
        for header in headers where header.name.lowercased() == "retry-after-ms" {
            if let milliseconds = Double(header.value) { return milliseconds / 1000 }
        }
        for header in headers where header.name.lowercased() == "retry-after" {
            if let seconds = Double(header.value) { return seconds }
        }
        return nil
    }
}

/// Translates the canonical model to one provider's wire format and back.
public protocol ProviderAdapter: Sendable {
    var settings: ProviderSettings { get }

    /// The HTTP request for `chat`, streamed or not.
    /// - Throws: `UpstreamError` of class `.client` when the request cannot be expressed for this provider.
    func request(for chat: ChatRequest, stream: Bool) throws -> UpstreamRequest

    /// Parses a successful (2xx) response body.
    func completion(from body: [UInt8], requestedModel: String) throws -> ChatCompletion

    /// Maps an error response to an `UpstreamError`.
    func error(status: Int, headers: [(name: String, value: String)], body: [UInt8]) -> UpstreamError

    /// A decoder for this provider's stream events.
    func makeStreamDecoder() -> any StreamDecoder
}

/// Turns a provider's server-sent events into canonical deltas.
public protocol StreamDecoder: Sendable {
    /// Decodes one event. Returns the deltas it carries; `isFinished` becomes true at the provider's end marker.
    mutating func decode(_ event: ServerSentEvent) throws -> [ChatDelta]
    var isFinished: Bool { get }
}

/// The adapters by provider kind.
public enum ProviderAdapters {
    public static func make(_ settings: ProviderSettings) -> any ProviderAdapter {
        switch settings.kind {
        case .openAI: return OpenAIAdapter(settings: settings)
        case .anthropic: return AnthropicAdapter(settings: settings)
        case .gemini: return GeminiAdapter(settings: settings)
        case .cohere: return CohereAdapter(settings: settings)
        }
    }
}

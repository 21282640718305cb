/// The OpenAI error shape, `{"error":{"message","type","param","code"}}`, used for every error the gateway returns.
public struct ErrorBody: Sendable, Codable, Hashable {
    public struct Detail: Sendable, Codable, Hashable {
        public var message: String
        public var type: String
        public var param: String?
        public var code: String?

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(message, forKey: .message)
            try container.encode(type, forKey: .type)
            // OpenAI sends explicit nulls; SDKs read both fields.
            try container.encode(param, forKey: .param)
            try container.encode(code, forKey: .code)
        }
    }

    public var error: Detail

    public init(message: String, type: String, param: String? = nil, code: String? = nil) {
        self.error = Detail(message: message, type: type, param: param, code: code)
    }
}

/// An error the gateway answers with: an HTTP status plus the OpenAI-shaped body.
public struct GatewayError: Error, Sendable, Hashable {
    public var status: Int
    public var body: ErrorBody
    /// Seconds a client should wait before retrying, sent as `Retry-After`.
    public var retryAfter: Int?

    public init(status: Int, message: String, type: String, param: String? = nil, code: String? = nil, retryAfter: Int? = nil) {
        self.status = status
        self.body = ErrorBody(message: message, type: type, param: param, code: code)
        self.retryAfter = retryAfter
    }

    public static func invalidRequest(_ message: String, param: String? = nil, code: String? = "invalid_request") -> GatewayError {
        GatewayError(status: 400, message: message, type: "invalid_request_error", param: param, code: code)
    }

    public static func notFound(_ message: String, code: String = "not_found") -> GatewayError {
        GatewayError(status: 404, message: message, type: "invalid_request_error", code: code)
    }

    public static func unavailable(_ message: String, code: String = "service_unavailable", retryAfter: Int? = 1) -> GatewayError {
        GatewayError(status: 503, message: message, type: "server_error", code: code, retryAfter: retryAfter)
    }

    public static let internalError = GatewayError(status: 500, message: "The server had an error while processing your request.", type: "server_error", code: "internal_error")
}

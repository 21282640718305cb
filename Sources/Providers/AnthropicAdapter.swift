import Protocol

/// Placeholder; the full adapter follows.
public struct AnthropicAdapter: ProviderAdapter {
    public let settings: ProviderSettings

    public init(settings: ProviderSettings) {
        self.settings = settings
    }

    public func request(for chat: ChatRequest, stream: Bool) throws -> UpstreamRequest {
        throw UpstreamError(errorClass: .client, status: nil, message: "not implemented")
    }

    public func completion(from body: [UInt8], requestedModel: String) throws -> ChatCompletion {
        throw UpstreamError(errorClass: .protocolViolation, status: nil, message: "not implemented")
    }

    public func error(status: Int, headers: [(name: String, value: String)], body: [UInt8]) -> UpstreamError {
        UpstreamError(errorClass: UpstreamError.classify(status: status), status: status, message: "HTTP \(status)")
    }

    public func makeStreamDecoder() -> any StreamDecoder { OpenAIStreamDecoder(provider: settings.id) }
}

/// A validated job: the provider, the canonical request and the fallbacks, ready to enqueue.
public struct NormalizedJob: Sendable, Hashable {
    public var provider: String
    public var request: ChatRequest
    public var fallbacks: [ModelRef]

    public init(provider: String, request: ChatRequest, fallbacks: [ModelRef]) {
        self.provider = provider
        self.request = request
        self.fallbacks = fallbacks
    }
}

extension JobSubmission {
    /// Validates a submission against the configured providers and turns it into a canonical request.
    /// - Throws: `GatewayError` 400 naming the offending field.
    public func normalized(providers: [String: ProviderSettings]) throws(GatewayError) -> NormalizedJob {
        var providerID = provider?.lowercased()
        var modelName = model
        // `model` may carry the provider: `anthropic/claude-3-5-haiku-latest`.
        if providerID == nil, let model, let reference = ModelRef(parsing: model), providers[reference.provider] != nil {
            providerID = reference.provider
            modelName = reference.model
        }
        guard let providerID else {
            throw .invalidRequest("'provider' is required (one of \(providers.keys.sorted().joined(separator: ", ")))", param: "provider")
        }
        guard let settings = providers[providerID] else {
            throw .invalidRequest(
                "Unknown provider '\(providerID)'; configured providers are \(providers.keys.sorted().joined(separator: ", ")).",
                param: "provider", code: "unknown_provider")
        }
        let conversation: [ChatMessage]
        if let messages, !messages.isEmpty {
            conversation = messages
        } else if let prompt, !prompt.isEmpty {
            conversation = [.user(prompt)]
        } else {
            throw .invalidRequest("Either 'prompt' or a non-empty 'messages' array is required.", param: "prompt")
        }
        let request = ChatRequest(
            model: (modelName?.isEmpty == false ? modelName : nil) ?? settings.defaultModel,
            messages: conversation,
            temperature: temperature,
            topP: topP,
            maxTokens: maxTokens,
            stop: stop,
            seed: seed,
            responseFormat: responseFormat,
            tools: tools,
            toolChoice: toolChoice
        )
        try request.validate()
        var references: [ModelRef] = []
        for (index, fallback) in (fallbacks ?? []).enumerated() {
            guard let reference = ModelRef(parsing: fallback), providers[reference.provider] != nil else {
                throw .invalidRequest("'fallbacks[\(index)]' must be 'provider/model' with a configured provider, got '\(fallback)'.", param: "fallbacks")
            }
            references.append(reference)
        }
        return NormalizedJob(provider: providerID, request: request, fallbacks: references)
    }
}

extension ChatRequest {
    /// Checks the parameters every provider agrees on.
    /// - Throws: `GatewayError` 400 naming the offending field.
    public func validate() throws(GatewayError) {
        if messages.isEmpty { throw .invalidRequest("'messages' must contain at least one message.", param: "messages") }
        for (index, message) in messages.enumerated() {
            guard ChatMessage.Role.all.contains(message.role) else {
                throw .invalidRequest("'messages[\(index)].role' must be one of system, developer, user, assistant, tool; got '\(message.role.rawValue)'.", param: "messages[\(index)].role")
            }
            if message.content == nil && message.toolCalls == nil {
                throw .invalidRequest("'messages[\(index)].content' is required.", param: "messages[\(index)].content")
            }
        }
        if let temperature, !(0...2).contains(temperature) {
            throw .invalidRequest("'temperature' must be between 0 and 2.", param: "temperature")
        }
        if let topP, !(0...1).contains(topP) {
            throw .invalidRequest("'top_p' must be between 0 and 1.", param: "top_p")
        }
        if let maxTokens, maxTokens < 1 {
            throw .invalidRequest("'max_tokens' must be at least 1.", param: "max_tokens")
        }
        if let stop, stop.count > 4 {
            throw .invalidRequest("'stop' may hold at most 4 sequences.", param: "stop")
        }
    }
}

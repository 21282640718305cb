import Foundation
import Protocol

/// OpenAI's Chat Completions API, also spoken by Groq, OpenRouter, Hugging Face's router, Mistral, and
/// OpenAI-compatible servers (vLLM, Ollama, LM Studio): `POST {base}/chat/completions` with Bearer auth.
///
/// The body is OpenAI's, adjusted where a provider's API reference differs: OpenAI and Groq take
/// `max_completion_tokens` (their `max_tokens` is deprecated), Mistral takes `random_seed` and forbids unknown fields,
/// and only OpenAI knows the `developer` role.
public struct OpenAIAdapter: ProviderAdapter {
    public let settings: ProviderSettings

    public init(settings: ProviderSettings) {
        self.settings = settings
    }

    public func request(for chat: ChatRequest, stream: Bool) throws -> UpstreamRequest {
        let quirks = Quirks(providerID: settings.id)
        var wire = OpenAIWireRequest(model: chat.model, messages: chat.messages.map(quirks.message))
        wire.temperature = chat.temperature
        wire.topP = chat.topP
        if quirks.usesMaxCompletionTokens {
            wire.maxCompletionTokens = chat.maxTokens
        } else {
            wire.maxTokens = chat.maxTokens
        }
        wire.stop = chat.stop
        if quirks.usesRandomSeed {
            wire.randomSeed = chat.seed
        } else {
            wire.seed = chat.seed
        }
        wire.responseFormat = chat.responseFormat
        wire.tools = chat.tools
        wire.toolChoice = chat.toolChoice
        if stream {
            wire.stream = true
            if quirks.acceptsStreamOptions { wire.streamOptions = .init(includeUsage: true) }
        }
        var headers: [(name: String, value: String)] = [("Content-Type", "application/json")]
        if let key = settings.apiKey { headers.append(("Authorization", "Bearer \(key)")) }
        if stream { headers.append(("Accept", "text/event-stream")) }
        for (name, value) in settings.extraHeaders.sorted(by: { $0.key < $1.key }) { headers.append((name, value)) }
        return UpstreamRequest(
            url: WireURL.join(settings.baseURL, "/chat/completions"),
            headers: headers,
            body: try WireJSON.encode(wire)
        )
    }

    public func completion(from body: [UInt8], requestedModel: String) throws -> ChatCompletion {
        let response = try WireJSON.decode(OpenAIWireResponse.self, from: body, provider: settings.id)
        // OpenRouter reports some failures as a 200 whose body is an error object.
        if let error = response.error {
            throw streamError(error, provider: settings.id, apiKey: settings.apiKey)
        }
        guard let choice = response.choices?.first else {
            throw UpstreamError(errorClass: .protocolViolation, status: nil, message: "\(settings.id) returned no choices")
        }
        let calls = choice.message.toolCalls?.enumerated().map { offset, call in
            ToolCall(
                id: call.id ?? "call_\(offset)",
                name: call.function?.name ?? "",
                arguments: call.function?.arguments ?? "{}"
            )
        }
        let text = choice.message.content?.text ?? choice.message.refusal ?? ""
        return ChatCompletion(
            id: response.id,
            model: response.model ?? requestedModel,
            text: text,
            toolCalls: calls?.isEmpty == false ? calls : nil,
            finishReason: choice.finishReason.map(OpenAIFinishReason.canonical) ?? .stop,
            usage: response.usage?.canonical
        )
    }

    public func error(status: Int, headers: [(name: String, value: String)], body: [UInt8]) -> UpstreamError {
        let detail = OpenAIErrorDetail(body: body)
        return UpstreamError(
            errorClass: UpstreamError.classify(status: status),
            status: status,
            message: Redaction.redact(detail?.message ?? WireJSON.snippet(body, status: status), secret: settings.apiKey),
            providerCode: detail?.code ?? detail?.type,
            retryAfter: UpstreamError.retryAfter(headers: headers)
        )
    }

    public func makeStreamDecoder() -> any StreamDecoder {
        OpenAIStreamDecoder(provider: settings.id, apiKey: settings.apiKey)
    }

    /// Where the OpenAI-compatible providers differ from OpenAI, by provider id.
    struct Quirks {
        var usesMaxCompletionTokens: Bool
        var acceptsStreamOptions: Bool
        var keepsDeveloperRole: Bool
        var usesRandomSeed: Bool
        var dropsMessageNames: Bool

        init(providerID: String) {
            usesMaxCompletionTokens = providerID == "openai" || providerID == "groq"
            // Usage on streams is an OpenAI extension that some compatible servers reject; Mistral sends usage anyway.
            acceptsStreamOptions = ["openai", "groq", "openrouter"].contains(providerID)
            keepsDeveloperRole = providerID == "openai"
            usesRandomSeed = providerID == "mistral"
            // Mistral rejects fields its schema does not list; `name` is listed only on tool messages.
            dropsMessageNames = providerID == "mistral"
        }

        func message(_ message: ChatMessage) -> ChatMessage {
            var message = message
            if message.role == .developer, !keepsDeveloperRole { message.role = .system }
            if dropsMessageNames, message.role != .tool { message.name = nil }
            return message
        }
    }
}

/// Decodes `chat.completion.chunk` events up to `data: [DONE]`.
public struct OpenAIStreamDecoder: StreamDecoder {
    let provider: String
    let apiKey: String?
    public private(set) var isFinished = false

    public init(provider: String, apiKey: String? = nil) {
        self.provider = provider
        self.apiKey = apiKey
    }

    public mutating func decode(_ event: ServerSentEvent) throws -> [ChatDelta] {
        if event.data == "[DONE]" {
            isFinished = true
            return []
        }
        let chunk = try WireJSON.decode(OpenAIWireChunk.self, from: Array(event.data.utf8), provider: provider)
        if let error = chunk.error {
            throw streamError(error, provider: provider, apiKey: apiKey)
        }
        var deltas: [ChatDelta] = []
        for choice in chunk.choices ?? [] {
            let calls = choice.delta?.toolCalls?.map {
                ToolCallDelta(index: $0.index ?? 0, id: $0.id, name: $0.function?.name, arguments: $0.function?.arguments)
            }
            let text = choice.delta?.content.flatMap { $0.isEmpty ? nil : $0 }
            let delta = ChatDelta(
                text: text,
                toolCalls: calls?.isEmpty == false ? calls : nil,
                finishReason: choice.finishReason.map(OpenAIFinishReason.canonical)
            )
            if delta.text != nil || delta.toolCalls != nil || delta.finishReason != nil { deltas.append(delta) }
        }
        // Groq reports stream usage in `x_groq.usage` on the last chunk.
        if let usage = chunk.usage ?? chunk.xGroq?.usage { deltas.append(ChatDelta(usage: usage.canonical)) }
        return deltas
    }
}

/// Finish reasons of OpenAI-compatible servers, in OpenAI's vocabulary.
enum OpenAIFinishReason {
    static func canonical(_ raw: String) -> FinishReason {
        switch raw {
        // Text Generation Inference (behind Hugging Face's router) and a few servers use their own names.
        case "eos_token", "eos", "stop_sequence", "end_turn": return .stop
        // Mistral: the model's context, not `max_tokens`, cut the reply.
        case "model_length", "max_tokens": return .length
        case "function_call", "tool_use": return .toolCalls
        default: return FinishReason(rawValue: raw)
        }
    }
}

/// An error object inside a 200 body or a stream chunk (OpenAI, OpenRouter).
private func streamError(_ detail: OpenAIWireError, provider: String, apiKey: String?) -> UpstreamError {
    let code = detail.code?.stringValueOrNumber
    let errorClass: UpstreamError.Class
    if let status = detail.code?.intValue {
        errorClass = UpstreamError.classify(status: status)
    } else if let code, code.contains("rate_limit") {
        errorClass = .rateLimited
    } else {
        errorClass = .server
    }
    return UpstreamError(
        errorClass: errorClass,
        status: nil,
        message: Redaction.redact(detail.message ?? "\(provider) reported an error", secret: apiKey),
        providerCode: code ?? detail.type
    )
}

// MARK: - Wire types (OpenAI API reference: Chat Completions)

struct OpenAIWireRequest: Encodable {
    struct StreamOptions: Encodable {
        var includeUsage: Bool
        enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
    }

    var model: String
    var messages: [ChatMessage]
    var temperature: Double?
    var topP: Double?
    var maxTokens: Int?
    var maxCompletionTokens: Int?
    var stop: [String]?
    var seed: Int?
    var randomSeed: Int?
    var responseFormat: JSONValue?
    var tools: [JSONValue]?
    var toolChoice: JSONValue?
    var stream: Bool?
    var streamOptions: StreamOptions?

    init(model: String, messages: [ChatMessage]) {
        self.model = model
        self.messages = messages
    }

    enum CodingKeys: String, CodingKey {
        case model, messages, temperature, stop, seed, tools, stream
        case topP = "top_p"
        case maxTokens = "max_tokens"
        case maxCompletionTokens = "max_completion_tokens"
        case randomSeed = "random_seed"
        case responseFormat = "response_format"
        case toolChoice = "tool_choice"
        case streamOptions = "stream_options"
    }
}

struct OpenAIWireUsage: Decodable {
    struct PromptDetails: Decodable {
        var cachedTokens: Int?
        enum CodingKeys: String, CodingKey { case cachedTokens = "cached_tokens" }
    }

    var promptTokens: Int?
    var completionTokens: Int?
    var totalTokens: Int?
    var promptTokensDetails: PromptDetails?

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case totalTokens = "total_tokens"
        case promptTokensDetails = "prompt_tokens_details"
    }

    var canonical: Usage {
        Usage(
            promptTokens: promptTokens ?? 0,
            completionTokens: completionTokens ?? 0,
            totalTokens: totalTokens,
            cachedTokens: promptTokensDetails?.cachedTokens
        )
    }
}

struct OpenAIWireError: Decodable {
    var message: String?
    var type: String?
    var code: JSONValue?
}

struct OpenAIWireResponse: Decodable {
    struct Message: Decodable {
        struct ToolCall: Decodable {
            struct Function: Decodable {
                var name: String?
                var arguments: String?
            }
            var id: String?
            var function: Function?
        }

        var content: MessageContent?
        var refusal: String?
        var toolCalls: [ToolCall]?

        enum CodingKeys: String, CodingKey {
            case content, refusal
            case toolCalls = "tool_calls"
        }
    }

    struct Choice: Decodable {
        var message: Message
        var finishReason: String?
        enum CodingKeys: String, CodingKey {
            case message
            case finishReason = "finish_reason"
        }
    }

    var id: String?
    var model: String?
    var choices: [Choice]?
    var usage: OpenAIWireUsage?
    var error: OpenAIWireError?
}

struct OpenAIWireChunk: Decodable {
    struct Choice: Decodable {
        struct Delta: Decodable {
            struct ToolCall: Decodable {
                struct Function: Decodable {
                    var name: String?
                    var arguments: String?
                }
                var index: Int?
                var id: String?
                var function: Function?
            }
            var content: String?
            var toolCalls: [ToolCall]?
            enum CodingKeys: String, CodingKey {
                case content
                case toolCalls = "tool_calls"
            }
        }
        var delta: Delta?
        var finishReason: String?
        enum CodingKeys: String, CodingKey {
            case delta
            case finishReason = "finish_reason"
        }
    }

    struct GroqExtension: Decodable {
        var usage: OpenAIWireUsage?
    }

    var choices: [Choice]?
    var usage: OpenAIWireUsage?
    var xGroq: GroqExtension?
    var error: OpenAIWireError?

    enum CodingKeys: String, CodingKey {
        case choices, usage, error
        case xGroq = "x_groq"
    }
}

/// The message and code of an OpenAI-style error body. Compatible servers vary: OpenAI and Groq send
/// `{"error":{"message","type","code"}}`, OpenRouter a numeric `code`, Hugging Face sometimes `{"error":"…"}`,
/// Mistral `{"message":…}` or `{"detail":…}`.
struct OpenAIErrorDetail {
    var message: String?
    var type: String?
    var code: String?

    init?(body: [UInt8]) {
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(body)) else { return nil }
        if let error = value["error"], case .object = error {
            message = error["message"]?.stringValue
            type = error["type"]?.stringValue
            code = error["code"]?.stringValueOrNumber
        } else if let text = value["error"]?.stringValue {
            message = text
        } else if let text = value["message"]?.stringValue {
            message = text
            type = value["type"]?.stringValue
            code = value["code"]?.stringValueOrNumber
        } else if let detail = value["detail"] {
            message = detail.stringValue ?? WireJSON.text(of: detail)
        } else {
            return nil
        }
    }
}

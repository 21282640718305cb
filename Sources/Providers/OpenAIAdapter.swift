import Foundation
import Protocol

/// OpenAI's Chat Completions API, also spoken by Groq, OpenRouter, Hugging Face's router, Mistral, and
/// OpenAI-compatible servers (vLLM, Ollama, LM Studio): `POST {base}/chat/completions` with Bearer auth.
public struct OpenAIAdapter: ProviderAdapter {
    public let settings: ProviderSettings

    public init(settings: ProviderSettings) {
        self.settings = settings
    }

    public func request(for chat: ChatRequest, stream: Bool) throws -> UpstreamRequest {
        var body = chat
        body.stream = stream ? true : nil
        var wire = WireRequest(request: body)
        // Usage on streams is an OpenAI extension that some compatible servers reject.
        if stream, settings.id == "openai" || settings.id == "openrouter" || settings.id == "groq" {
            wire.streamOptions = .init(includeUsage: true)
        }
        var headers: [(name: String, value: String)] = [("Content-Type", "application/json")]
        if let key = settings.apiKey { headers.append(("Authorization", "Bearer \(key)")) }
        if stream { headers.append(("Accept", "text/event-stream")) }
        for (name, value) in settings.extraHeaders.sorted(by: { $0.key < $1.key }) { headers.append((name, value)) }
        return UpstreamRequest(url: settings.baseURL + "/chat/completions", headers: headers, body: try WireJSON.encode(wire))
    }

    public func completion(from body: [UInt8], requestedModel: String) throws -> ChatCompletion {
        let response = try WireJSON.decode(WireResponse.self, from: body, provider: settings.id)
        guard let choice = response.choices.first else {
            throw UpstreamError(errorClass: .protocolViolation, status: nil, message: "\(settings.id) returned no choices")
        }
        return ChatCompletion(
            id: response.id,
            model: response.model ?? requestedModel,
            text: choice.message.content?.text ?? "",
            toolCalls: choice.message.toolCalls,
            finishReason: choice.finishReason.map(FinishReason.init(rawValue:)) ?? .stop,
            usage: response.usage?.canonical
        )
    }

    public func error(status: Int, headers: [(name: String, value: String)], body: [UInt8]) -> UpstreamError {
        let detail = try? JSONDecoder().decode(WireErrorBody.self, from: Data(body))
        let message = detail?.error.message ?? WireJSON.snippet(body, status: status)
        return UpstreamError(
            errorClass: UpstreamError.classify(status: status),
            status: status,
            message: message,
            providerCode: detail?.error.code?.stringValueOrNumber ?? detail?.error.type,
            retryAfter: UpstreamError.retryAfter(headers: headers)
        )
    }

    public func makeStreamDecoder() -> any StreamDecoder { OpenAIStreamDecoder(provider: settings.id) }
}

/// Decodes `chat.completion.chunk` events up to `data: [DONE]`.
public struct OpenAIStreamDecoder: StreamDecoder {
    let provider: String
    public private(set) var isFinished = false

    public init(provider: String) {
        self.provider = provider
    }

    public mutating func decode(_ event: ServerSentEvent) throws -> [ChatDelta] {
        if event.data == "[DONE]" {
            isFinished = true
            return []
        }
        let chunk = try WireJSON.decode(WireChunk.self, from: Array(event.data.utf8), provider: provider)
        if let error = chunk.error {
            throw UpstreamError(errorClass: .server, status: nil, message: error.message, providerCode: error.type)
        }
        var deltas: [ChatDelta] = []
        for choice in chunk.choices ?? [] {
            let calls = choice.delta?.toolCalls?.map {
                ToolCallDelta(index: $0.index, id: $0.id, name: $0.function?.name, arguments: $0.function?.arguments)
            }
            let delta = ChatDelta(
                text: choice.delta?.content,
                toolCalls: calls,
                finishReason: choice.finishReason.map(FinishReason.init(rawValue:))
            )
            if delta.text != nil || delta.toolCalls != nil || delta.finishReason != nil { deltas.append(delta) }
        }
        if let usage = chunk.usage { deltas.append(ChatDelta(usage: usage.canonical)) }
        return deltas
    }
}

// MARK: - Wire types (OpenAI API reference: Chat Completions)

struct WireRequest: Encodable {
    struct StreamOptions: Encodable {
        var includeUsage: Bool
        enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
    }

    var request: ChatRequest
    var streamOptions: StreamOptions?

    func encode(to encoder: any Encoder) throws {
        try request.encode(to: encoder)
        if let streamOptions {
            var container = encoder.container(keyedBy: ExtraKeys.self)
            try container.encode(streamOptions, forKey: .streamOptions)
        }
    }

    enum ExtraKeys: String, CodingKey { case streamOptions = "stream_options" }
}

struct WireUsage: Decodable {
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

struct WireResponse: Decodable {
    struct Choice: Decodable {
        var message: ChatMessage
        var finishReason: String?
        enum CodingKeys: String, CodingKey {
            case message
            case finishReason = "finish_reason"
        }
    }

    var id: String?
    var model: String?
    var choices: [Choice]
    var usage: WireUsage?
}

struct WireChunk: Decodable {
    struct Choice: Decodable {
        struct Delta: Decodable {
            struct ToolCall: Decodable {
                struct Function: Decodable {
                    var name: String?
                    var arguments: String?
                }
                var index: Int
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

    struct StreamError: Decodable {
        var message: String
        var type: String?
    }

    var choices: [Choice]?
    var usage: WireUsage?
    var error: StreamError?
}

struct WireErrorBody: Decodable {
    struct Detail: Decodable {
        var message: String?
        var type: String?
        var code: JSONValue?
    }
    var error: Detail
}

/// JSON helpers shared by the adapters.
enum WireJSON {
    static func encode(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }

    static func decode<T: Decodable>(_ type: T.Type, from body: [UInt8], provider: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(body))
        } catch {
            throw UpstreamError(
                errorClass: .protocolViolation,
                status: nil,
                message: "\(provider) sent a response that does not match its documented format"
            )
        }
    }

    /// The start of an unparseable error body, for the job record.
    static func snippet(_ body: [UInt8], status: Int) -> String {
        let text = String(decoding: body.prefix(200), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? "HTTP \(status)" : text
    }
}

extension JSONValue {
    /// A code that may be sent as a string or a number.
    var stringValueOrNumber: String? {
        switch self {
        case .string(let value): return value
        case .int(let value): return String(value)
        default: return nil
        }
    }
}

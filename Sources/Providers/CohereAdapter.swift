import Foundation
import Protocol

/// Cohere's Chat API v2: `POST {base}/v2/chat` with Bearer auth.
///
/// Messages keep OpenAI's roles (developer becomes system); an assistant turn that calls tools sends its text as
/// `tool_plan`, as Cohere's own replies do. `top_p` is `p`, `stop` is `stop_sequences`, and a JSON schema response
/// format is `{"type":"json_object","json_schema":…}`. Cohere's `tool_choice` knows only REQUIRED and NONE, so forcing
/// one function sends REQUIRED with that function as the only tool.
public struct CohereAdapter: ProviderAdapter {
    public let settings: ProviderSettings

    public init(settings: ProviderSettings) {
        self.settings = settings
    }

    public func request(for chat: ChatRequest, stream: Bool) throws -> UpstreamRequest {
        var wire = CohereWireRequest(model: chat.model, messages: try messages(chat.messages), stream: stream)
        wire.temperature = chat.temperature
        wire.p = chat.topP
        wire.maxTokens = chat.maxTokens
        wire.stopSequences = chat.stop?.isEmpty == false ? chat.stop : nil
        wire.seed = chat.seed
        switch ResponseFormat(chat.responseFormat) {
        case .jsonObject?: wire.responseFormat = .init(type: "json_object")
        case .jsonSchema(let schema)?: wire.responseFormat = .init(type: "json_object", jsonSchema: schema)
        case .text?, nil: break
        }
        var tools = try FunctionTool.tools(from: chat.tools, provider: settings.id)
        switch ToolChoice(chat.toolChoice) {
        case .none?: wire.toolChoice = "NONE"
        case .required?: wire.toolChoice = "REQUIRED"
        case .function(let name)?:
            wire.toolChoice = "REQUIRED"
            tools = tools.filter { $0.name == name }
        case .auto?, nil: break
        }
        if !tools.isEmpty {
            wire.tools = tools.map {
                .init(function: .init(name: $0.name, description: $0.description, parameters: $0.parameters))
            }
        }

        var headers: [(name: String, value: String)] = [("Content-Type", "application/json")]
        if let key = settings.apiKey { headers.append(("Authorization", "Bearer \(key)")) }
        headers.append(("Accept", stream ? "text/event-stream" : "application/json"))
        for (name, value) in settings.extraHeaders.sorted(by: { $0.key < $1.key }) { headers.append((name, value)) }
        return UpstreamRequest(url: WireURL.join(settings.baseURL, "/v2/chat"), headers: headers, body: try WireJSON.encode(wire))
    }

    public func completion(from body: [UInt8], requestedModel: String) throws -> ChatCompletion {
        let response = try WireJSON.decode(CohereWireResponse.self, from: body, provider: settings.id)
        if let failure = CohereFinishReason.failure(response.finishReason, message: nil, provider: settings.id) {
            throw failure
        }
        let message = response.message
        var text = (message?.content ?? []).filter { $0.type == "text" }.compactMap(\.text).joined()
        let calls = message?.toolCalls?.enumerated().map { offset, call in
            ToolCall(id: call.id ?? "call_\(offset)", name: call.function?.name ?? "", arguments: call.function?.arguments ?? "{}")
        } ?? []
        // With tool calls, Cohere says what it is about to do in `tool_plan`, where OpenAI would use `content`.
        if text.isEmpty, !calls.isEmpty, let plan = message?.toolPlan { text = plan }
        return ChatCompletion(
            id: response.id,
            model: requestedModel,
            text: text,
            toolCalls: calls.isEmpty ? nil : calls,
            finishReason: CohereFinishReason.canonical(response.finishReason),
            usage: response.usage?.canonical
        )
    }

    public func error(status: Int, headers: [(name: String, value: String)], body: [UInt8]) -> UpstreamError {
        let detail = try? JSONDecoder().decode(CohereWireErrorBody.self, from: Data(body))
        var errorClass = UpstreamError.classify(status: status)
        // Cohere answers an invalid token with 498.
        if status == 498 { errorClass = .auth }
        return UpstreamError(
            errorClass: errorClass,
            status: status,
            message: Redaction.redact(detail?.message ?? WireJSON.snippet(body, status: status), secret: settings.apiKey),
            providerCode: nil,
            retryAfter: UpstreamError.retryAfter(headers: headers)
        )
    }

    public func makeStreamDecoder() -> any StreamDecoder {
        CohereStreamDecoder(provider: settings.id, apiKey: settings.apiKey)
    }

    // MARK: Request translation

    private func messages(_ messages: [ChatMessage]) throws -> [CohereWireRequest.Message] {
        try messages.map { message in
            switch message.role {
            case .system, .developer:
                return .init(role: "system", content: .string(message.content?.text ?? ""))
            case .user:
                return .init(role: "user", content: try content(message.content))
            case .assistant:
                let text = message.content?.text ?? ""
                guard let calls = message.toolCalls, !calls.isEmpty else {
                    return .init(role: "assistant", content: .string(text))
                }
                var wire = CohereWireRequest.Message(role: "assistant")
                wire.toolCalls = calls.map {
                    .init(id: $0.id, function: .init(name: $0.function.name, arguments: $0.function.arguments))
                }
                if !text.isEmpty { wire.toolPlan = text }
                return wire
            case .tool:
                var wire = CohereWireRequest.Message(role: "tool", content: .string(message.content?.text ?? ""))
                wire.toolCallID = message.toolCallID
                return wire
            default:
                throw UpstreamError.unsupported("the message role '\(message.role.rawValue)'", provider: settings.id)
            }
        }
    }

    private func content(_ content: MessageContent?) throws -> JSONValue {
        guard case .parts = content else { return .string(content?.text ?? "") }
        return .array(try ContentPart.parts(of: content).map { part in
            switch part {
            case .text(let text):
                return .object(["type": .string("text"), "text": .string(text)])
            case .image(let url):
                return .object(["type": .string("image_url"), "image_url": .object(["url": .string(url)])])
            case .unsupported(let type):
                throw UpstreamError.unsupported("content parts of type '\(type)'", provider: settings.id)
            }
        })
    }
}

/// Decodes Chat v2 stream events: `message-start`, `content-start`/`content-delta`/`content-end`, `tool-plan-delta`,
/// `tool-call-start`/`tool-call-delta`/`tool-call-end`, citations, and `message-end` (the end).
public struct CohereStreamDecoder: StreamDecoder {
    let provider: String
    let apiKey: String?
    public private(set) var isFinished = false

    public init(provider: String, apiKey: String? = nil) {
        self.provider = provider
        self.apiKey = apiKey
    }

    public mutating func decode(_ event: ServerSentEvent) throws -> [ChatDelta] {
        let wire = try WireJSON.decode(CohereWireEvent.self, from: Array(event.data.utf8), provider: provider)
        let message = wire.delta?.message
        switch wire.type ?? event.event ?? "" {
        case "content-start", "content-delta":
            // Thinking content carries `thinking`, not `text`, and is not part of the reply.
            guard let text = message?.content?.text, !text.isEmpty else { return [] }
            return [ChatDelta(text: text)]
        case "tool-plan-delta":
            guard let plan = message?.toolPlan, !plan.isEmpty else { return [] }
            return [ChatDelta(text: plan)]
        case "tool-call-start":
            let call = message?.toolCalls
            return [ChatDelta(toolCalls: [ToolCallDelta(
                index: wire.index ?? 0,
                id: call?.id,
                name: call?.function?.name,
                arguments: call?.function?.arguments
            )])]
        case "tool-call-delta":
            guard let arguments = message?.toolCalls?.function?.arguments, !arguments.isEmpty else { return [] }
            return [ChatDelta(toolCalls: [ToolCallDelta(index: wire.index ?? 0, arguments: arguments)])]
        case "message-end":
            isFinished = true
            let reason = wire.delta?.finishReason
            if let failure = CohereFinishReason.failure(reason, message: wire.delta?.error, provider: provider) {
                throw UpstreamError(
                    errorClass: failure.errorClass,
                    status: nil,
                    message: Redaction.redact(failure.message, secret: apiKey),
                    providerCode: failure.providerCode
                )
            }
            return [ChatDelta(finishReason: CohereFinishReason.canonical(reason), usage: wire.delta?.usage?.canonical)]
        default:
            return [] // message-start, content-end, tool-call-end, citation-start/end, debug
        }
    }
}

/// Cohere's `finish_reason` in OpenAI's vocabulary.
enum CohereFinishReason {
    static func canonical(_ raw: String?) -> FinishReason {
        switch raw {
        case "MAX_TOKENS": return .length
        case "TOOL_CALL": return .toolCalls
        default: return .stop // COMPLETE, STOP_SEQUENCE
        }
    }

    /// ERROR and TIMEOUT end a generation that failed; they are errors, not completions.
    static func failure(_ raw: String?, message: String?, provider: String) -> UpstreamError? {
        switch raw {
        case "ERROR":
            return UpstreamError(errorClass: .server, status: nil, message: message ?? "\(provider) failed during generation", providerCode: raw)
        case "TIMEOUT":
            return UpstreamError(errorClass: .timeout, status: nil, message: message ?? "\(provider) timed out during generation", providerCode: raw)
        default:
            return nil
        }
    }
}

// MARK: - Wire types (Cohere API reference: Chat v2)

struct CohereWireRequest: Encodable {
    struct Message: Encodable {
        struct ToolCall: Encodable {
            struct Function: Encodable {
                var name: String
                var arguments: String
            }
            var id: String
            var type = "function"
            var function: Function
        }

        var role: String
        var content: JSONValue?
        var toolCalls: [ToolCall]?
        var toolPlan: String?
        var toolCallID: String?

        init(role: String, content: JSONValue? = nil) {
            self.role = role
            self.content = content
        }

        enum CodingKeys: String, CodingKey {
            case role, content
            case toolCalls = "tool_calls"
            case toolPlan = "tool_plan"
            case toolCallID = "tool_call_id"
        }
    }

    struct Tool: Encodable {
        struct Function: Encodable {
            var name: String
            var description: String?
            var parameters: JSONValue?
        }
        var type = "function"
        var function: Function
    }

    struct ResponseFormat: Encodable {
        var type: String
        var jsonSchema: JSONValue?
        enum CodingKeys: String, CodingKey {
            case type
            case jsonSchema = "json_schema"
        }
    }

    var model: String
    var messages: [Message]
    var stream: Bool
    var temperature: Double?
    var p: Double?
    var maxTokens: Int?
    var stopSequences: [String]?
    var seed: Int?
    var responseFormat: ResponseFormat?
    var tools: [Tool]?
    var toolChoice: String?

    init(model: String, messages: [Message], stream: Bool) {
        self.model = model
        self.messages = messages
        self.stream = stream
    }

    enum CodingKeys: String, CodingKey {
        case model, messages, stream, temperature, p, seed, tools
        case maxTokens = "max_tokens"
        case stopSequences = "stop_sequences"
        case responseFormat = "response_format"
        case toolChoice = "tool_choice"
    }
}

struct CohereWireUsage: Decodable {
    struct Counts: Decodable {
        var inputTokens: Double?
        var outputTokens: Double?
        enum CodingKeys: String, CodingKey {
            case inputTokens = "input_tokens"
            case outputTokens = "output_tokens"
        }
    }

    var billedUnits: Counts?
    var tokens: Counts?
    var cachedTokens: Double?

    enum CodingKeys: String, CodingKey {
        case tokens
        case billedUnits = "billed_units"
        case cachedTokens = "cached_tokens"
    }

    /// `tokens` counts what the model processed; `billed_units` what is charged. The former matches OpenAI's usage.
    var canonical: Usage {
        let counts = tokens ?? billedUnits
        return Usage(
            promptTokens: Int(counts?.inputTokens ?? 0),
            completionTokens: Int(counts?.outputTokens ?? 0),
            cachedTokens: cachedTokens.map { Int($0) }
        )
    }
}

struct CohereWireToolCall: Decodable {
    struct Function: Decodable {
        var name: String?
        var arguments: String?
    }
    var id: String?
    var function: Function?
}

struct CohereWireResponse: Decodable {
    struct Message: Decodable {
        struct Content: Decodable {
            var type: String
            var text: String?
        }
        var content: [Content]?
        var toolPlan: String?
        var toolCalls: [CohereWireToolCall]?
        enum CodingKeys: String, CodingKey {
            case content
            case toolPlan = "tool_plan"
            case toolCalls = "tool_calls"
        }
    }

    var id: String?
    var finishReason: String?
    var message: Message?
    var usage: CohereWireUsage?

    enum CodingKeys: String, CodingKey {
        case id, message, usage
        case finishReason = "finish_reason"
    }
}

struct CohereWireErrorBody: Decodable {
    var id: String?
    var message: String?
}

struct CohereWireEvent: Decodable {
    struct Delta: Decodable {
        struct Message: Decodable {
            struct Content: Decodable {
                var text: String?
            }
            var content: Content?
            var toolPlan: String?
            /// A single tool call in stream events, unlike the array of the final message.
            var toolCalls: CohereWireToolCall?
            enum CodingKeys: String, CodingKey {
                case content
                case toolPlan = "tool_plan"
                case toolCalls = "tool_calls"
            }

            // `message-start` sends `content` and `tool_calls` as (empty) arrays, the other events as objects.
            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                content = try? container.decodeIfPresent(Content.self, forKey: .content)
                toolPlan = try? container.decodeIfPresent(String.self, forKey: .toolPlan)
                toolCalls = try? container.decodeIfPresent(CohereWireToolCall.self, forKey: .toolCalls)
            }
        }
        var message: Message?
        var finishReason: String?
        var usage: CohereWireUsage?
        var error: String?
        enum CodingKeys: String, CodingKey {
            case message, usage, error
            case finishReason = "finish_reason"
        }
    }

    var type: String?
    var index: Int?
    var delta: Delta?
}

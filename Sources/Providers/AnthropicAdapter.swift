import Foundation
import Protocol

/// Anthropic's Messages API: `POST {base}/v1/messages` with `x-api-key` and `anthropic-version: 2023-06-01`.
///
/// System and developer messages become the top-level `system`; content is sent as blocks; tool calls and results
/// become `tool_use` and `tool_result` blocks; consecutive messages of one role are merged, as the API wants turns
/// to alternate. `max_tokens` is required, so 4096 is sent when the request has none. Anthropic has no `seed` and no
/// `response_format` in this API version; both are left out.
public struct AnthropicAdapter: ProviderAdapter {
    public let settings: ProviderSettings

    /// Sent when the canonical request has no `max_tokens`; the Messages API requires one.
    public static let defaultMaxTokens = 4096
    public static let apiVersion = "2023-06-01"

    public init(settings: ProviderSettings) {
        self.settings = settings
    }

    public func request(for chat: ChatRequest, stream: Bool) throws -> UpstreamRequest {
        var wire = AnthropicWireRequest(
            model: chat.model,
            maxTokens: chat.maxTokens ?? Self.defaultMaxTokens,
            messages: try messages(chat.messages)
        )
        wire.system = chat.instructionText
        wire.temperature = chat.temperature
        wire.topP = chat.topP
        wire.stopSequences = chat.stop?.isEmpty == false ? chat.stop : nil
        let tools = try FunctionTool.tools(from: chat.tools, provider: settings.id)
        if !tools.isEmpty {
            wire.tools = tools.map {
                AnthropicWireRequest.Tool(
                    name: $0.name,
                    description: $0.description,
                    inputSchema: $0.parameters ?? .object(["type": .string("object"), "properties": .object([:])])
                )
            }
        }
        switch ToolChoice(chat.toolChoice) {
        case .auto?: wire.toolChoice = .init(type: "auto")
        case .none?: wire.toolChoice = .init(type: "none")
        case .required?: wire.toolChoice = .init(type: "any")
        case .function(let name)?: wire.toolChoice = .init(type: "tool", name: name)
        case nil: break
        }
        if stream { wire.stream = true }

        var headers: [(name: String, value: String)] = [
            ("content-type", "application/json"),
            ("anthropic-version", Self.apiVersion),
        ]
        if let key = settings.apiKey { headers.append(("x-api-key", key)) }
        if stream { headers.append(("accept", "text/event-stream")) }
        for (name, value) in settings.extraHeaders.sorted(by: { $0.key < $1.key }) { headers.append((name, value)) }
        return UpstreamRequest(url: WireURL.join(settings.baseURL, "/v1/messages"), headers: headers, body: try WireJSON.encode(wire))
    }

    public func completion(from body: [UInt8], requestedModel: String) throws -> ChatCompletion {
        let response = try WireJSON.decode(AnthropicWireResponse.self, from: body, provider: settings.id)
        var text = ""
        var calls: [ToolCall] = []
        for block in response.content {
            switch block.type {
            case "text": text += block.text ?? ""
            case "tool_use":
                calls.append(ToolCall(
                    id: block.id ?? "toolu_\(calls.count)",
                    name: block.name ?? "",
                    arguments: WireJSON.text(of: block.input ?? .object([:]))
                ))
            default: break // thinking, redacted_thinking, server tool blocks: not part of the canonical reply
            }
        }
        return ChatCompletion(
            id: response.id,
            model: response.model ?? requestedModel,
            text: text,
            toolCalls: calls.isEmpty ? nil : calls,
            finishReason: AnthropicStopReason.canonical(response.stopReason),
            usage: response.usage.map { $0.canonical() }
        )
    }

    public func error(status: Int, headers: [(name: String, value: String)], body: [UInt8]) -> UpstreamError {
        let detail = try? JSONDecoder().decode(AnthropicWireErrorBody.self, from: Data(body))
        return UpstreamError(
            errorClass: UpstreamError.classify(status: status),
            status: status,
            message: Redaction.redact(detail?.error.message ?? WireJSON.snippet(body, status: status), secret: settings.apiKey),
            providerCode: detail?.error.type,
            retryAfter: UpstreamError.retryAfter(headers: headers)
        )
    }

    public func makeStreamDecoder() -> any StreamDecoder {
        AnthropicStreamDecoder(provider: settings.id, apiKey: settings.apiKey)
    }

    // MARK: Request translation

    private func messages(_ messages: [ChatMessage]) throws -> [AnthropicWireRequest.Message] {
        var result: [AnthropicWireRequest.Message] = []
        for message in messages {
            let role: String
            var blocks: [JSONValue] = []
            switch message.role {
            case .system, .developer:
                continue
            case .user:
                role = "user"
                blocks = try contentBlocks(message.content)
            case .assistant:
                role = "assistant"
                blocks = try contentBlocks(message.content)
                for call in message.toolCalls ?? [] {
                    blocks.append(.object([
                        "type": .string("tool_use"),
                        "id": .string(call.id),
                        "name": .string(call.function.name),
                        "input": WireJSON.argumentsObject(call.function.arguments),
                    ]))
                }
            case .tool:
                // Tool results travel in a user turn, one `tool_result` block per call.
                role = "user"
                var result: [String: JSONValue] = [
                    "type": .string("tool_result"),
                    "tool_use_id": .string(message.toolCallID ?? ""),
                ]
                switch message.content {
                case .text(let text)?: result["content"] = .string(text)
                case .parts?: result["content"] = .array(try contentBlocks(message.content))
                case nil: break
                }
                blocks = [.object(result)]
            default:
                throw UpstreamError.unsupported("the message role '\(message.role.rawValue)'", provider: settings.id)
            }
            // The API rejects empty content; a message with nothing to say is left out.
            guard !blocks.isEmpty else { continue }
            if let last = result.last, last.role == role {
                result[result.count - 1].content += blocks
            } else {
                result.append(.init(role: role, content: blocks))
            }
        }
        return result
    }

    private func contentBlocks(_ content: MessageContent?) throws -> [JSONValue] {
        try ContentPart.parts(of: content).compactMap { part in
            switch part {
            case .text(let text):
                // Anthropic rejects empty text blocks.
                return text.isEmpty ? nil : .object(["type": .string("text"), "text": .string(text)])
            case .image(let url):
                if let data = DataURL(url) {
                    return .object(["type": .string("image"), "source": .object([
                        "type": .string("base64"),
                        "media_type": .string(data.mediaType),
                        "data": .string(data.base64),
                    ])])
                }
                guard url.hasPrefix("https://") || url.hasPrefix("http://") else {
                    throw UpstreamError.unsupported("this image URL scheme", provider: settings.id)
                }
                return .object(["type": .string("image"), "source": .object(["type": .string("url"), "url": .string(url)])])
            case .unsupported(let type):
                throw UpstreamError.unsupported("content parts of type '\(type)'", provider: settings.id)
            }
        }
    }
}

/// Decodes Messages API stream events: `message_start`, `content_block_start`, `content_block_delta`,
/// `content_block_stop`, `message_delta`, `message_stop` (the end), `ping`, and `error`.
public struct AnthropicStreamDecoder: StreamDecoder {
    let provider: String
    let apiKey: String?
    public private(set) var isFinished = false

    private var inputTokens = 0
    private var cacheReadTokens: Int?
    private var cacheCreationTokens = 0
    /// Tool-call ordinal by content block index; text blocks take no ordinal.
    private var toolIndexByBlock: [Int: Int] = [:]
    private var blocksWithArguments: Set<Int> = []

    public init(provider: String, apiKey: String? = nil) {
        self.provider = provider
        self.apiKey = apiKey
    }

    public mutating func decode(_ event: ServerSentEvent) throws -> [ChatDelta] {
        let wire = try WireJSON.decode(AnthropicWireEvent.self, from: Array(event.data.utf8), provider: provider)
        switch wire.type ?? event.event ?? "" {
        case "message_start":
            if let usage = wire.message?.usage {
                inputTokens = usage.inputTokens ?? 0
                cacheReadTokens = usage.cacheReadInputTokens
                cacheCreationTokens = usage.cacheCreationInputTokens ?? 0
            }
            return []
        case "content_block_start":
            guard let index = wire.index, let block = wire.contentBlock else { return [] }
            switch block.type {
            case "text":
                guard let text = block.text, !text.isEmpty else { return [] }
                return [ChatDelta(text: text)]
            case "tool_use":
                let ordinal = toolIndexByBlock.count
                toolIndexByBlock[index] = ordinal
                return [ChatDelta(toolCalls: [ToolCallDelta(index: ordinal, id: block.id, name: block.name, arguments: "")])]
            default:
                return []
            }
        case "content_block_delta":
            guard let index = wire.index, let delta = wire.delta else { return [] }
            switch delta.type {
            case "text_delta":
                guard let text = delta.text, !text.isEmpty else { return [] }
                return [ChatDelta(text: text)]
            case "input_json_delta":
                guard let ordinal = toolIndexByBlock[index], let json = delta.partialJSON, !json.isEmpty else { return [] }
                blocksWithArguments.insert(index)
                return [ChatDelta(toolCalls: [ToolCallDelta(index: ordinal, arguments: json)])]
            default:
                return [] // thinking_delta, signature_delta, citations_delta
            }
        case "content_block_stop":
            // A tool called without arguments streams no input_json_delta; its input is `{}`.
            if let index = wire.index, let ordinal = toolIndexByBlock[index], !blocksWithArguments.contains(index) {
                blocksWithArguments.insert(index)
                return [ChatDelta(toolCalls: [ToolCallDelta(index: ordinal, arguments: "{}")])]
            }
            return []
        case "message_delta":
            if let usage = wire.usage {
                // Newer API versions repeat the input counts here; they are cumulative.
                if let input = usage.inputTokens { inputTokens = input }
                if let read = usage.cacheReadInputTokens { cacheReadTokens = read }
                if let creation = usage.cacheCreationInputTokens { cacheCreationTokens = creation }
            }
            let reason = wire.delta?.stopReason.map { AnthropicStopReason.canonical($0) }
            let usage = wire.usage.map { usage in
                AnthropicWireUsage(
                    inputTokens: inputTokens,
                    outputTokens: usage.outputTokens,
                    cacheReadInputTokens: cacheReadTokens,
                    cacheCreationInputTokens: cacheCreationTokens
                ).canonical()
            }
            guard reason != nil || usage != nil else { return [] }
            return [ChatDelta(finishReason: reason, usage: usage)]
        case "message_stop":
            isFinished = true
            return []
        case "error":
            let type = wire.error?.type ?? "api_error"
            throw UpstreamError(
                errorClass: AnthropicErrorType.errorClass(type),
                status: nil,
                message: Redaction.redact(wire.error?.message ?? "\(provider) reported \(type)", secret: apiKey),
                providerCode: type
            )
        default:
            return [] // ping, and event types added after this adapter was written
        }
    }
}

/// Anthropic's `stop_reason` in OpenAI's vocabulary.
enum AnthropicStopReason {
    static func canonical(_ raw: String?) -> FinishReason {
        switch raw {
        case "max_tokens", "model_context_window_exceeded": return .length
        case "tool_use": return .toolCalls
        case "refusal": return .contentFilter
        default: return .stop // end_turn, stop_sequence, pause_turn
        }
    }
}

/// Anthropic's error types (Errors reference), classified like the HTTP statuses they come with.
enum AnthropicErrorType {
    static func errorClass(_ type: String) -> UpstreamError.Class {
        switch type {
        case "rate_limit_error": return .rateLimited
        case "overloaded_error", "api_error": return .server
        case "authentication_error", "permission_error": return .auth
        case "timeout_error": return .timeout
        default: return .client // invalid_request_error, not_found_error, request_too_large, billing_error
        }
    }
}

// MARK: - Wire types (Anthropic API reference: Messages)

struct AnthropicWireRequest: Encodable {
    struct Message: Encodable {
        var role: String
        var content: [JSONValue]
    }

    struct Tool: Encodable {
        var name: String
        var description: String?
        var inputSchema: JSONValue
        enum CodingKeys: String, CodingKey {
            case name, description
            case inputSchema = "input_schema"
        }
    }

    struct Choice: Encodable {
        var type: String
        var name: String?
    }

    var model: String
    var maxTokens: Int
    var messages: [Message]
    var system: String?
    var temperature: Double?
    var topP: Double?
    var stopSequences: [String]?
    var tools: [Tool]?
    var toolChoice: Choice?
    var stream: Bool?

    init(model: String, maxTokens: Int, messages: [Message]) {
        self.model = model
        self.maxTokens = maxTokens
        self.messages = messages
    }

    enum CodingKeys: String, CodingKey {
        case model, messages, system, temperature, tools, stream
        case maxTokens = "max_tokens"
        case topP = "top_p"
        case stopSequences = "stop_sequences"
        case toolChoice = "tool_choice"
    }
}

struct AnthropicWireUsage: Decodable {
    var inputTokens: Int?
    var outputTokens: Int?
    var cacheReadInputTokens: Int?
    var cacheCreationInputTokens: Int?

    enum CodingKeys: String, CodingKey {
        case inputTokens = "input_tokens"
        case outputTokens = "output_tokens"
        case cacheReadInputTokens = "cache_read_input_tokens"
        case cacheCreationInputTokens = "cache_creation_input_tokens"
    }

    /// Anthropic's `input_tokens` excludes cache reads and writes; OpenAI's `prompt_tokens` includes them.
    func canonical() -> Usage {
        let prompt = (inputTokens ?? 0) + (cacheReadInputTokens ?? 0) + (cacheCreationInputTokens ?? 0)
        return Usage(promptTokens: prompt, completionTokens: outputTokens ?? 0, cachedTokens: cacheReadInputTokens)
    }
}

struct AnthropicWireBlock: Decodable {
    var type: String
    var text: String?
    var id: String?
    var name: String?
    var input: JSONValue?
}

struct AnthropicWireResponse: Decodable {
    var id: String?
    var model: String?
    var content: [AnthropicWireBlock]
    var stopReason: String?
    var usage: AnthropicWireUsage?

    enum CodingKeys: String, CodingKey {
        case id, model, content, usage
        case stopReason = "stop_reason"
    }
}

struct AnthropicWireErrorBody: Decodable {
    struct Detail: Decodable {
        var type: String?
        var message: String?
    }
    var error: Detail
}

struct AnthropicWireEvent: Decodable {
    struct Message: Decodable {
        var usage: AnthropicWireUsage?
    }

    struct Delta: Decodable {
        var type: String?
        var text: String?
        var partialJSON: String?
        var stopReason: String?

        enum CodingKeys: String, CodingKey {
            case type, text
            case partialJSON = "partial_json"
            case stopReason = "stop_reason"
        }
    }

    var type: String?
    var index: Int?
    var message: Message?
    var contentBlock: AnthropicWireBlock?
    var delta: Delta?
    var usage: AnthropicWireUsage?
    var error: AnthropicWireErrorBody.Detail?

    enum CodingKeys: String, CodingKey {
        case type, index, message, delta, usage, error
        case contentBlock = "content_block"
    }
}

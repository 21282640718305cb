import Foundation
import Protocol

/// Google's Gemini API: `POST {base}/v1beta/models/{model}:generateContent`, or `:streamGenerateContent?alt=sse`,
/// with `x-goog-api-key`.
///
/// System and developer messages become `systemInstruction`; assistant turns take the role `model`; tool calls and
/// results become `functionCall` and `functionResponse` parts (a result names its function, found through the call
/// id); tools become `functionDeclarations` with their JSON schema as `parametersJsonSchema`. Sampling settings go
/// into `generationConfig`.
public struct GeminiAdapter: ProviderAdapter {
    public let settings: ProviderSettings

    public init(settings: ProviderSettings) {
        self.settings = settings
    }

    public func request(for chat: ChatRequest, stream: Bool) throws -> UpstreamRequest {
        var wire = GeminiWireRequest(contents: try contents(chat.messages))
        if let system = chat.instructionText {
            wire.systemInstruction = .init(parts: [.object(["text": .string(system)])])
        }
        var config = GeminiWireRequest.GenerationConfig()
        config.temperature = chat.temperature
        config.topP = chat.topP
        config.maxOutputTokens = chat.maxTokens
        config.stopSequences = chat.stop?.isEmpty == false ? chat.stop : nil
        config.seed = chat.seed
        switch ResponseFormat(chat.responseFormat) {
        case .jsonObject?:
            config.responseMimeType = "application/json"
        case .jsonSchema(let schema)?:
            config.responseMimeType = "application/json"
            config.responseJsonSchema = schema
        case .text?, nil:
            break
        }
        if !config.isEmpty { wire.generationConfig = config }

        let tools = try FunctionTool.tools(from: chat.tools, provider: settings.id)
        if !tools.isEmpty {
            wire.tools = [.init(functionDeclarations: tools.map {
                .init(name: $0.name, description: $0.description, parametersJsonSchema: $0.parameters)
            })]
        }
        switch ToolChoice(chat.toolChoice) {
        case .auto?: wire.toolConfig = .init(mode: "AUTO")
        case .none?: wire.toolConfig = .init(mode: "NONE")
        case .required?: wire.toolConfig = .init(mode: "ANY")
        case .function(let name)?: wire.toolConfig = .init(mode: "ANY", allowedFunctionNames: [name])
        case nil: break
        }

        let model = chat.model.hasPrefix("models/") ? String(chat.model.dropFirst("models/".count)) : chat.model
        let action = stream ? ":streamGenerateContent?alt=sse" : ":generateContent"
        var headers: [(name: String, value: String)] = [("Content-Type", "application/json")]
        if let key = settings.apiKey { headers.append(("x-goog-api-key", key)) }
        if stream { headers.append(("Accept", "text/event-stream")) }
        for (name, value) in settings.extraHeaders.sorted(by: { $0.key < $1.key }) { headers.append((name, value)) }
        return UpstreamRequest(
            url: WireURL.join(settings.baseURL, "/v1beta/models/" + WireURL.segment(model) + action),
            headers: headers,
            body: try WireJSON.encode(wire)
        )
    }

    public func completion(from body: [UInt8], requestedModel: String) throws -> ChatCompletion {
        let response = try WireJSON.decode(GeminiWireResponse.self, from: body, provider: settings.id)
        let usage = response.usageMetadata?.canonical
        guard let candidate = response.candidates?.first else {
            // A blocked prompt gets no candidates, only `promptFeedback.blockReason`.
            guard response.promptFeedback?.blockReason != nil else {
                throw UpstreamError(errorClass: .protocolViolation, status: nil, message: "\(settings.id) returned no candidates")
            }
            return ChatCompletion(id: response.responseId, model: response.modelVersion ?? requestedModel, text: "", finishReason: .contentFilter, usage: usage)
        }
        var text = ""
        var calls: [ToolCall] = []
        for part in candidate.content?.parts ?? [] {
            if let call = part.functionCall {
                calls.append(ToolCall(
                    id: call.id ?? GeminiToolCallID.make(responseID: response.responseId, index: calls.count),
                    name: call.name,
                    arguments: WireJSON.text(of: call.args ?? .object([:]))
                ))
            } else if let partText = part.text, part.thought != true {
                text += partText
            }
        }
        return ChatCompletion(
            id: response.responseId,
            model: response.modelVersion ?? requestedModel,
            text: text,
            toolCalls: calls.isEmpty ? nil : calls,
            finishReason: GeminiFinishReason.canonical(candidate.finishReason, hasToolCalls: !calls.isEmpty),
            usage: usage
        )
    }

    public func error(status: Int, headers: [(name: String, value: String)], body: [UInt8]) -> UpstreamError {
        // A failed `streamGenerateContent` may answer with the error object inside an array.
        let detail = (try? JSONDecoder().decode(GeminiWireErrorBody.self, from: Data(body)))
            ?? (try? JSONDecoder().decode([GeminiWireErrorBody].self, from: Data(body)))?.first
        var errorClass = UpstreamError.classify(status: status)
        // An invalid key is a 400 INVALID_ARGUMENT whose details carry the reason API_KEY_INVALID.
        if detail?.error.details?.contains(where: { $0.reason == "API_KEY_INVALID" }) == true { errorClass = .auth }
        let retryDelay = detail?.error.details?.lazy.compactMap { GeminiRetryDelay.seconds($0.retryDelay) }.first
        return UpstreamError(
            errorClass: errorClass,
            status: status,
            message: Redaction.redact(detail?.error.message ?? WireJSON.snippet(body, status: status), secret: settings.apiKey),
            providerCode: detail?.error.status,
            retryAfter: UpstreamError.retryAfter(headers: headers) ?? retryDelay
        )
    }

    public func makeStreamDecoder() -> any StreamDecoder {
        GeminiStreamDecoder(provider: settings.id, apiKey: settings.apiKey)
    }

    // MARK: Request translation

    private func contents(_ messages: [ChatMessage]) throws -> [GeminiWireRequest.Content] {
        var result: [GeminiWireRequest.Content] = []
        var functionNames: [String: String] = [:]
        for message in messages {
            let role: String
            var parts: [JSONValue] = []
            switch message.role {
            case .system, .developer:
                continue
            case .user:
                role = "user"
                parts = try contentParts(message.content)
            case .assistant:
                role = "model"
                parts = try contentParts(message.content)
                for call in message.toolCalls ?? [] {
                    functionNames[call.id] = call.function.name
                    parts.append(.object(["functionCall": .object([
                        "name": .string(call.function.name),
                        "args": WireJSON.argumentsObject(call.function.arguments),
                    ])]))
                }
            case .tool:
                role = "user"
                guard let name = message.toolCallID.flatMap({ functionNames[$0] }) ?? message.name else {
                    throw UpstreamError(
                        errorClass: .client,
                        status: nil,
                        message: "\(settings.id) needs the function name of a tool result; its tool_call_id matches no earlier tool call"
                    )
                }
                let output = message.content?.text ?? ""
                // `response` must be an object: JSON object output passes as is, anything else is wrapped.
                let response = WireJSON.value(parsing: output).flatMap { $0.objectValue.map(JSONValue.object) }
                    ?? .object(["result": .string(output)])
                parts = [.object(["functionResponse": .object(["name": .string(name), "response": response])])]
            default:
                throw UpstreamError.unsupported("the message role '\(message.role.rawValue)'", provider: settings.id)
            }
            guard !parts.isEmpty else { continue }
            if let last = result.last, last.role == role {
                result[result.count - 1].parts += parts
            } else {
                result.append(.init(role: role, parts: parts))
            }
        }
        return result
    }

    private func contentParts(_ content: MessageContent?) throws -> [JSONValue] {
        try ContentPart.parts(of: content).compactMap { part in
            switch part {
            case .text(let text):
                return text.isEmpty ? nil : .object(["text": .string(text)])
            case .image(let url):
                if let data = DataURL(url) {
                    return .object(["inlineData": .object(["mimeType": .string(data.mediaType), "data": .string(data.base64)])])
                }
                guard url.hasPrefix("https://") || url.hasPrefix("http://") else {
                    throw UpstreamError.unsupported("this image URL scheme", provider: settings.id)
                }
                var file: [String: JSONValue] = ["fileUri": .string(url)]
                if let type = GeminiMediaType.guess(url) { file["mimeType"] = .string(type) }
                return .object(["fileData": .object(file)])
            case .unsupported(let type):
                throw UpstreamError.unsupported("content parts of type '\(type)'", provider: settings.id)
            }
        }
    }
}

/// Decodes `streamGenerateContent?alt=sse`: every event is a whole `GenerateContentResponse`. The stream has no end
/// marker (it ends with the HTTP body), so the decoder reports `isFinished` once a candidate carries a finish reason.
public struct GeminiStreamDecoder: StreamDecoder {
    let provider: String
    let apiKey: String?
    public private(set) var isFinished = false
    private var toolCallCount = 0

    public init(provider: String, apiKey: String? = nil) {
        self.provider = provider
        self.apiKey = apiKey
    }

    public mutating func decode(_ event: ServerSentEvent) throws -> [ChatDelta] {
        let chunk = try WireJSON.decode(GeminiWireResponse.self, from: Array(event.data.utf8), provider: provider)
        if let error = chunk.error {
            throw UpstreamError(
                errorClass: error.code.map(UpstreamError.classify(status:)) ?? .server,
                status: nil,
                message: Redaction.redact(error.message ?? "\(provider) reported an error", secret: apiKey),
                providerCode: error.status
            )
        }
        var deltas: [ChatDelta] = []
        guard let candidate = chunk.candidates?.first else {
            if chunk.promptFeedback?.blockReason != nil {
                isFinished = true
                deltas.append(ChatDelta(finishReason: .contentFilter, usage: chunk.usageMetadata?.canonical))
            } else if let usage = chunk.usageMetadata?.canonical {
                deltas.append(ChatDelta(usage: usage))
            }
            return deltas
        }
        var text = ""
        var calls: [ToolCallDelta] = []
        for part in candidate.content?.parts ?? [] {
            if let call = part.functionCall {
                // Gemini sends each function call whole, in one part.
                calls.append(ToolCallDelta(
                    index: toolCallCount,
                    id: call.id ?? GeminiToolCallID.make(responseID: chunk.responseId, index: toolCallCount),
                    name: call.name,
                    arguments: WireJSON.text(of: call.args ?? .object([:]))
                ))
                toolCallCount += 1
            } else if let partText = part.text, part.thought != true {
                text += partText
            }
        }
        if !text.isEmpty || !calls.isEmpty {
            deltas.append(ChatDelta(text: text.isEmpty ? nil : text, toolCalls: calls.isEmpty ? nil : calls))
        }
        if let reason = candidate.finishReason {
            isFinished = true
            deltas.append(ChatDelta(
                finishReason: GeminiFinishReason.canonical(reason, hasToolCalls: toolCallCount > 0),
                usage: chunk.usageMetadata?.canonical
            ))
        }
        return deltas
    }
}

/// Gemini's `finishReason` in OpenAI's vocabulary.
enum GeminiFinishReason {
    static func canonical(_ raw: String?, hasToolCalls: Bool) -> FinishReason {
        switch raw {
        case "MAX_TOKENS": return .length
        case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY": return .contentFilter
        // Gemini ends a function-calling turn with STOP; OpenAI says `tool_calls`.
        default: return hasToolCalls ? .toolCalls : .stop
        }
    }
}

/// Gemini usually sends function calls without ids; the canonical model needs one to pair results with calls.
enum GeminiToolCallID {
    static func make(responseID: String?, index: Int) -> String {
        "call_\(responseID.map { "\($0)_" } ?? "")\(index)"
    }
}

/// Reads `google.rpc.RetryInfo.retryDelay` (`"37s"`, `"1.5s"`).
enum GeminiRetryDelay {
    static func seconds(_ text: String?) -> Double? {
        guard let text, text.hasSuffix("s") else { return nil }
        return Double(text.dropLast())
    }
}

/// The MIME type of a remote image, from its file extension (`fileData` wants one).
enum GeminiMediaType {
    static func guess(_ url: String) -> String? {
        let path = url.split(separator: "?").first.map(String.init) ?? url
        switch path.split(separator: ".").last?.lowercased() {
        case "png": return "image/png"
        case "jpg", "jpeg": return "image/jpeg"
        case "webp": return "image/webp"
        case "gif": return "image/gif"
        case "heic": return "image/heic"
        case "heif": return "image/heif"
        default: return nil
        }
    }
}

// MARK: - Wire types (Gemini API reference: models.generateContent)

struct GeminiWireRequest: Encodable {
    struct Content: Encodable {
        var role: String
        var parts: [JSONValue]
    }

    struct SystemInstruction: Encodable {
        var parts: [JSONValue]
    }

    struct GenerationConfig: Encodable {
        var temperature: Double?
        var topP: Double?
        var maxOutputTokens: Int?
        var stopSequences: [String]?
        var seed: Int?
        var responseMimeType: String?
        var responseJsonSchema: JSONValue?

        var isEmpty: Bool {
            temperature == nil && topP == nil && maxOutputTokens == nil && stopSequences == nil && seed == nil
                && responseMimeType == nil && responseJsonSchema == nil
        }
    }

    struct Tool: Encodable {
        struct FunctionDeclaration: Encodable {
            var name: String
            var description: String?
            var parametersJsonSchema: JSONValue?
        }
        var functionDeclarations: [FunctionDeclaration]
    }

    struct ToolConfig: Encodable {
        struct FunctionCallingConfig: Encodable {
            var mode: String
            var allowedFunctionNames: [String]?
        }
        var functionCallingConfig: FunctionCallingConfig

        init(mode: String, allowedFunctionNames: [String]? = nil) {
            functionCallingConfig = .init(mode: mode, allowedFunctionNames: allowedFunctionNames)
        }
    }

    var contents: [Content]
    var systemInstruction: SystemInstruction?
    var generationConfig: GenerationConfig?
    var tools: [Tool]?
    var toolConfig: ToolConfig?

    init(contents: [Content]) {
        self.contents = contents
    }
}

struct GeminiWireUsage: Decodable {
    var promptTokenCount: Int?
    var candidatesTokenCount: Int?
    var totalTokenCount: Int?
    var cachedContentTokenCount: Int?
    var thoughtsTokenCount: Int?

    /// Thinking tokens are billed as output, as OpenAI counts reasoning tokens in `completion_tokens`.
    var canonical: Usage {
        Usage(
            promptTokens: promptTokenCount ?? 0,
            completionTokens: (candidatesTokenCount ?? 0) + (thoughtsTokenCount ?? 0),
            totalTokens: totalTokenCount,
            cachedTokens: cachedContentTokenCount
        )
    }
}

struct GeminiWireResponse: Decodable {
    struct Candidate: Decodable {
        struct Content: Decodable {
            struct Part: Decodable {
                struct FunctionCall: Decodable {
                    var id: String?
                    var name: String
                    var args: JSONValue?
                }
                var text: String?
                var thought: Bool?
                var functionCall: FunctionCall?
            }
            var parts: [Part]?
        }
        var content: Content?
        var finishReason: String?
    }

    struct PromptFeedback: Decodable {
        var blockReason: String?
    }

    var candidates: [Candidate]?
    var promptFeedback: PromptFeedback?
    var usageMetadata: GeminiWireUsage?
    var modelVersion: String?
    var responseId: String?
    /// Set when a stream fails after it started.
    var error: GeminiWireErrorBody.Detail?
}

struct GeminiWireErrorBody: Decodable {
    struct Detail: Decodable {
        struct Item: Decodable {
            var reason: String?
            var retryDelay: String?
        }
        var code: Int?
        var message: String?
        var status: String?
        var details: [Item]?
    }
    var error: Detail
}

/// The canonical chat request every adapter translates from. Field names on the wire are OpenAI's.
public struct ChatRequest: Sendable, Hashable, Codable {
    public var model: String
    public var messages: [ChatMessage]
    public var temperature: Double?
    public var topP: Double?
    public var maxTokens: Int?
    public var stop: [String]?
    public var seed: Int?
    public var responseFormat: JSONValue?
    public var tools: [JSONValue]?
    public var toolChoice: JSONValue?
    public var stream: Bool?

    public init(
        model: String,
        messages: [ChatMessage],
        temperature: Double? = nil,
        topP: Double? = nil,
        maxTokens: Int? = nil,
        stop: [String]? = nil,
        seed: Int? = nil,
        responseFormat: JSONValue? = nil,
        tools: [JSONValue]? = nil,
        toolChoice: JSONValue? = nil,
        stream: Bool? = nil
    ) {
        self.model = model
        self.messages = messages
        self.temperature = temperature
        self.topP = topP
        self.maxTokens = maxTokens
        self.stop = stop
        self.seed = seed
        self.responseFormat = responseFormat
        self.tools = tools
        self.toolChoice = toolChoice
        self.stream = stream
    }

    enum CodingKeys: String, CodingKey {
        case model, messages, temperature, seed, stop, tools, stream
        case topP = "top_p"
        case maxTokens = "max_tokens"
        case responseFormat = "response_format"
        case toolChoice = "tool_choice"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.model = try container.decodeIfPresent(String.self, forKey: .model) ?? ""
        self.messages = try container.decode([ChatMessage].self, forKey: .messages)
        self.temperature = try container.decodeIfPresent(Double.self, forKey: .temperature)
        self.topP = try container.decodeIfPresent(Double.self, forKey: .topP)
        self.maxTokens = try container.decodeIfPresent(Int.self, forKey: .maxTokens)
        // OpenAI accepts `stop` as a string or an array of strings.
        if let single = try? container.decodeIfPresent(String.self, forKey: .stop) {
            self.stop = [single]
        } else {
            self.stop = try container.decodeIfPresent([String].self, forKey: .stop)
        }
        self.seed = try container.decodeIfPresent(Int.self, forKey: .seed)
        self.responseFormat = try container.decodeIfPresent(JSONValue.self, forKey: .responseFormat)
        self.tools = try container.decodeIfPresent([JSONValue].self, forKey: .tools)
        self.toolChoice = try container.decodeIfPresent(JSONValue.self, forKey: .toolChoice)
        self.stream = try container.decodeIfPresent(Bool.self, forKey: .stream)
    }

    /// The text of the system messages, joined, for providers that take it as a separate field.
    public var systemText: String? {
        let parts = messages.filter { $0.role == .system }.compactMap { $0.content?.text }
        return parts.isEmpty ? nil : parts.joined(separator: "\n\n")
    }
}

/// One message of a conversation.
public struct ChatMessage: Sendable, Hashable, Codable {
    public struct Role: RawRepresentable, Sendable, Hashable, Codable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        public static let system = Role(rawValue: "system")
        public static let developer = Role(rawValue: "developer")
        public static let user = Role(rawValue: "user")
        public static let assistant = Role(rawValue: "assistant")
        public static let tool = Role(rawValue: "tool")

        public static let all: Set<Role> = [.system, .developer, .user, .assistant, .tool]
    }

    public var role: Role
    public var content: MessageContent?
    public var name: String?
    public var toolCalls: [ToolCall]?
    public var toolCallID: String?

    public init(
        role: Role,
        content: MessageContent?,
        name: String? = nil,
        toolCalls: [ToolCall]? = nil,
        toolCallID: String? = nil
    ) {
        self.role = role
        self.content = content
        self.name = name
        self.toolCalls = toolCalls
        self.toolCallID = toolCallID
    }

    public static func user(_ text: String) -> ChatMessage { ChatMessage(role: .user, content: .text(text)) }
    public static func system(_ text: String) -> ChatMessage { ChatMessage(role: .system, content: .text(text)) }
    public static func assistant(_ text: String) -> ChatMessage { ChatMessage(role: .assistant, content: .text(text)) }

    enum CodingKeys: String, CodingKey {
        case role, content, name
        case toolCalls = "tool_calls"
        case toolCallID = "tool_call_id"
    }
}

/// Message content: plain text, or OpenAI content parts (`{"type":"text"}`, `{"type":"image_url"}`, …).
public enum MessageContent: Sendable, Hashable, Codable {
    case text(String)
    case parts([JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            self = .text(text)
        } else {
            self = .parts(try container.decode([JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .text(let text): try container.encode(text)
        case .parts(let parts): try container.encode(parts)
        }
    }

    /// The concatenated text of the content, ignoring non-text parts.
    public var text: String? {
        switch self {
        case .text(let text):
            return text
        case .parts(let parts):
            let texts = parts.compactMap { part -> String? in
                guard part["type"]?.stringValue == "text" else { return nil }
                return part["text"]?.stringValue
            }
            return texts.isEmpty ? nil : texts.joined()
        }
    }
}

/// A function call requested by the model.
public struct ToolCall: Sendable, Hashable, Codable {
    public struct Function: Sendable, Hashable, Codable {
        public var name: String
        /// JSON-encoded arguments, as OpenAI sends them.
        public var arguments: String

        public init(name: String, arguments: String) {
            self.name = name
            self.arguments = arguments
        }
    }

    public var id: String
    public var type: String
    public var function: Function

    public init(id: String, name: String, arguments: String) {
        self.id = id
        self.type = "function"
        self.function = Function(name: name, arguments: arguments)
    }
}

/// Why generation stopped, in OpenAI's vocabulary.
public struct FinishReason: RawRepresentable, Sendable, Hashable, Codable {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let stop = FinishReason(rawValue: "stop")
    public static let length = FinishReason(rawValue: "length")
    public static let toolCalls = FinishReason(rawValue: "tool_calls")
    public static let contentFilter = FinishReason(rawValue: "content_filter")
}

/// Token counts of one completion.
public struct Usage: Sendable, Hashable, Codable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int
    public var cachedTokens: Int?

    public init(promptTokens: Int, completionTokens: Int, totalTokens: Int? = nil, cachedTokens: Int? = nil) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = totalTokens ?? (promptTokens + completionTokens)
        self.cachedTokens = cachedTokens
    }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case totalTokens = "total_tokens"
        case cachedTokens = "cached_tokens"
    }
}

/// The canonical completion every adapter translates into.
public struct ChatCompletion: Sendable, Hashable, Codable {
    public var id: String?
    public var model: String
    public var text: String
    public var toolCalls: [ToolCall]?
    public var finishReason: FinishReason
    public var usage: Usage?

    public init(
        id: String? = nil,
        model: String,
        text: String,
        toolCalls: [ToolCall]? = nil,
        finishReason: FinishReason,
        usage: Usage?
    ) {
        self.id = id
        self.model = model
        self.text = text
        self.toolCalls = toolCalls
        self.finishReason = finishReason
        self.usage = usage
    }

    enum CodingKeys: String, CodingKey {
        case id, model, text, usage
        case toolCalls = "tool_calls"
        case finishReason = "finish_reason"
    }
}

/// One increment of a streamed completion.
public struct ChatDelta: Sendable, Hashable, Codable {
    public var text: String?
    /// Fragments of tool calls, keyed by their index in the final message.
    public var toolCalls: [ToolCallDelta]?
    public var finishReason: FinishReason?
    public var usage: Usage?

    public init(
        text: String? = nil,
        toolCalls: [ToolCallDelta]? = nil,
        finishReason: FinishReason? = nil,
        usage: Usage? = nil
    ) {
        self.text = text
        self.toolCalls = toolCalls
        self.finishReason = finishReason
        self.usage = usage
    }

    enum CodingKeys: String, CodingKey {
        case text, usage
        case toolCalls = "tool_calls"
        case finishReason = "finish_reason"
    }
}

/// A fragment of a streamed tool call.
public struct ToolCallDelta: Sendable, Hashable, Codable {
    public var index: Int
    public var id: String?
    public var name: String?
    public var arguments: String?

    public init(index: Int, id: String? = nil, name: String? = nil, arguments: String? = nil) {
        self.index = index
        self.id = id
        self.name = name
        self.arguments = arguments
    }
}

/// Folds streamed deltas into one completion.
public struct CompletionAccumulator: Sendable {
    public private(set) var text = ""
    public private(set) var finishReason: FinishReason?
    public private(set) var usage: Usage?
    private var toolCalls: [Int: (id: String, name: String, arguments: String)] = [:]

    public init() {}

    public mutating func add(_ delta: ChatDelta) {
        if let text = delta.text { self.text += text }
        if let reason = delta.finishReason { self.finishReason = reason }
        if let usage = delta.usage { self.usage = usage }
        for call in delta.toolCalls ?? [] {
            var entry = toolCalls[call.index] ?? (id: "", name: "", arguments: "")
            if let id = call.id { entry.id = id }
            if let name = call.name { entry.name += name }
            if let arguments = call.arguments { entry.arguments += arguments }
            toolCalls[call.index] = entry
        }
    }

    public func completion(model: String, id: String? = nil) -> ChatCompletion {
        let calls = toolCalls.sorted { $0.key < $1.key }.map { ToolCall(id: $0.value.id, name: $0.value.name, arguments: $0.value.arguments) }
        return ChatCompletion(
            id: id,
            model: model,
            text: text,
            toolCalls: calls.isEmpty ? nil : calls,
            finishReason: finishReason ?? (calls.isEmpty ? .stop : .toolCalls),
            usage: usage
        )
    }
}

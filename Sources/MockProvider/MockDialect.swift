import Foundation

/// One provider's wire format, as the mock speaks it. Each dialect checks auth, validates the request the way the
/// real API does, and renders the real response and stream shapes.
public protocol MockDialect: Sendable {
    /// A short name for logs and stats (`openai`, `anthropic`, …).
    var name: String { get }
    /// The POST paths this dialect answers, in Hummingbird route syntax (`/v1/messages`, `/v1beta/models/{model}`).
    var paths: [String] { get }
    /// `nil` when the credentials are acceptable; otherwise the provider's own 401 reply.
    func checkAuth(_ headers: MockHeaders) -> MockReply?
    /// Parses and validates a request; an invalid one gets the provider's own error reply.
    func parse(path: String, query: [String: String], body: [UInt8]) -> Result<MockPrompt, MockReply>
    /// The non-streamed success reply.
    func reply(to prompt: MockPrompt, completion: MockCompletion) -> MockReply
    /// The streamed reply as server-sent event frames, in order. The server waits the pacing interval before
    /// each frame marked `isToken`.
    func streamFrames(for prompt: MockPrompt, completion: MockCompletion) -> [MockFrame]
    /// An error reply in the provider's error shape.
    func error(status: Int, message: String) -> MockReply
}

/// Request headers with lowercased names.
public typealias MockHeaders = [String: String]

/// What the mock understood of a request.
public struct MockPrompt: Sendable, Hashable {
    public var model: String
    /// The text of every message, in order, used to count prompt tokens.
    public var allText: String
    /// The text of the last user message: the reply is derived from it, and directives are read from it.
    public var lastUserText: String
    public var stream: Bool
    public var maxTokens: Int?

    public init(model: String, allText: String, lastUserText: String, stream: Bool, maxTokens: Int?) {
        self.model = model
        self.allText = allText
        self.lastUserText = lastUserText
        self.stream = stream
        self.maxTokens = maxTokens
    }
}

/// The deterministic answer to a prompt.
public struct MockCompletion: Sendable, Hashable {
    public var id: String
    public var model: String
    /// The reply split into stream tokens; joined they give `text`.
    public var tokens: [String]
    public var promptTokens: Int
    /// `stop`, or `length` when `max_tokens` cut the reply.
    public var finishedByLength: Bool

    public var text: String { tokens.joined() }
    public var completionTokens: Int { tokens.count }
}

/// An HTTP reply.
public struct MockReply: Error, Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON reply from an encodable value or a JSON object literal.
    public static func json(status: Int = 200, _ object: Any, headers: [(name: String, value: String)] = []) -> MockReply {
        MockReply(status: status, headers: [("Content-Type", "application/json")] + headers, body: MockJSON.data(object))
    }
}

/// One server-sent event frame of a streamed reply.
public struct MockFrame: Sendable {
    public var bytes: [UInt8]
    public var isToken: Bool

    public init(bytes: [UInt8], isToken: Bool) {
        self.bytes = bytes
        self.isToken = isToken
    }

    /// `event: <name>\ndata: <json>\n\n`, or only the data line when `event` is nil.
    public static func sse(event: String? = nil, _ object: Any, isToken: Bool = false) -> MockFrame {
        var bytes: [UInt8] = []
        if let event { bytes += Array("event: \(event)\n".utf8) }
        bytes += Array("data: ".utf8) + MockJSON.data(object) + Array("\n\n".utf8)
        return MockFrame(bytes: bytes, isToken: isToken)
    }

    public static func raw(_ text: String, isToken: Bool = false) -> MockFrame {
        MockFrame(bytes: Array(text.utf8), isToken: isToken)
    }
}

/// Helpers the dialects share for reading request JSON.
enum MockJSON {
    static func object(_ body: [UInt8]) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
    }

    /// The text of a content value: a string, or an array of parts with `text` fields.
    static func text(of content: Any?) -> String {
        if let string = content as? String { return string }
        if let parts = content as? [[String: Any]] {
            return parts.compactMap { $0["text"] as? String }.joined()
        }
        return ""
    }

    static func unixTime() -> Int { Int(Date().timeIntervalSince1970) }
}

import Foundation
@testable import MockProvider
import Protocol
import Providers
import Testing

/// Each adapter against the mock dialect of its wire format: the adapter's request must pass the dialect's checks,
/// and the dialect's replies and stream frames must parse back into the completion the mock meant.
@Suite("Mock dialects round trip", .serialized, .timeLimit(.minutes(1)))
struct MockDialectRoundTripTests {
    struct Pairing: Sendable, CustomTestStringConvertible {
        var providerID: String
        var kind: ProviderKind
        var baseURL: String
        var dialect: any MockDialect
        var testDescription: String { providerID }
    }

    static let mock = "http://127.0.0.1:3030"
    static let pairings: [Pairing] = [
        Pairing(providerID: "openai", kind: .openAI, baseURL: mock + "/v1", dialect: OpenAIDialect()),
        Pairing(providerID: "groq", kind: .openAI, baseURL: mock + "/openai/v1", dialect: OpenAIDialect()),
        Pairing(providerID: "openrouter", kind: .openAI, baseURL: mock + "/api/v1", dialect: OpenAIDialect()),
        Pairing(providerID: "mistral", kind: .openAI, baseURL: mock + "/v1", dialect: OpenAIDialect()),
        Pairing(providerID: "hf", kind: .openAI, baseURL: mock + "/v1", dialect: OpenAIDialect()),
        Pairing(providerID: "anthropic", kind: .anthropic, baseURL: mock, dialect: AnthropicDialect()),
        Pairing(providerID: "gemini", kind: .gemini, baseURL: mock, dialect: GeminiDialect()),
        Pairing(providerID: "cohere", kind: .cohere, baseURL: mock, dialect: CohereDialect()),
    ]

    /// What the mock server would hand the dialect: path, query and lowercased headers.
    struct Delivered {
        var path: String
        var query: [String: String]
        var headers: MockHeaders
        var body: [UInt8]

        init(_ request: UpstreamRequest) {
            let components = URLComponents(string: request.url)
            path = components?.path ?? ""
            query = [:]
            for item in components?.queryItems ?? [] { query[item.name] = item.value ?? "" }
            headers = request.headerFields
            body = request.body
        }
    }

    /// Hummingbird route matching, enough for the dialects' paths: literal segments or `{parameter}` captures.
    static func route(_ path: String, matches pattern: String) -> Bool {
        let segments = path.split(separator: "/")
        let patterns = pattern.split(separator: "/")
        guard segments.count == patterns.count else { return false }
        return zip(segments, patterns).allSatisfy { segment, pattern in
            pattern.hasPrefix("{") && pattern.hasSuffix("}") || segment == pattern
        }
    }

    /// The completion the mock server computes for a prompt (see `MockProvider.handle`).
    static func completion(for prompt: MockPrompt) -> MockCompletion {
        let wanted = MockScript(prompt: prompt.lastUserText).tokens ?? MockText.tokens(for: prompt.lastUserText).count
        let limit = prompt.maxTokens.map { min($0, wanted) } ?? wanted
        return MockCompletion(
            id: "mock-1",
            model: prompt.model,
            tokens: MockText.tokens(for: prompt.lastUserText, count: limit),
            promptTokens: MockText.countTokens(prompt.allText),
            finishedByLength: limit < wanted
        )
    }

    func parse(_ pairing: Pairing, _ chat: ChatRequest, stream: Bool) throws -> (adapter: any ProviderAdapter, prompt: MockPrompt) {
        let adapter = ProviderAdapters.make(settings(pairing.providerID, kind: pairing.kind, baseURL: pairing.baseURL))
        let delivered = Delivered(try adapter.request(for: chat, stream: stream))
        #expect(pairing.dialect.paths.contains { Self.route(delivered.path, matches: $0) }, "no route for \(delivered.path)")
        #expect(pairing.dialect.checkAuth(delivered.headers) == nil)
        switch pairing.dialect.parse(path: delivered.path, query: delivered.query, body: delivered.body) {
        case .success(let prompt): return (adapter, prompt)
        case .failure(let reply):
            Issue.record("dialect rejected the adapter's request: \(String(decoding: reply.body, as: UTF8.self))")
            throw reply
        }
    }

    static let chat = ChatRequest(
        model: "test-model",
        messages: [.system("Be brief."), .user("earlier"), .assistant("ok"), .user("Héllo wörld, 世界 🙂")],
        temperature: 0.3
    )

    @Test("non-streamed: request accepted, reply parsed back to the mock's text, finish and usage", arguments: pairings)
    func reply(pairing: Pairing) throws {
        let (adapter, prompt) = try parse(pairing, Self.chat, stream: false)
        #expect(prompt.model == "test-model")
        #expect(prompt.lastUserText == "Héllo wörld, 世界 🙂")
        #expect(!prompt.stream)
        let completion = Self.completion(for: prompt)
        let reply = pairing.dialect.reply(to: prompt, completion: completion)
        #expect(reply.status == 200)
        let parsed = try adapter.completion(from: reply.body, requestedModel: "test-model")
        #expect(parsed.text == MockText.reply(to: "Héllo wörld, 世界 🙂"))
        #expect(parsed.finishReason == .stop)
        #expect(parsed.toolCalls == nil)
        #expect(parsed.usage?.promptTokens == completion.promptTokens)
        #expect(parsed.usage?.completionTokens == completion.completionTokens)
    }

    @Test("max_tokens reaches the mock and a cut reply comes back as length", arguments: pairings)
    func maxTokens(pairing: Pairing) throws {
        var chat = Self.chat
        chat.maxTokens = 2
        let (adapter, prompt) = try parse(pairing, chat, stream: false)
        #expect(prompt.maxTokens == 2)
        let completion = Self.completion(for: prompt)
        let parsed = try adapter.completion(from: pairing.dialect.reply(to: prompt, completion: completion).body, requestedModel: "test-model")
        #expect(parsed.text == "mock reply:")
        #expect(parsed.finishReason == .length)
    }

    @Test("streamed: frames through the parser (random splits) and decoder give the same completion", arguments: pairings)
    func stream(pairing: Pairing) throws {
        let (adapter, prompt) = try parse(pairing, Self.chat, stream: true)
        #expect(prompt.stream)
        let completion = Self.completion(for: prompt)
        let frames = pairing.dialect.streamFrames(for: prompt, completion: completion)
        #expect(frames.filter(\.isToken).count == completion.tokens.count)
        let body = frames.flatMap(\.bytes)
        for seed in 1...10 {
            let decoded = try decodeStream(body, with: adapter, seed: UInt64(seed), maxPiece: 5)
            #expect(decoded.finished)
            #expect(decoded.text == completion.text)
            let result = decoded.accumulator.completion(model: "test-model")
            #expect(result.finishReason == .stop)
            #expect(result.usage?.promptTokens == completion.promptTokens)
            #expect(result.usage?.completionTokens == completion.completionTokens)
        }
    }

    @Test("a missing key gets the provider's own refusal, which the adapter classifies as auth", arguments: pairings)
    func missingKey(pairing: Pairing) throws {
        var adapterSettings = settings(pairing.providerID, kind: pairing.kind, baseURL: pairing.baseURL)
        adapterSettings.apiKey = nil
        let adapter = ProviderAdapters.make(adapterSettings)
        let delivered = Delivered(try adapter.request(for: Self.chat, stream: false))
        let refusal = try #require(pairing.dialect.checkAuth(delivered.headers))
        let error = adapter.error(status: refusal.status, headers: refusal.headers, body: refusal.body)
        #expect(error.errorClass == .auth)
        #expect(!error.message.isEmpty)
        #expect(!error.message.hasPrefix("{"), "the message should come from the parsed body: \(error.message)")
    }

    @Test("the mock's scripted failures map to the right class, message and retry delay", arguments: pairings)
    func scriptedFailures(pairing: Pairing) {
        let adapter = ProviderAdapters.make(settings(pairing.providerID, kind: pairing.kind, baseURL: pairing.baseURL))
        for (status, expected) in [(429, UpstreamError.Class.rateLimited), (500, .server), (503, .server), (400, .client)] {
            var reply = pairing.dialect.error(status: status, message: "mock failure \(status) on call 1")
            reply.headers += [("Retry-After", "2"), ("retry-after-ms", "1500")]
            let error = adapter.error(status: reply.status, headers: reply.headers, body: reply.body)
            #expect(error.errorClass == expected)
            #expect(error.status == status)
            #expect(error.message == "mock failure \(status) on call 1")
            #expect(error.retryAfter == 1.5)
        }
    }

    @Test("Anthropic without max_tokens is refused with Anthropic's own 400 body")
    func anthropicRequiresMaxTokens() throws {
        let body = bytes(#"{"model":"claude","messages":[{"role":"user","content":"Hi"}]}"#)
        guard case .failure(let reply) = AnthropicDialect().parse(path: "/v1/messages", query: [:], body: body) else {
            Issue.record("expected a refusal")
            return
        }
        #expect(reply.status == 400)
        #expect(try JSONDecoder().decode(JSONValue.self, from: Data(reply.body)) == .object([
            "type": .string("error"),
            "error": .object(["type": .string("invalid_request_error"), "message": .string("max_tokens: Field required")]),
        ]))
        let error = AnthropicAdapter(settings: settings("anthropic", kind: .anthropic)).error(status: reply.status, headers: reply.headers, body: reply.body)
        #expect(error == UpstreamError(errorClass: .client, status: 400, message: "max_tokens: Field required", providerCode: "invalid_request_error"))
    }

    @Test("dialects refuse requests the real APIs refuse")
    func refusals() {
        func status(_ dialect: any MockDialect, path: String, query: [String: String] = [:], _ body: String) -> Int? {
            if case .failure(let reply) = dialect.parse(path: path, query: query, body: bytes(body)) { return reply.status }
            return nil
        }
        let anthropic = AnthropicDialect()
        #expect(status(anthropic, path: "/v1/messages", #"{"max_tokens":5,"messages":[{"role":"user","content":"Hi"}]}"#) == 400)
        #expect(status(anthropic, path: "/v1/messages", #"{"model":"c","max_tokens":5}"#) == 400)
        #expect(status(anthropic, path: "/v1/messages", #"{"model":"c","max_tokens":5,"messages":[{"role":"system","content":"Hi"}]}"#) == 400)
        #expect(status(anthropic, path: "/v1/messages", "not json") == 400)
        #expect(anthropic.checkAuth(["x-api-key": "k"])?.status == 400, "anthropic-version is required")

        let gemini = GeminiDialect()
        #expect(status(gemini, path: "/v1beta/models/g:generateContent", "{}") == 400)
        #expect(status(gemini, path: "/v1beta/models/g:generateContent", #"{"contents":[]}"#) == 400)
        #expect(status(gemini, path: "/v1beta/models/g:countTokens", #"{"contents":[{"parts":[{"text":"x"}]}]}"#) == 404)
        #expect(status(gemini, path: "/v1beta/models/g:streamGenerateContent", #"{"contents":[{"parts":[{"text":"x"}]}]}"#) == 400)
        #expect(status(gemini, path: "/v1beta/models/g:streamGenerateContent", query: ["alt": "sse"], #"{"contents":[{"parts":[{"text":"x"}]}]}"#) == nil)
        #expect(gemini.checkAuth([:])?.status == 403)

        let cohere = CohereDialect()
        #expect(status(cohere, path: "/v2/chat", #"{"messages":[{"role":"user","content":"Hi"}]}"#) == 400)
        #expect(status(cohere, path: "/v2/chat", #"{"model":"c"}"#) == 400)
        #expect(status(cohere, path: "/v2/chat", #"{"model":"c","messages":[{"role":"developer","content":"Hi"}]}"#) == 400)
        #expect(cohere.checkAuth(["authorization": "Bearer "])?.status == 401)
    }
}

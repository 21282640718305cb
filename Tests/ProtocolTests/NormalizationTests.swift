import Protocol
import Testing

@Suite("JobSubmission", .serialized, .timeLimit(.minutes(2)))
struct NormalizationTests {
    /// Providers with default models chosen by the test, so defaults are visibly taken from the settings.
    static let providers: [String: ProviderSettings] = [
        "openai": ProviderSettings(id: "openai", kind: .openAI, baseURL: "https://api.openai.com/v1", apiKey: nil, defaultModel: "openai-default"),
        "anthropic": ProviderSettings(id: "anthropic", kind: .anthropic, baseURL: "https://api.anthropic.com", apiKey: nil, defaultModel: "anthropic-default"),
        "openrouter": ProviderSettings(id: "openrouter", kind: .openAI, baseURL: "https://openrouter.ai/api/v1", apiKey: nil, defaultModel: "openrouter-default"),
    ]

    func normalize(_ json: String) throws -> NormalizedJob {
        try decode(JobSubmission.self, from: json).normalized(providers: Self.providers)
    }

    /// The `GatewayError` normalizing `json` throws, or `nil` when it succeeds.
    func rejection(_ json: String) throws -> GatewayError? {
        let submission = try decode(JobSubmission.self, from: json)
        do {
            _ = try submission.normalized(providers: Self.providers)
            return nil
        } catch {
            return error
        }
    }

    @Test("the seed form becomes one user message with the provider's default model")
    func seedForm() throws {
        let job = try normalize(#"{"provider":"openai","prompt":"hi"}"#)
        #expect(job.provider == "openai")
        #expect(job.request.model == "openai-default")
        #expect(job.request.messages == [.user("hi")])
        #expect(job.fallbacks.isEmpty)
        #expect(try normalize(#"{"provider":"anthropic","prompt":"hi"}"#).request.model == "anthropic-default")
        #expect(try normalize(#"{"provider":"OpenAI","prompt":"hi"}"#).provider == "openai")
        #expect(try normalize(#"{"provider":"openai","model":"","prompt":"hi"}"#).request.model == "openai-default")
    }

    @Test("the chat form keeps messages and passes parameters through")
    func chatForm() throws {
        let job = try normalize(#"""
            {"provider":"openai","model":"gpt-4o","prompt":"ignored",
             "messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],
             "max_tokens":64,"temperature":0.2,"top_p":0.9,"stop":["END","STOP"],"seed":7,
             "response_format":{"type":"json_object"},
             "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
             "tool_choice":"auto"}
            """#)
        #expect(job.request.model == "gpt-4o")
        #expect(job.request.messages == [.system("Be brief."), .user("Hi")])
        #expect(job.request.maxTokens == 64)
        #expect(job.request.temperature == 0.2)
        #expect(job.request.topP == 0.9)
        #expect(job.request.stop == ["END", "STOP"])
        #expect(job.request.seed == 7)
        #expect(job.request.responseFormat == .object(["type": .string("json_object")]))
        #expect(job.request.tools?.first?["function"]?["name"] == .string("f"))
        #expect(job.request.toolChoice == .string("auto"))
    }

    @Test("stop decodes from a string or an array")
    func stopForms() throws {
        let single = try decode(JobSubmission.self, from: #"{"prompt":"x","stop":"END"}"#)
        #expect(single.stop == ["END"])
        let many = try decode(JobSubmission.self, from: #"{"prompt":"x","stop":["a","b"]}"#)
        #expect(many.stop == ["a", "b"])
        let none = try decode(JobSubmission.self, from: #"{"prompt":"x","stop":null}"#)
        #expect(none.stop == nil)
        #expect(throws: (any Error).self) { try decode(JobSubmission.self, from: #"{"prompt":"x","stop":5}"#) }
    }

    @Test("a provider-qualified model picks the provider when none is given")
    func modelPicksProvider() throws {
        let job = try normalize(#"{"model":"anthropic/claude-x","prompt":"hi"}"#)
        #expect(job.provider == "anthropic")
        #expect(job.request.model == "claude-x")
        // With an explicit provider, the model is the provider's own name and keeps its slashes.
        let routed = try normalize(#"{"provider":"openrouter","model":"anthropic/claude-x","prompt":"hi"}"#)
        #expect(routed.provider == "openrouter")
        #expect(routed.request.model == "anthropic/claude-x")
    }

    @Test("an unknown provider is a 400 with code unknown_provider")
    func unknownProvider() throws {
        let error = try #require(try rejection(#"{"provider":"nope","prompt":"hi"}"#))
        #expect(error.status == 400)
        #expect(error.body.error.code == "unknown_provider")
        #expect(error.body.error.param == "provider")
        #expect(error.body.error.type == "invalid_request_error")
    }

    @Test(
        "a missing provider is a 400 naming provider",
        arguments: [#"{"prompt":"hi"}"#, #"{"model":"nope/x","prompt":"hi"}"#, #"{"model":"gpt-4o","prompt":"hi"}"#]
    )
    func missingProvider(json: String) throws {
        let error = try #require(try rejection(json))
        #expect(error.status == 400)
        #expect(error.body.error.param == "provider")
    }

    @Test(
        "invalid requests are 400s naming the offending parameter",
        arguments: [
            (#"{"provider":"openai"}"#, "prompt"),
            (#"{"provider":"openai","prompt":""}"#, "prompt"),
            (#"{"provider":"openai","messages":[]}"#, "prompt"),
            (#"{"provider":"openai","prompt":"hi","temperature":2.5}"#, "temperature"),
            (#"{"provider":"openai","prompt":"hi","temperature":-0.1}"#, "temperature"),
            (#"{"provider":"openai","prompt":"hi","top_p":1.5}"#, "top_p"),
            (#"{"provider":"openai","prompt":"hi","max_tokens":0}"#, "max_tokens"),
            (#"{"provider":"openai","prompt":"hi","stop":["a","b","c","d","e"]}"#, "stop"),
            (#"{"provider":"openai","messages":[{"role":"user","content":"a"},{"role":"wizard","content":"b"}]}"#, "messages[1].role"),
            (#"{"provider":"openai","messages":[{"role":"user"}]}"#, "messages[0].content"),
            (#"{"provider":"openai","prompt":"hi","fallbacks":["nope/x"]}"#, "fallbacks"),
            (#"{"provider":"openai","prompt":"hi","fallbacks":["anthropic/claude-x","openai"]}"#, "fallbacks"),
            (#"{"provider":"openai","prompt":"hi","fallbacks":["/x"]}"#, "fallbacks"),
        ] as [(String, String)]
    )
    func invalid(json: String, param: String) throws {
        let error = try #require(try rejection(json))
        #expect(error.status == 400)
        #expect(error.body.error.param == param)
        #expect(error.body.error.type == "invalid_request_error")
    }

    @Test("boundary values are accepted")
    func boundaries() throws {
        for json in [
            #"{"provider":"openai","prompt":"hi","temperature":0,"top_p":0,"max_tokens":1}"#,
            #"{"provider":"openai","prompt":"hi","temperature":2,"top_p":1,"stop":["a","b","c","d"]}"#,
            #"{"provider":"openai","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"42"}]}"#,
        ] {
            #expect(try rejection(json) == nil, "\(json)")
        }
    }

    @Test("fallbacks parse into provider/model pairs of configured providers")
    func fallbacks() throws {
        let job = try normalize(#"{"provider":"openai","prompt":"hi","fallbacks":["anthropic/claude-x","openrouter/meta-llama/llama-3"]}"#)
        #expect(job.fallbacks == [
            ModelRef(provider: "anthropic", model: "claude-x"),
            ModelRef(provider: "openrouter", model: "meta-llama/llama-3"),
        ])
    }

    @Test("ModelRef keeps slashes in the model part")
    func modelRef() throws {
        let reference = try #require(ModelRef(parsing: "openrouter/meta-llama/llama-3"))
        #expect(reference.provider == "openrouter")
        #expect(reference.model == "meta-llama/llama-3")
        #expect(reference.description == "openrouter/meta-llama/llama-3")
        for junk in ["openai", "/gpt-4o", "openai/", "", "/"] {
            #expect(ModelRef(parsing: junk) == nil, "\(junk)")
        }
    }
}

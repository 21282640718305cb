import Protocol
import Providers
import Testing

@Suite("OpenAIAdapter", .serialized, .timeLimit(.minutes(1)))
struct OpenAIAdapterTests {
    let chat = ChatRequest(
        model: "m",
        messages: [
            .system("Be brief."),
            ChatMessage(role: .developer, content: .text("Use metric units.")),
            ChatMessage(role: .user, content: .text("Hi"), name: "ann"),
        ],
        temperature: 0.5,
        topP: 0.9,
        maxTokens: 100,
        stop: ["END"],
        seed: 42
    )

    @Test("OpenAI: max_completion_tokens, developer role kept, usage requested on streams")
    func openAIRequest() throws {
        let adapter = OpenAIAdapter(settings: settings("openai", kind: .openAI))
        let plain = try adapter.request(for: chat, stream: false)
        #expect(plain.method == "POST")
        #expect(plain.url == "https://api.openai.com/v1/chat/completions")
        #expect(plain.headers.map(\.name) == ["Content-Type", "Authorization"])
        #expect(plain.headerFields["authorization"] == "Bearer \(testKey)")
        #expect(plain.bodyText == """
            {"max_completion_tokens":100,"messages":[{"content":"Be brief.","role":"system"},\
            {"content":"Use metric units.","role":"developer"},{"content":"Hi","name":"ann","role":"user"}],\
            "model":"m","seed":42,"stop":["END"],"temperature":0.5,"top_p":0.9}
            """)

        let streamed = try adapter.request(for: chat, stream: true)
        #expect(streamed.headerFields["accept"] == "text/event-stream")
        #expect(streamed.bodyText.contains(#""stream":true,"stream_options":{"include_usage":true}"#))
    }

    @Test("Groq: its own base path, max_completion_tokens, developer becomes system")
    func groqRequest() throws {
        let adapter = OpenAIAdapter(settings: settings("groq", kind: .openAI))
        let request = try adapter.request(for: chat, stream: true)
        #expect(request.url == "https://api.groq.com/openai/v1/chat/completions")
        #expect(request.headerFields["authorization"] == "Bearer \(testKey)")
        #expect(request.bodyText == """
            {"max_completion_tokens":100,"messages":[{"content":"Be brief.","role":"system"},\
            {"content":"Use metric units.","role":"system"},{"content":"Hi","name":"ann","role":"user"}],\
            "model":"m","seed":42,"stop":["END"],"stream":true,"stream_options":{"include_usage":true},\
            "temperature":0.5,"top_p":0.9}
            """)
    }

    @Test("OpenRouter: attribution headers in a stable order, max_tokens, stream usage")
    func openRouterRequest() throws {
        let adapter = OpenAIAdapter(settings: settings(
            "openrouter", kind: .openAI, baseURL: "https://openrouter.ai/api/v1/",
            extraHeaders: ["X-Title": "Gateway", "HTTP-Referer": "https://example.com"]))
        let request = try adapter.request(for: chat, stream: true)
        #expect(request.url == "https://openrouter.ai/api/v1/chat/completions")
        #expect(request.headers.map(\.name) == ["Content-Type", "Authorization", "Accept", "HTTP-Referer", "X-Title"])
        #expect(request.headerFields["http-referer"] == "https://example.com")
        #expect(request.bodyText.hasPrefix(#"{"max_tokens":100,"messages":"#))
        #expect(request.bodyText.contains(#""stream_options":{"include_usage":true}"#))
    }

    @Test("Mistral: random_seed, max_tokens, no stream_options, no name outside tool messages")
    func mistralRequest() throws {
        let adapter = OpenAIAdapter(settings: settings("mistral", kind: .openAI))
        let request = try adapter.request(for: chat, stream: true)
        #expect(request.url == "https://api.mistral.ai/v1/chat/completions")
        #expect(request.bodyText == """
            {"max_tokens":100,"messages":[{"content":"Be brief.","role":"system"},\
            {"content":"Use metric units.","role":"system"},{"content":"Hi","role":"user"}],\
            "model":"m","random_seed":42,"stop":["END"],"stream":true,"temperature":0.5,"top_p":0.9}
            """)
    }

    @Test("Hugging Face: the router path, max_tokens, no stream_options")
    func huggingFaceRequest() throws {
        let adapter = OpenAIAdapter(settings: settings("hf", kind: .openAI))
        let request = try adapter.request(for: chat, stream: true)
        #expect(request.url == "https://router.huggingface.co/v1/chat/completions")
        #expect(request.bodyText.contains(#""max_tokens":100"#))
        #expect(!request.bodyText.contains("stream_options"))
    }

    @Test("tools, tool calls and tool results pass through in OpenAI's shape")
    func toolsPassThrough() throws {
        var request = ChatRequest(model: "m", messages: toolConversation(), tools: [weatherTool()], toolChoice: .string("auto"))
        request.responseFormat = .object(["type": .string("json_object")])
        let body = try OpenAIAdapter(settings: settings("openai", kind: .openAI)).request(for: request, stream: false).bodyText
        #expect(body.contains(#"{"content":"Checking.","role":"assistant","tool_calls":[{"function":{"arguments":"{\"city\":\"Paris\"}","name":"get_weather"},"id":"call_1","type":"function"}]}"#))
        #expect(body.contains(#"{"content":"{\"temp_c\":21}","role":"tool","tool_call_id":"call_1"}"#))
        #expect(body.contains(#""tool_choice":"auto""#))
        #expect(body.contains(#""response_format":{"type":"json_object"}"#))
        #expect(body.contains(#""image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}"#))
    }

    @Test("a response with tool calls and cached usage")
    func completionWithToolCalls() throws {
        let body = """
            {"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,\
            "message":{"role":"assistant","content":null,"refusal":null,"tool_calls":[{"id":"call_a","type":"function",\
            "function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],\
            "usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4}}}
            """
        let completion = try OpenAIAdapter(settings: settings("openai", kind: .openAI)).completion(from: bytes(body), requestedModel: "gpt-4o-mini")
        #expect(completion == ChatCompletion(
            id: "chatcmpl-1",
            model: "gpt-4o-mini-2024-07-18",
            text: "",
            toolCalls: [ToolCall(id: "call_a", name: "get_weather", arguments: #"{"city":"Paris"}"#)],
            finishReason: .toolCalls,
            usage: Usage(promptTokens: 10, completionTokens: 5, totalTokens: 15, cachedTokens: 4)
        ))
    }

    @Test("compatible servers' finish reasons are normalized; a missing model falls back to the requested one")
    func finishReasons() throws {
        let adapter = OpenAIAdapter(settings: settings("hf", kind: .openAI))
        for (raw, expected) in [("eos_token", FinishReason.stop), ("model_length", .length), ("stop", .stop), ("content_filter", .contentFilter)] {
            let body = #"{"choices":[{"message":{"role":"assistant","content":"x"},"finish_reason":"\#(raw)"}]}"#
            let completion = try adapter.completion(from: bytes(body), requestedModel: "asked")
            #expect(completion.finishReason == expected)
            #expect(completion.model == "asked")
            #expect(completion.usage == nil)
        }
    }

    @Test("a 200 whose body is an error (OpenRouter) throws the error's class")
    func errorInSuccessBody() {
        let adapter = OpenAIAdapter(settings: settings("openrouter", kind: .openAI))
        let error = upstreamError {
            _ = try adapter.completion(from: bytes(#"{"error":{"code":429,"message":"Rate limit exceeded"}}"#), requestedModel: "m")
        }
        #expect(error?.errorClass == .rateLimited)
        #expect(error?.message == "Rate limit exceeded")
    }

    @Test("a malformed body is a protocol violation")
    func malformedBody() {
        let adapter = OpenAIAdapter(settings: settings("openai", kind: .openAI))
        #expect(upstreamError { _ = try adapter.completion(from: bytes("<html>"), requestedModel: "m") }?.errorClass == .protocolViolation)
        #expect(upstreamError { _ = try adapter.completion(from: bytes(#"{"choices":[]}"#), requestedModel: "m") }?.errorClass == .protocolViolation)
    }

    static let streamBody = """
        data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}

        data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Héllo, "},"finish_reason":null}]}

        data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"世界 🙂"},"finish_reason":null}]}

        data: {"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}

        data: {"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"city\\":"}}]},"finish_reason":null}]}

        data: {"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\\"Paris\\"}"}}]},"finish_reason":null}]}

        data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}

        data: {"id":"c1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}

        data: [DONE]


        """

    @Test("stream: text, tool call fragments, finish and usage, split at random byte boundaries", arguments: 1...25)
    func stream(seed: Int) throws {
        let adapter = OpenAIAdapter(settings: settings("openai", kind: .openAI))
        let decoded = try decodeStream(bytes(Self.streamBody), with: adapter, seed: UInt64(seed))
        #expect(decoded.finished)
        #expect(decoded.text == "Héllo, 世界 🙂")
        let completion = decoded.accumulator.completion(model: "m")
        #expect(completion.toolCalls == [ToolCall(id: "call_a", name: "get_weather", arguments: #"{"city":"Paris"}"#)])
        #expect(completion.finishReason == .toolCalls)
        #expect(completion.usage == Usage(promptTokens: 9, completionTokens: 4, totalTokens: 13))
    }

    @Test("stream: Groq's usage arrives in x_groq")
    func groqStreamUsage() throws {
        let body = """
            data: {"id":"g","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}],"x_groq":{"id":"req_1","usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}}

            data: [DONE]


            """
        let decoded = try decodeStream(bytes(body), with: OpenAIAdapter(settings: settings("groq", kind: .openAI)))
        #expect(decoded.accumulator.usage == Usage(promptTokens: 3, completionTokens: 1))
        #expect(decoded.finished)
    }

    @Test("stream: an error chunk throws, classified by its code, without the key")
    func streamError() {
        let adapter = OpenAIAdapter(settings: settings("openrouter", kind: .openAI))
        var decoder = adapter.makeStreamDecoder()
        let event = ServerSentEvent(data: #"{"error":{"code":502,"message":"upstream \#(testKey) failed"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}"#)
        let error = upstreamError { _ = try decoder.decode(event) }
        #expect(error?.errorClass == .server)
        #expect(error?.message.contains(testKey) == false)
        #expect(error?.providerCode == "502")
    }

    @Test("errors: status class, Retry-After and retry-after-ms, message kept, key removed")
    func errors() {
        let adapter = OpenAIAdapter(settings: settings("openai", kind: .openAI))
        let limited = adapter.error(
            status: 429,
            headers: [("retry-after-ms", "1500"), ("Retry-After", "2")],
            body: bytes(#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#))
        #expect(limited == UpstreamError(errorClass: .rateLimited, status: 429, message: "Rate limit reached", providerCode: "rate_limit_exceeded", retryAfter: 1.5))

        let seconds = adapter.error(status: 503, headers: [("Retry-After", "7")], body: bytes("upstream unavailable"))
        #expect(seconds == UpstreamError(errorClass: .server, status: 503, message: "upstream unavailable", retryAfter: 7))

        let auth = adapter.error(status: 401, headers: [], body: bytes(
            #"{"error":{"message":"Incorrect API key provided: \#(testKey). You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","code":"invalid_api_key"}}"#))
        #expect(auth.errorClass == .auth)
        #expect(!auth.message.contains(testKey))
        #expect(auth.message.hasPrefix("Incorrect API key provided: [redacted]."))
        #expect(auth.providerCode == "invalid_api_key")

        #expect(adapter.error(status: 400, headers: [], body: bytes(#"{"error":"Model not supported"}"#)).message == "Model not supported")
        #expect(adapter.error(status: 422, headers: [], body: bytes(#"{"object":"error","message":"Extra inputs are not permitted","type":"invalid_request_error"}"#)).message == "Extra inputs are not permitted")
        #expect(adapter.error(status: 404, headers: [], body: []).message == "HTTP 404")
        #expect(adapter.error(status: 408, headers: [], body: []).errorClass == .timeout)
        #expect(adapter.error(status: 403, headers: [], body: []).errorClass == .auth)
    }

    @Test("ProviderAdapters.make picks the adapter by kind")
    func factory() {
        #expect(ProviderAdapters.make(settings("groq", kind: .openAI)) is OpenAIAdapter)
        #expect(ProviderAdapters.make(settings("anthropic", kind: .anthropic)) is AnthropicAdapter)
        #expect(ProviderAdapters.make(settings("gemini", kind: .gemini)) is GeminiAdapter)
        #expect(ProviderAdapters.make(settings("cohere", kind: .cohere)) is CohereAdapter)
    }
}

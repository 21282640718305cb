import Protocol
import Providers
import Testing

@Suite("GeminiAdapter", .serialized, .timeLimit(.minutes(1)))
struct GeminiAdapterTests {
    let adapter = GeminiAdapter(settings: settings("gemini", kind: .gemini))

    @Test("golden request: contents with roles, systemInstruction, generationConfig, functionDeclarations, toolConfig")
    func goldenRequest() throws {
        let chat = ChatRequest(
            model: "gemini-2.0-flash",
            messages: toolConversation(),
            temperature: 0.2,
            topP: 0.9,
            maxTokens: 100,
            stop: ["END"],
            seed: 7,
            responseFormat: .object([
                "type": .string("json_schema"),
                "json_schema": .object(["name": .string("w"), "schema": .object([
                    "type": .string("object"), "properties": .object(["a": .object(["type": .string("integer")])]),
                ])]),
            ]),
            tools: [weatherTool()],
            toolChoice: .object(["type": .string("function"), "function": .object(["name": .string("get_weather")])])
        )
        let request = try adapter.request(for: chat, stream: false)
        #expect(request.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent")
        #expect(request.headers.map(\.name) == ["Content-Type", "x-goog-api-key"])
        #expect(request.headerFields["x-goog-api-key"] == testKey)
        #expect(!request.url.contains(testKey))
        let expected = #"{"contents":["#
            + #"{"parts":[{"text":"What is in this picture, and the weather in Paris?"},"#
            + #"{"inlineData":{"data":"iVBORw0KGgo=","mimeType":"image/png"}}],"role":"user"},"#
            + #"{"parts":[{"text":"Checking."},{"functionCall":{"args":{"city":"Paris"},"name":"get_weather"}}],"role":"model"},"#
            + #"{"parts":[{"functionResponse":{"name":"get_weather","response":{"temp_c":21}}},{"text":"Thanks!"}],"role":"user"}],"#
            + #""generationConfig":{"maxOutputTokens":100,"responseJsonSchema":{"properties":{"a":{"type":"integer"}},"type":"object"},"#
            + #""responseMimeType":"application/json","seed":7,"stopSequences":["END"],"temperature":0.2,"topP":0.9},"#
            + #""systemInstruction":{"parts":[{"text":"Be brief.\n\nUse metric units."}]},"#
            + #""toolConfig":{"functionCallingConfig":{"allowedFunctionNames":["get_weather"],"mode":"ANY"}},"#
            + #""tools":[{"functionDeclarations":[{"description":"Weather by city","name":"get_weather","#
            + #""parametersJsonSchema":{"properties":{"city":{"type":"string"}},"required":["city"],"type":"object"}}]}]}"#
        #expect(request.bodyText == expected)
    }

    @Test("stream request: streamGenerateContent with alt=sse; a models/ prefix is not doubled; a minimal body")
    func streamRequest() throws {
        let request = try adapter.request(for: ChatRequest(model: "models/gemini-2.0-flash", messages: [.user("Hi")]), stream: true)
        #expect(request.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse")
        #expect(request.headerFields["accept"] == "text/event-stream")
        #expect(request.bodyText == #"{"contents":[{"parts":[{"text":"Hi"}],"role":"user"}]}"#)
    }

    @Test("json_object, tool_choice modes, remote images, non-object tool output")
    func variants() throws {
        var chat = ChatRequest(
            model: "g",
            messages: toolConversation(imageURL: "https://example.com/cat.jpg?size=2"),
            responseFormat: .object(["type": .string("json_object")]),
            tools: [weatherTool()]
        )
        chat.messages[4].content = .text("21 degrees")
        var body = try adapter.request(for: chat, stream: false).bodyText
        #expect(body.contains(#""generationConfig":{"responseMimeType":"application/json"}"#))
        #expect(body.contains(#"{"fileData":{"fileUri":"https://example.com/cat.jpg?size=2","mimeType":"image/jpeg"}}"#))
        #expect(body.contains(#"{"functionResponse":{"name":"get_weather","response":{"result":"21 degrees"}}}"#))
        #expect(!body.contains("toolConfig"))
        for (choice, mode) in [("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")] {
            chat.toolChoice = .string(choice)
            body = try adapter.request(for: chat, stream: false).bodyText
            #expect(body.contains(#""toolConfig":{"functionCallingConfig":{"mode":"\#(mode)"}}"#))
        }
    }

    @Test("a tool result whose call is unknown cannot name its function: client error")
    func orphanToolResult() {
        let chat = ChatRequest(model: "g", messages: [.user("x"), ChatMessage(role: .tool, content: .text("1"), toolCallID: "nope")])
        #expect(upstreamError { _ = try adapter.request(for: chat, stream: false) }?.errorClass == .client)
    }

    @Test("response: text parts (thoughts skipped), function calls with generated ids, usage with thoughts")
    func completion() throws {
        let body = """
            {"candidates":[{"content":{"parts":[{"text":"planning","thought":true},{"text":"It is "},{"text":"sunny."},\
            {"functionCall":{"name":"get_weather","args":{"city":"Paris"}}}],"role":"model"},"finishReason":"STOP","index":0}],\
            "usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":5,"totalTokenCount":20,"cachedContentTokenCount":2,"thoughtsTokenCount":5},\
            "modelVersion":"gemini-2.0-flash-001","responseId":"abc"}
            """
        #expect(try adapter.completion(from: bytes(body), requestedModel: "gemini-2.0-flash") == ChatCompletion(
            id: "abc",
            model: "gemini-2.0-flash-001",
            text: "It is sunny.",
            toolCalls: [ToolCall(id: "call_abc_0", name: "get_weather", arguments: #"{"city":"Paris"}"#)],
            finishReason: .toolCalls,
            usage: Usage(promptTokens: 10, completionTokens: 10, totalTokens: 20, cachedTokens: 2)
        ))
    }

    @Test("finish reasons; a blocked prompt is a content_filter completion")
    func finishReasons() throws {
        for (raw, expected) in [("STOP", FinishReason.stop), ("MAX_TOKENS", .length), ("SAFETY", .contentFilter), ("RECITATION", .contentFilter), ("OTHER", .stop)] {
            let body = #"{"candidates":[{"content":{"parts":[{"text":"x"}],"role":"model"},"finishReason":"\#(raw)"}]}"#
            let completion = try adapter.completion(from: bytes(body), requestedModel: "g")
            #expect(completion.finishReason == expected)
            #expect(completion.model == "g")
        }
        let blocked = try adapter.completion(
            from: bytes(#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":3,"totalTokenCount":3}}"#),
            requestedModel: "g")
        #expect(blocked.finishReason == .contentFilter)
        #expect(blocked.text == "")
        #expect(upstreamError { _ = try adapter.completion(from: bytes("{}"), requestedModel: "g") }?.errorClass == .protocolViolation)
    }

    /// Gemini ends SSE lines with CRLF.
    static let streamBody = [
        #"data: {"candidates":[{"content":{"parts":[{"text":"Héllo "}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":4,"totalTokenCount":4},"modelVersion":"gemini-2.0-flash","responseId":"r1"}"#,
        #"data: {"candidates":[{"content":{"parts":[{"text":"世界 🙂"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":4,"totalTokenCount":4},"modelVersion":"gemini-2.0-flash","responseId":"r1"}"#,
        #"data: {"candidates":[{"content":{"parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}}}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":6,"totalTokenCount":10},"modelVersion":"gemini-2.0-flash","responseId":"r1"}"#,
    ].map { $0 + "\r\n\r\n" }.joined()

    @Test("stream: every event a whole response; finishes at the finish reason; split at random byte boundaries", arguments: 1...25)
    func stream(seed: Int) throws {
        let decoded = try decodeStream(bytes(Self.streamBody), with: adapter, seed: UInt64(seed))
        #expect(decoded.finished)
        let completion = decoded.accumulator.completion(model: "g")
        #expect(completion.text == "Héllo 世界 🙂")
        #expect(completion.toolCalls == [ToolCall(id: "call_r1_0", name: "get_weather", arguments: #"{"city":"Paris"}"#)])
        #expect(completion.finishReason == .toolCalls)
        #expect(completion.usage == Usage(promptTokens: 4, completionTokens: 6, totalTokens: 10))
    }

    @Test("stream: an error object throws with its status class")
    func streamError() {
        var decoder = adapter.makeStreamDecoder()
        let error = upstreamError {
            _ = try decoder.decode(ServerSentEvent(data: #"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#))
        }
        #expect(error == UpstreamError(errorClass: .server, status: nil, message: "The model is overloaded.", providerCode: "UNAVAILABLE"))
    }

    @Test("errors: invalid key is auth despite its 400; RetryInfo gives the retry delay; array bodies; key removed")
    func errors() {
        let invalidKey = adapter.error(status: 400, headers: [], body: bytes("""
            {"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT",\
            "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}
            """))
        #expect(invalidKey == UpstreamError(errorClass: .auth, status: 400, message: "API key not valid. Please pass a valid API key.", providerCode: "INVALID_ARGUMENT"))

        let quota = adapter.error(status: 429, headers: [], body: bytes("""
            {"error":{"code":429,"message":"You exceeded your current quota.","status":"RESOURCE_EXHAUSTED",\
            "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}
            """))
        #expect(quota == UpstreamError(errorClass: .rateLimited, status: 429, message: "You exceeded your current quota.", providerCode: "RESOURCE_EXHAUSTED", retryAfter: 37))
        #expect(adapter.error(status: 429, headers: [("Retry-After", "2")], body: []).retryAfter == 2)

        let array = adapter.error(status: 503, headers: [], body: bytes(#"[{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}]"#))
        #expect(array.errorClass == .server)
        #expect(array.message == "The model is overloaded.")

        let leaked = adapter.error(status: 403, headers: [], body: bytes(#"{"error":{"code":403,"message":"key \#(testKey) is suspended","status":"PERMISSION_DENIED"}}"#))
        #expect(leaked.errorClass == .auth)
        #expect(leaked.message == "key [redacted] is suspended")
    }
}

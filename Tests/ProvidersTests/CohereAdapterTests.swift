import Protocol
import Providers
import Testing

@Suite("CohereAdapter", .serialized, .timeLimit(.minutes(1)))
struct CohereAdapterTests {
    let adapter = CohereAdapter(settings: settings("cohere", kind: .cohere))

    @Test("golden request: v2 messages, tool_plan with tool calls, p, stop_sequences, json_schema, REQUIRED")
    func goldenRequest() throws {
        let chat = ChatRequest(
            model: "command-r",
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
            toolChoice: .string("required")
        )
        let request = try adapter.request(for: chat, stream: false)
        #expect(request.url == "https://api.cohere.com/v2/chat")
        #expect(request.headers.map(\.name) == ["Content-Type", "Authorization", "Accept"])
        #expect(request.headerFields == ["content-type": "application/json", "authorization": "Bearer \(testKey)", "accept": "application/json"])
        let expected = #"{"max_tokens":100,"messages":["#
            + #"{"content":"Be brief.","role":"system"},{"content":"Use metric units.","role":"system"},"#
            + #"{"content":[{"text":"What is in this picture, and the weather in Paris?","type":"text"},"#
            + #"{"image_url":{"url":"data:image/png;base64,iVBORw0KGgo="},"type":"image_url"}],"role":"user"},"#
            + #"{"role":"assistant","tool_calls":[{"function":{"arguments":"{\"city\":\"Paris\"}","name":"get_weather"},"#
            + #""id":"call_1","type":"function"}],"tool_plan":"Checking."},"#
            + #"{"content":"{\"temp_c\":21}","role":"tool","tool_call_id":"call_1"},"#
            + #"{"content":"Thanks!","role":"user"}],"#
            + #""model":"command-r","p":0.9,"#
            + #""response_format":{"json_schema":{"properties":{"a":{"type":"integer"}},"type":"object"},"type":"json_object"},"#
            + #""seed":7,"stop_sequences":["END"],"stream":false,"temperature":0.2,"tool_choice":"REQUIRED","#
            + #""tools":[{"function":{"description":"Weather by city","name":"get_weather","#
            + #""parameters":{"properties":{"city":{"type":"string"}},"required":["city"],"type":"object"}},"type":"function"}]}"#
        #expect(request.bodyText == expected)
    }

    @Test("stream request; json_object; NONE; forcing one function keeps only that tool")
    func variants() throws {
        var chat = ChatRequest(model: "c", messages: [.user("Hi")], responseFormat: .object(["type": .string("json_object")]))
        let streamed = try adapter.request(for: chat, stream: true)
        #expect(streamed.headerFields["accept"] == "text/event-stream")
        #expect(streamed.bodyText == #"{"messages":[{"content":"Hi","role":"user"}],"model":"c","response_format":{"type":"json_object"},"stream":true}"#)

        let other = JSONValue.object(["type": .string("function"), "function": .object(["name": .string("other")])])
        chat.tools = [weatherTool(), other]
        chat.toolChoice = .string("none")
        #expect(try adapter.request(for: chat, stream: false).bodyText.contains(#""tool_choice":"NONE""#))
        chat.toolChoice = .object(["type": .string("function"), "function": .object(["name": .string("other")])])
        let forced = try adapter.request(for: chat, stream: false).bodyText
        #expect(forced.contains(#""tool_choice":"REQUIRED","tools":[{"function":{"name":"other"},"type":"function"}]"#))
        chat.toolChoice = .string("auto")
        #expect(!(try adapter.request(for: chat, stream: false).bodyText.contains("tool_choice")))
    }

    @Test("response: tool_plan as text beside tool calls; tokens preferred over billed units")
    func completionWithTools() throws {
        let body = """
            {"id":"c1","finish_reason":"TOOL_CALL","message":{"role":"assistant","tool_plan":"I will check the weather.",\
            "tool_calls":[{"id":"get_weather_abc","type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}}]},\
            "usage":{"billed_units":{"input_tokens":10,"output_tokens":5},"tokens":{"input_tokens":100,"output_tokens":7}}}
            """
        #expect(try adapter.completion(from: bytes(body), requestedModel: "command-r") == ChatCompletion(
            id: "c1",
            model: "command-r",
            text: "I will check the weather.",
            toolCalls: [ToolCall(id: "get_weather_abc", name: "get_weather", arguments: #"{"city":"Paris"}"#)],
            finishReason: .toolCalls,
            usage: Usage(promptTokens: 100, completionTokens: 7)
        ))
    }

    @Test("response: text items only (thinking skipped), finish reasons, billed units as a fallback")
    func completionText() throws {
        for (raw, expected) in [("COMPLETE", FinishReason.stop), ("STOP_SEQUENCE", .stop), ("MAX_TOKENS", .length)] {
            let body = """
                {"id":"c2","finish_reason":"\(raw)","message":{"role":"assistant","content":[{"type":"thinking","thinking":"hmm"},\
                {"type":"text","text":"Hello"}]},"usage":{"billed_units":{"input_tokens":3,"output_tokens":1}}}
                """
            let completion = try adapter.completion(from: bytes(body), requestedModel: "c")
            #expect(completion.text == "Hello")
            #expect(completion.finishReason == expected)
            #expect(completion.usage == Usage(promptTokens: 3, completionTokens: 1))
        }
        let failed = #"{"id":"c3","finish_reason":"ERROR","message":{"role":"assistant","content":[]}}"#
        #expect(upstreamError { _ = try adapter.completion(from: bytes(failed), requestedModel: "c") }?.errorClass == .server)
    }

    static let textStream = """
        event: message-start
        data: {"id":"s1","type":"message-start","delta":{"message":{"role":"assistant","content":[],"tool_plan":"","tool_calls":[],"citations":[]}}}

        event: content-start
        data: {"type":"content-start","index":0,"delta":{"message":{"content":{"type":"text","text":""}}}}

        event: content-delta
        data: {"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"Héllo "}}},"logprobs":null}

        event: content-delta
        data: {"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"世界 🙂"}}}}

        event: content-end
        data: {"type":"content-end","index":0}

        event: message-end
        data: {"type":"message-end","delta":{"finish_reason":"MAX_TOKENS","usage":{"billed_units":{"input_tokens":5,"output_tokens":3},"tokens":{"input_tokens":50,"output_tokens":3}}}}


        """

    static let toolStream = """
        event: message-start
        data: {"id":"s2","type":"message-start","delta":{"message":{"role":"assistant","content":[],"tool_plan":"","tool_calls":[]}}}

        event: tool-plan-delta
        data: {"type":"tool-plan-delta","delta":{"message":{"tool_plan":"I will check."}}}

        event: tool-call-start
        data: {"type":"tool-call-start","index":0,"delta":{"message":{"tool_calls":{"id":"get_weather_1","type":"function","function":{"name":"get_weather","arguments":""}}}}}

        event: tool-call-delta
        data: {"type":"tool-call-delta","index":0,"delta":{"message":{"tool_calls":{"function":{"arguments":"{\\"city\\":"}}}}}

        event: tool-call-delta
        data: {"type":"tool-call-delta","index":0,"delta":{"message":{"tool_calls":{"function":{"arguments":"\\"Paris\\"}"}}}}}

        event: tool-call-end
        data: {"type":"tool-call-end","index":0}

        event: message-end
        data: {"type":"message-end","delta":{"finish_reason":"TOOL_CALL","usage":{"tokens":{"input_tokens":50,"output_tokens":9}}}}


        """

    @Test("stream: text deltas and message-end, split at random byte boundaries", arguments: 1...25)
    func textStream(seed: Int) throws {
        let decoded = try decodeStream(bytes(Self.textStream), with: adapter, seed: UInt64(seed))
        #expect(decoded.finished)
        let completion = decoded.accumulator.completion(model: "c")
        #expect(completion.text == "Héllo 世界 🙂")
        #expect(completion.finishReason == .length)
        #expect(completion.usage == Usage(promptTokens: 50, completionTokens: 3))
    }

    @Test("stream: tool plan and tool call fragments", arguments: 1...10)
    func toolStream(seed: Int) throws {
        let decoded = try decodeStream(bytes(Self.toolStream), with: adapter, seed: UInt64(seed))
        #expect(decoded.finished)
        let completion = decoded.accumulator.completion(model: "c")
        #expect(completion.text == "I will check.")
        #expect(completion.toolCalls == [ToolCall(id: "get_weather_1", name: "get_weather", arguments: #"{"city":"Paris"}"#)])
        #expect(completion.finishReason == .toolCalls)
    }

    @Test("stream: a message-end with ERROR throws its message")
    func streamError() {
        var decoder = adapter.makeStreamDecoder()
        let event = ServerSentEvent(event: "message-end", data: #"{"type":"message-end","delta":{"error":"internal error","finish_reason":"ERROR"}}"#)
        let error = upstreamError { _ = try decoder.decode(event) }
        #expect(error == UpstreamError(errorClass: .server, status: nil, message: "internal error", providerCode: "ERROR"))
    }

    @Test("errors: message kept, 498 is auth, retry-after read, key removed")
    func errors() {
        let limited = adapter.error(status: 429, headers: [("Retry-After", "60")], body: bytes(
            #"{"id":"e1","message":"You are using a Trial key, which is limited to 10 API calls / minute."}"#))
        #expect(limited == UpstreamError(errorClass: .rateLimited, status: 429, message: "You are using a Trial key, which is limited to 10 API calls / minute.", retryAfter: 60))
        #expect(adapter.error(status: 498, headers: [], body: bytes(#"{"message":"invalid api token"}"#)).errorClass == .auth)
        let leaked = adapter.error(status: 401, headers: [], body: bytes(#"{"id":"e2","message":"invalid api token \#(testKey)"}"#))
        #expect(leaked.errorClass == .auth)
        #expect(leaked.message == "invalid api token [redacted]")
        #expect(adapter.error(status: 500, headers: [], body: []).message == "HTTP 500")
    }
}

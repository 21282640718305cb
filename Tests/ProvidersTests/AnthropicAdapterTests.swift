import Protocol
import Providers
import Testing

@Suite("AnthropicAdapter", .serialized, .timeLimit(.minutes(1)))
struct AnthropicAdapterTests {
    let adapter = AnthropicAdapter(settings: settings("anthropic", kind: .anthropic))

    @Test("golden request: system field, default max_tokens, blocks, images, tool_use, merged tool_result turn, tools")
    func goldenRequest() throws {
        let chat = ChatRequest(
            model: "claude-3-5-haiku-latest",
            messages: toolConversation(),
            temperature: 0.2,
            topP: 0.9,
            stop: ["END"],
            seed: 7,
            responseFormat: .object(["type": .string("json_object")]),
            tools: [weatherTool()],
            toolChoice: .string("required")
        )
        let request = try adapter.request(for: chat, stream: false)
        #expect(request.method == "POST")
        #expect(request.url == "https://api.anthropic.com/v1/messages")
        #expect(request.headers.map(\.name) == ["content-type", "anthropic-version", "x-api-key"])
        #expect(request.headerFields == ["content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": testKey])
        let expected = #"{"max_tokens":4096,"messages":["#
            + #"{"content":[{"text":"What is in this picture, and the weather in Paris?","type":"text"},"#
            + #"{"source":{"data":"iVBORw0KGgo=","media_type":"image/png","type":"base64"},"type":"image"}],"role":"user"},"#
            + #"{"content":[{"text":"Checking.","type":"text"},"#
            + #"{"id":"call_1","input":{"city":"Paris"},"name":"get_weather","type":"tool_use"}],"role":"assistant"},"#
            + #"{"content":[{"content":"{\"temp_c\":21}","tool_use_id":"call_1","type":"tool_result"},"#
            + #"{"text":"Thanks!","type":"text"}],"role":"user"}],"#
            + #""model":"claude-3-5-haiku-latest","stop_sequences":["END"],"system":"Be brief.\n\nUse metric units.","#
            + #""temperature":0.2,"tool_choice":{"type":"any"},"#
            + #""tools":[{"description":"Weather by city","input_schema":{"properties":{"city":{"type":"string"}},"#
            + #""required":["city"],"type":"object"},"name":"get_weather"}],"top_p":0.9}"#
        #expect(request.bodyText == expected)
    }

    @Test("stream request: stream flag, Accept header; explicit max_tokens wins; trailing slash on the base URL")
    func streamRequest() throws {
        let adapter = AnthropicAdapter(settings: settings("anthropic", kind: .anthropic, baseURL: "http://127.0.0.1:3030/"))
        let request = try adapter.request(for: ChatRequest(model: "c", messages: [.user("Hi")], maxTokens: 5), stream: true)
        #expect(request.url == "http://127.0.0.1:3030/v1/messages")
        #expect(request.headerFields["accept"] == "text/event-stream")
        #expect(request.bodyText == #"{"max_tokens":5,"messages":[{"content":[{"text":"Hi","type":"text"}],"role":"user"}],"model":"c","stream":true}"#)
    }

    @Test("remote images, tool_choice forms, and tool calls without arguments")
    func variants() throws {
        var chat = ChatRequest(model: "c", messages: toolConversation(imageURL: "https://example.com/cat.png"), tools: [weatherTool()])
        var body = try adapter.request(for: chat, stream: false).bodyText
        #expect(body.contains(#"{"source":{"type":"url","url":"https://example.com/cat.png"},"type":"image"}"#))
        #expect(!body.contains("tool_choice"))
        for (choice, wire) in [
            (JSONValue.string("auto"), #""tool_choice":{"type":"auto"}"#),
            (.string("none"), #""tool_choice":{"type":"none"}"#),
            (.object(["type": .string("function"), "function": .object(["name": .string("get_weather")])]), #""tool_choice":{"name":"get_weather","type":"tool"}"#),
        ] {
            chat.toolChoice = choice
            body = try adapter.request(for: chat, stream: false).bodyText
            #expect(body.contains(wire))
        }
        let noArguments = ChatRequest(model: "c", messages: [
            .user("time?"),
            ChatMessage(role: .assistant, content: nil, toolCalls: [ToolCall(id: "t", name: "now", arguments: "")]),
        ])
        body = try adapter.request(for: noArguments, stream: false).bodyText
        #expect(body.contains(#"{"content":[{"id":"t","input":{},"name":"now","type":"tool_use"}],"role":"assistant"}"#))
    }

    @Test("requests Anthropic cannot express are client errors")
    func unsupported() {
        let audio = ChatRequest(model: "c", messages: [ChatMessage(role: .user, content: .parts([
            .object(["type": .string("input_audio"), "input_audio": .object(["data": .string("AAAA"), "format": .string("wav")])]),
        ]))])
        #expect(upstreamError { _ = try adapter.request(for: audio, stream: false) }?.errorClass == .client)
        let role = ChatRequest(model: "c", messages: [ChatMessage(role: .init(rawValue: "function"), content: .text("x"))])
        #expect(upstreamError { _ = try adapter.request(for: role, stream: false) }?.errorClass == .client)
        let tool = ChatRequest(model: "c", messages: [.user("x")], tools: [.object(["type": .string("web_search")])])
        #expect(upstreamError { _ = try adapter.request(for: tool, stream: false) }?.errorClass == .client)
    }

    @Test("response: text and tool_use blocks, stop reason, usage with cache reads and writes")
    func completion() throws {
        let body = """
            {"id":"msg_1","type":"message","role":"assistant","model":"claude-3-5-haiku-20241022","content":[\
            {"type":"text","text":"Let me check."},\
            {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}],\
            "stop_reason":"tool_use","stop_sequence":null,\
            "usage":{"input_tokens":10,"output_tokens":20,"cache_read_input_tokens":5,"cache_creation_input_tokens":2}}
            """
        #expect(try adapter.completion(from: bytes(body), requestedModel: "claude") == ChatCompletion(
            id: "msg_1",
            model: "claude-3-5-haiku-20241022",
            text: "Let me check.",
            toolCalls: [ToolCall(id: "toolu_1", name: "get_weather", arguments: #"{"city":"Paris"}"#)],
            finishReason: .toolCalls,
            usage: Usage(promptTokens: 17, completionTokens: 20, totalTokens: 37, cachedTokens: 5)
        ))
    }

    @Test("stop reasons map to OpenAI's vocabulary")
    func stopReasons() throws {
        for (raw, expected) in [
            ("end_turn", FinishReason.stop), ("stop_sequence", .stop), ("max_tokens", .length),
            ("tool_use", .toolCalls), ("refusal", .contentFilter), ("pause_turn", .stop),
        ] {
            let body = #"{"id":"m","content":[{"type":"text","text":"x"}],"stop_reason":"\#(raw)","usage":{"input_tokens":1,"output_tokens":1}}"#
            #expect(try adapter.completion(from: bytes(body), requestedModel: "c").finishReason == expected)
        }
    }

    static let streamBody = """
        event: message_start
        data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1,"cache_read_input_tokens":3}}}

        event: content_block_start
        data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

        event: ping
        data: {"type": "ping"}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Héllo "}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"世界 🙂"}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":0}

        event: content_block_start
        data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"city\\": \\"Pa"}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ris\\"}"}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":1}

        event: content_block_start
        data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_2","name":"now","input":{}}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":2}

        event: message_delta
        data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

        event: message_stop
        data: {"type":"message_stop"}


        """

    @Test("stream: text, tool input JSON fragments, argument-less tools, usage; split at random byte boundaries", arguments: 1...25)
    func stream(seed: Int) throws {
        let decoded = try decodeStream(bytes(Self.streamBody), with: adapter, seed: UInt64(seed))
        #expect(decoded.finished)
        let completion = decoded.accumulator.completion(model: "claude")
        #expect(completion.text == "Héllo 世界 🙂")
        #expect(completion.toolCalls == [
            ToolCall(id: "toolu_1", name: "get_weather", arguments: #"{"city": "Paris"}"#),
            ToolCall(id: "toolu_2", name: "now", arguments: "{}"),
        ])
        #expect(completion.finishReason == .toolCalls)
        #expect(completion.usage == Usage(promptTokens: 28, completionTokens: 89, cachedTokens: 3))
    }

    @Test("stream: error events throw with the class of their error type", arguments: [
        ("overloaded_error", UpstreamError.Class.server), ("api_error", .server), ("rate_limit_error", .rateLimited),
        ("authentication_error", .auth), ("invalid_request_error", .client), ("request_too_large", .client),
    ])
    func streamErrors(type: String, expected: UpstreamError.Class) {
        var decoder = adapter.makeStreamDecoder()
        let event = ServerSentEvent(event: "error", data: #"{"type":"error","error":{"type":"\#(type)","message":"Overloaded"}}"#)
        let error = upstreamError { _ = try decoder.decode(event) }
        #expect(error == UpstreamError(errorClass: expected, status: nil, message: "Overloaded", providerCode: type))
        #expect(!decoder.isFinished)
    }

    @Test("errors: body parsed, status classified (529 is server), retry-after read, key removed")
    func errors() {
        let overloaded = adapter.error(
            status: 529,
            headers: [("retry-after", "3")],
            body: bytes(#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#))
        #expect(overloaded == UpstreamError(errorClass: .server, status: 529, message: "Overloaded", providerCode: "overloaded_error", retryAfter: 3))
        let auth = adapter.error(status: 401, headers: [], body: bytes(#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key \#(testKey)"}}"#))
        #expect(auth.errorClass == .auth)
        #expect(auth.message == "invalid x-api-key [redacted]")
        let invalid = adapter.error(status: 400, headers: [], body: bytes(#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#))
        #expect(invalid.errorClass == .client)
        #expect(invalid.message == "max_tokens: Field required")
        #expect(adapter.error(status: 502, headers: [], body: bytes("<html>Bad gateway</html>")).message == "<html>Bad gateway</html>")
    }
}

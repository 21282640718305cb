import Foundation
import Protocol
import Testing

@Suite("Chat wire types", .serialized, .timeLimit(.minutes(2)))
struct ChatTests {
    static let fullRequest = ChatRequest(
        model: "gpt-4o",
        messages: [
            .system("Be brief."),
            ChatMessage(role: .user, content: .parts([
                .object(["type": .string("text"), "text": .string("What is this?")]),
                .object(["type": .string("image_url"), "image_url": .object(["url": .string("https://example.com/a.png")])]),
            ]), name: "ann"),
            ChatMessage(role: .assistant, content: nil, toolCalls: [ToolCall(id: "call_1", name: "lookup", arguments: #"{"q":"a"}"#)]),
            ChatMessage(role: .tool, content: .text("found"), toolCallID: "call_1"),
        ],
        temperature: 0.5,
        topP: 0.9,
        maxTokens: 100,
        stop: ["END"],
        seed: 42,
        responseFormat: .object(["type": .string("json_object")]),
        tools: [.object(["type": .string("function"), "function": .object(["name": .string("lookup")])])],
        toolChoice: .string("auto"),
        stream: true
    )

    @Test("ChatRequest round-trips through JSON with OpenAI's field names")
    func requestRoundTrip() throws {
        let data = try JSONEncoder().encode(Self.fullRequest)
        #expect(try JSONDecoder().decode(ChatRequest.self, from: data) == Self.fullRequest)
        let object = try jsonObject(Self.fullRequest)
        for key in ["model", "messages", "max_tokens", "top_p", "tool_choice", "response_format", "stop", "seed", "tools", "stream", "temperature"] {
            #expect(object[key] != nil, "missing \(key)")
        }
        for key in ["maxTokens", "topP", "toolChoice", "responseFormat"] {
            #expect(object[key] == nil, "Swift name \(key) on the wire")
        }
        let messages = try #require(object["messages"] as? [[String: Any]])
        #expect(messages[2]["tool_calls"] != nil)
        #expect(messages[3]["tool_call_id"] as? String == "call_1")
    }

    @Test("ChatRequest decodes an OpenAI body; stop may be a string, model may be absent")
    func requestFromOpenAI() throws {
        let request = try decode(ChatRequest.self, from: #"""
            {"messages":[{"role":"user","content":"hi"}],"max_tokens":5,"top_p":0.5,"stop":"END",
             "tool_choice":{"type":"function","function":{"name":"f"}},"response_format":{"type":"text"}}
            """#)
        #expect(request.model == "")
        #expect(request.messages == [.user("hi")])
        #expect(request.maxTokens == 5)
        #expect(request.topP == 0.5)
        #expect(request.stop == ["END"])
        #expect(request.toolChoice?["function"]?["name"] == .string("f"))
        #expect(request.responseFormat == .object(["type": .string("text")]))
        #expect(throws: (any Error).self) { try decode(ChatRequest.self, from: #"{"model":"m"}"#) }
    }

    @Test("message content is either text or parts; text joins the text parts")
    func messageContent() throws {
        let text = try decode(ChatMessage.self, from: #"{"role":"user","content":"hi"}"#)
        #expect(text.content == .text("hi"))
        #expect(text.content?.text == "hi")
        let parts = try decode(ChatMessage.self, from: #"""
            {"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"https://x/y.png"}},{"type":"text","text":"b"}]}
            """#)
        guard case .parts(let values) = try #require(parts.content) else {
            Issue.record("expected parts, got \(String(describing: parts.content))")
            return
        }
        #expect(values.count == 3)
        #expect(parts.content?.text == "ab")
        #expect(MessageContent.parts([.object(["type": .string("image_url")])]).text == nil)
        let null = try decode(ChatMessage.self, from: #"{"role":"assistant","content":null}"#)
        #expect(null.content == nil)
        #expect(String(decoding: try JSONEncoder().encode(MessageContent.text("hi")), as: UTF8.self) == #""hi""#)
        #expect(String(decoding: try JSONEncoder().encode(MessageContent.parts([.string("x")])), as: UTF8.self) == #"["x"]"#)
    }

    @Test("systemText joins system messages and is nil without any")
    func systemText() {
        let request = ChatRequest(model: "m", messages: [.system("One."), .user("hi"), .system("Two.")])
        #expect(request.systemText == "One.\n\nTwo.")
        #expect(ChatRequest(model: "m", messages: [.user("hi")]).systemText == nil)
    }

    @Test("the accumulator folds text, usage and tool-call fragments by index")
    func accumulatorToolCalls() {
        var accumulator = CompletionAccumulator()
        accumulator.add(ChatDelta(text: "Hel"))
        accumulator.add(ChatDelta(toolCalls: [ToolCallDelta(index: 1, id: "call_b", name: "get_time", arguments: "{")]))
        accumulator.add(ChatDelta(text: "lo", toolCalls: [ToolCallDelta(index: 0, id: "call_a", name: "get_weather", arguments: #"{"city""#)]))
        accumulator.add(ChatDelta(toolCalls: [ToolCallDelta(index: 0, arguments: #":"Paris"}"#), ToolCallDelta(index: 1, arguments: "}")]))
        accumulator.add(ChatDelta(usage: Usage(promptTokens: 3, completionTokens: 5)))
        let completion = accumulator.completion(model: "m", id: "chatcmpl-1")
        #expect(completion.id == "chatcmpl-1")
        #expect(completion.model == "m")
        #expect(completion.text == "Hello")
        #expect(completion.toolCalls == [
            ToolCall(id: "call_a", name: "get_weather", arguments: #"{"city":"Paris"}"#),
            ToolCall(id: "call_b", name: "get_time", arguments: "{}"),
        ])
        #expect(completion.finishReason == .toolCalls)
        #expect(completion.usage == Usage(promptTokens: 3, completionTokens: 5, totalTokens: 8))
    }

    @Test("the accumulator keeps the last finish reason and usage, and defaults to stop")
    func accumulatorFinish() {
        let empty = CompletionAccumulator().completion(model: "m")
        #expect(empty.text == "")
        #expect(empty.toolCalls == nil)
        #expect(empty.finishReason == .stop)
        #expect(empty.usage == nil)

        var accumulator = CompletionAccumulator()
        for piece in ["a", "b", "c"] { accumulator.add(ChatDelta(text: piece)) }
        accumulator.add(ChatDelta(usage: Usage(promptTokens: 1, completionTokens: 1)))
        accumulator.add(ChatDelta(finishReason: .length, usage: Usage(promptTokens: 1, completionTokens: 3)))
        let completion = accumulator.completion(model: "m")
        #expect(completion.text == "abc")
        #expect(completion.finishReason == .length)
        #expect(completion.usage?.completionTokens == 3)
        #expect(accumulator.text == "abc")
    }

    @Test("completions and deltas use snake_case keys")
    func completionKeys() throws {
        let completion = ChatCompletion(model: "m", text: "t", toolCalls: [ToolCall(id: "c", name: "f", arguments: "{}")], finishReason: .toolCalls, usage: Usage(promptTokens: 1, completionTokens: 2, cachedTokens: 1))
        let object = try jsonObject(completion)
        #expect(object["finish_reason"] as? String == "tool_calls")
        #expect(object["tool_calls"] != nil)
        let usage = try #require(object["usage"] as? [String: Any])
        #expect(Set(usage.keys) == ["prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens"])
        #expect(usage["total_tokens"] as? Int == 3)
        let data = try JSONEncoder().encode(completion)
        #expect(try JSONDecoder().decode(ChatCompletion.self, from: data) == completion)
    }
}

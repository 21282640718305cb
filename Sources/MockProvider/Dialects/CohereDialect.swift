import Foundation

/// Cohere's Chat API v2 at `/v2/chat`: Bearer auth, OpenAI-like messages, content as typed items, and named stream
/// events (`message-start` … `message-end`).
struct CohereDialect: MockDialect {
    let name = "cohere"
    let paths = ["/v2/chat"]

    func checkAuth(_ headers: MockHeaders) -> MockReply? {
        guard let value = headers["authorization"], value.hasPrefix("Bearer "), value.count > "Bearer ".count else {
            return .json(status: 401, errorBody(message: "no api key supplied"))
        }
        return nil
    }

    func parse(path: String, query: [String: String], body: [UInt8]) -> Result<MockPrompt, MockReply> {
        guard let object = MockJSON.object(body) else {
            return .failure(error(status: 400, message: "invalid request: could not parse the request body as JSON"))
        }
        guard let model = object["model"] as? String, !model.isEmpty else {
            return .failure(error(status: 400, message: "invalid request: model must be specified"))
        }
        guard let messages = object["messages"] as? [[String: Any]], !messages.isEmpty else {
            return .failure(error(status: 400, message: "invalid request: messages must contain at least one message"))
        }
        for message in messages {
            let role = message["role"] as? String ?? ""
            guard ["system", "user", "assistant", "tool"].contains(role) else {
                return .failure(error(status: 400, message: "invalid request: role must be one of system, user, assistant, tool; received '\(role)'"))
            }
        }
        if let maxTokens = object["max_tokens"], !(maxTokens is Int) || (maxTokens is Bool) || (maxTokens as? Int ?? 0) < 1 {
            return .failure(error(status: 400, message: "invalid request: max_tokens must be a positive integer"))
        }
        let texts = messages.map { MockJSON.text(of: $0["content"]) }
        let lastUser = messages.last(where: { ($0["role"] as? String) == "user" }).map { MockJSON.text(of: $0["content"]) } ?? ""
        return .success(MockPrompt(
            model: model,
            allText: texts.joined(separator: "\n"),
            lastUserText: lastUser,
            stream: object["stream"] as? Bool ?? false,
            maxTokens: object["max_tokens"] as? Int
        ))
    }

    func reply(to prompt: MockPrompt, completion: MockCompletion) -> MockReply {
        .json([
            "id": completion.id,
            "message": [
                "role": "assistant",
                "content": [["type": "text", "text": completion.text]],
            ] as [String: Any],
            "finish_reason": finishReason(completion),
            "usage": usage(completion),
        ])
    }

    func streamFrames(for prompt: MockPrompt, completion: MockCompletion) -> [MockFrame] {
        var frames: [MockFrame] = [
            .sse(event: "message-start", [
                "id": completion.id,
                "type": "message-start",
                "delta": ["message": ["role": "assistant", "content": [Any](), "tool_plan": "", "tool_calls": [Any](), "citations": [Any]()] as [String: Any]],
            ]),
            .sse(event: "content-start", [
                "type": "content-start", "index": 0,
                "delta": ["message": ["content": ["type": "text", "text": ""]]],
            ]),
        ]
        for token in completion.tokens {
            frames.append(.sse(event: "content-delta", [
                "type": "content-delta", "index": 0,
                "delta": ["message": ["content": ["text": token]]],
            ], isToken: true))
        }
        frames.append(.sse(event: "content-end", ["type": "content-end", "index": 0]))
        frames.append(.sse(event: "message-end", [
            "type": "message-end",
            "delta": ["finish_reason": finishReason(completion), "usage": usage(completion)] as [String: Any],
        ]))
        return frames
    }

    func error(status: Int, message: String) -> MockReply {
        .json(status: status, errorBody(message: message))
    }

    private func finishReason(_ completion: MockCompletion) -> String {
        completion.finishedByLength ? "MAX_TOKENS" : "COMPLETE"
    }

    private func usage(_ completion: MockCompletion) -> [String: Any] {
        let counts = ["input_tokens": completion.promptTokens, "output_tokens": completion.completionTokens]
        return ["billed_units": counts, "tokens": counts]
    }

    private func errorBody(message: String) -> [String: Any] {
        ["id": UUID().uuidString.lowercased(), "message": message]
    }
}

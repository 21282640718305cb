import Foundation

/// Anthropic's Messages API at `/v1/messages`: `x-api-key` and `anthropic-version` headers, a required `max_tokens`,
/// content blocks, and the named stream events (`message_start` … `message_stop`).
struct AnthropicDialect: MockDialect {
    let name = "anthropic"
    let paths = ["/v1/messages"]

    func checkAuth(_ headers: MockHeaders) -> MockReply? {
        guard let key = headers["x-api-key"], !key.isEmpty else {
            return .json(status: 401, errorBody(type: "authentication_error", message: "x-api-key header is required"))
        }
        guard let version = headers["anthropic-version"], !version.isEmpty else {
            return .json(status: 400, errorBody(type: "invalid_request_error", message: "anthropic-version: header is required"))
        }
        return nil
    }

    func parse(path: String, query: [String: String], body: [UInt8]) -> Result<MockPrompt, MockReply> {
        guard let object = MockJSON.object(body) else {
            return .failure(invalid("There was an error parsing the body of your request. Please check it is valid JSON."))
        }
        guard let model = object["model"] as? String, !model.isEmpty else {
            return .failure(invalid("model: Field required"))
        }
        guard let messages = object["messages"] as? [[String: Any]] else {
            return .failure(invalid("messages: Field required"))
        }
        guard let maxTokensValue = object["max_tokens"] else {
            return .failure(invalid("max_tokens: Field required"))
        }
        guard let maxTokens = maxTokensValue as? Int, !(maxTokensValue is Bool) else {
            return .failure(invalid("max_tokens: Input should be a valid integer"))
        }
        guard maxTokens >= 1 else {
            return .failure(invalid("max_tokens: Input should be greater than or equal to 1"))
        }
        for message in messages {
            let role = message["role"] as? String ?? ""
            guard role == "user" || role == "assistant" else {
                return .failure(invalid(
                    "messages: Unexpected role \"\(role)\". The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role."))
            }
        }
        if messages.isEmpty {
            return .failure(invalid("messages: at least one message is required"))
        }
        var texts = messages.map { MockJSON.text(of: $0["content"]) }
        if let system = object["system"] { texts.insert(MockJSON.text(of: system), at: 0) }
        let lastUser = messages.last(where: { ($0["role"] as? String) == "user" }).map { MockJSON.text(of: $0["content"]) } ?? ""
        return .success(MockPrompt(
            model: model,
            allText: texts.joined(separator: "\n"),
            lastUserText: lastUser,
            stream: object["stream"] as? Bool ?? false,
            maxTokens: maxTokens
        ))
    }

    func reply(to prompt: MockPrompt, completion: MockCompletion) -> MockReply {
        .json([
            "id": completion.id,
            "type": "message",
            "role": "assistant",
            "model": completion.model,
            "content": [["type": "text", "text": completion.text]],
            "stop_reason": stopReason(completion),
            "stop_sequence": NSNull(),
            "usage": usage(completion, outputTokens: completion.completionTokens),
        ])
    }

    func streamFrames(for prompt: MockPrompt, completion: MockCompletion) -> [MockFrame] {
        var frames: [MockFrame] = [
            .sse(event: "message_start", [
                "type": "message_start",
                "message": [
                    "id": completion.id,
                    "type": "message",
                    "role": "assistant",
                    "model": completion.model,
                    "content": [Any](),
                    "stop_reason": NSNull(),
                    "stop_sequence": NSNull(),
                    "usage": usage(completion, outputTokens: 1),
                ] as [String: Any],
            ]),
            .sse(event: "content_block_start", [
                "type": "content_block_start", "index": 0, "content_block": ["type": "text", "text": ""],
            ]),
            .sse(event: "ping", ["type": "ping"]),
        ]
        for token in completion.tokens {
            frames.append(.sse(event: "content_block_delta", [
                "type": "content_block_delta", "index": 0, "delta": ["type": "text_delta", "text": token],
            ], isToken: true))
        }
        frames.append(.sse(event: "content_block_stop", ["type": "content_block_stop", "index": 0]))
        frames.append(.sse(event: "message_delta", [
            "type": "message_delta",
            "delta": ["stop_reason": stopReason(completion), "stop_sequence": NSNull()] as [String: Any],
            "usage": ["output_tokens": completion.completionTokens],
        ]))
        frames.append(.sse(event: "message_stop", ["type": "message_stop"]))
        return frames
    }

    func error(status: Int, message: String) -> MockReply {
        let type: String
        switch status {
        case 400: type = "invalid_request_error"
        case 401: type = "authentication_error"
        case 403: type = "permission_error"
        case 404: type = "not_found_error"
        case 413: type = "request_too_large"
        case 429: type = "rate_limit_error"
        case 529: type = "overloaded_error"
        case 500...599: type = "api_error"
        default: type = "invalid_request_error"
        }
        return .json(status: status, errorBody(type: type, message: message))
    }

    private func invalid(_ message: String) -> MockReply {
        .json(status: 400, errorBody(type: "invalid_request_error", message: message))
    }

    private func stopReason(_ completion: MockCompletion) -> String {
        completion.finishedByLength ? "max_tokens" : "end_turn"
    }

    private func usage(_ completion: MockCompletion, outputTokens: Int) -> [String: Any] {
        [
            "input_tokens": completion.promptTokens,
            "output_tokens": outputTokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        ]
    }

    private func errorBody(type: String, message: String) -> [String: Any] {
        ["type": "error", "error": ["type": type, "message": message]]
    }
}

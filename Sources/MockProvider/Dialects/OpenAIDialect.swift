import Foundation

/// OpenAI Chat Completions, at OpenAI's path and at the paths of the OpenAI-compatible providers
/// (Groq `/openai/v1`, OpenRouter `/api/v1`, Hugging Face and Mistral `/v1`).
struct OpenAIDialect: MockDialect {
    let name = "openai"
    let paths = ["/v1/chat/completions", "/openai/v1/chat/completions", "/api/v1/chat/completions"]

    func checkAuth(_ headers: MockHeaders) -> MockReply? {
        guard let value = headers["authorization"], value.hasPrefix("Bearer "), value.count > "Bearer ".count else {
            return .json(status: 401, errorObject(
                message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                type: "invalid_request_error", code: "invalid_api_key"))
        }
        return nil
    }

    func parse(path: String, query: [String: String], body: [UInt8]) -> Result<MockPrompt, MockReply> {
        guard let object = MockJSON.object(body) else {
            return .failure(error(status: 400, message: "We could not parse the JSON body of your request."))
        }
        guard let model = object["model"] as? String, !model.isEmpty else {
            return .failure(.json(status: 400, errorObject(message: "you must provide a model parameter", type: "invalid_request_error", param: "model")))
        }
        guard let messages = object["messages"] as? [[String: Any]], !messages.isEmpty else {
            return .failure(.json(status: 400, errorObject(message: "'messages' must contain at least one message.", type: "invalid_request_error", param: "messages")))
        }
        // OpenAI and Groq document `max_completion_tokens`; `max_tokens` is its deprecated spelling.
        let maxTokensKey = object["max_completion_tokens"] != nil ? "max_completion_tokens" : "max_tokens"
        if let maxTokens = object[maxTokensKey], !(maxTokens is Int) || (maxTokens as? Int ?? 0) < 1 {
            return .failure(.json(status: 400, errorObject(message: "Invalid '\(maxTokensKey)': expected an integer of at least 1.", type: "invalid_request_error", param: maxTokensKey)))
        }
        let texts = messages.map { MockJSON.text(of: $0["content"]) }
        let lastUser = messages.last(where: { ($0["role"] as? String) == "user" }).map { MockJSON.text(of: $0["content"]) } ?? ""
        return .success(MockPrompt(
            model: model,
            allText: texts.joined(separator: "\n"),
            lastUserText: lastUser,
            stream: object["stream"] as? Bool ?? false,
            maxTokens: object[maxTokensKey] as? Int
        ))
    }

    func reply(to prompt: MockPrompt, completion: MockCompletion) -> MockReply {
        .json([
            "id": completion.id,
            "object": "chat.completion",
            "created": MockJSON.unixTime(),
            "model": completion.model,
            "choices": [[
                "index": 0,
                "message": ["role": "assistant", "content": completion.text, "refusal": NSNull()],
                "logprobs": NSNull(),
                "finish_reason": completion.finishedByLength ? "length" : "stop",
            ] as [String: Any]],
            "usage": usage(completion),
            "system_fingerprint": "fp_mock",
        ])
    }

    func streamFrames(for prompt: MockPrompt, completion: MockCompletion) -> [MockFrame] {
        func chunk(_ delta: [String: Any], finish: String?) -> [String: Any] {
            [
                "id": completion.id,
                "object": "chat.completion.chunk",
                "created": MockJSON.unixTime(),
                "model": completion.model,
                "system_fingerprint": "fp_mock",
                "choices": [["index": 0, "delta": delta, "logprobs": NSNull(), "finish_reason": finish ?? NSNull()] as [String: Any]],
            ]
        }
        var frames = [MockFrame.sse(chunk(["role": "assistant", "content": ""], finish: nil))]
        for token in completion.tokens {
            frames.append(.sse(chunk(["content": token], finish: nil), isToken: true))
        }
        frames.append(.sse(chunk([:], finish: completion.finishedByLength ? "length" : "stop")))
        var usageChunk = chunk([:], finish: nil)
        usageChunk["choices"] = [Any]()
        usageChunk["usage"] = usage(completion)
        frames.append(.sse(usageChunk))
        frames.append(.raw("data: [DONE]\n\n"))
        return frames
    }

    func error(status: Int, message: String) -> MockReply {
        let type: String
        let code: String?
        switch status {
        case 429: (type, code) = ("requests", "rate_limit_exceeded")
        case 500...599: (type, code) = ("server_error", nil)
        default: (type, code) = ("invalid_request_error", nil)
        }
        return .json(status: status, errorObject(message: message, type: type, code: code))
    }

    private func usage(_ completion: MockCompletion) -> [String: Any] {
        [
            "prompt_tokens": completion.promptTokens,
            "completion_tokens": completion.completionTokens,
            "total_tokens": completion.promptTokens + completion.completionTokens,
            "prompt_tokens_details": ["cached_tokens": 0],
        ]
    }

    private func errorObject(message: String, type: String, param: String? = nil, code: String? = nil) -> [String: Any] {
        ["error": ["message": message, "type": type, "param": param ?? NSNull(), "code": code ?? NSNull()] as [String: Any]]
    }
}

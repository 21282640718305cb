import Foundation

/// Google's Gemini API at `/v1beta/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`, with
/// `x-goog-api-key`. The model and the method share the last path segment, so the route captures that segment and
/// `parse` splits it at the colon.
struct GeminiDialect: MockDialect {
    let name = "gemini"
    let paths = ["/v1beta/models/{modelAction}"]

    func checkAuth(_ headers: MockHeaders) -> MockReply? {
        guard let key = headers["x-goog-api-key"], !key.isEmpty else {
            // Gemini answers a call without any key with 403 PERMISSION_DENIED, not 401.
            return .json(status: 403, errorBody(
                code: 403,
                message: "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
                status: "PERMISSION_DENIED"))
        }
        return nil
    }

    func parse(path: String, query: [String: String], body: [UInt8]) -> Result<MockPrompt, MockReply> {
        let segment = path.split(separator: "/").last.map(String.init) ?? ""
        guard let colon = segment.lastIndex(of: ":") else {
            return .failure(error(status: 404, message: "Method not found."))
        }
        let model = segment[..<colon].removingPercentEncoding ?? String(segment[..<colon])
        let stream: Bool
        switch segment[segment.index(after: colon)...] {
        case "generateContent":
            stream = false
        case "streamGenerateContent":
            // Without `alt=sse` the real API streams one JSON array; the mock speaks only the SSE form.
            guard query["alt"] == "sse" else {
                return .failure(error(status: 400, message: "The mock streams only with alt=sse."))
            }
            stream = true
        default:
            return .failure(error(status: 404, message: "Method not found."))
        }
        guard !model.isEmpty else {
            return .failure(error(status: 404, message: "models/ is not found for API version v1beta, or is not supported for generateContent."))
        }
        guard let object = MockJSON.object(body) else {
            return .failure(error(status: 400, message: "Invalid JSON payload received."))
        }
        guard let contents = object["contents"] as? [[String: Any]], !contents.isEmpty else {
            return .failure(error(status: 400, message: "* GenerateContentRequest.contents: contents is not specified\n"))
        }
        for content in contents {
            if let role = content["role"] as? String, role != "user", role != "model" {
                return .failure(error(status: 400, message: "Please use a valid role: user, model."))
            }
        }
        let config = object["generationConfig"] as? [String: Any]
        var maxTokens: Int?
        if let value = config?["maxOutputTokens"] {
            guard let number = value as? Int, !(value is Bool), number >= 1 else {
                return .failure(error(status: 400, message: "Invalid value at 'generation_config.max_output_tokens'"))
            }
            maxTokens = number
        }
        var texts = contents.map { MockJSON.text(of: $0["parts"]) }
        if let system = object["systemInstruction"] as? [String: Any] ?? object["system_instruction"] as? [String: Any] {
            texts.insert(MockJSON.text(of: system["parts"]), at: 0)
        }
        let lastUser = contents.last(where: { ($0["role"] as? String ?? "user") == "user" }).map { MockJSON.text(of: $0["parts"]) } ?? ""
        return .success(MockPrompt(
            model: model,
            allText: texts.joined(separator: "\n"),
            lastUserText: lastUser,
            stream: stream,
            maxTokens: maxTokens
        ))
    }

    func reply(to prompt: MockPrompt, completion: MockCompletion) -> MockReply {
        .json(response(
            text: completion.text,
            finishReason: finishReason(completion),
            usage: usage(completion, candidates: completion.completionTokens),
            completion: completion
        ))
    }

    func streamFrames(for prompt: MockPrompt, completion: MockCompletion) -> [MockFrame] {
        // One chunk per token; the last carries the finish reason and the full usage. The stream simply ends.
        let tokens = completion.tokens.isEmpty ? [""] : completion.tokens
        return tokens.enumerated().map { offset, token in
            let isLast = offset == tokens.count - 1
            return .sse(response(
                text: token,
                finishReason: isLast ? finishReason(completion) : nil,
                usage: isLast ? usage(completion, candidates: completion.completionTokens) : usage(completion, candidates: nil),
                completion: completion
            ), isToken: true)
        }
    }

    func error(status: Int, message: String) -> MockReply {
        let name: String
        switch status {
        case 400: name = "INVALID_ARGUMENT"
        case 401: name = "UNAUTHENTICATED"
        case 403: name = "PERMISSION_DENIED"
        case 404: name = "NOT_FOUND"
        case 429: name = "RESOURCE_EXHAUSTED"
        case 500: name = "INTERNAL"
        case 503: name = "UNAVAILABLE"
        case 504: name = "DEADLINE_EXCEEDED"
        default: name = "UNKNOWN"
        }
        return .json(status: status, errorBody(code: status, message: message, status: name))
    }

    private func response(text: String, finishReason: String?, usage: [String: Any], completion: MockCompletion) -> [String: Any] {
        var candidate: [String: Any] = [
            "content": ["parts": [["text": text]], "role": "model"] as [String: Any],
            "index": 0,
        ]
        if let finishReason { candidate["finishReason"] = finishReason }
        return [
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": completion.model,
            "responseId": completion.id,
        ]
    }

    private func finishReason(_ completion: MockCompletion) -> String {
        completion.finishedByLength ? "MAX_TOKENS" : "STOP"
    }

    private func usage(_ completion: MockCompletion, candidates: Int?) -> [String: Any] {
        var usage: [String: Any] = ["promptTokenCount": completion.promptTokens]
        if let candidates { usage["candidatesTokenCount"] = candidates }
        usage["totalTokenCount"] = completion.promptTokens + (candidates ?? 0)
        return usage
    }

    private func errorBody(code: Int, message: String, status: String) -> [String: Any] {
        ["error": ["code": code, "message": message, "status": status] as [String: Any]]
    }
}

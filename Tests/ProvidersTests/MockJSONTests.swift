import Foundation
@testable import MockProvider
import Testing

/// The mock's JSON writer produces the same JSON as `JSONSerialization` (up to the order of keys, which it sorts
/// by code point where `JSONSerialization` ignores case).
@Suite("MockJSON", .timeLimit(.minutes(1)))
struct MockJSONTests {
    static func reference(_ object: Any) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
    }

    @Test("nested objects, arrays, escapes, numbers, booleans and null read back as JSONSerialization writes them")
    func matchesJSONSerialization() throws {
        let object: [String: Any] = [
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1_795_988_939,
            "choices": [["index": 0, "finish_reason": "stop", "logprobs": NSNull(),
                         "message": ["role": "assistant", "content": "quote \" backslash \\ slash / tab \t nl \n cr \r bell \u{07} é 日本 🙂"]]],
            "usage": ["prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15],
            "ratio": 0.25, "whole": 2.0, "negative": -7, "flags": [true, false], "empty": [String: Any](), "none": [Any](),
            "zeta": 1, "Alpha": 2, "alpha": 3,
        ]
        let written = String(decoding: MockJSON.data(object), as: UTF8.self)
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(written.utf8)) as? [String: Any])
        #expect(try Self.reference(parsed) == (try Self.reference(object)))
        #expect(written.hasPrefix(#"{"Alpha":2,"alpha":3,"choices":[{"finish_reason":"stop","index":0,"logprobs":null,"#))
        #expect(written.contains(#""ratio":0.25"#) && written.contains(#""whole":2,"#) && written.contains(#"bell \u0007"#))
        let message = (parsed["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any]
        #expect(message?["content"] as? String == "quote \" backslash \\ slash / tab \t nl \n cr \r bell \u{07} é 日本 🙂")
    }

    @Test("server-sent event frames carry the same JSON")
    func sseFrames() throws {
        let frame = MockFrame.sse(event: "message_delta", ["type": "message_delta", "delta": ["text": "hi/there"]])
        #expect(String(decoding: frame.bytes, as: UTF8.self)
            == #"event: message_delta\#ndata: {"delta":{"text":"hi/there"},"type":"message_delta"}\#n\#n"#)
    }
}

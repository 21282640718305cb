import Foundation
import Protocol
import Providers
import Testing

/// A fixed key, so tests can check that it never leaks into an error message.
let testKey = "sk-test-SECRET-0123456789"

func settings(_ id: String, kind: ProviderKind, baseURL: String? = nil, extraHeaders: [String: String] = [:]) -> ProviderSettings {
    let descriptor = ProviderDescriptor.builtIn.first { $0.id == id }
    return ProviderSettings(
        id: id,
        kind: kind,
        baseURL: baseURL ?? descriptor?.defaultBaseURL ?? "http://127.0.0.1:3030",
        apiKey: testKey,
        defaultModel: descriptor?.defaultModel ?? "model",
        extraHeaders: extraHeaders
    )
}

extension UpstreamRequest {
    var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// Header values by lowercased name.
    var headerFields: [String: String] {
        var fields: [String: String] = [:]
        for header in headers { fields[header.name.lowercased()] = header.value }
        return fields
    }
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// A deterministic generator, so a failing split can be reproduced from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Splits `bytes` into pieces of 1…`maxPiece` bytes.
func randomPieces(_ bytes: [UInt8], seed: UInt64, maxPiece: Int = 7) -> [[UInt8]] {
    var generator = SplitMix64(seed: seed)
    var pieces: [[UInt8]] = []
    var start = 0
    while start < bytes.count {
        let length = Int.random(in: 1...maxPiece, using: &generator)
        let end = min(bytes.count, start + length)
        pieces.append(Array(bytes[start..<end]))
        start = end
    }
    return pieces
}

/// The result of running a stream body through the parser and a decoder.
struct DecodedStream {
    var deltas: [ChatDelta] = []
    var finished = false
    var accumulator = CompletionAccumulator()
    var text: String { accumulator.text }
}

/// Feeds `body` to a `ServerSentEventParser` in random pieces and decodes every event, as the worker does.
func decodeStream(_ body: [UInt8], with adapter: any ProviderAdapter, seed: UInt64 = 1, maxPiece: Int = 7) throws -> DecodedStream {
    var parser = ServerSentEventParser()
    var decoder = adapter.makeStreamDecoder()
    var result = DecodedStream()
    func handle(_ events: [ServerSentEvent]) throws {
        for event in events {
            let deltas = try decoder.decode(event)
            result.deltas += deltas
            for delta in deltas { result.accumulator.add(delta) }
        }
    }
    for piece in randomPieces(body, seed: seed, maxPiece: maxPiece) {
        try handle(parser.feed(piece))
    }
    try handle(parser.finish())
    result.finished = decoder.isFinished
    return result
}

/// Events from a body fed whole.
func events(_ text: String) -> [ServerSentEvent] {
    var parser = ServerSentEventParser()
    return parser.feed(bytes(text)) + parser.finish()
}

/// Asserts that a thrown error is an `UpstreamError` and returns it.
func upstreamError(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> UpstreamError? {
    do {
        try body()
        Issue.record("expected an UpstreamError", sourceLocation: sourceLocation)
        return nil
    } catch let error as UpstreamError {
        return error
    } catch {
        Issue.record("expected an UpstreamError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// A function tool in OpenAI's shape.
func weatherTool() -> JSONValue {
    .object([
        "type": .string("function"),
        "function": .object([
            "name": .string("get_weather"),
            "description": .string("Weather by city"),
            "parameters": .object([
                "type": .string("object"),
                "properties": .object(["city": .object(["type": .string("string")])]),
                "required": .array([.string("city")]),
            ]),
        ]),
    ])
}

/// A conversation that uses every message kind: system, developer, user text and image, assistant tool call,
/// tool result, and a final user question.
func toolConversation(imageURL: String = "data:image/png;base64,iVBORw0KGgo=") -> [ChatMessage] {
    [
        .system("Be brief."),
        ChatMessage(role: .developer, content: .text("Use metric units.")),
        ChatMessage(role: .user, content: .parts([
            .object(["type": .string("text"), "text": .string("What is in this picture, and the weather in Paris?")]),
            .object(["type": .string("image_url"), "image_url": .object(["url": .string(imageURL)])]),
        ])),
        ChatMessage(role: .assistant, content: .text("Checking."), toolCalls: [
            ToolCall(id: "call_1", name: "get_weather", arguments: "{\"city\":\"Paris\"}"),
        ]),
        ChatMessage(role: .tool, content: .text("{\"temp_c\":21}"), toolCallID: "call_1"),
        .user("Thanks!"),
    ]
}

import Foundation
import Protocol
import Testing

@Suite("StreamingJSONEncoder", .serialized, .timeLimit(.minutes(2)))
struct StreamingJSONEncoderTests {
    /// Every shape a Codable value can take: nested objects and arrays, optionals, dictionaries, the types
    /// JSONEncoder writes its own way, a custom `encode(to:)` with nested and super encoders.
    struct Everything: Codable, Equatable {
        struct Inner: Codable, Equatable {
            var name: String
            var tags: [String]
            var score: Double?
        }

        var text: String
        var escapes: String
        var unicode: String
        var integers: [Int]
        var wide: [Int64]
        var unsigned: UInt8
        var doubles: [Double]
        var float: Float
        var flag: Bool
        var missing: String?
        var present: Int?
        var inner: Inner
        var inners: [Inner]
        var empty: [Inner]
        var nested: [[Int]]
        var map: [String: Inner]
        var numbered: [Int: String]
        var url: URL
        var data: Data
        var date: Date
        var json: JSONValue
        var custom: Custom
    }

    /// Encodes through nested containers and a super encoder, as hand-written `encode(to:)`s may.
    struct Custom: Codable, Equatable {
        var a: Int
        var b: [String]

        enum Keys: String, CodingKey { case outer, list, parent, after }
        enum InnerKeys: String, CodingKey { case a }

        init(a: Int, b: [String]) {
            self.a = a
            self.b = b
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            var outer = container.nestedContainer(keyedBy: InnerKeys.self, forKey: .outer)
            try outer.encode(a, forKey: .a)
            var list = container.nestedUnkeyedContainer(forKey: .list)
            for item in b { try list.encode(item) }
            var empty = list.nestedUnkeyedContainer()
            try empty.encodeNil()
            try b.encode(to: container.superEncoder(forKey: .parent))
            try container.encode(true, forKey: .after)
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Keys.self)
            a = try container.nestedContainer(keyedBy: InnerKeys.self, forKey: .outer).decode(Int.self, forKey: .a)
            b = try [String](from: container.superDecoder(forKey: .parent))
        }
    }

    static let everything = Everything(
        text: "hello / world", escapes: "quote \" backslash \\ newline \n tab \t return \r bell \u{07} nul \u{00} del \u{7F}",
        unicode: "héllo wörld 日本 🎉 \u{2028}", integers: [0, -1, Int.max, Int.min], wide: [Int64.max, -42], unsigned: 255,
        doubles: [0, 1, -1.5, 0.1, 1e-7, 12_345_678_901_234.5, 1e21, 1_796_024_979.8426745, -0.0], float: 0.25, flag: true,
        missing: nil, present: 7,
        inner: Everything.Inner(name: "n", tags: ["a", "b"], score: 0.5),
        inners: [Everything.Inner(name: "x", tags: [], score: nil), Everything.Inner(name: "y", tags: ["z"], score: 2)], empty: [],
        nested: [[1, 2], [], [3]], map: ["k": Everything.Inner(name: "m", tags: [], score: 1)], numbered: [1: "one", 20: "twenty"],
        url: URL(string: "https://example.com/a/b?c=d")!, data: Data([0, 1, 2, 250, 255]),
        date: Date(timeIntervalSinceReferenceDate: 123.5),
        json: .object(["array": .array([.int(1), .string("two"), .bool(false), .null]), "nested": .object(["x": .double(1.5)])]),
        custom: Custom(a: 3, b: ["p", "q"]))

    /// Both outputs parsed and written again with sorted keys: equal when they mean the same JSON.
    static func normalized(_ bytes: [UInt8]) throws -> String {
        let object = try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .fragmentsAllowed]), as: UTF8.self)
    }

    static func foundation(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }

    @Test("every shape encodes to the same JSON as JSONEncoder, and decodes back to the value")
    func sameAsFoundation() throws {
        let streamed = try StreamingJSONEncoder().encode(Self.everything)
        #expect(try Self.normalized(streamed) == Self.normalized(Self.foundation(Self.everything)))
        #expect(try JSONDecoder().decode(Everything.self, from: Data(streamed)) == Self.everything)
    }

    @Test("members keep their encoding order, slashes stay unescaped and integral doubles lose their fraction")
    func exactBytes() throws {
        struct Small: Encodable {
            var b = 1
            var a = "x/y"
            var c = 2.0
            var d: [Double] = [0.5, 3]
            var e: String? = nil
        }
        #expect(String(decoding: try StreamingJSONEncoder().encode(Small()), as: UTF8.self) == #"{"b":1,"a":"x/y","c":2,"d":[0.5,3]}"#)
        // JSONEncoder on Linux writes members in its dictionary's order, which changes between runs.
        #expect(try Self.normalized(StreamingJSONEncoder().encode(Small())) == Self.normalized(Self.foundation(Small())))
    }

    @Test("a JSONValue object's members come by key, whatever its dictionary's order")
    func jsonValueObjectsAreSorted() throws {
        // Forty keys: a dictionary that happened to keep them in order is one chance in 40!.
        let keys = (0..<40).map { "k\(String($0, radix: 36))\($0 % 7)" }
        let object = JSONValue.object(Dictionary(uniqueKeysWithValues: keys.map { ($0, JSONValue.array([.int(1), .object(["b": .null, "a": .bool(true)])])) }))
        let expected = "{" + keys.sorted().map { #""\#($0)":[1,{"a":true,"b":null}]"# }.joined(separator: ",") + "}"
        #expect(String(decoding: try StreamingJSONEncoder().encode(object), as: UTF8.self) == expected)
        let sorted = JSONEncoder()
        sorted.outputFormatting = .sortedKeys
        #expect(String(decoding: try sorted.encode(object), as: UTF8.self) == expected, "and as JSONEncoder sorts them")
        #expect(try JSONDecoder().decode(JSONValue.self, from: Data(expected.utf8)) == object)
    }

    @Test("with sortedKeys, the same bytes as JSONEncoder's .sortedKeys, every shape included")
    func sortedKeysAsFoundation() throws {
        let foundation = JSONEncoder()
        foundation.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let expected = String(decoding: try foundation.encode(Self.everything), as: UTF8.self)
        #expect(String(decoding: try StreamingJSONEncoder(sortedKeys: true).encode(Self.everything), as: UTF8.self) == expected)
    }

    @Test("with sortedKeys, a dictionary's members come by key whatever its order, nested ones too")
    func sortedKeysDictionaries() throws {
        struct Body: Encodable {
            var zeta = 1
            var alpha: [String: [String: Int]]
            var mid: [[String: Int]]
        }
        // Forty keys, inserted in two different orders: two dictionaries that iterate alike are one chance in 40!.
        let keys = (0..<40).map { "k\(String($0, radix: 36))\($0 % 7)" }
        func body(_ order: [String]) -> Body {
            let inner = Dictionary(uniqueKeysWithValues: order.map { ($0, keys.firstIndex(of: $0)!) })
            return Body(alpha: ["b": inner, "a": [:]], mid: [inner, ["y": 1, "x": 2]])
        }
        let members = keys.sorted().map { #""\#($0)":\#(keys.firstIndex(of: $0)!)"# }.joined(separator: ",")
        let expected = #"{"zeta":1,"alpha":{"a":{},"b":{"# + members + #"}},"mid":[{"# + members + #"},{"x":2,"y":1}]}"#
        let sortedExpected = #"{"alpha":{"a":{},"b":{"# + members + #"}},"mid":[{"# + members + #"},{"x":2,"y":1}],"zeta":1}"#
        let encoder = StreamingJSONEncoder(sortedKeys: true)
        #expect(String(decoding: try encoder.encode(body(keys)), as: UTF8.self) == sortedExpected)
        #expect(try encoder.encode(body(keys)) == encoder.encode(body(keys.reversed())))
        #expect(expected != sortedExpected, "the struct's own order is not the sorted one")
        #expect(try Self.normalized(StreamingJSONEncoder().encode(body(keys))) == Self.normalized(Array(expected.utf8)))
    }

    @Test("top-level strings, numbers, nil, arrays and empty values")
    func topLevel() throws {
        #expect(try StreamingJSONEncoder().encode("a\"b") == Array(#""a\"b""#.utf8))
        #expect(try StreamingJSONEncoder().encode(42) == Array("42".utf8))
        #expect(try StreamingJSONEncoder().encode(Int?.none) == Array("null".utf8))
        #expect(try StreamingJSONEncoder().encode([[String: Int]]()) == Array("[]".utf8))
        #expect(try StreamingJSONEncoder().encode([String: Int]()) == Array("{}".utf8))
        #expect(try StreamingJSONEncoder().encode([1.5, 2]) == Array("[1.5,2]".utf8))
    }

    @Test("a non-finite number throws, as with JSONEncoder")
    func nonFinite() {
        for value in [Double.nan, .infinity, -.infinity] {
            #expect(throws: EncodingError.self) { try StreamingJSONEncoder().encode(["x": value]) }
            #expect(throws: EncodingError.self) { try Self.foundation(["x": value]) }
        }
    }

    @Test("the gateway's wire types encode as with JSONEncoder")
    func wireTypes() throws {
        let request = try decode(ChatRequest.self, from: """
            {"model":"gpt-4o","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi / there"}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\\"a\\":1}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"42"}],
            "temperature":0.2,"max_tokens":50,"stop":["\\n"],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"integer"}}}}}],
            "response_format":{"type":"json_object"},"stream":false}
            """)
        let envelope = JobEnvelope(
            id: JobID.make(milliseconds: 1_735_689_600_123), provider: "openai", request: request,
            fallbacks: [ModelRef(provider: "anthropic", model: "claude-x")], enqueuedAt: 1_735_689_600_123,
            replyTo: RedisKeys.notifyChannel(instance: "ingress-1"))
        let record = JobRecord(
            id: "job_01HZX3K5M8Q2R4T6V8W0Y2A4C6", status: .failed, provider: "openai", model: "gpt-4o",
            createdAt: 1.5, startedAt: 2.5, completedAt: 3.25, attempts: 2,
            error: JobFailure(message: "upstream \"bad\"", type: "server_error", code: "provider_error", providerStatus: 502),
            attemptLog: [AttemptRecord(provider: "openai", model: "gpt-4o", outcome: "server", httpStatus: 502, latencyMs: 12, error: "bad gateway")])
        #expect(try Self.normalized(StreamingJSONEncoder().encode(request)) == Self.normalized(Self.foundation(request)))
        #expect(try Self.normalized(StreamingJSONEncoder().encode(envelope)) == Self.normalized(Self.foundation(envelope)))
        #expect(try Self.normalized(StreamingJSONEncoder().encode(record)) == Self.normalized(Self.foundation(record)))
        let decoded = try JSONDecoder().decode(JobEnvelope.self, from: Data(StreamingJSONEncoder().encode(envelope)))
        #expect(decoded.request == envelope.request)
        #expect(decoded.fallbacks == envelope.fallbacks)
        #expect(decoded.replyTo == envelope.replyTo)
    }
}

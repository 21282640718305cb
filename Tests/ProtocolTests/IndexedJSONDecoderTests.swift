import Foundation
import Protocol
import Testing

/// `IndexedJSONDecoder` against Foundation's `JSONDecoder` as the oracle: the same values, and the same errors.
@Suite("IndexedJSONDecoder", .serialized, .timeLimit(.minutes(2)))
struct IndexedJSONDecoderTests {
    /// What a decode ended with, comparable across decoders: the value's description, or the error's case and its
    /// coding path (an index as `[N]`, as the ingress reports it).
    enum Outcome: Equatable, CustomStringConvertible {
        case value(String)
        case error(String, path: String)

        /// Values as JSON with sorted keys: a dictionary's own order differs between two equal values.
        init(_ body: () throws -> some Encodable) {
            do {
                let encoder = JSONEncoder()
                encoder.outputFormatting = .sortedKeys
                let value = try body()
                self = .value((try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? String(describing: value))
            } catch let error as DecodingError {
                let (name, context): (String, DecodingError.Context) = switch error {
                case .dataCorrupted(let context): ("dataCorrupted", context)
                case .keyNotFound(let key, let context): ("keyNotFound \(key.stringValue)", context)
                case .typeMismatch(let type, let context): ("typeMismatch \(type)", context)
                case .valueNotFound(let type, let context): ("valueNotFound \(type)", context)
                @unknown default: ("unknown", .init(codingPath: [], debugDescription: ""))
                }
                self = .error(name, path: context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: "."))
            } catch {
                self = .error("\(type(of: error))", path: "")
            }
        }

        var description: String {
            switch self {
            case .value(let value): value
            case .error(let name, let path): "\(name) at '\(path)'"
            }
        }
    }

    struct Outer: Codable, Equatable {
        struct Inner: Codable, Equatable { var b: String }
        var a: [Inner]
        var n: Int8?
    }

    static func both<T: Codable>(_ type: T.Type, _ json: String) -> (indexed: Outcome, foundation: Outcome) {
        (Outcome { try IndexedJSONDecoder().decode(T.self, from: Array(json.utf8)) },
         Outcome { try JSONDecoder().decode(T.self, from: Data(json.utf8)) })
    }

    static let cases: [(String, @Sendable (String) -> (indexed: Outcome, foundation: Outcome))] = [
        // Numbers, as JSONDecoder reads them.
        ("1.0", { both(Int64.self, $0) }), ("1e2", { both(Int64.self, $0) }), ("-0", { both(Int64.self, $0) }),
        ("1.5", { both(Int64.self, $0) }), ("300", { both(Int8.self, $0) }), ("-129", { both(Int8.self, $0) }),
        ("9223372036854775807", { both(Int64.self, $0) }), ("-9223372036854775808", { both(Int64.self, $0) }),
        ("9223372036854775808", { both(Int64.self, $0) }), ("18446744073709551615", { both(UInt64.self, $0) }),
        ("18446744073709551616", { both(UInt64.self, $0) }), ("-1", { both(UInt.self, $0) }),
        ("12345678901234567890123", { both(Double.self, $0) }), ("1e400", { both(Double.self, $0) }),
        ("-0.0", { both(Double.self, $0) }), ("1E+2", { both(Double.self, $0) }), ("0.1", { both(Float.self, $0) }),
        ("3.4e39", { both(Float.self, $0) }), ("123456789012345", { both(Double.self, $0) }),
        ("2.5e-3", { both(Double.self, $0) }), ("[1, 2.5, -3e1]", { both([Double].self, $0) }),
        // Types that do not match.
        ("1", { both(Bool.self, $0) }), ("true", { both(String.self, $0) }), ("\"1\"", { both(Int.self, $0) }),
        ("[1,\"x\"]", { both([Int].self, $0) }), ("{\"a\":[1]}", { both(Outer.self, $0) }), ("[\"x\"]", { both(Outer.self, $0) }),
        ("null", { both(Outer.self, $0) }), ("null", { both(Int?.self, $0) }), ("{\"a\":null}", { both(Outer.self, $0) }),
        // Missing keys and nulls, with their coding paths.
        ("{\"a\":[{\"b\":\"x\"},{}]}", { both(Outer.self, $0) }), ("{\"a\":[{\"b\":\"x\"},{\"b\":1}]}", { both(Outer.self, $0) }),
        ("{\"a\":[{\"b\":\"x\"},{\"b\":null}]}", { both(Outer.self, $0) }), ("{\"a\":[],\"n\":null}", { both(Outer.self, $0) }),
        ("{\"a\":[{\"b\":\"x\",\"b\":\"y\"}],\"n\":-5}", { both(Outer.self, $0) }), ("{}", { both(Outer.self, $0) }),
        ("{\"a\":[{\"b\":\"x\"},1]}", { both(Outer.self, $0) }),
        // Strings and escapes.
        (#""\ud83d\ude00 \u00e9 \/\b\f\n\r\t\"\\ é""#, { both(String.self, $0) }), (#""\ud800""#, { both(String.self, $0) }),
        (#""\udc00""#, { both(String.self, $0) }), (#""\x""#, { both(String.self, $0) }), (#""\u12""#, { both(String.self, $0) }),
        ("\"a\u{01}\"", { both(String.self, $0) }), ("\"abc", { both(String.self, $0) }), (#""a\""#, { both(String.self, $0) }),
        (#"{"k\u0065y":1}"#, { both([String: Int].self, $0) }),
        // Syntax: what JSONDecoder accepts (whitespace, a byte order mark, trailing commas) and what it rejects.
        (" 1 ", { both(Int.self, $0) }), ("\u{FEFF}1", { both(Int.self, $0) }), ("[1,]", { both([Int].self, $0) }),
        ("{\"a\":1,}", { both([String: Int].self, $0) }), ("{\"a\":1,\"a\":2}", { both([String: Int].self, $0) }),
        ("01", { both(Int.self, $0) }), ("1.", { both(Double.self, $0) }), ("-", { both(Int.self, $0) }), (".5", { both(Double.self, $0) }),
        ("nul", { both(Int?.self, $0) }), ("truex", { both(Bool.self, $0) }), ("", { both(Int.self, $0) }), ("  ", { both(Int.self, $0) }),
        ("[", { both([Int].self, $0) }), ("[1 2]", { both([Int].self, $0) }), ("{\"a\"}", { both([String: Int].self, $0) }),
        ("{\"a\":1 \"b\":2}", { both([String: Int].self, $0) }), ("{a:1}", { both([String: Int].self, $0) }),
        ("[1]]", { both([Int].self, $0) }), ("[,]", { both([Int].self, $0) }),
        (String(repeating: "[", count: 100) + String(repeating: "]", count: 100), { both(JSONValue.self, $0) }),
        (String(repeating: "[", count: 600) + String(repeating: "]", count: 600), { both(JSONValue.self, $0) }),
        // JSONValue: integers where Int64 holds them, then doubles, strings, arrays and objects.
        (#"{"i":1,"f":1.0,"e":1e2,"d":1.5,"big":1e300,"s":"x","n":null,"b":[true,false,{}],"o":{"z":[]}}"#, { both(JSONValue.self, $0) }),
        (#"{"dup":1,"dup":2}"#, { both(JSONValue.self, $0) }), ("1e400", { both(JSONValue.self, $0) }),
    ]

    @Test("values and errors are JSONDecoder's, across numbers, strings, syntax and coding paths")
    func sameAsFoundation() {
        for (json, run) in Self.cases {
            let outcome = run(json)
            #expect(outcome.indexed == outcome.foundation, "\(json.prefix(60))")
        }
    }

    @Test("every Codable shape, with URL, Data, Date, nested and super decoders, decodes to the encoded value")
    func everyShape() throws {
        let value = StreamingJSONEncoderTests.everything
        for bytes in [try StreamingJSONEncoder().encode(value), Array(try JSONEncoder().encode(value))] {
            #expect(try IndexedJSONDecoder().decode(StreamingJSONEncoderTests.Everything.self, from: bytes) == value)
            #expect(try IndexedJSONDecoder().decode(StreamingJSONEncoderTests.Everything.self, from: Data(bytes)) == value)
        }
    }

    @Test("the gateway's wire types decode as with JSONDecoder")
    func wireTypes() throws {
        let json = """
            {"model":"gpt-4o","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi / there"}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\\"a\\":1}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"42"}],
            "temperature":0.2,"max_tokens":50,"stop":"\\n","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"integer"}}}}}],
            "response_format":{"type":"json_object"},"tool_choice":"auto","stream":false}
            """
        let request = try JSONDecoder().decode(ChatRequest.self, from: Data(json.utf8))
        #expect(try IndexedJSONDecoder().decode(ChatRequest.self, from: Array(json.utf8)) == request)
        #expect(request.stop == ["\n"] && request.tools?.count == 1)

        let envelope = JobEnvelope(
            id: JobID.make(milliseconds: 1_735_689_600_123), provider: "openai", request: request,
            fallbacks: [ModelRef(provider: "anthropic", model: "claude-x")], enqueuedAt: 1_735_689_600_123,
            replyTo: RedisKeys.notifyChannel(instance: "ingress-1"), stream: true)
        let encoded = try StreamingJSONEncoder().encode(envelope)
        let decoded = try IndexedJSONDecoder().decode(JobEnvelope.self, from: encoded)
        #expect(try StreamingJSONEncoder().encode(decoded) == StreamingJSONEncoder().encode(JSONDecoder().decode(JobEnvelope.self, from: Data(encoded))))
        #expect(decoded.request == request && decoded.fallbacks == envelope.fallbacks && decoded.stream == true)

        let record = JobRecord(
            id: "job_01HZX3K5M8Q2R4T6V8W0Y2A4C6", status: .failed, provider: "openai", model: "gpt-4o",
            createdAt: 1.5, startedAt: 2.5, completedAt: 3.25, attempts: 2,
            error: JobFailure(message: "upstream \"bad\"", type: "server_error", code: "provider_error", providerStatus: 502),
            attemptLog: [AttemptRecord(provider: "openai", model: "gpt-4o", outcome: "server", httpStatus: 502, latencyMs: 12, error: "bad gateway")])
        let recordBytes = try StreamingJSONEncoder().encode(record)
        #expect(try StreamingJSONEncoder().encode(IndexedJSONDecoder().decode(JobRecord.self, from: recordBytes)) == recordBytes)

        let submission = #"{"provider":"openai","prompt":"hi","deadline":"2030-01-02T03:04:05Z","priority":"batch","webhook":{"url":"https://example.com/h"}}"#
        let indexed = try IndexedJSONDecoder().decode(JobSubmission.self, from: Array(submission.utf8))
        let foundation = try JSONDecoder().decode(JobSubmission.self, from: Data(submission.utf8))
        #expect(indexed.deadline == foundation.deadline && indexed.deadline != nil)
        #expect(indexed.priority == foundation.priority && indexed.webhook?.url == foundation.webhook?.url)
        #expect(Outcome { try IndexedJSONDecoder().decode(JobSubmission.self, from: Array(#"{"deadline":"soon"}"#.utf8)).prompt }
            == Outcome { try JSONDecoder().decode(JobSubmission.self, from: Data(#"{"deadline":"soon"}"#.utf8)).prompt })
        #expect(Outcome { try IndexedJSONDecoder().decode(JobSubmission.self, from: Array(#"{"deadline":"soon"}"#.utf8)).prompt } == .error("dataCorrupted", path: "deadline"))
    }

    /// Random documents from a fixed seed: nested values with escapes, non-ASCII text, every number notation and
    /// random whitespace, each also damaged by deleting, doubling or replacing one byte.
    @Test("random documents, whole and damaged, decode to JSONDecoder's JSONValue or fail where it fails")
    func randomDocuments() throws {
        var random = SeededGenerator(seed: 0x15_1DE7)
        let pieces: [String] = ["a", "é", "日本", "🎉", "\\n", "\\\"", "\\/", "\\u00e9", "\\ud83d\\ude00", "\\u0000", " ", "key", "\\t"]
        let numbers: [String] = ["0", "-0", "7", "-42", "1.5", "-0.25", "1e3", "2E-2", "1.0", "9223372036854775807", "-9223372036854775808",
                                 "9223372036854775808", "123456789012345678901234567890", "1e308", "4.9e-324", "0.1"]
        func space() -> String { ["", "", " ", "\n", "\t ", "\r\n"].randomElement(using: &random)! }
        func text() -> String { "\"" + (0..<Int.random(in: 0...4, using: &random)).map { _ in pieces.randomElement(using: &random)! }.joined() + "\"" }
        func value(_ depth: Int) -> String {
            switch Int.random(in: 0..<(depth > 3 ? 4 : 7), using: &random) {
            case 0: return numbers.randomElement(using: &random)!
            case 1: return text()
            case 2: return ["true", "false", "null"].randomElement(using: &random)!
            case 3: return numbers.randomElement(using: &random)!
            case 4, 5:
                let members = (0..<Int.random(in: 0...4, using: &random)).map { _ in space() + text() + space() + ":" + space() + value(depth + 1) + space() }
                return "{" + members.joined(separator: ",") + "}"
            default:
                return "[" + (0..<Int.random(in: 0...4, using: &random)).map { _ in space() + value(depth + 1) + space() }.joined(separator: ",") + "]"
            }
        }
        var checked = 0
        var failures = 0
        for _ in 0..<400 {
            let document = Array((space() + value(0) + space()).utf8)
            var damaged = document
            let at = Int.random(in: 0..<damaged.count, using: &random)
            switch Int.random(in: 0..<3, using: &random) {
            case 0: damaged.remove(at: at)
            case 1: damaged.insert(damaged[at], at: at)
            default: damaged[at] = Array("{}[]\",:\\0-e.x".utf8).randomElement(using: &random)!
            }
            for bytes in [document, damaged] {
                let indexed = try? IndexedJSONDecoder().decode(JSONValue.self, from: bytes)
                let foundation = try? JSONDecoder().decode(JSONValue.self, from: Data(bytes))
                #expect(indexed == foundation, "\(String(decoding: bytes, as: UTF8.self))")
                checked += 1
                if foundation == nil { failures += 1 }
            }
        }
        // Every whole document is valid; some damaged ones are not.
        #expect(checked == 800 && failures > 50 && failures < 400, "\(failures) of \(checked) failed")
    }

    @Test("a number out of its type's range names its field, where JSONDecoder names none")
    func rangeErrorsNameTheField() {
        let outcome = Self.both(Outer.self, #"{"a":[],"n":300}"#)
        #expect(outcome.indexed == .error("dataCorrupted", path: "n"))
        #expect(outcome.foundation == .error("dataCorrupted", path: ""))
    }
}

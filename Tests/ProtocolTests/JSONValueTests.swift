import Foundation
import Protocol
import Testing

@Suite("JSONValue", .serialized, .timeLimit(.minutes(2)))
struct JSONValueTests {
    @Test("decodes every JSON type; integers stay integers, booleans stay booleans")
    func decodesTypes() throws {
        let value = try decode(JSONValue.self, from: #"[1, -7, 2.5, 9007199254740993, true, false, 0, null, "s", [], {}]"#)
        #expect(value == .array([
            .int(1), .int(-7), .double(2.5), .int(9_007_199_254_740_993), .bool(true), .bool(false), .int(0), .null,
            .string("s"), .array([]), .object([:]),
        ]))
    }

    @Test("nested objects round-trip, and integers are encoded without a fraction")
    func roundTrip() throws {
        let json = #"""
            {"type":"object","properties":{"n":{"type":"integer","minimum":-3,"maximum":9007199254740993},
             "x":{"enum":[1.5,"a",null,true]}},"required":["n"],"additionalProperties":false}
            """#
        let value = try decode(JSONValue.self, from: json)
        #expect(value["properties"]?["n"]?["maximum"] == .int(9_007_199_254_740_993))
        #expect(value["properties"]?["x"]?["enum"]?.arrayValue?.count == 4)
        #expect(value["required"] == .array([.string("n")]))
        let encoded = try JSONEncoder().encode(value)
        #expect(try JSONDecoder().decode(JSONValue.self, from: encoded) == value)
        let text = String(decoding: encoded, as: UTF8.self)
        #expect(text.contains("9007199254740993"), "\(text)")
        #expect(text.contains("-3") && !text.contains("-3.0"), "\(text)")
        #expect(String(decoding: try JSONEncoder().encode(JSONValue.object(["a": .null])), as: UTF8.self) == #"{"a":null}"#)
    }

    @Test("accessors")
    func accessors() {
        let value = JSONValue.object(["s": .string("x"), "i": .int(3), "d": .double(2.9), "a": .array([.null])])
        #expect(value["s"]?.stringValue == "x")
        #expect(value["i"]?.intValue == 3)
        #expect(value["d"]?.intValue == 2)
        #expect(value["a"]?.arrayValue == [.null])
        #expect(value["missing"] == nil)
        #expect(JSONValue.string("x")["s"] == nil)
        #expect(JSONValue.int(1).stringValue == nil)
        #expect(JSONValue.string("3").intValue == nil)
    }

    @Test("intValue of a double outside Int's range does not trap")
    func intValueOutOfRange() async {
        // `1e300` is valid JSON and decodes as `.double`; `Int(_:)` on it traps, taking the process down.
        await #expect(processExitsWith: .success) {
            let huge = try JSONDecoder().decode(JSONValue.self, from: Data("1e300".utf8))
            _ = huge.intValue
        }
    }
}

import Foundation
import Protocol

/// A deterministic generator (SplitMix64), so a failing case can be reproduced from its seed.
struct SeededGenerator: RandomNumberGenerator {
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

/// A generator that always answers the same word, for known-answer tests of bit layouts.
struct ConstantGenerator: RandomNumberGenerator {
    var value: UInt64
    mutating func next() -> UInt64 { value }
}

func decode<T: Decodable>(_ type: T.Type, from json: String) throws -> T {
    try JSONDecoder().decode(type, from: Data(json.utf8))
}

/// Encodes `value` and parses the result back into Foundation objects, to look at the wire field names.
func jsonObject(_ value: some Encodable) throws -> [String: Any] {
    let data = try JSONEncoder().encode(value)
    guard let object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) as? [String: Any] else {
        throw WireShapeError(json: String(decoding: data, as: UTF8.self))
    }
    return object
}

struct WireShapeError: Error, CustomStringConvertible {
    var json: String
    var description: String { "expected a JSON object, got \(json)" }
}

/// The error `GatewayConfiguration.load` throws for `environment`, or `nil` when it loads.
func configurationError(_ environment: [String: String]) -> ConfigurationError? {
    do {
        _ = try GatewayConfiguration.load(environment: environment)
        return nil
    } catch {
        return error
    }
}

/// Per-prompt behaviour, written into the prompt as `[mock:key=value,…]` so that tests can steer the mock
/// through every provider format and through the gateway's queue:
/// - `fail=N`: the first N calls with this prompt fail (status 500 unless `status` says otherwise);
/// - `status=CODE`: the failure status; without `fail`, every call fails;
/// - `retry_after=S`: sends `Retry-After: S` (and `retry-after-ms`) on failures;
/// - `delay_ms=N`: waits before answering;
/// - `hang`: never answers, until the client goes away;
/// - `tokens=N`: the reply has N tokens;
/// - `interval_ms=N`: the pause between streamed tokens;
/// - `only=DIALECT`: failures apply only to calls in that wire format (`openai`, `anthropic`, `gemini`, `cohere`),
///   and `fail=N` counts only that format's calls, so one prompt can fail on a primary and succeed on a fallback.
public struct MockScript: Sendable, Hashable {
    public var failures: Int?
    public var status: Int?
    public var retryAfter: Double?
    public var delayMs: Int?
    public var hang = false
    public var tokens: Int?
    public var intervalMs: Int?
    public var only: String?

    public init() {}

    public init(prompt: String) {
        var remaining = Substring(prompt)
        while let start = remaining.range(of: "[mock:") {
            let after = remaining[start.upperBound...]
            guard let end = after.firstIndex(of: "]") else { break }
            for item in after[..<end].split(separator: ",") {
                let pair = item.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
                let value = pair.count > 1 ? pair[1] : ""
                switch pair[0] {
                case "fail": failures = Int(value)
                case "status": status = Int(value)
                case "retry_after": retryAfter = Double(value)
                case "delay_ms": delayMs = Int(value)
                case "hang": hang = true
                case "tokens": tokens = Int(value)
                case "interval_ms": intervalMs = Int(value)
                case "only": only = value.lowercased()
                default: break
                }
            }
            remaining = after[after.index(after: end)...]
        }
    }

    /// Whether call number `call` (from 1) of this prompt fails, and with which status.
    public func failureStatus(call: Int) -> Int? {
        if let failures {
            return call <= failures ? (status ?? 500) : nil
        }
        return status
    }

    /// Whether a call in `dialect` fails, and with which status. `call` counts this prompt's calls overall and
    /// `dialectCall` its calls in `dialect`; with `only`, other dialects never fail and `dialectCall` is counted.
    public func failureStatus(call: Int, dialectCall: Int, dialect: String) -> Int? {
        guard let only else { return failureStatus(call: call) }
        guard only == dialect else { return nil }
        if let failures {
            return dialectCall <= failures ? (status ?? 500) : nil
        }
        return status
    }
}

/// The mock's deterministic text: `mock reply: <prompt>` split into word tokens, so tests can predict it.
public enum MockText {
    public static let replyPrefix = "mock reply: "

    /// The reply to `prompt`, as stream tokens. With `tokens`, exactly that many, cycling the words.
    public static func tokens(for prompt: String, count: Int? = nil) -> [String] {
        let words = (replyPrefix + normalized(prompt)).split(separator: " ").map(String.init)
        let wanted = count ?? words.count
        guard wanted > 0, !words.isEmpty else { return [] }
        return (0..<wanted).map { index in
            let word = words[index % words.count]
            return index == 0 ? word : " " + word
        }
    }

    /// The full reply text to `prompt`.
    public static func reply(to prompt: String) -> String { tokens(for: prompt).joined() }

    /// A rough token count: words.
    public static func countTokens(_ text: String) -> Int { text.split(whereSeparator: { $0 == " " || $0 == "\n" }).count }

    static func normalized(_ text: String) -> String {
        text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).joined(separator: " ")
    }
}

import Foundation

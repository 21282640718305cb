import Foundation

/// Reads a job's `"deadline"`: an RFC 3339 date-time (`2025-01-31T12:00:00Z`, fractions and offsets allowed) or unix
/// seconds.
public enum JobDeadline {
    static func decode<Key: CodingKey>(from container: KeyedDecodingContainer<Key>, forKey key: Key) throws -> Double? {
        guard container.contains(key), try !container.decodeNil(forKey: key) else { return nil }
        if let seconds = try? container.decode(Double.self, forKey: key) {
            guard seconds.isFinite, seconds > 0 else {
                throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "expected a positive unix time")
            }
            return seconds
        }
        let text = try container.decode(String.self, forKey: key)
        guard let seconds = parse(text) else {
            throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "expected an RFC 3339 date-time or unix seconds")
        }
        return seconds
    }

    /// Seconds since 1970 of an RFC 3339 date-time, or `nil`.
    public static func parse(_ text: String) -> Double? {
        let plain = ISO8601DateFormatter()
        plain.formatOptions = [.withInternetDateTime]
        if let date = plain.date(from: text) { return date.timeIntervalSince1970 }
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return fractional.date(from: text)?.timeIntervalSince1970
    }
}

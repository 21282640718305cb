/// Job identifiers: `job_` followed by 26 Crockford base32 characters, a 48-bit millisecond timestamp
/// then 80 random bits, so that ids sort by creation time and never collide in practice.
public enum JobID {
    public static let prefix = "job_"
    static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    public static func make(milliseconds: UInt64) -> String {
        var generator = SystemRandomNumberGenerator()
        return make(milliseconds: milliseconds, using: &generator)
    }

    public static func make<G: RandomNumberGenerator>(milliseconds: UInt64, using generator: inout G) -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        for index in 0..<6 {
            bytes[index] = UInt8(truncatingIfNeeded: milliseconds >> (8 * (5 - index)))
        }
        let high = generator.next()
        let low = generator.next()
        for index in 0..<8 { bytes[6 + index] = UInt8(truncatingIfNeeded: high >> (8 * index)) }
        for index in 0..<2 { bytes[14 + index] = UInt8(truncatingIfNeeded: low >> (8 * index)) }
        return prefix + encode(bytes)
    }

    /// Whether `value` has the shape of a job id; used to reject junk before touching Redis.
    public static func isValid(_ value: some StringProtocol) -> Bool {
        guard value.hasPrefix(prefix) else { return false }
        let body = value.utf8.dropFirst(prefix.utf8.count)
        return body.count == 26 && body.allSatisfy { alphabet.contains($0) }
    }

    /// The creation time encoded in an id, in milliseconds since 1970.
    public static func timestamp(of value: String) -> UInt64? {
        guard isValid(value) else { return nil }
        var result: UInt64 = 0
        for character in value.utf8.dropFirst(prefix.utf8.count).prefix(10) {
            guard let digit = alphabet.firstIndex(of: character) else { return nil }
            result = result << 5 | UInt64(digit)
        }
        return result
    }

    /// 128 bits as 26 base32 digits, most significant first (the top two bits of the first digit are zero).
    static func encode(_ bytes: [UInt8]) -> String {
        var high: UInt64 = 0
        var low: UInt64 = 0
        for index in 0..<8 { high = high << 8 | UInt64(bytes[index]) }
        for index in 8..<16 { low = low << 8 | UInt64(bytes[index]) }
        var digits = [UInt8](repeating: 0, count: 26)
        for position in stride(from: 25, through: 0, by: -1) {
            digits[position] = alphabet[Int(low & 31)]
            low = low >> 5 | (high & 31) << 59
            high >>= 5
        }
        return String(decoding: digits, as: UTF8.self)
    }
}

/// Seconds as decimal text, for the timestamps the result store writes on every job and the rate-limit reset
/// headers of every response.
///
/// `String(format:)` parses its format and goes through Foundation's formatting on each call: about 2 % of a
/// worker's CPU per job. These write the same text from integer milliseconds.
public enum DecimalText {
    /// `seconds` to the nearest millisecond, with exactly three decimals: `1796075213.120`, `-0.500`, `0.000`.
    ///
    /// What `String(format: "%.3f", seconds)` writes, except that a value within rounding error of half a
    /// millisecond may round the other way. Values beyond ±10¹⁵ s and non-finite ones are written by `description`.
    public static func seconds(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds.magnitude < 1e15 else { return seconds.description }
        let milliseconds = Int64((seconds * 1000).rounded())
        return text(milliseconds: milliseconds, minimumDecimals: 3)
    }

    /// `milliseconds` as seconds, with only the decimals it needs: `12`, `0.25`, `1.005`, `-3.1`.
    public static func seconds(milliseconds: Int) -> String {
        text(milliseconds: Int64(milliseconds), minimumDecimals: 0)
    }

    /// Writes `milliseconds / 1000` with three decimals, then drops trailing zeros down to `minimumDecimals`
    /// (and the point with them).
    private static func text(milliseconds: Int64, minimumDecimals: Int) -> String {
        let magnitude = milliseconds.magnitude
        var fraction = Int(magnitude % 1000)
        var decimals = 3
        while decimals > minimumDecimals, fraction % 10 == 0 {
            fraction /= 10
            decimals -= 1
        }
        var text = milliseconds < 0 ? "-" : ""
        text += String(magnitude / 1000)
        guard decimals > 0 else { return text }
        text += "."
        let digits = String(fraction)
        if digits.utf8.count < decimals { text += String(repeating: "0", count: decimals - digits.utf8.count) }
        return text + digits
    }
}

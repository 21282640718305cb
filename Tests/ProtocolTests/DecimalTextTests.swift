import Foundation
import Protocol
import Testing

@Suite("DecimalText", .serialized, .timeLimit(.minutes(1)))
struct DecimalTextTests {
    @Test("seconds with three decimals, as %.3f writes them")
    func threeDecimals() {
        #expect(DecimalText.seconds(0) == "0.000")
        #expect(DecimalText.seconds(1_796_075_213.12) == "1796075213.120")
        #expect(DecimalText.seconds(1_796_075_213.1239) == "1796075213.124")
        #expect(DecimalText.seconds(0.0996) == "0.100")
        #expect(DecimalText.seconds(59.9996) == "60.000")
        #expect(DecimalText.seconds(-0.5) == "-0.500")
        #expect(DecimalText.seconds(-12.0504) == "-12.050")
        #expect(DecimalText.seconds(7) == "7.000")

        // Timestamps and durations as the store writes them, away from half-millisecond ties (where the two may
        // round differently): the same text as String(format:).
        var generator = SeededGenerator(seed: 7)
        var compared = 0
        while compared < 20_000 {
            let scale = [1.0, 1_000, 1_800_000_000][compared % 3]
            let value = Double.random(in: -scale...scale, using: &generator)
            let fraction = (value * 1000).magnitude.truncatingRemainder(dividingBy: 1)
            guard abs(fraction - 0.5) > 1e-3 else { continue }
            #expect(DecimalText.seconds(value) == String(format: "%.3f", value), "\(value)")
            compared += 1
        }
    }

    @Test("values it does not write in fixed point")
    func outOfRange() {
        #expect(DecimalText.seconds(.infinity) == "inf")
        #expect(DecimalText.seconds(.nan) == "nan")
        #expect(DecimalText.seconds(1e16) == "1e+16")
    }

    @Test("milliseconds as seconds with only the decimals they need")
    func trimmed() {
        #expect(DecimalText.seconds(milliseconds: 0) == "0")
        #expect(DecimalText.seconds(milliseconds: 12_000) == "12")
        #expect(DecimalText.seconds(milliseconds: 250) == "0.25")
        #expect(DecimalText.seconds(milliseconds: 100) == "0.1")
        #expect(DecimalText.seconds(milliseconds: 1_005) == "1.005")
        #expect(DecimalText.seconds(milliseconds: 60_010) == "60.01")
        #expect(DecimalText.seconds(milliseconds: -3_100) == "-3.1")
        #expect(DecimalText.seconds(milliseconds: -7) == "-0.007")
        #expect(DecimalText.seconds(milliseconds: Int.max) == "9223372036854775.807")
    }
}

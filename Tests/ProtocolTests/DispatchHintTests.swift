import Protocol
import Testing

@Suite("DispatchHint", .timeLimit(.minutes(1)))
struct DispatchHintTests {
    static let id = "job_01ARZ3NDEKTSV4RRFFQ69G5FAV"
    static let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    @Test("a hint survives its wire form, with and without a traceparent, whatever bytes its payload holds")
    func roundTrip() throws {
        let payload = Array("{\"id\":\"\(Self.id)\",\n \"prompt\": \"two lines\\nand spaces \"}".utf8) + [0, 255, 10, 32]
        for traceparent in [nil, Self.traceparent] {
            let hint = DispatchHint(partition: 5, offset: 9_007_199_254_740_993, jobID: Self.id, traceparent: traceparent, payload: payload)
            #expect(DispatchHint.parse(hint.encoded) == hint)
        }
        let encoded = DispatchHint(partition: 2, offset: 41, jobID: Self.id, traceparent: Self.traceparent, payload: Array("{}".utf8)).encoded
        #expect(String(decoding: encoded, as: UTF8.self) == "2 41 \(Self.id) \(Self.traceparent)\n{}")
    }

    @Test(
        "malformed hints are refused",
        arguments: [
            "",
            "no line feed at all",
            "1 2 \(id)",
            "1 2 \(id)\n",
            "x 2 \(id)\n{}",
            "-1 2 \(id)\n{}",
            "1 -2 \(id)\n{}",
            "1 2.5 \(id)\n{}",
            "1 2 not-a-job-id\n{}",
            "1 2\n{}",
            "1  2 \(id)\n{}",
            "1 2 \(id) \(traceparent) extra\n{}",
            "1 2 \(id) \n{}",
            "99999999999 2 \(id)\n{}",
            "1 2 \(id) " + String(repeating: "t", count: 300) + "\n{}",
        ])
    func malformed(_ text: String) {
        #expect(DispatchHint.parse(Array(text.utf8)) == nil)
    }

    @Test("a traceparent with control characters is refused")
    func controlCharacters() {
        #expect(DispatchHint.parse(Array("1 2 \(Self.id) 00-a\u{7}b\n{}".utf8)) == nil)
    }
}

import Providers
import Testing

@Suite("ServerSentEventParser", .serialized, .timeLimit(.minutes(1)))
struct ServerSentEventParserTests {
    @Test("LF, CRLF and CR line endings all end lines")
    func lineEndings() {
        for ending in ["\n", "\r\n", "\r"] {
            let text = "event: a\(ending)data: one\(ending)\(ending)data: two\(ending)\(ending)"
            #expect(events(text) == [ServerSentEvent(event: "a", data: "one"), ServerSentEvent(data: "two")], "ending \(ending.debugDescription)")
        }
    }

    @Test("a CRLF split between two feeds is one line ending, not two")
    func splitCRLF() {
        var parser = ServerSentEventParser()
        var result = parser.feed(bytes("data: one\r"))
        result += parser.feed(bytes("\ndata: two\r"))
        result += parser.feed(bytes("\n\r"))
        result += parser.feed(bytes("\n"))
        #expect(result == [ServerSentEvent(data: "one\ntwo")])
    }

    @Test("comments are ignored, also between the fields of one event")
    func comments() {
        let text = ": OPENROUTER PROCESSING\n\ndata: a\n: keep-alive\ndata: b\n\n"
        #expect(events(text) == [ServerSentEvent(data: "a\nb")])
    }

    @Test("multi-line data joins with newlines; one space after the colon is dropped, further ones kept")
    func multiLineData() {
        let text = "data:{\ndata:  \"x\": 1\ndata: }\n\n"
        #expect(events(text) == [ServerSentEvent(data: "{\n \"x\": 1\n}")])
    }

    @Test("id is kept; unknown fields are ignored; a blank line alone dispatches nothing")
    func fields() {
        let text = "\n\nid: 7\nretry: 100\nfoo: bar\nevent: ping\ndata: {}\n\n"
        #expect(events(text) == [ServerSentEvent(event: "ping", data: "{}", id: "7")])
    }

    @Test("an event without its closing blank line is delivered by finish()")
    func finishDeliversTail() {
        var parser = ServerSentEventParser()
        #expect(parser.feed(bytes("data: tail")).isEmpty)
        #expect(parser.finish() == [ServerSentEvent(data: "tail")])
    }

    @Test("a UTF-8 character split across feeds comes out whole", arguments: 1...20)
    func utf8Split(seed: Int) {
        let text = "data: {\"t\":\"héllo 世界 🙂\"}\r\n\r\nevent: x\ndata: ✓\n\n"
        var parser = ServerSentEventParser()
        var result: [ServerSentEvent] = []
        for piece in randomPieces(bytes(text), seed: UInt64(seed), maxPiece: 3) { result += parser.feed(piece) }
        result += parser.finish()
        #expect(result == [ServerSentEvent(data: "{\"t\":\"héllo 世界 🙂\"}"), ServerSentEvent(event: "x", data: "✓")])
    }

    @Test("byte-at-a-time feeding gives the same events as one feed")
    func byteAtATime() {
        let text = "event: message_start\r\ndata: {\"a\":1}\r\n\r\n: c\r\ndata: [DONE]\r\n\r\n"
        var parser = ServerSentEventParser()
        var result: [ServerSentEvent] = []
        for byte in bytes(text) { result += parser.feed([byte]) }
        result += parser.finish()
        #expect(result == events(text))
        #expect(result.count == 2)
    }
}

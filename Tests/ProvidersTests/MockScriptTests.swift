import MockProvider
import Testing

@Suite("MockScript", .timeLimit(.minutes(1)))
struct MockScriptTests {
    @Test("only= scopes failures to one wire format and counts that format's calls")
    func scopedFailures() {
        let script = MockScript(prompt: "hello [mock:fail=2,only=Anthropic,status=503]")
        #expect(script.only == "anthropic")
        // Other formats never fail, whatever the overall count.
        #expect(script.failureStatus(call: 1, dialectCall: 1, dialect: "openai") == nil)
        // Anthropic's first two calls fail, counted among Anthropic calls only.
        #expect(script.failureStatus(call: 5, dialectCall: 1, dialect: "anthropic") == 503)
        #expect(script.failureStatus(call: 6, dialectCall: 2, dialect: "anthropic") == 503)
        #expect(script.failureStatus(call: 7, dialectCall: 3, dialect: "anthropic") == nil)
    }

    @Test("without only=, every format counts the prompt's calls overall")
    func unscopedFailures() {
        let script = MockScript(prompt: "[mock:fail=1] hi")
        #expect(script.only == nil)
        #expect(script.failureStatus(call: 1, dialectCall: 1, dialect: "gemini") == 500)
        #expect(script.failureStatus(call: 2, dialectCall: 1, dialect: "cohere") == nil)
        let always = MockScript(prompt: "[mock:status=429]")
        #expect(always.failureStatus(call: 9, dialectCall: 9, dialect: "openai") == 429)
    }
}

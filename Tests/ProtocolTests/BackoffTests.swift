import Protocol
import Testing

@Suite("Backoff", .serialized, .timeLimit(.minutes(2)))
struct BackoffTests {
    @Test("ceilings double from the base and stop at the maximum")
    func ceilings() {
        let backoff = Backoff(base: 0.25, multiplier: 2, maximum: 20)
        let expected: [Double] = [0.25, 0.5, 1, 2, 4, 8, 16, 20, 20, 20]
        #expect((1...10).map { backoff.ceiling(attempt: $0) } == expected)
        #expect(backoff.ceiling(attempt: 1_000) == 20)
        let tripling = Backoff(base: 1, multiplier: 3, maximum: 100)
        #expect((1...6).map { tripling.ceiling(attempt: $0) } == [1, 3, 9, 27, 81, 100])
    }

    @Test("delays stay within [ceiling/2, ceiling] and do vary")
    func jitterBounds() {
        var generator = SeededGenerator(seed: 7)
        for backoff in [Backoff(), Backoff(base: 1, multiplier: 3, maximum: 30)] {
            for attempt in 1...12 {
                let ceiling = backoff.ceiling(attempt: attempt)
                var seen = Set<Double>()
                for _ in 0..<200 {
                    let delay = backoff.delay(attempt: attempt, using: &generator)
                    #expect(delay >= ceiling / 2 && delay <= ceiling, "attempt \(attempt): \(delay) outside [\(ceiling / 2), \(ceiling)]")
                    seen.insert(delay)
                }
                #expect(seen.count > 100, "attempt \(attempt): jitter produced only \(seen.count) distinct delays")
            }
        }
        let unseeded = Backoff().delay(attempt: 3)
        #expect(unseeded >= 0.5 && unseeded <= 1)
    }

    @Test("a longer Retry-After wins, capped at the maximum; a shorter one does not")
    func retryAfter() {
        var generator = SeededGenerator(seed: 8)
        let backoff = Backoff(base: 0.25, multiplier: 2, maximum: 20)
        for attempt in 1...5 {
            let ceiling = backoff.ceiling(attempt: attempt)
            #expect(backoff.delay(attempt: attempt, retryAfter: 17, using: &generator) == 17)
            #expect(backoff.delay(attempt: attempt, retryAfter: 120, using: &generator) == 20)
            for shorter in [0, 0.01, ceiling / 2 - 0.001, -5] {
                let delay = backoff.delay(attempt: attempt, retryAfter: shorter, using: &generator)
                #expect(delay >= ceiling / 2 && delay <= ceiling, "retryAfter \(shorter): \(delay)")
            }
        }
        // At the cap, a Retry-After above the maximum gives exactly the maximum, never more.
        #expect(backoff.delay(attempt: 30, retryAfter: 3_600, using: &generator) == 20)
    }

    @Test("the same seed gives the same delays")
    func deterministic() {
        var first = SeededGenerator(seed: 99)
        var second = SeededGenerator(seed: 99)
        let backoff = Backoff()
        let a = (1...20).map { backoff.delay(attempt: $0, using: &first) }
        let b = (1...20).map { backoff.delay(attempt: $0, using: &second) }
        #expect(a == b)
    }
}

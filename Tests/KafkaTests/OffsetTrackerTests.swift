import Kafka
import Testing

/// A deterministic generator (SplitMix64), so a failing permutation can be reproduced from its seed.
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

@Suite("OffsetTracker", .serialized, .timeLimit(.minutes(2)))
struct OffsetTrackerTests {
    let jobs0 = TopicPartition(topic: "llm.jobs.openai", partition: 0)
    let jobs1 = TopicPartition(topic: "llm.jobs.openai", partition: 1)
    let other0 = TopicPartition(topic: "llm.jobs.anthropic", partition: 0)

    @Test("out-of-order completion: nothing moves until the lowest running record finishes")
    func outOfOrder() {
        var tracker = OffsetTracker()
        for offset: Int64 in 10...12 { tracker.started(jobs0, offset: offset) }
        #expect(tracker.finished(jobs0, offset: 11) == nil, "10 is still running, so the committable offset stays 10")
        #expect(tracker.finished(jobs0, offset: 10) == 12)
        #expect(tracker.finished(jobs0, offset: 12) == 13)
        #expect(tracker.runningCount == 0)
    }

    @Test("in-order completion moves one past each finished record")
    func inOrder() {
        var tracker = OffsetTracker()
        for offset: Int64 in 0..<5 { tracker.started(jobs0, offset: offset) }
        #expect(tracker.runningCount == 5)
        for offset: Int64 in 0..<5 {
            #expect(tracker.finished(jobs0, offset: offset) == offset + 1)
        }
        tracker.started(jobs0, offset: 5)
        #expect(tracker.finished(jobs0, offset: 5) == 6)
    }

    @Test("partitions, and the same partition number of different topics, are tracked independently")
    func independentPartitions() {
        var tracker = OffsetTracker()
        tracker.started(jobs0, offset: 100)
        tracker.started(jobs0, offset: 101)
        tracker.started(jobs1, offset: 7)
        tracker.started(other0, offset: 100)
        #expect(tracker.finished(jobs1, offset: 7) == 8)
        #expect(tracker.finished(other0, offset: 100) == 101)
        #expect(tracker.runningCount == 2)
        #expect(tracker.finished(jobs0, offset: 100) == 101)
        #expect(tracker.finished(jobs0, offset: 101) == 102)
        #expect(tracker.runningCount == 0)
    }

    @Test("revoke forgets a partition's running records")
    func revoke() {
        var tracker = OffsetTracker()
        tracker.started(jobs0, offset: 10)
        tracker.started(jobs0, offset: 11)
        tracker.started(jobs1, offset: 3)
        tracker.revoke(jobs0)
        #expect(tracker.runningCount == 1)
        #expect(tracker.finished(jobs0, offset: 10) == nil)
        #expect(tracker.finished(jobs0, offset: 11) == nil)
        #expect(tracker.finished(jobs1, offset: 3) == 4)
        // Assigned again later, the partition starts afresh.
        tracker.started(jobs0, offset: 50)
        #expect(tracker.finished(jobs0, offset: 50) == 51)
    }

    @Test("finishing an offset that is not running returns nil and changes nothing")
    func unknownOffsets() {
        var tracker = OffsetTracker()
        #expect(tracker.finished(jobs0, offset: 0) == nil)
        tracker.started(jobs0, offset: 10)
        tracker.started(jobs0, offset: 11)
        #expect(tracker.finished(jobs0, offset: 9) == nil)
        #expect(tracker.finished(jobs0, offset: 12) == nil)
        #expect(tracker.finished(jobs1, offset: 10) == nil)
        #expect(tracker.runningCount == 2)
        #expect(tracker.finished(jobs0, offset: 10) == 11)
        #expect(tracker.finished(jobs0, offset: 10) == nil, "finishing twice must not count twice")
        #expect(tracker.finished(jobs0, offset: 11) == 12)
    }

    @Test("the committable offset never goes backwards, even when a lower offset is redelivered")
    func neverBackwards() {
        var tracker = OffsetTracker()
        tracker.started(jobs0, offset: 20)
        #expect(tracker.finished(jobs0, offset: 20) == 21)
        // A seek back redelivers older records; committing below 21 would re-run finished work on a rebalance.
        tracker.started(jobs0, offset: 5)
        tracker.started(jobs0, offset: 6)
        #expect(tracker.finished(jobs0, offset: 6) == nil)
        #expect(tracker.finished(jobs0, offset: 5) == nil)
        tracker.started(jobs0, offset: 21)
        #expect(tracker.finished(jobs0, offset: 21) == 22)
    }

    @Test("random completion orders over 200 offsets", arguments: UInt64(1)...20)
    func randomCompletionOrder(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        let base = Int64.random(in: 0...1_000_000, using: &generator)
        let offsets = Array(base..<(base + 200))
        var tracker = OffsetTracker()
        for offset in offsets { tracker.started(jobs0, offset: offset) }

        var running = Set(offsets)
        // Nothing below `base` is known, so before anything finishes the committable offset is `base` itself.
        var committed = base
        for (step, offset) in offsets.shuffled(using: &generator).enumerated() {
            let returned = tracker.finished(jobs0, offset: offset)
            running.remove(offset)
            let expected = running.min() ?? (base + 200)
            if expected > committed {
                #expect(returned == expected, "seed \(seed), step \(step): finished \(offset)")
                committed = expected
            } else {
                #expect(returned == nil, "seed \(seed), step \(step): finished \(offset), committable stays \(committed)")
            }
            if let returned {
                #expect(returned == expected, "seed \(seed), step \(step): returned \(returned), lowest running is \(expected)")
            }
            #expect(tracker.runningCount == running.count)
        }
        #expect(committed == base + 200)
    }

    @Test("returned offsets are strictly increasing whatever the order", arguments: UInt64(21)...40)
    func monotonic(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        var tracker = OffsetTracker()
        var pending: [Int64] = []
        var next: Int64 = 0
        var last: Int64 = -1
        // Interleave starts and finishes, as a consumer with bounded concurrency does.
        for _ in 0..<600 {
            if pending.isEmpty || (next < 300 && Bool.random(using: &generator)) {
                tracker.started(jobs0, offset: next)
                pending.append(next)
                next += 1
            } else {
                let offset = pending.remove(at: Int.random(in: 0..<pending.count, using: &generator))
                if let returned = tracker.finished(jobs0, offset: offset) {
                    #expect(returned > last, "seed \(seed): \(returned) after \(last)")
                    #expect(returned == (pending.min() ?? next), "seed \(seed)")
                    last = returned
                }
            }
        }
        for offset in pending.sorted() {
            if let returned = tracker.finished(jobs0, offset: offset) {
                #expect(returned > last)
                last = returned
            }
        }
        #expect(last == next)
    }
}

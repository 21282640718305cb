import Testing
@testable import Worker

@Suite("LocalJobs", .timeLimit(.minutes(1)))
struct LocalJobsTests {
    @Test("a record that arrives during a hint run waits for it and learns its end")
    func recordWaitsForHintRun() async {
        let jobs = LocalJobs()
        #expect(jobs.beginHint("a"))
        #expect(jobs.count == 1)
        let waiting = Task { await jobs.recordArrived("a") }
        // The record is parked until the run ends; a second hint for the job is refused meanwhile.
        #expect(jobs.beginHint("a") == false)
        jobs.endHint("a", finished: true)
        guard case .ranFromHint(true) = await waiting.value else {
            Issue.record("expected the hint run's end")
            return
        }
        #expect(jobs.count == 0)
        // The waiting record took the news: nothing is remembered, a later copy of the record runs.
        guard case .run = await jobs.recordArrived("a") else {
            Issue.record("expected a run")
            return
        }
    }

    @Test("a record that arrives after a finished hint run is done without running")
    func recordAfterFinishedHint() async {
        let jobs = LocalJobs()
        #expect(jobs.beginHint("b"))
        jobs.endHint("b", finished: true)
        // Finished by a hint: a new hint for it is refused.
        #expect(jobs.beginHint("b") == false)
        guard case .ranFromHint(true) = await jobs.recordArrived("b") else {
            Issue.record("expected the hint run's end")
            return
        }
        guard case .run = await jobs.recordArrived("b") else {
            Issue.record("a redelivered record runs (its claim decides)")
            return
        }
    }

    @Test("an interrupted hint run leaves the job to its record")
    func interruptedHint() async {
        let jobs = LocalJobs()
        #expect(jobs.beginHint("c"))
        let waiting = Task { await jobs.recordArrived("c") }
        await Task.yield()
        jobs.endHint("c", finished: false)
        let arrival = await waiting.value
        if case .ranFromHint(true) = arrival { Issue.record("an interrupted run must not count as finished") }
        #expect(jobs.beginHint("d"))
        jobs.endHint("d", finished: false)
        guard case .run = await jobs.recordArrived("d") else {
            Issue.record("expected a run")
            return
        }
    }

    @Test("a hint for a job whose record runs here is refused until the record ends")
    func recordFirst() async {
        let jobs = LocalJobs()
        guard case .run = await jobs.recordArrived("e") else {
            Issue.record("expected a run")
            return
        }
        #expect(jobs.beginHint("e") == false)
        #expect(jobs.count == 1)
        jobs.endRecord("e")
        #expect(jobs.count == 0)
        #expect(jobs.beginHint("e"))
    }

    @Test("a record delivered twice counts until both copies end")
    func duplicateRecords() async {
        let jobs = LocalJobs()
        for _ in 0..<2 {
            guard case .run = await jobs.recordArrived("f") else {
                Issue.record("expected a run")
                return
            }
        }
        jobs.endRecord("f")
        #expect(jobs.beginHint("f") == false)
        jobs.endRecord("f")
        #expect(jobs.beginHint("f"))
    }

    @Test("only the newest hint-finished jobs are remembered")
    func boundedMemory() async {
        let jobs = LocalJobs(rememberedLimit: 2)
        for id in ["g1", "g2", "g3"] {
            #expect(jobs.beginHint(id))
            jobs.endHint(id, finished: true)
        }
        // g1 was forgotten to make room for g3: its record runs (and its claim finds it finished).
        guard case .run = await jobs.recordArrived("g1") else {
            Issue.record("expected the oldest to be forgotten")
            return
        }
        for id in ["g2", "g3"] {
            guard case .ranFromHint(true) = await jobs.recordArrived(id) else {
                Issue.record("expected \(id) to be remembered")
                return
            }
        }
    }
}

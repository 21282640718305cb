import Testing
@testable import Worker

@Suite("LocalJobs", .timeLimit(.minutes(1)))
struct LocalJobsTests {
    /// An arrival as a value that `#expect` can compare.
    enum Seen: Equatable {
        case run
        case ranFromHint(Bool)

        init(_ arrival: LocalJobs.Arrival) {
            switch arrival {
            case .run: self = .run
            case .ranFromHint(let finished): self = .ranFromHint(finished)
            }
        }
    }

    static func arrive(_ jobs: LocalJobs, _ id: String) async -> Seen {
        Seen(await jobs.recordArrived(id))
    }

    @Test("a record that arrives during a hint run waits for it and learns its end")
    func recordWaitsForHintRun() async {
        let jobs = LocalJobs()
        #expect(jobs.beginHint("a"))
        #expect(jobs.count == 1)
        let waiting = Task { await Self.arrive(jobs, "a") }
        // The record is parked until the run ends; a second hint for the job is refused meanwhile.
        #expect(jobs.beginHint("a") == false)
        jobs.endHint("a", finished: true)
        #expect(await waiting.value == .ranFromHint(true))
        #expect(jobs.count == 0)
        // The waiting record took the news: nothing is remembered, a later copy of the record runs.
        #expect(await Self.arrive(jobs, "a") == .run)
    }

    @Test("a record that arrives after a finished hint run is done without running")
    func recordAfterFinishedHint() async {
        let jobs = LocalJobs()
        #expect(jobs.beginHint("b"))
        jobs.endHint("b", finished: true)
        // Finished by a hint: a new hint for it is refused.
        #expect(jobs.beginHint("b") == false)
        #expect(await Self.arrive(jobs, "b") == .ranFromHint(true))
        // A redelivered record runs (its claim decides).
        #expect(await Self.arrive(jobs, "b") == .run)
    }

    @Test("an interrupted hint run leaves the job to its record")
    func interruptedHint() async {
        let jobs = LocalJobs()
        #expect(jobs.beginHint("c"))
        let waiting = Task { await Self.arrive(jobs, "c") }
        await Task.yield()
        jobs.endHint("c", finished: false)
        // Parked, the record hears of the interruption; arriving after the end, it runs.
        #expect([.ranFromHint(false), .run].contains(await waiting.value))
        #expect(jobs.beginHint("d"))
        jobs.endHint("d", finished: false)
        #expect(await Self.arrive(jobs, "d") == .run)
    }

    @Test("a hint for a job whose record runs here is refused until the record ends")
    func recordFirst() async {
        let jobs = LocalJobs()
        #expect(await Self.arrive(jobs, "e") == .run)
        #expect(jobs.beginHint("e") == false)
        #expect(jobs.count == 1)
        jobs.endRecord("e")
        #expect(jobs.count == 0)
        #expect(jobs.beginHint("e"))
    }

    @Test("a record delivered twice counts until both copies end")
    func duplicateRecords() async {
        let jobs = LocalJobs()
        #expect(await Self.arrive(jobs, "f") == .run)
        #expect(await Self.arrive(jobs, "f") == .run)
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
        #expect(await Self.arrive(jobs, "g1") == .run)
        #expect(await Self.arrive(jobs, "g2") == .ranFromHint(true))
        #expect(await Self.arrive(jobs, "g3") == .ranFromHint(true))
    }
}

import Protocol
import Testing

@Suite("JobID", .serialized, .timeLimit(.minutes(2)))
struct JobIDTests {
    static let crockford = Set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    /// A well-formed id that the junk cases below each break in one way.
    static let wellFormed = "job_01HZX3K5M8Q2R4T6V8W0Y2A4C6"

    @Test("ids are job_ plus 26 Crockford base32 characters")
    func format() {
        var generator = SeededGenerator(seed: 1)
        for milliseconds: UInt64 in [0, 1, 1_735_689_600_123, (1 << 48) - 1] {
            let id = JobID.make(milliseconds: milliseconds, using: &generator)
            #expect(id.hasPrefix("job_"))
            #expect(id.utf8.count == 30)
            #expect(id.dropFirst(4).allSatisfy { Self.crockford.contains($0) }, "\(id)")
            #expect(JobID.isValid(id), "\(id)")
        }
        let systemRandom = JobID.make(milliseconds: 1_735_689_600_123)
        #expect(JobID.isValid(systemRandom), "\(systemRandom)")
    }

    @Test("bit layout: 48-bit milliseconds first, then 80 random bits")
    func knownAnswers() {
        var zeros = ConstantGenerator(value: 0)
        #expect(JobID.make(milliseconds: 0, using: &zeros) == "job_" + String(repeating: "0", count: 26))
        #expect(JobID.make(milliseconds: 1, using: &zeros) == "job_0000000001" + String(repeating: "0", count: 16))
        var ones = ConstantGenerator(value: .max)
        #expect(JobID.make(milliseconds: (1 << 48) - 1, using: &ones) == "job_7" + String(repeating: "Z", count: 25))
        #expect(JobID.make(milliseconds: 0, using: &ones) == "job_0000000000" + String(repeating: "Z", count: 16))
    }

    @Test("isValid accepts well-formed ids, including as a substring")
    func acceptsWellFormed() {
        #expect(JobID.isValid(Self.wellFormed))
        let path = "/gateway/jobs/" + Self.wellFormed
        #expect(JobID.isValid(path.split(separator: "/").last!))
    }

    @Test(
        "isValid rejects junk",
        arguments: [
            "",
            "job_",
            "job",
            "01HZX3K5M8Q2R4T6V8W0Y2A4C6",
            "JOB_01HZX3K5M8Q2R4T6V8W0Y2A4C6",
            "jb_01HZX3K5M8Q2R4T6V8W0Y2A4C6",
            "task_01HZX3K5M8Q2R4T6V8W0Y2A4C6",
            " job_01HZX3K5M8Q2R4T6V8W0Y2A4C6",
            "job_01HZX3K5M8Q2R4T6V8W0Y2A4C",
            "job_01HZX3K5M8Q2R4T6V8W0Y2A4C66",
            "job_01HZX3K5M8Q2R4T6V8W0Y2A4C6 ",
            "job_01hzx3k5m8q2r4t6v8w0y2a4c6",
            "job_01HZX3K5M8Q2R4T6V8W0Y2A4Ca",
            "job_01HZX3K5M8Q2R4T6V8W0Y2A4CI",
            "job_01HZX3K5M8Q2R4T6V8W0Y2A4CL",
            "job_01HZX3K5M8Q2R4T6V8W0Y2A4CO",
            "job_01HZX3K5M8Q2R4T6V8W0Y2A4CU",
            "job_01HZX3K5M8Q2R4T6V8W0Y2A4C-",
            "job_01HZX3K5M8Q2R4T6V8W0Y2A4Cé",
            "job_../../../etc/passwd0000000",
        ]
    )
    func rejectsJunk(_ value: String) {
        #expect(!JobID.isValid(value))
        #expect(JobID.timestamp(of: value) == nil)
    }

    @Test("timestamp(of:) returns the milliseconds an id was made with")
    func timestampRoundTrip() {
        var generator = SeededGenerator(seed: 2)
        var samples: [UInt64] = [0, 1, 31, 32, 1_735_689_600_123, (1 << 48) - 1]
        for _ in 0..<500 { samples.append(UInt64.random(in: 0..<(1 << 48), using: &generator)) }
        for milliseconds in samples {
            let id = JobID.make(milliseconds: milliseconds, using: &generator)
            #expect(JobID.timestamp(of: id) == milliseconds, "\(id)")
        }
    }

    @Test("ids made at increasing milliseconds sort in time order")
    func sortsByTime() {
        var generator = SeededGenerator(seed: 3)
        var milliseconds: UInt64 = 1_700_000_000_000
        var ids: [String] = []
        for _ in 0..<2_000 {
            // Gaps of one millisecond matter most: only the last timestamp digit differs.
            milliseconds += UInt64.random(in: 1...3, using: &generator) == 1 ? 1 : UInt64.random(in: 2...100_000, using: &generator)
            ids.append(JobID.make(milliseconds: milliseconds, using: &generator))
        }
        for (earlier, later) in zip(ids, ids.dropFirst()) {
            #expect(earlier < later, "\(earlier) should sort before \(later)")
        }
        #expect(ids.shuffled(using: &generator).sorted() == ids)
    }

    @Test("10 000 ids made in the same millisecond are unique")
    func unique() {
        var ids = Set<String>()
        for _ in 0..<10_000 { ids.insert(JobID.make(milliseconds: 1_735_689_600_123)) }
        #expect(ids.count == 10_000)
    }

    @Test("a seeded generator gives the same ids; another seed gives others")
    func deterministic() {
        var first = SeededGenerator(seed: 42)
        var second = SeededGenerator(seed: 42)
        var other = SeededGenerator(seed: 43)
        for step in 0..<100 {
            let milliseconds = 1_735_689_600_000 + UInt64(step)
            let a = JobID.make(milliseconds: milliseconds, using: &first)
            let b = JobID.make(milliseconds: milliseconds, using: &second)
            let c = JobID.make(milliseconds: milliseconds, using: &other)
            #expect(a == b)
            #expect(a != c)
            // Same millisecond: the timestamp digits agree, only the random part differs.
            #expect(a.prefix(14) == c.prefix(14))
        }
    }
}

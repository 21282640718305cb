import Foundation
import Kafka
import Logging
import Protocol
import Redis
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension Integration {
    /// Dispatch hints: a waited-for job starts from its Redis copy before its record's fetch returns, and still
    /// runs once, with its record's offset committed after it.
    @Suite(.serialized)
    struct DispatchHints {
        /// A broker fetch wait far longer than a Redis hop, so that the hint reliably arrives before the record.
        static let slowFetch = ["LLMGW_KAFKA_FETCH_WAIT_MS": "300"]

        static func redis() throws -> RedisClient {
            RedisClient(endpoint: RedisEndpointSettings(host: "127.0.0.1", port: try TestStack.redisPort), connections: 1, timeoutMs: 1000, logger: Logger(label: "test"))
        }

        /// The types of the job's events, in order.
        static func eventTypes(_ id: String, redis: RedisClient) async throws -> [String] {
            let entries = try await redis.command("XRANGE", RedisArgument(RedisKeys.jobEvents(id)), "-", "+").array ?? []
            return entries.compactMap { entry -> String? in
                guard let fields = entry.array?.last?.array else { return nil }
                let strings = fields.compactMap(\.string)
                guard let index = strings.firstIndex(of: RedisKeys.JobEventField.type), index + 1 < strings.count else { return nil }
                return strings[index + 1]
            }
        }

        /// The channels of the openai topic's six partitions.
        static let channels = (0..<6).map { RedisKeys.dispatchChannel(topic: "llm.jobs.openai", partition: Int32($0)) }

        /// The number of subscribers of each of `channels`.
        static func subscribers(_ redis: RedisClient) async throws -> [Int] {
            let reply = try await redis.command(["PUBSUB", "NUMSUB"] + channels.map { RedisArgument($0) }).array ?? []
            return stride(from: 1, to: reply.count, by: 2).map { Int(reply[$0].integer ?? -1) }
        }

        static func workerMetrics(_ stack: GatewayStack) throws -> String {
            "http://127.0.0.1:\(try #require(stack.workerHTTPPorts.first))/metrics"
        }

        /// Waits until the worker's sampled consumer lag on the openai topic is zero: every record handed over was
        /// committed (a record's offset is stored only after its job ended).
        static func waitForCommittedOffsets(_ stack: GatewayStack) async throws {
            try await waitFor("the records' offsets committed", timeout: .seconds(30)) {
                let scrape = try await Observability.Scrape(try workerMetrics(stack))
                let partitions = scrape.samples.keys.filter { $0.hasPrefix("llmgw_consumer_lag{topic=\"llm.jobs.openai\"") }
                return !partitions.isEmpty && scrape.sum("llmgw_consumer_lag", "topic=\"llm.jobs.openai\"") == 0
            }
        }

        @Test func waitedForJobsStartFromHintsRunOnceAndCommitTheirRecords() async throws {
            try await withStack(try await GatewayStack.start(extra: Self.slowFetch)) { stack in
                let redis = try Self.redis()
                defer { redis.shutdown() }
                let run = TestStack.unique("hinted")
                var ids: [String] = []
                for index in 0..<20 {
                    let prompt = "\(run) \(index)"
                    let reply = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": prompt])
                    #expect(reply.status == 200, "\(reply.text)")
                    #expect(reply.json?["response"] as? String == "mock reply: \(prompt)")
                    ids.append(try #require(reply.json?["job_id"] as? String))
                    #expect(try await stack.mockCalls(prompt: prompt) == 1)
                }
                let metrics = try await Observability.Scrape(try Self.workerMetrics(stack))
                let started = metrics["llmgw_dispatch_hints_total{outcome=\"started\"}"]
                let ignored = metrics["llmgw_dispatch_hints_total{outcome=\"ignored\"}"]
                print("20 sync jobs with a 300 ms fetch wait: \(Int(started)) started from hints, \(Int(ignored)) hints ignored")
                // Every request sent one hint; with records 300 ms behind, nearly all jobs start from theirs.
                #expect(started + ignored == 20)
                #expect(started >= 15)
                // The records arrive later and run nothing: one start and one end per job, one provider call each.
                for id in ids {
                    #expect(try await Self.eventTypes(id, redis: redis) == ["queued", "started", "completed"], "job \(id)")
                }
                #expect(metrics.sum("llmgw_jobs_total", "outcome=\"completed\"") == 20)
                // Each record's offset is committed once its job ended: no lag is left.
                try await Self.waitForCommittedOffsets(stack)
            }
        }

        @Test func asyncJobsAndDisabledHintsRunFromRecordsOnly() async throws {
            try await withStack(try await GatewayStack.start(extra: Self.slowFetch.merging(["LLMGW_DISPATCH_HINTS": "false"]) { $1 })) { stack in
                let redis = try Self.redis()
                defer { redis.shutdown() }
                // A worker without hints does not subscribe.
                #expect(try await Self.subscribers(redis) == Array(repeating: 0, count: 6))
                let prompt = TestStack.unique("unhinted")
                let reply = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": prompt])
                #expect(reply.status == 200, "\(reply.text)")
                #expect(try await stack.mockCalls(prompt: prompt) == 1)
                let metrics = try await Observability.Scrape(try Self.workerMetrics(stack))
                #expect(metrics.sum("llmgw_dispatch_hints_total") == 0)
            }
            // With hints on, an async job (202, nobody waits) sends none either.
            try await withStack(try await GatewayStack.start()) { stack in
                let reply = try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": TestStack.unique("async")])
                #expect(reply.status == 202)
                let job = try await stack.waitForJob(try #require(reply.json?["id"] as? String))
                #expect(job["status"] as? String == "completed")
                let metrics = try await Observability.Scrape(try Self.workerMetrics(stack))
                #expect(metrics.sum("llmgw_dispatch_hints_total") == 0)
            }
        }

        @Test func malformedAndForgedHintsChangeNothing() async throws {
            try await withStack(try await GatewayStack.start()) { stack in
                let redis = try Self.redis()
                defer { redis.shutdown() }
                let channel = RedisArgument(Self.channels[0])
                try await waitFor("the worker subscribed to its partitions' hints", timeout: .seconds(30)) { try await Self.subscribers(redis) == Array(repeating: 1, count: 6) }
                // Garbage, and a well-formed hint of a job that was never recorded: its claim finds no job record.
                let forgedPrompt = TestStack.unique("forged")
                let forgedID = JobID.make(milliseconds: UInt64(Date().timeIntervalSince1970 * 1000))
                let envelope = JobEnvelope(
                    id: forgedID, provider: "openai",
                    request: ChatRequest(model: "gpt-4o-mini", messages: [.user(forgedPrompt)]),
                    enqueuedAt: 0, replyTo: nil)
                let forged = DispatchHint(partition: 0, offset: Int64(Int32.max), jobID: forgedID, payload: Array(try JSONEncoder().encode(envelope)))
                // The same hint on the channel of another partition than its own.
                var misrouted = forged
                misrouted.partition = 1
                for message in [Array("nonsense".utf8), Array("0 1 \(forgedID)\n{not json".utf8), forged.encoded, misrouted.encoded] {
                    let receivers = try await redis.command("PUBLISH", channel, RedisArgument(message))
                    #expect(receivers.integer == 1)
                }
                // The worker still serves, and the forged job reached no provider.
                let prompt = TestStack.unique("after-garbage")
                let reply = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": prompt])
                #expect(reply.status == 200, "\(reply.text)")
                #expect(try await stack.mockCalls(prompt: prompt) == 1)
                #expect(try await stack.mockCalls(prompt: forgedPrompt) == 0)
                #expect(try await redis.command("EXISTS", RedisArgument(RedisKeys.job(forgedID))).integer == 0)
            }
        }

        @Test func eachHintReachesOnlyItsPartitionsOwnerAcrossRebalances() async throws {
            try await withStack(try await GatewayStack.start()) { stack in
                let redis = try Self.redis()
                defer { redis.shutdown() }
                let one = Array(repeating: 1, count: 6)
                try await waitFor("one worker subscribed to every partition", timeout: .seconds(30)) { try await Self.subscribers(redis) == one }
                let firstPort = try #require(stack.workerHTTPPorts.first)
                let assigned = { (port: Int) async throws -> Int in
                    try await HTTP.get("http://127.0.0.1:\(port)/readyz").json?["assigned_partitions"] as? Int ?? -1
                }
                let alone = try await assigned(firstPort)

                // A second worker joins: the partitions split, and each channel keeps exactly one subscriber, its owner.
                let second = try await stack.startWorker()
                try await waitFor("the partitions split between the two workers", timeout: .seconds(60)) {
                    let partitions = try await assigned(firstPort)
                    let channels = try await Self.subscribers(redis)
                    return partitions < alone && channels == one
                }
                let run = TestStack.unique("two-workers")
                for index in 0..<12 {
                    let prompt = "\(run) \(index)"
                    let reply = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": prompt])
                    #expect(reply.status == 200, "\(reply.text)")
                    #expect(try await stack.mockCalls(prompt: prompt) == 1)
                }
                // Twelve hints, each delivered to one worker (with every worker subscribed to the whole topic, 24).
                var received = 0.0
                for port in stack.workerHTTPPorts {
                    received += try await Observability.Scrape("http://127.0.0.1:\(port)/metrics").sum("llmgw_dispatch_hints_total")
                }
                #expect(received == 12)

                // The second worker leaves: the first owns every partition, and hears every channel, again.
                second.signal(SIGTERM)
                #expect(await second.waitForExit(timeout: .seconds(30)) == 0)
                try await waitFor("the first worker owning every partition again", timeout: .seconds(60)) {
                    let partitions = try await assigned(firstPort)
                    let channels = try await Self.subscribers(redis)
                    return partitions == alone && channels == one
                }
                let prompt = TestStack.unique("after-leave")
                let reply = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": prompt])
                #expect(reply.status == 200, "\(reply.text)")
                let metrics = try await Observability.Scrape(try Self.workerMetrics(stack))
                #expect(metrics.sum("llmgw_dispatch_hints_total") >= 1)
            }
        }

        @Test func aFailedHintRunIsDeadLetteredOnceWithItsRecordsPosition() async throws {
            try await withStack(try await GatewayStack.start(extra: Self.slowFetch)) { stack in
                let prompt = TestStack.unique("hinted-400") + " [mock:status=400]"
                let reply = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": prompt])
                #expect(reply.status == 400, "\(reply.text)")
                #expect(try await stack.mockCalls(prompt: prompt) == 1)
                let metrics = try await Observability.Scrape(try Self.workerMetrics(stack))
                #expect(metrics["llmgw_dispatch_hints_total{outcome=\"started\"}"] >= 1)
                // Wait until the record was handed over and committed: a second dead letter would be written by then.
                try await Self.waitForCommittedOffsets(stack)

                let logger = Logger(label: "test")
                var configuration = KafkaConfiguration(brokers: try TestStack.brokers)
                configuration.sessionTimeoutMs = 6000
                // The job's record on its topic: where the dead letter must point.
                let jobReader = try KafkaConsumer(configuration: configuration, groupID: TestStack.unique("job-reader"), topics: ["llm.jobs.openai"], maxInFlight: 10_000, logger: logger)
                defer { jobReader.shutdown() }
                let record = try await firstMessage(in: jobReader, timeout: .seconds(60)) { String(decoding: $0.value, as: UTF8.self).contains(prompt) }
                let key = try #require(record.key)

                // A sentinel behind the job's dead letters, on the same partition (same key): every letter is before it.
                let producer = try KafkaProducer(configuration: configuration, logger: logger)
                defer { producer.shutdown() }
                let sentinel = TestStack.unique("sentinel")
                try await producer.send(topic: Topics.deadLetters, key: key, value: Array(sentinel.utf8))
                let letters = try await collect(from: configuration, topic: Topics.deadLetters, until: sentinel) {
                    String(decoding: $0.value, as: UTF8.self).contains(prompt)
                }
                #expect(letters.count == 1)
                let first = try #require(letters.first)
                let letter = try #require(try JSONSerialization.jsonObject(with: Data(first.value)) as? [String: Any])
                #expect(letter["topic"] as? String == "llm.jobs.openai")
                #expect(letter["partition"] as? Int == Int(record.partition))
                #expect((letter["offset"] as? NSNumber)?.int64Value == record.offset)
                #expect((letter["error"] as? String)?.contains("400") == true)
            }
        }

        @Test func aKilledWorkersHintRunIsTakenOverFromTheRecord() async throws {
            try await withStack(try GatewayStack(extra: Self.slowFetch)) { stack in
                try await stack.startMock()
                let first = try await stack.startWorker()
                try await stack.startIngress()
                let prompt = TestStack.unique("hinted-kill") + " [mock:delay_ms=1500]"
                let pending = Task { try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": prompt, "timeout": 60]) }
                try await waitFor("the provider call", timeout: .seconds(30)) { try await stack.mockCalls(prompt: prompt) == 1 }
                first.signal(SIGKILL)
                #expect(await first.waitForExit(timeout: .seconds(10)) != nil)
                try await stack.startWorker()
                let reply = try await pending.value
                #expect(reply.status == 200, "\(reply.text)")
                #expect(reply.json?["response"] as? String == "mock reply: \(prompt)")
                // The call in flight at the kill, and the new worker's run from the record: nothing else.
                #expect(try await stack.mockCalls(prompt: prompt) == 2)
            }
        }
    }
}

/// The records of `topic` (read from its start by a new group) that match `predicate`, up to `sentinel`'s record.
func collect(from configuration: KafkaConfiguration, topic: String, until sentinel: String, where predicate: @escaping @Sendable (KafkaMessage) -> Bool) async throws -> [KafkaMessage] {
    let consumer = try KafkaConsumer(configuration: configuration, groupID: TestStack.unique("collector"), topics: [topic], maxInFlight: 10_000, logger: Logger(label: "test"))
    defer { consumer.shutdown() }
    return try await withThrowingTaskGroup(of: [KafkaMessage]?.self) { group in
        group.addTask {
            var matches: [KafkaMessage] = []
            for await message in consumer.messages {
                consumer.finished(message)
                if String(decoding: message.value, as: UTF8.self) == sentinel { return matches }
                if predicate(message) { matches.append(message) }
            }
            return nil
        }
        group.addTask {
            try await Task.sleep(for: .seconds(60))
            return nil
        }
        let first = try await group.next() ?? nil
        group.cancelAll()
        consumer.stopFetching()
        return try #require(first, "the sentinel \(sentinel) did not arrive")
    }
}

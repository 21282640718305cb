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
    /// Faults injected into real processes: nothing accepted may be lost.
    @Suite(.serialized)
    struct Faults {
        @Test func killedWorkerJobsAllCompleteAfterANewWorkerStarts() async throws {
            let stack = try GatewayStack(extra: ["LLMGW_JOB_LEASE_SECONDS": "3"])
            try await withStack(stack) { stack in
                try await stack.startMock()
                let first = try await stack.startWorker()
                try await stack.startIngress()
                let run = TestStack.unique("kill9")
                let prompts = (0..<40).map { "\(run) \($0) [mock:delay_ms=1500]" }
                var ids: [String: String] = [:]
                for prompt in prompts {
                    let reply = try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": prompt])
                    #expect(reply.status == 202)
                    ids[prompt] = try #require(reply.json?["id"] as? String)
                }
                // Kill the worker while the provider calls are in flight.
                try await waitFor("calls in flight", timeout: .seconds(30)) {
                    var started = 0
                    for prompt in prompts.prefix(10) { started += try await stack.mockCalls(prompt: prompt) }
                    return started >= 5
                }
                first.signal(SIGKILL)
                #expect(await first.waitForExit(timeout: .seconds(10)) != nil)
                try await stack.startWorker()
                var duplicates = 0
                for (prompt, id) in ids {
                    let job = try await stack.waitForJob(id, timeout: .seconds(90))
                    #expect(job["status"] as? String == "completed", "job \(id): \(job)")
                    #expect((job["result"] as? [String: Any])?["text"] as? String == "mock reply: \(prompt)")
                    let calls = try await stack.mockCalls(prompt: prompt)
                    #expect(calls >= 1)
                    duplicates += max(0, calls - 1)
                }
                print("kill -9 of a worker with 40 jobs in flight: 40/40 completed, \(duplicates) duplicate provider calls")
                // Only calls that were in flight at the kill may be repeated.
                #expect(duplicates <= 40)
            }
        }

        @Test func sigtermDrainsInFlightJobs() async throws {
            try await withStack(try GatewayStack()) { stack in
                try await stack.startMock()
                let worker = try await stack.startWorker()
                try await stack.startIngress()
                let run = TestStack.unique("drain")
                var ids: [String: String] = [:]
                for index in 0..<10 {
                    let prompt = "\(run) \(index) [mock:delay_ms=1500]"
                    let reply = try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": prompt])
                    ids[prompt] = try #require(reply.json?["id"] as? String)
                }
                try await waitFor("all calls in flight", timeout: .seconds(30)) {
                    var started = 0
                    for prompt in ids.keys { started += try await stack.mockCalls(prompt: prompt) }
                    return started == 10
                }
                worker.signal(SIGTERM)
                let status = await worker.waitForExit(timeout: .seconds(20))
                #expect(status == 0, "worker exit status \(String(describing: status))")
                // No other worker runs: the drained worker itself finished every job.
                for (prompt, id) in ids {
                    let job = try #require(try await HTTP.get("\(stack.baseURL)/gateway/jobs/\(id)").json)
                    #expect(job["status"] as? String == "completed")
                    #expect(try await stack.mockCalls(prompt: prompt) == 1)
                }
            }
        }

        @Test func stoppedBrokerGives503QuicklyAndTheGatewayRecovers() async throws {
            let broker = OwnBroker()
            try await broker.start()
            defer { broker.process?.signal(SIGKILL) }
            try await withStack(try await GatewayStack.start(brokers: broker.brokers)) { stack in
                let before = TestStack.unique("before-stop")
                let accepted = try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": before])
                #expect(accepted.status == 202)
                let acceptedID = try #require(accepted.json?["id"] as? String)
                _ = try await stack.waitForJob(acceptedID)
                // The key's budget holds the finished job's real tokens; a refused request must leave it so.
                let redis = RedisClient(endpoint: RedisEndpointSettings(host: "127.0.0.1", port: try TestStack.redisPort), connections: 1, logger: Logger(label: "test"))
                defer { redis.shutdown() }
                let budget = RedisArgument(RedisKeys.budget(tenant: "key:\(try stack.defaultKeyID)", period: UsagePeriod.dayAndMonth(Date().timeIntervalSince1970).day))
                let spentBefore = try await redis.command("HGET", budget, "tokens").integer

                broker.process?.signal(SIGSTOP)
                let started = ContinuousClock.now
                let refused = try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": TestStack.unique("during-stop"), "max_tokens": 500])
                let elapsed = ContinuousClock.now - started
                #expect(refused.status == 503, "\(refused.text)")
                #expect((refused.json?["error"] as? [String: Any])?["code"] as? String == "queue_unavailable")
                #expect(refused.header("Retry-After") != nil)
                #expect(elapsed < .seconds(10), "503 took \(elapsed)")
                // Its admission estimate (over 500 tokens) was given back with the 503.
                #expect(try await redis.command("HGET", budget, "tokens").integer == spentBefore)

                broker.process?.signal(SIGCONT)
                // Recovery without a restart: new jobs are accepted and run.
                var recoveredID: String?
                try await waitFor("the ingress to accept jobs again", timeout: .seconds(60), every: .milliseconds(500)) {
                    let reply = try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": TestStack.unique("after-stop")])
                    recoveredID = reply.json?["id"] as? String
                    return reply.status == 202
                }
                let job = try await stack.waitForJob(try #require(recoveredID), timeout: .seconds(90))
                #expect(job["status"] as? String == "completed")
            }
        }

        /// An admin retry that cannot reach the broker answers 503 and leaves the failed job as it was, its error and
        /// timestamps included; with the broker back, the same retry runs the job.
        @Test func aRetryWithTheBrokerStoppedLeavesTheFailedJobAsItWas() async throws {
            let broker = OwnBroker()
            try await broker.start()
            defer { broker.process?.signal(SIGKILL) }
            try await withStack(try await GatewayStack.start(brokers: broker.brokers, extra: ["LLMGW_PROVIDER_MAX_ATTEMPTS": "1"])) { stack in
                let prompt = "\(TestStack.unique("retry-stopped")) [mock:fail=1,status=500]"
                let id = try #require(try await stack.submit(["provider": "openai", "prompt": prompt]).json?["id"] as? String)
                let failed = try await stack.waitForJob(id)
                #expect(failed["status"] as? String == "failed", "\(failed)")
                let error = try #require(failed["error"] as? [String: Any], "\(failed)")

                broker.process?.signal(SIGSTOP)
                let refused = try await stack.admin("POST", "/admin/jobs/\(id)/retry")
                broker.process?.signal(SIGCONT)
                #expect(refused.status == 503, "\(refused.text)")
                #expect(errorCode(refused) == "queue_unavailable")
                let kept = try await stack.waitForJob(id)
                #expect(kept["status"] as? String == "failed", "\(kept)")
                #expect((kept["error"] as? [String: Any])?["message"] as? String == error["message"] as? String, "\(kept)")
                #expect(kept["completed_at"] as? Double == failed["completed_at"] as? Double)
                #expect(kept["started_at"] as? Double == failed["started_at"] as? Double)

                var retried: HTTP.Reply?
                try await waitFor("the retry to be accepted with the broker back", timeout: .seconds(60), every: .milliseconds(500)) {
                    retried = try await stack.admin("POST", "/admin/jobs/\(id)/retry")
                    return retried?.status == 202
                }
                let completed = try await stack.waitForJob(id, timeout: .seconds(90))
                #expect(completed["status"] as? String == "completed", "\(completed)")
                #expect(try await stack.mockCalls(prompt: prompt) == 2)
            }
        }

        @Test func killedBrokerGives503AndARestartedBrokerIsPickedUp() async throws {
            let broker = OwnBroker()
            try await broker.start()
            defer { broker.process?.signal(SIGKILL) }
            try await withStack(try await GatewayStack.start(brokers: broker.brokers)) { stack in
                await broker.kill()
                let started = ContinuousClock.now
                let refused = try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": TestStack.unique("down")])
                #expect(refused.status == 503, "\(refused.text)")
                #expect(ContinuousClock.now - started < .seconds(10))
                let ready = try await HTTP.get("\(stack.baseURL)/readyz")
                #expect(ready.status == 503)

                // The local broker keeps data in memory only: a restarted one starts empty, and its topics are
                // created again with new topic ids. The ingress's producer follows without a restart.
                try await broker.start()
                var recoveredID: String?
                try await waitFor("the ingress to accept jobs again", timeout: .seconds(60), every: .milliseconds(500)) {
                    let reply = try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": TestStack.unique("back")])
                    recoveredID = reply.json?["id"] as? String
                    return reply.status == 202
                }
                #expect(try await HTTP.get("\(stack.baseURL)/readyz").status == 200)
                // Consumers recovering from a stopped broker are covered above. A restarted in-memory broker
                // recreates its topics under new topic ids, which librdkafka's consumer does not follow; a
                // persistent Kafka keeps its topic ids across restarts.
                #expect(recoveredID != nil)
            }
        }

        @Test func restartedRedisLosesNothing() async throws {
            let redis = try OwnRedis()
            try await redis.start()
            defer { redis.process?.signal(SIGKILL) }
            try await withStack(try await GatewayStack.start(redisPort: redis.port)) { stack in
                let run = TestStack.unique("redis-restart")
                var ids: [String: String] = [:]
                for index in 0..<10 {
                    let prompt = "\(run) \(index) [mock:delay_ms=1000]"
                    let reply = try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": prompt])
                    #expect(reply.status == 202)
                    ids[prompt] = try #require(reply.json?["id"] as? String)
                }
                // Redis goes away while the jobs run, so the workers must hold their results until it is back.
                await redis.stop()
                let refused = try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": TestStack.unique("no-redis")])
                #expect(refused.status == 503, "\(refused.text)")
                #expect((refused.json?["error"] as? [String: Any])?["code"] as? String == "store_unavailable")
                try await Task.sleep(for: .seconds(2))
                try await redis.start()
                for (prompt, id) in ids {
                    let job = try await stack.waitForJob(id, timeout: .seconds(60))
                    #expect(job["status"] as? String == "completed", "\(job)")
                    #expect((job["result"] as? [String: Any])?["text"] as? String == "mock reply: \(prompt)")
                }
                let after = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": TestStack.unique("redis-back")])
                #expect(after.status == 200, "\(after.text)")
            }
        }

        @Test func malformedRecordIsDeadLetteredAndThePartitionMovesOn() async throws {
            try await withStack(try await GatewayStack.start()) { stack in
                let logger = Logger(label: "test")
                let producer = try KafkaProducer(configuration: KafkaConfiguration(brokers: try TestStack.brokers), logger: logger)
                defer { producer.shutdown() }
                let marker = TestStack.unique("poison")
                // Same key on every record, so they land on one partition, behind the poison.
                let key = Array("poison-key".utf8)
                try await producer.send(topic: "llm.jobs.openai", key: key, value: Array("{\"not a job\": \"\(marker)\"".utf8))
                let prompt = TestStack.unique("behind-poison")
                let reply = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": prompt, "timeout": 30])
                #expect(reply.status == 200, "\(reply.text)")

                var configuration = KafkaConfiguration(brokers: try TestStack.brokers)
                configuration.sessionTimeoutMs = 6000
                let consumer = try KafkaConsumer(
                    configuration: configuration, groupID: TestStack.unique("dlq-reader"),
                    topics: ["llm.jobs.dead-letter"], maxInFlight: 1000, logger: logger)
                defer { consumer.shutdown() }
                let letter = try await firstMessage(in: consumer, timeout: .seconds(60)) { message in
                    String(decoding: message.value, as: UTF8.self).contains(marker)
                }
                let json = try #require(try JSONSerialization.jsonObject(with: Data(letter.value)) as? [String: Any])
                #expect(json["error"] as? String == "undecodable job record")
                #expect(json["topic"] as? String == "llm.jobs.openai")
                #expect((json["record"] as? String)?.contains(marker) == true)
            }
        }
    }
}

/// The first message matching `predicate`, or a test failure after `timeout`.
func firstMessage(in consumer: KafkaConsumer, timeout: Duration, where predicate: @escaping @Sendable (KafkaMessage) -> Bool) async throws -> KafkaMessage {
    try await withThrowingTaskGroup(of: KafkaMessage?.self) { group in
        group.addTask {
            for await message in consumer.messages {
                consumer.finished(message)
                if predicate(message) { return message }
            }
            return nil
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        let first = try await group.next() ?? nil
        group.cancelAll()
        consumer.stopFetching()
        return try #require(first, "no matching message within \(timeout)")
    }
}

/// A Redis server of a test's own, with an append-only file so that a restart keeps its data.
final class OwnRedis: @unchecked Sendable {
    // Marked `@unchecked Sendable` because `process` is only replaced by the test that owns the server.
    let port = TestStack.freePort()
    let directory: String
    private(set) var process: ChildProcess?

    init() throws {
        directory = "\(TestStack.workDirectory)/redis-\(port)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// A client of this server.
    func client(timeoutMs: Int = 2_000, logger: Logger) -> RedisClient {
        RedisClient(endpoint: RedisEndpointSettings(host: "127.0.0.1", port: port), connections: 1, timeoutMs: timeoutMs, logger: logger)
    }

    func start() async throws {
        process = try ChildProcess(name: "redis", executable: "/usr/bin/redis-server", arguments: [
            "--port", String(port), "--bind", "127.0.0.1", "--dir", directory, "--appendonly", "yes",
            "--appendfsync", "always", "--save", "",
        ], environment: [:])
        try await waitFor("redis on \(port)", timeout: .seconds(20)) { canConnect(port: port) }
    }

    func stop() async {
        process?.signal(SIGKILL)
        _ = await process?.waitForExit(timeout: .seconds(10))
    }
}

import Foundation
import NIOConcurrencyHelpers
import Protocol
import Testing

extension GatewayStack {
    func submit(_ body: [String: Any], headers: [(String, String)] = []) async throws -> HTTP.Reply {
        try await HTTP.post("\(baseURL)/gateway/jobs", json: body, headers: headers)
    }

    /// Waits until the worker logged that it skipped job `id` because the job had already ended.
    func waitForSkip(_ id: String, worker: ChildProcess) async throws {
        try await waitFor("the worker to skip \(id)", timeout: .seconds(60)) {
            worker.log.split(separator: "\n").contains { $0.contains(id) && $0.contains("already ended") }
        }
    }
}

func errorCode(_ reply: HTTP.Reply) -> String? {
    (reply.json?["error"] as? [String: Any])?["code"] as? String
}

extension Integration {
    /// Idempotency, cancellation, deadlines, priority lanes and re-driving, against real processes.
    @Suite(.serialized)
    struct Lifecycle {
        @Test func fiftyConcurrentIdenticalSubmissionsCreateOneJob() async throws {
            // The response cache is off: every answer here must come from idempotency alone.
            try await withStack(try await GatewayStack.start(extra: ["LLMGW_CACHE_TTL_SECONDS": "0"])) { stack in
                let prompt = TestStack.unique("idempotent")
                let key = TestStack.unique("key")
                let ids = try await withThrowingTaskGroup(of: (Int, String?, String?).self) { group in
                    for _ in 0..<50 {
                        group.addTask {
                            let reply = try await stack.submit(["provider": "openai", "prompt": prompt], headers: [("Idempotency-Key", key)])
                            return (reply.status, reply.json?["id"] as? String, reply.header("Idempotent-Replayed"))
                        }
                    }
                    var results: [(Int, String?, String?)] = []
                    for try await result in group { results.append(result) }
                    return results
                }
                #expect(ids.allSatisfy { $0.0 == 202 }, "\(ids.map(\.0))")
                #expect(Set(ids.compactMap(\.1)).count == 1, "\(Set(ids.compactMap(\.1)))")
                #expect(ids.filter { $0.2 == "true" }.count == 49)
                let id = try #require(ids.first?.1)
                let job = try await stack.waitForJob(id)
                #expect(job["status"] as? String == "completed")
                #expect(try await stack.mockCalls(prompt: prompt) == 1)

                // The synchronous route returns the same job's answer for the same key.
                let query = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": prompt], headers: [("Idempotency-Key", key)])
                #expect(query.status == 200, "\(query.text)")
                #expect(query.json?["job_id"] as? String == id)
                #expect(try await stack.mockCalls(prompt: prompt) == 1)
                // Another key is another job.
                let other = try await stack.submit(["provider": "openai", "prompt": prompt], headers: [("Idempotency-Key", key + "-2")])
                #expect(other.json?["id"] as? String != id)
                // The same key with another request is refused, on both routes, and runs nothing.
                let changed = prompt + " changed"
                for route in ["/gateway/jobs", "/gateway/query"] {
                    let reused = try await HTTP.post("\(stack.baseURL)\(route)", json: ["provider": "openai", "prompt": changed], headers: [("Idempotency-Key", key)])
                    #expect(reused.status == 422, "\(route): \(reused.text)")
                    #expect((reused.json?["error"] as? [String: Any])?["code"] as? String == "idempotency_key_reused")
                    #expect((reused.json?["error"] as? [String: Any])?["param"] as? String == "Idempotency-Key")
                }
                let otherModel = try await stack.submit(["provider": "openai", "model": "gpt-4o", "prompt": prompt], headers: [("Idempotency-Key", key)])
                #expect(otherModel.status == 422, "\(otherModel.text)")
                #expect(try await stack.mockCalls(prompt: changed) == 0)
            }
        }

        @Test func queuedJobsCancelAndExpireWithoutCallingTheProvider() async throws {
            let stack = try GatewayStack(extra: ["LLMGW_LOG_LEVEL": "debug"])
            try await withStack(stack) { stack in
                try await stack.startMock()
                try await stack.startIngress()
                // No worker yet: the jobs stay queued.
                let cancelPrompt = TestStack.unique("cancel-queued")
                let cancelled = try #require(try await stack.submit(["provider": "openai", "prompt": cancelPrompt]).json?["id"] as? String)
                let cancel = try await HTTP.post("\(stack.baseURL)/gateway/jobs/\(cancelled)/cancel", json: [:])
                #expect(cancel.status == 200, "\(cancel.text)")
                #expect(cancel.json?["status"] as? String == "cancelled")

                let expirePrompt = TestStack.unique("expire")
                let reply = try await stack.submit(["provider": "openai", "prompt": expirePrompt, "ttl_seconds": 1])
                #expect(reply.status == 202, "\(reply.text)")
                let expiring = try #require(reply.json?["id"] as? String)
                let deadline = Date().addingTimeInterval(1.2)
                try await waitFor("the deadline to pass", timeout: .seconds(5)) { Date() > deadline }

                let past = try await stack.submit(["provider": "openai", "prompt": "x", "deadline": "2001-01-01T00:00:00Z"])
                #expect(past.status == 400)
                #expect((past.json?["error"] as? [String: Any])?["param"] as? String == "deadline")

                let worker = try await stack.startWorker()
                let expired = try await stack.waitForJob(expiring)
                #expect(expired["status"] as? String == "expired")
                try await stack.waitForSkip(cancelled, worker: worker)
                #expect(try #require(try await HTTP.get("\(stack.baseURL)/gateway/jobs/\(cancelled)").json)["status"] as? String == "cancelled")
                #expect(try await stack.mockCalls(prompt: cancelPrompt) == 0)
                #expect(try await stack.mockCalls(prompt: expirePrompt) == 0)

                // A job that ended is not changed by a cancel, and the answer says why.
                let again = try await HTTP.post("\(stack.baseURL)/gateway/jobs/\(expiring)/cancel", json: [:])
                #expect(again.status == 409)
                #expect(errorCode(again) == "job_already_expired")
                #expect((again.json?["error"] as? [String: Any])?["message"] as? String != nil)
            }
        }

        @Test func cancellingARunningJobAbortsTheUpstreamCall() async throws {
            // One slot and a long provider timeout: only an aborted call frees the slot for the next job in time.
            let stack = try GatewayStack(extra: ["LLMGW_WORKER_CONCURRENCY": "1", "LLMGW_PROVIDER_TIMEOUT_SECONDS": "120"])
            try await withStack(stack) { stack in
                try await stack.startMock()
                try await stack.startWorker()
                try await stack.startIngress()
                let prompt = "\(TestStack.unique("cancel-running")) [mock:delay_ms=60000]"
                let id = try #require(try await stack.submit(["provider": "openai", "prompt": prompt]).json?["id"] as? String)
                try await waitFor("the provider call to start", timeout: .seconds(30)) { try await stack.mockCalls(prompt: prompt) == 1 }
                let cancel = try await HTTP.post("\(stack.baseURL)/gateway/jobs/\(id)/cancel", json: [:])
                #expect(cancel.status == 200, "\(cancel.text)")
                #expect(cancel.json?["status"] as? String == "cancelled")

                let cancelledAt = ContinuousClock.now
                let next = TestStack.unique("after-cancel")
                let query = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": next, "timeout": 50])
                #expect(query.status == 200, "\(query.text)")
                let waited = ContinuousClock.now - cancelledAt
                // The cancelled call would have held the only slot for 60 s.
                #expect(waited < .seconds(30), "the next job waited \(waited)")
                let job = try #require(try await HTTP.get("\(stack.baseURL)/gateway/jobs/\(id)").json)
                #expect(job["status"] as? String == "cancelled")
                #expect(try await stack.mockCalls(prompt: prompt) == 1)

                let finished = try await HTTP.post("\(stack.baseURL)/gateway/jobs/\(try #require(query.json?["job_id"] as? String))/cancel", json: [:])
                #expect(finished.status == 409)
                #expect(errorCode(finished) == "job_already_completed")
            }
        }

        @Test func failedJobsAreReDrivenByTheAdminAPI() async throws {
            try await withStack(try await GatewayStack.start(extra: ["LLMGW_PROVIDER_MAX_ATTEMPTS": "2"])) { stack in
                // Two failing calls fail the job; the re-driven run makes the third call, which succeeds.
                let prompt = "\(TestStack.unique("redrive")) [mock:fail=2,status=500]"
                let id = try #require(try await stack.submit(["provider": "openai", "prompt": prompt]).json?["id"] as? String)
                let failed = try await stack.waitForJob(id)
                #expect(failed["status"] as? String == "failed")
                #expect(try await stack.mockCalls(prompt: prompt) == 2)

                let unauthorized = try await HTTP.post("\(stack.baseURL)/admin/jobs/\(id)/retry", json: [:])
                #expect(unauthorized.status == 401)
                let retry = try await stack.admin("POST", "/admin/jobs/\(id)/retry")
                #expect(retry.status == 202, "\(retry.text)")
                #expect(retry.json?["status"] as? String == "queued")
                let completed = try await stack.waitForJob(id)
                #expect(completed["status"] as? String == "completed", "\(completed)")
                #expect(try await stack.mockCalls(prompt: prompt) == 3)

                let refused = try await stack.admin("POST", "/admin/jobs/\(id)/retry")
                #expect(refused.status == 409)
                #expect(errorCode(refused) == "job_not_retryable")
                #expect(try await stack.admin("POST", "/admin/jobs/job_00000000000000000000000000/retry").status == 404)
            }
        }

        /// Each lane's consumers ask the broker with their own fetch wait (`LLMGW_KAFKA_FETCH_WAIT_MS`,
        /// `LLMGW_KAFKA_BATCH_FETCH_WAIT_MS`), as the worker's librdkafka clients report their configuration.
        @Test func eachLanesConsumersUseTheirOwnFetchWait() async throws {
            let stack = try GatewayStack(extra: [
                "LLMGW_KAFKA_DEBUG": "conf", "LLMGW_LOG_LEVEL": "debug",
                "LLMGW_KAFKA_FETCH_WAIT_MS": "40", "LLMGW_KAFKA_BATCH_FETCH_WAIT_MS": "750",
            ])
            try await withStack(stack) { stack in
                let worker = try await stack.startWorker()
                // One dump per client: "Client configuration:", then one "  name = value" line per property.
                var waits: [String: String] = [:]
                var group: String?
                for line in worker.log.split(separator: "\n") {
                    if line.contains("Client configuration:") { group = nil }
                    if let value = Self.configured("group.id", in: line) { group = value }
                    if let value = Self.configured("fetch.wait.max.ms", in: line), let group { waits[group] = value }
                }
                #expect(waits[Topics.consumerGroup(provider: "openai", lane: .interactive)] == "40", "\(waits)")
                #expect(waits[Topics.consumerGroup(provider: "openai", lane: .batch)] == "750", "\(waits)")
            }
        }

        /// The value of `name` in a line of librdkafka's configuration dump.
        static func configured(_ name: String, in line: Substring) -> String? {
            guard let range = line.range(of: "  \(name) = ") else { return nil }
            return String(line[range.upperBound...].prefix { $0 != "\"" })
        }

        /// 5,000 bulk jobs queued in the batch lane do not delay a synchronous query.
        @Test func interactiveQueriesDoNotQueueBehindBulkJobs() async throws {
            let stack = try GatewayStack(extra: ["LLMGW_WORKER_BATCH_CONCURRENCY": "4", "LLMGW_CACHE_TTL_SECONDS": "0"])
            try await withStack(stack) { stack in
                try await stack.startMock()
                try await stack.startWorker()
                try await stack.startIngress()
                let bulk = "\(TestStack.unique("bulk")) [mock:delay_ms=200]"
                // Leftovers expire unrun once the test is over, instead of loading later tests' workers.
                let accepted = NIOLockedValueBox(0)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for lane in 0..<32 {
                        group.addTask {
                            for _ in stride(from: lane, to: 5_000, by: 32) {
                                let reply = try await stack.submit(["provider": "openai", "prompt": bulk, "priority": "batch", "ttl_seconds": 60])
                                if reply.status == 202 { accepted.withLockedValue { $0 += 1 } }
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                #expect(accepted.withLockedValue { $0 } == 5_000)
                let bulkBefore = try await stack.mockCalls(prompt: bulk)

                let started = ContinuousClock.now
                let query = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": TestStack.unique("interactive")])
                let took = ContinuousClock.now - started
                let bulkAfter = try await stack.mockCalls(prompt: bulk)
                #expect(query.status == 200, "\(query.text)")
                print("priority lanes: sync query answered in \(took) while \(bulkAfter)/5000 bulk jobs had run (\(bulkBefore) before it)")
                // Most bulk jobs are still queued when the interactive answer arrives; behind them it would have
                // waited for all 5,000 (over 4 minutes at 4 × 200 ms).
                #expect(bulkAfter < 2_500)
                #expect(bulkAfter - bulkBefore < 100)

                // The batch lane is for async jobs only.
                let syncBatch = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": "x", "priority": "batch"])
                #expect(syncBatch.status == 400)
                #expect((syncBatch.json?["error"] as? [String: Any])?["param"] as? String == "priority")
            }
        }
    }
}

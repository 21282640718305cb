import Foundation
import Testing

extension Integration {
    /// The job pipeline with real processes: ingress → Kafka → worker → mock provider → Redis.
    @Suite(.serialized)
    struct EndToEnd {
        @Test func concurrentAsyncJobsAllComplete() async throws {
            try await withStack(try await GatewayStack.start()) { stack in
                let run = TestStack.unique("bulk")
                let prompts = (0..<200).map { "\(run) job \($0)" }
                let ids = try await withThrowingTaskGroup(of: (String, String).self) { group in
                    for prompt in prompts {
                        group.addTask {
                            let reply = try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": prompt])
                            #expect(reply.status == 202, "\(reply.text)")
                            let id = try #require(reply.json?["id"] as? String)
                            #expect(reply.header("Location") == "/gateway/jobs/\(id)")
                            #expect(reply.json?["status"] as? String == "queued")
                            return (prompt, id)
                        }
                    }
                    return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
                }
                #expect(ids.count == 200)
                #expect(Set(ids.values).count == 200)
                for (prompt, id) in ids {
                    let job = try await stack.waitForJob(id)
                    #expect(job["status"] as? String == "completed")
                    let result = try #require(job["result"] as? [String: Any])
                    #expect(result["text"] as? String == "mock reply: \(prompt)")
                    #expect(job["provider"] as? String == "openai")
                    #expect((job["attempts"] as? Int ?? 0) >= 1)
                    #expect(job["created_at"] is Double)
                    #expect(job["completed_at"] is Double)
                    let usage = try #require(job["usage"] as? [String: Any])
                    #expect((usage["completion_tokens"] as? Int ?? 0) > 0)
                }
            }
        }

        @Test func eventLoopThreadsAndNiceFollowTheRoleDefaultOrTheSetting() async throws {
            let stack = try GatewayStack()
            try await withStack(stack) { stack in
                try await stack.startMock()
                let single = try await stack.startWorker()
                // The six partitions of llm.jobs.openai (scripts/env.sh), the ones `/readyz` counts.
                let every = 6
                try await waitFor("the first worker owning every partition", timeout: .seconds(60)) {
                    try await Self.assignedPartitions(port: stack.workerHTTPPorts[0]) == every
                }
                let double = try await stack.startWorker(extra: ["LLMGW_EVENT_LOOP_THREADS": "2", "LLMGW_NICE": "10"])
                try await stack.startIngress(extra: ["LLMGW_EVENT_LOOP_THREADS": "3"])
                let ingress = try #require(stack.ingress)
                #expect(try Self.eventLoopThreads(of: single.pid) == 1, "a worker runs on one event loop by default")
                #expect(try Self.eventLoopThreads(of: double.pid) == 2)
                #expect(try Self.eventLoopThreads(of: ingress.pid) == 3)
                // Processes keep the niceness they started with (this test's) unless LLMGW_NICE lowers every thread
                // that does their work; nothing lowers a niceness that is higher already.
                let started = Int(getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(getpid())))
                #expect(try Self.workingThreadsNiceness(of: single.pid) == [started])
                #expect(try Self.workingThreadsNiceness(of: double.pid) == [max(started, 10)])
                #expect(try Self.workingThreadsNiceness(of: ingress.pid) == [started])
                // Both workers share the partitions; every query is answered whichever of them runs it.
                for index in 0..<6 {
                    let prompt = TestStack.unique("loops \(index)")
                    let reply = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": prompt])
                    #expect(reply.status == 200, "\(reply.text)")
                    #expect(reply.json?["response"] as? String == "mock reply: \(prompt)")
                }
                // The second worker leaves; the single-loop worker takes every partition back. (Waiting for it
                // also keeps the next test's worker out of a rebalance that both leaving at once leaves open on
                // Tansu.)
                await double.stop()
                try await waitFor("the single-loop worker owning every partition again", timeout: .seconds(60)) {
                    try await Self.assignedPartitions(port: stack.workerHTTPPorts[0]) == every
                }
                let prompt = TestStack.unique("loops alone")
                let reply = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": prompt])
                #expect(reply.json?["response"] as? String == "mock reply: \(prompt)", "\(reply.text)")
            }
        }

        static func assignedPartitions(port: Int) async throws -> Int {
            try await HTTP.get("http://127.0.0.1:\(port)/readyz").json?["assigned_partitions"] as? Int ?? -1
        }

        /// The NIO event-loop threads of a process, by their names in /proc.
        static func eventLoopThreads(of pid: Int32) throws -> Int {
            let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")
            return tasks.filter { task in
                let name = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/comm", encoding: .utf8)) ?? ""
                return name.hasPrefix("NIO-SGLTN-")
            }.count
        }

        /// The niceness of the threads that run a gateway process's work: its main thread, the NIO event loops and
        /// librdkafka's threads. (libdispatch sets its own pool threads' priorities from their QoS.)
        static func workingThreadsNiceness(of pid: Int32) throws -> Set<Int> {
            let working = try niceness(of: pid) { name in
                name == "llm-gateway" || name.hasPrefix("NIO-SGLTN-") || name.hasPrefix("rdk:")
            }
            #expect(working.count >= 3, "main, an event loop and librdkafka's main thread at least")
            return Set(working)
        }

        /// The niceness of each thread of a process whose name `threads` accepts, from /proc/<pid>/task/*/stat.
        static func niceness(of pid: Int32, threads: (String) -> Bool) throws -> [Int] {
            try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task").compactMap { task in
                let name = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/comm", encoding: .utf8)) ?? ""
                guard threads(name.trimmingCharacters(in: .newlines)),
                      let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/stat", encoding: .utf8),
                      let end = stat.lastIndex(of: ")")
                else { return nil }
                // After "pid (comm)" come the fields from the third on; the niceness is the 19th.
                let fields = stat[stat.index(after: end)...].split(separator: " ")
                return fields.count > 16 ? Int(fields[16]) : nil
            }
        }

        @Test func syncQueryAnswersInTheSeedFormat() async throws {
            try await withStack(try await GatewayStack.start()) { stack in
                let prompt = TestStack.unique("sync")
                let reply = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": prompt])
                #expect(reply.status == 200, "\(reply.text)")
                let json = try #require(reply.json)
                #expect(json["cached"] as? Bool == false)
                #expect(json["response"] as? String == "mock reply: \(prompt)")
                #expect(json["provider"] as? String == "openai")
                #expect(json["model"] as? String == "gpt-4o-mini")
                let id = try #require(json["job_id"] as? String)
                let job = try await HTTP.get("\(stack.baseURL)/gateway/jobs/\(id)")
                #expect(job.json?["status"] as? String == "completed")
                #expect(try await stack.mockCalls(prompt: prompt) == 1)

                // The chat form and an explicit model work too.
                let chat = try await HTTP.post("\(stack.baseURL)/gateway/query", json: [
                    "provider": "openai", "model": "gpt-4o",
                    "messages": [["role": "system", "content": "be brief"], ["role": "user", "content": prompt + " chat"]],
                    "max_tokens": 50, "temperature": 0.2, "top_p": 0.9,
                ])
                #expect(chat.status == 200, "\(chat.text)")
                #expect(chat.json?["response"] as? String == "mock reply: \(prompt) chat")
                #expect(chat.json?["model"] as? String == "gpt-4o")
            }
        }

        @Test func syncQueryTimeoutAnswers202WithTheJob() async throws {
            try await withStack(try await GatewayStack.start()) { stack in
                let prompt = TestStack.unique("slow") + " [mock:delay_ms=3000]"
                let reply = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": prompt, "timeout": 0.5])
                #expect(reply.status == 202, "\(reply.text)")
                let id = try #require(reply.json?["id"] as? String)
                #expect(reply.header("Location") == "/gateway/jobs/\(id)")
                let job = try await stack.waitForJob(id)
                #expect(job["status"] as? String == "completed")
            }
        }

        @Test func errorsUseTheOpenAIShape() async throws {
            try await withStack(try await GatewayStack.start(extra: ["LLMGW_MAX_BODY_BYTES": "2048"])) { stack in
                func expectError(_ reply: HTTP.Reply, status: Int, code: String) throws {
                    #expect(reply.status == status, "\(reply.text)")
                    let error = try #require(reply.json?["error"] as? [String: Any], "\(reply.text)")
                    #expect(error["code"] as? String == code)
                    #expect((error["message"] as? String ?? "").isEmpty == false)
                    #expect(error["type"] is String)
                    #expect(error.keys.contains("param"))
                }
                try expectError(try await HTTP.get("\(stack.baseURL)/gateway/jobs/job_01ARZ3NDEKTSV4RRFFQ69G5FAV"), status: 404, code: "job_not_found")
                try expectError(try await HTTP.get("\(stack.baseURL)/gateway/jobs/nonsense"), status: 404, code: "job_not_found")
                try expectError(try await HTTP.post("\(stack.baseURL)/gateway/query", raw: Array("{not json".utf8)), status: 400, code: "invalid_json")
                try expectError(try await HTTP.post("\(stack.baseURL)/gateway/jobs", raw: Array("{not json".utf8)), status: 400, code: "invalid_json")
                try expectError(try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "nope", "prompt": "x"]), status: 400, code: "unknown_provider")
                try expectError(try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai"]), status: 400, code: "invalid_request")
                try expectError(try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": 5]), status: 400, code: "invalid_json")
                // A missing field names its path as OpenAI does, in `param` and in the message.
                let roleless = try await HTTP.post("\(stack.baseURL)/v1/chat/completions", json: ["model": "openai/gpt-4o-mini", "messages": [["content": "hi"]]])
                try expectError(roleless, status: 400, code: "invalid_json")
                let detail = try #require(roleless.json?["error"] as? [String: Any])
                #expect(detail["param"] as? String == "messages.[0].role", "\(roleless.text)")
                #expect(detail["message"] as? String == "Missing required field 'messages.[0].role'.", "\(roleless.text)")
                try expectError(try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": "x", "temperature": 9]), status: 400, code: "invalid_request")
                let big = String(repeating: "a", count: 4096)
                try expectError(try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": big]), status: 413, code: "request_too_large")
                try expectError(try await HTTP.get("\(stack.baseURL)/no/such/route"), status: 404, code: "not_found")
            }
        }

        @Test func providerRetriesAreRecordedOnTheJob() async throws {
            try await withStack(try await GatewayStack.start()) { stack in
                // Two 500s, then success: retried with backoff, all three calls in the attempt log.
                let flaky = TestStack.unique("flaky") + " [mock:fail=2]"
                let reply = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": flaky])
                #expect(reply.status == 200, "\(reply.text)")
                let id = try #require(reply.json?["job_id"] as? String)
                let job = try #require(try await HTTP.get("\(stack.baseURL)/gateway/jobs/\(id)").json)
                let log = try #require(job["attempt_log"] as? [[String: Any]])
                #expect(log.map { $0["outcome"] as? String } == ["server", "server", "ok"])
                #expect(job["attempts"] as? Int == 3)
                #expect(try await stack.mockCalls(prompt: flaky) == 3)

                // A 400 from the provider is not retried and fails the job with the provider's status kept.
                let bad = TestStack.unique("bad") + " [mock:status=400]"
                let failed = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": bad])
                #expect(failed.status == 400, "\(failed.text)")
                #expect((failed.json?["error"] as? [String: Any])?["code"] as? String == "invalid_request")
                #expect(try await stack.mockCalls(prompt: bad) == 1)

                // A 401 upstream is the gateway's credential problem, not the client's: 502, not 401.
                let denied = TestStack.unique("denied") + " [mock:status=401]"
                let upstreamAuth = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": denied])
                #expect(upstreamAuth.status == 502, "\(upstreamAuth.text)")
                #expect((upstreamAuth.json?["error"] as? [String: Any])?["code"] as? String == "upstream_auth_error")
            }
        }

        @Test func hangingProviderTimesOutWithoutPinningTheWorker() async throws {
            let extra = ["LLMGW_PROVIDER_TIMEOUT_SECONDS": "1", "LLMGW_PROVIDER_MAX_ATTEMPTS": "2", "LLMGW_WORKER_CONCURRENCY": "2"]
            try await withStack(try await GatewayStack.start(extra: extra)) { stack in
                let hung = TestStack.unique("hang") + " [mock:hang]"
                let hangingJobs = try await (0..<2).asyncMap { index in
                    try #require(try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": "\(hung) \(index)"]).json?["id"] as? String)
                }
                // With both slots taken by hanging calls, a normal job still completes once the deadlines fire.
                let normal = TestStack.unique("after-hang")
                let reply = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": normal, "timeout": 30])
                #expect(reply.status == 200, "\(reply.text)")
                for id in hangingJobs {
                    let job = try await stack.waitForJob(id)
                    #expect(job["status"] as? String == "failed")
                    #expect((job["error"] as? [String: Any])?["code"] as? String == "timeout")
                    #expect((job["attempt_log"] as? [Any])?.count == 2)
                }
            }
        }
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}

import Foundation
import Testing

extension Integration {
    /// Metrics, logs and traces of real processes after real traffic.
    @Suite(.serialized)
    struct Observability {
        /// A `/metrics` scrape: `name{labels}` → value.
        struct Scrape {
            var samples: [String: Double]

            init(_ url: String) async throws {
                let reply = try await HTTP.get(url)
                #expect(reply.status == 200)
                #expect(reply.header("Content-Type")?.hasPrefix("text/plain") == true)
                samples = [:]
                for line in reply.text.split(separator: "\n") where !line.hasPrefix("#") {
                    guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
                    samples[String(line[..<space])] = value
                }
            }

            subscript(_ series: String) -> Double { samples[series] ?? 0 }

            /// The sum of every series of a metric whose labels contain all of `matching`.
            func sum(_ name: String, _ matching: String...) -> Double {
                samples.filter { key, _ in
                    (key == name || key.hasPrefix(name + "{")) && matching.allSatisfy { key.contains($0) }
                }.values.reduce(0, +)
            }
        }

        @Test func metricsChangeAfterRealTraffic() async throws {
            // A provider of its own, so that jobs other suites left on the shared broker cannot move these counters.
            try await TestStack.createTopics(provider: "metrics")
            let extra = ["LLMGW_AUTH": "disabled", "LLMGW_OPENAI_COMPATIBLE": "metrics", "METRICS_DEFAULT_MODEL": "gpt-4o-mini"]
            try await withStack(try GatewayStack(extra: extra)) { stack in
                try await stack.startMock()
                try await stack.startWorker(providers: "metrics")
                try await stack.startIngress()
                let ingressURL = "\(stack.baseURL)/metrics"
                let workerURL = "http://127.0.0.1:\(try #require(stack.workerHTTPPorts.first))/metrics"
                let ingressBefore = try await Scrape(ingressURL)
                let workerBefore = try await Scrape(workerURL)

                // 6 async jobs (the first fails its first provider call once) and 4 synchronous queries: 10 jobs, 11 calls.
                let run = TestStack.unique("metrics")
                var asyncIDs: [String] = []
                for index in 0..<6 {
                    let prompt = index == 0 ? "\(run) retry [mock:fail=1]" : "\(run) async \(index)"
                    let reply = try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "metrics", "prompt": prompt])
                    #expect(reply.status == 202, "\(reply.text)")
                    asyncIDs.append(try #require(reply.json?["id"] as? String))
                }
                var promptTokens = 0
                var completionTokens = 0
                for index in 0..<4 {
                    let reply = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "metrics", "prompt": "\(run) sync \(index)"])
                    #expect(reply.status == 200, "\(reply.text)")
                    let usage = try #require(reply.json?["usage"] as? [String: Any])
                    promptTokens += try #require(usage["prompt_tokens"] as? Int)
                    completionTokens += try #require(usage["completion_tokens"] as? Int)
                }
                for id in asyncIDs {
                    let job = try await stack.waitForJob(id)
                    #expect(job["status"] as? String == "completed")
                    let usage = try #require(job["usage"] as? [String: Any])
                    promptTokens += try #require(usage["prompt_tokens"] as? Int)
                    completionTokens += try #require(usage["completion_tokens"] as? Int)
                }
                let unknown = try await HTTP.get("\(stack.baseURL)/no/such/route")
                #expect(unknown.status == 404)

                // Ingress: counted by route template and status, never by raw path. A request is counted once its response
                // was written, which can trail the client's receipt by a moment.
                let unmatched = #"llmgw_http_requests_total{route="unmatched",method="GET",status="404"}"#
                var ingress = ingressBefore
                try await waitFor("the ingress to count the unmatched request", timeout: .seconds(5)) {
                    ingress = try await Scrape(ingressURL)
                    return ingress[unmatched] - ingressBefore[unmatched] >= 1 && ingress["llmgw_http_requests_in_flight"] == 1
                }
                func ingressDelta(_ series: String) -> Double { ingress[series] - ingressBefore[series] }
                #expect(ingressDelta(#"llmgw_http_requests_total{route="/gateway/jobs",method="POST",status="202"}"#) == 6)
                #expect(ingressDelta(#"llmgw_http_requests_total{route="/gateway/query",method="POST",status="200"}"#) == 4)
                #expect(ingressDelta(unmatched) == 1)
                #expect(ingressDelta(#"llmgw_http_requests_total{route="/gateway/jobs/{id}",method="GET",status="200"}"#) >= 6)
                #expect(ingressDelta(#"llmgw_http_request_duration_seconds_count{route="/gateway/query",method="POST"}"#) == 4)
                #expect(ingressDelta("llmgw_enqueue_duration_seconds_count") == 10)
                #expect(ingressDelta("llmgw_sync_wait_duration_seconds_count") == 4)
                #expect(!ingress.samples.keys.contains { $0.contains("job_") || $0.contains("/no/such") }, "a raw path became a label")
                // Only the scrape itself is in flight.
                #expect(ingress["llmgw_http_requests_in_flight"] == 1)
                #expect(ingress.samples.keys.contains(#"llmgw_cache_requests_total{result="hit"}"#))
                #expect(ingress.samples.keys.contains(#"llmgw_rejections_total{reason="rate_limited"}"#))

                // Worker: the counters move once each job's outcome is stored, which may trail the client's view by a moment.
                let completed = #"llmgw_jobs_total{provider="metrics",model="gpt-4o-mini",outcome="completed"}"#
                var worker = workerBefore
                try await waitFor("the worker to count 10 completed jobs", timeout: .seconds(20)) {
                    worker = try await Scrape(workerURL)
                    return worker[completed] - workerBefore[completed] >= 10
                }
                func workerDelta(_ series: String) -> Double { worker[series] - workerBefore[series] }
                #expect(workerDelta(completed) == 10)
                for histogram in ["llmgw_job_queue_wait_seconds", "llmgw_job_run_seconds", "llmgw_job_end_to_end_seconds",
                                  "llmgw_upstream_time_to_first_token_seconds"] {
                    #expect(workerDelta(#"\#(histogram)_count{provider="metrics"}"#) == 10, "\(histogram)")
                }
                #expect(workerDelta(#"llmgw_upstream_request_duration_seconds_count{provider="metrics"}"#) == 11)
                #expect(workerDelta(#"llmgw_upstream_errors_total{provider="metrics",class="server"}"#) == 1)
                #expect(workerDelta(#"llmgw_retries_total{provider="metrics"}"#) == 1)
                #expect(workerDelta(#"llmgw_fallbacks_total{provider="metrics"}"#) == 0)
                #expect(worker.sum("llmgw_tokens_total", #"kind="prompt""#) - workerBefore.sum("llmgw_tokens_total", #"kind="prompt""#) == Double(promptTokens))
                #expect(worker.sum("llmgw_tokens_total", #"kind="completion""#) - workerBefore.sum("llmgw_tokens_total", #"kind="completion""#) == Double(completionTokens))
                #expect(promptTokens > 0 && completionTokens > 0)
                #expect(worker[#"llmgw_jobs_in_flight{provider="metrics"}"#] == 0)
                #expect(worker.samples.keys.contains(#"llmgw_webhook_deliveries_total{outcome="delivered"}"#))

                // Consumer lag: sampled every 5 s for each assigned partition, and back to 0 once the offsets are committed.
                try await waitFor("consumer lag of llm.jobs.metrics to be reported and drained", timeout: .seconds(40), every: .milliseconds(500)) {
                    let scrape = try await Scrape(workerURL)
                    let partitions = scrape.samples.keys.filter { $0.hasPrefix(#"llmgw_consumer_lag{topic="llm.jobs.metrics",partition=""#) }
                    return !partitions.isEmpty && scrape.sum("llmgw_consumer_lag", #"topic="llm.jobs.metrics""#) == 0
                }
            }
        }

        /// Every line a worker writes is JSON with a level, a timestamp and a message; the lines about a job carry its id
        /// and the trace id of the request that submitted it, which crossed Kafka in the record's `traceparent`.
        @Test func jobLogLinesCarryJobAndTraceIDs() async throws {
            try await withStack(try GatewayStack(extra: ["LLMGW_AUTH": "disabled"])) { stack in
                try await stack.startMock()
                let worker = try await stack.startWorker(extra: ["LLMGW_LOG_LEVEL": "debug"])
                try await stack.startIngress(extra: ["LLMGW_LOG_LEVEL": "debug"])
                let traceID = (0..<2).map { _ in String(format: "%016llx", UInt64.random(in: 1...UInt64.max)) }.joined()
                let traceparent = "00-\(traceID)-\(String(format: "%016llx", UInt64.random(in: 1...UInt64.max)))-01"
                let prompt = TestStack.unique("secret-prompt")
                let reply = try await HTTP.post(
                    "\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": prompt], headers: [("traceparent", traceparent)])
                #expect(reply.status == 202, "\(reply.text)")
                let id = try #require(reply.json?["id"] as? String)
                #expect(try await stack.waitForJob(id)["status"] as? String == "completed")

                var jobLines: [[String: Any]] = []
                try await waitFor("the worker to log the end of job \(id)", timeout: .seconds(10)) {
                    jobLines = try Self.lines(of: worker).filter { $0["job_id"] as? String == id }
                    return jobLines.contains { $0["msg"] as? String == "Job finished" }
                }
                #expect(jobLines.contains { $0["msg"] as? String == "Job started" })
                for line in jobLines {
                    #expect(line["trace_id"] as? String == traceID, "\(line)")
                    #expect((line["span_id"] as? String)?.count == 16, "\(line)")
                }
                // The provider call carried the trace on, in its own traceparent.
                let encoded = prompt.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? prompt
                let stats = try await HTTP.get("\(stack.mockURL)/mock/stats?prompt=\(encoded)").json
                let sent = try #require(stats?["traceparent"] as? String, "\(stats ?? [:])")
                #expect(sent.split(separator: "-").map(String.init).dropFirst().first == traceID, "\(sent)")
                let ingressLines = try Self.lines(of: try #require(stack.ingress))
                let enqueued = try #require(ingressLines.first { $0["job_id"] as? String == id && $0["msg"] as? String == "Job enqueued" })
                #expect(enqueued["trace_id"] as? String == traceID)
                // The request's own line (debug) carries the request id and the same trace.
                let request = try #require(ingressLines.first { $0["msg"] as? String == "Request" && $0["hb.request.path"] as? String == "/gateway/jobs" && $0["trace_id"] as? String == traceID })
                #expect((request["request_id"] as? String)?.isEmpty == false)
                // Prompts are logged only when LLMGW_LOG_PROMPTS says so, whatever the level.
                #expect(!worker.log.contains(prompt))
                #expect(!(stack.ingress?.log.contains(prompt) ?? true))
            }
        }

        /// With an OTLP endpoint both processes export spans, all in the request's trace: the request's and the
        /// producer's from the ingress, the job's and the provider call's from the worker. (Without one, the
        /// processes start no span beyond the request's, which the test above covers.)
        @Test func spansAreExportedWhenAnEndpointIsSet() async throws {
            let collector = OTLPCollector()
            try await collector.start()
            try await collector.whileRunning { try await withStack(try GatewayStack(extra: ["LLMGW_AUTH": "disabled"])) { stack in
                let otlp = ["LLMGW_OTLP_ENDPOINT": "http://127.0.0.1:\(collector.port)", "OTEL_BSP_SCHEDULE_DELAY": "200"]
                try await stack.startMock()
                try await stack.startWorker(extra: otlp)
                try await stack.startIngress(extra: otlp)
                let traceID = (0..<2).map { _ in String(format: "%016llx", UInt64.random(in: 1...UInt64.max)) }.joined()
                let traceparent = "00-\(traceID)-\(String(format: "%016llx", UInt64.random(in: 1...UInt64.max)))-01"
                let reply = try await HTTP.post(
                    "\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": TestStack.unique("otlp")],
                    headers: [("traceparent", traceparent)])
                #expect(reply.status == 202, "\(reply.text)")
                let id = try #require(reply.json?["id"] as? String)
                #expect(try await stack.waitForJob(id)["status"] as? String == "completed")

                /// Whether an export of `service` holds a span of the trace with each of `names`.
                func exported(by service: String, _ names: [String]) -> Bool {
                    collector.exports().contains { export in
                        ([service] + names).allSatisfy { export.contains(Array($0.utf8)) }
                            && export.contains(OTLPCollector.bytes(hex: traceID))
                    }
                }
                do {
                    try await waitFor("both processes to export the trace's spans", timeout: .seconds(30), every: .milliseconds(250)) {
                        exported(by: "llm-gateway-ingress", ["/gateway/jobs", "publish"]) && exported(by: "llm-gateway-worker", ["process", "openai chat"])
                    }
                } catch {
                    let exports = collector.exports()
                    let seen = ["llm-gateway-ingress", "llm-gateway-worker", "/gateway/jobs", "publish", "process", "openai chat"]
                        .filter { name in exports.contains { $0.contains(Array(name.utf8)) } }
                    let traced = exports.filter { $0.contains(OTLPCollector.bytes(hex: traceID)) }.count
                    Issue.record("\(exports.count) exports, \(traced) with the trace id; names seen: \(seen)")
                    throw error
                }
                #expect(collector.paths().allSatisfy { $0 == "/v1/traces" }, "\(collector.paths())")
            } }
        }

        @Test func promptsAreLoggedOnlyWhenAskedAndOnlyAtDebug() async throws {
            try await withStack(try GatewayStack(extra: ["LLMGW_AUTH": "disabled"])) { stack in
                try await stack.startMock()
                let worker = try await stack.startWorker(extra: ["LLMGW_LOG_LEVEL": "debug", "LLMGW_LOG_PROMPTS": "true"])
                try await stack.startIngress()
                let prompt = TestStack.unique("logged-prompt")
                let reply = try await HTTP.post("\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": prompt])
                #expect(reply.status == 200, "\(reply.text)")
                let id = try #require(reply.json?["job_id"] as? String)
                var mentions: [[String: Any]] = []
                try await waitFor("the worker to log the prompt of job \(id)", timeout: .seconds(10)) {
                    mentions = try Self.lines(of: worker).filter { line in line.values.contains { "\($0)".contains(prompt) } }
                    return !mentions.isEmpty
                }
                #expect(mentions.count == 1)
                #expect(mentions.first?["level"] as? String == "debug")
                #expect(mentions.first?["msg"] as? String == "Job prompt")
                #expect(mentions.first?["job_id"] as? String == id)
            }
        }

        /// Each role's startup line names the librdkafka it loaded (Debian 12's 2.0 cannot talk to Tansu; the rpath
        /// makes the binary load the one the bootstrap built) and the allocator that serves its `malloc`: jemalloc,
        /// with the executable's options unless MALLOC_CONF overrides them.
        @Test func startupLinesNameTheLibrariesInUse() async throws {
            try await withStack(try GatewayStack(extra: ["LLMGW_AUTH": "disabled"])) { stack in
                let worker = try await stack.startWorker(extra: ["MALLOC_CONF": "narenas:3"])
                try await stack.startIngress()
                let ingress = try #require(stack.ingress)
                for (child, message, arenas) in [(worker, "Worker starting", 3), (ingress, "Ingress starting", 2)] {
                    let line = try #require(try Self.lines(of: child).first { $0["msg"] as? String == message }, "\(child.log)")
                    let allocator = try #require(line["allocator"] as? String, "\(line)")
                    #expect(allocator.hasPrefix("jemalloc 5.") && allocator.hasSuffix(", \(arenas) arenas"), "\(allocator)")
                    let version = try #require(line["librdkafka"] as? String, "\(line)")
                    let numbers = version.split(separator: ".").compactMap { Int($0) }
                    #expect(numbers.count >= 2 && (numbers[0], numbers[1]) >= (2, 1), "\(version)")
                }
            }
        }

        /// Every line of a child's log, each required to be a JSON object with `level`, `ts` and `msg`.
        static func lines(of child: ChildProcess) throws -> [[String: Any]] {
            try child.log.split(separator: "\n").map { line in
                let object = try #require(
                    try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not a JSON object: \(line)")
                #expect(object["level"] is String && object["ts"] is String && object["msg"] is String, "\(line)")
                return object
            }
        }
    }
}

/// The Python OTLP/HTTP collector of `Python/otlp_collector.py`: it keeps every export's body.
final class OTLPCollector: @unchecked Sendable {
    // Marked `@unchecked Sendable` because its state is fixed at start and its log is only read.
    let port = TestStack.freePort()
    let logPath = "\(TestStack.workDirectory)/otlp-\(UInt32.random(in: 0...UInt32.max)).jsonl"
    private(set) var process: ChildProcess?

    func start() async throws {
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process = try ChildProcess(
            name: "otlp-collector", executable: WebhookReceiver.repositoryRoot + "/.deps/venv/bin/python",
            arguments: [WebhookReceiver.repositoryRoot + "/Tests/IntegrationTests/Python/otlp_collector.py", String(port), logPath],
            environment: [:])
        try await waitForHTTP("http://127.0.0.1:\(port)/")
    }

    private func entries() -> [[String: Any]] {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
    }

    /// Every export's body (protobuf).
    func exports() -> [[UInt8]] {
        entries().compactMap { ($0["body"] as? String).map(Self.bytes(hex:)) }
    }

    func paths() -> [String] { entries().compactMap { $0["path"] as? String } }

    static func bytes(hex: String) -> [UInt8] {
        let digits = Array(hex.utf8)
        return stride(from: 0, to: digits.count - 1, by: 2).compactMap { UInt8(String(decoding: digits[$0...$0 + 1], as: UTF8.self), radix: 16) }
    }

    /// Runs `body`, then stops the collector, also when `body` throws.
    func whileRunning<T>(_ body: () async throws -> T) async throws -> T {
        do {
            let result = try await body()
            await process?.stop()
            return result
        } catch {
            await process?.stop()
            throw error
        }
    }
}

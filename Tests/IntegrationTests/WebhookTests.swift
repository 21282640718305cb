import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A Python receiver that verifies each delivery with the reference `standardwebhooks` library.
final class WebhookReceiver: @unchecked Sendable {
    // Marked `@unchecked Sendable` because its state is fixed at start and its log is only read.
    let port = TestStack.freePort()
    let logPath = "\(TestStack.workDirectory)/webhooks-\(UInt32.random(in: 0...UInt32.max)).jsonl"
    private(set) var process: ChildProcess?

    static var repositoryRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    func start(secret: String) async throws {
        let python = Self.repositoryRoot + "/.deps/venv/bin/python"
        try #require(FileManager.default.isExecutableFile(atPath: python), "run scripts/bootstrap.sh to install standardwebhooks")
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process = try ChildProcess(
            name: "webhook-receiver", executable: python,
            arguments: [Self.repositoryRoot + "/Tests/IntegrationTests/Python/webhook_receiver.py", String(port), secret, logPath],
            environment: [:])
        try await waitForHTTP("http://127.0.0.1:\(port)/")
    }

    /// A URL on this receiver; `host` is `localhost` so that the gateway resolves a name to 127.0.0.1.
    func url(_ name: String, query: String = "", host: String = "localhost") -> String {
        "http://\(host):\(port)/\(name)\(query.isEmpty ? "" : "?\(query)")"
    }

    /// Every request received at paths starting with `/name`.
    func requests(_ name: String) -> [[String: Any]] {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }.filter { ($0["path"] as? String)?.hasPrefix("/\(name)") == true }
    }

    func stop() async {
        await process?.stop()
    }
}

extension GatewayStack {
    /// Submits an async job with a webhook as the stack's default key (or `authorization`).
    func submitWithWebhook(_ prompt: String, url: String, authorization: String? = nil) async throws -> String {
        let headers = authorization.map { [("Authorization", $0)] } ?? []
        let reply = try await HTTP.post("\(baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": prompt, "webhook": ["url": url]], headers: headers)
        #expect(reply.status == 202, "\(reply.text)")
        return try #require(reply.json?["id"] as? String, "\(reply.text)")
    }

    /// Polls the job (as the stack's default key, or `authorization`: the job's owner) until its first webhook
    /// delivery satisfies `condition`; returns that delivery.
    func waitForDelivery(_ id: String, authorization: String? = nil, timeout: Duration = .seconds(60), _ condition: @escaping ([String: Any]) -> Bool) async throws -> [String: Any] {
        var found: [String: Any] = [:]
        let headers = authorization.map { [("Authorization", $0)] } ?? []
        try await waitFor("webhook delivery of \(id)", timeout: timeout) {
            guard let job = try? await HTTP.get("\(self.baseURL)/gateway/jobs/\(id)", headers: headers).json,
                  let delivery = (job["webhook_deliveries"] as? [[String: Any]])?.first
            else { return false }
            found = delivery
            return condition(delivery)
        }
        return found
    }

    func admin(_ method: String, _ path: String, json: Any? = nil) async throws -> HTTP.Reply {
        let headers = [("Authorization", "Bearer \(GatewayStack.adminToken)")]
        if let json { return try await HTTP.send(method, "\(baseURL)\(path)", body: Array(try JSONSerialization.data(withJSONObject: json)), headers: headers + [("Content-Type", "application/json")], timeout: .seconds(30)) }
        return try await HTTP.send(method, "\(baseURL)\(path)", body: nil, headers: headers, timeout: .seconds(30))
    }

    /// The public id of the stack's default API key.
    var defaultKeyID: String {
        get throws { try #require(apiKey?.split(separator: "_").dropFirst().first.map(String.init)) }
    }

    /// Rotates the default key's webhook secret and returns the new one.
    func rotateDefaultWebhookSecret() async throws -> String {
        let reply = try await admin("POST", "/admin/keys/\(try defaultKeyID)/webhook-secret/rotate")
        #expect(reply.status == 200, "\(reply.text)")
        return try #require(reply.json?["webhook_secret"] as? String)
    }
}

/// Runs `body` and always stops the receiver.
func withReceiver<T>(_ receiver: WebhookReceiver, _ body: () async throws -> T) async throws -> T {
    do {
        let result = try await body()
        await receiver.stop()
        return result
    } catch {
        await receiver.stop()
        throw error
    }
}

func attempts(_ delivery: [String: Any]) -> [[String: Any]] { delivery["attempts"] as? [[String: Any]] ?? [] }

extension Integration {
    /// Signed webhooks through real processes, verified by the reference Python library.
    @Suite(.serialized)
    struct Webhooks {
        static let local: [String: String] = [
            "LLMGW_WEBHOOK_ALLOW_HTTP": "true",
            "LLMGW_WEBHOOK_ALLOWLIST": "127.0.0.1/32",
            "LLMGW_WEBHOOK_RETRY_SCHEDULE": "0.2,0.2,0.2,0.2",
            "LLMGW_WEBHOOK_TIMEOUT_SECONDS": "2",
        ]

        @Test func deliveriesVerifyWithStandardWebhooksAndRetriesKeepTheirID() async throws {
            let receiver = WebhookReceiver()
            try await withReceiver(receiver) { try await withStack(try await GatewayStack.start(extra: Self.local)) { stack in
                // A key made by `keys create --json` carries its signing secret.
                let created = try ChildProcess(name: "keys", executable: TestStack.binary, arguments: ["keys", "create", "--json", "--name", "webhooks"], environment: stack.environment)
                #expect(await created.waitForExit(timeout: .seconds(30)) == 0)
                let line = try #require(created.log.split(separator: "\n").first { $0.hasPrefix("{") })
                let json = try #require((try JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any])
                let secret = try #require(json["webhook_secret"] as? String)
                #expect(secret.hasPrefix("whsec_"))
                let key = try #require(json["key"] as? String)
                try await receiver.start(secret: secret)

                let prompt = TestStack.unique("webhook")
                let id = try await stack.submitWithWebhook(prompt, url: receiver.url("retry", query: "fail=3&status=500"), authorization: "Bearer \(key)")
                let delivery = try await stack.waitForDelivery(id, authorization: "Bearer \(key)") { $0["state"] as? String == "delivered" }
                let log = attempts(delivery)
                #expect(log.map { $0["status_code"] as? Int } == [500, 500, 500, 200], "\(delivery)")
                #expect(delivery["message_id"] as? String == "msg_\(id)")

                let requests = receiver.requests("retry")
                #expect(requests.count == 4)
                #expect(requests.allSatisfy { $0["verified"] as? Bool == true }, "\(requests)")
                #expect(Set(requests.compactMap { $0["webhook_id"] as? String }) == ["msg_\(id)"])
                let payload = try #require(requests.last?["payload"] as? [String: Any])
                #expect(payload["type"] as? String == "job.completed")
                let data = try #require(payload["data"] as? [String: Any])
                #expect(data["id"] as? String == id)
                #expect(data["status"] as? String == "completed")
                #expect((data["result"] as? [String: Any])?["text"] as? String == "mock reply: \(prompt)")

                // A receiver's Retry-After on 429 replaces the 0.2 s scheduled delay.
                let limited = try await stack.submitWithWebhook(TestStack.unique("limited"), url: receiver.url("limited", query: "fail=1&status=429&retry_after=2"), authorization: "Bearer \(key)")
                let throttled = attempts(try await stack.waitForDelivery(limited, authorization: "Bearer \(key)") { $0["state"] as? String == "delivered" })
                #expect(throttled.map { $0["status_code"] as? Int } == [429, 200])
                let gap = (throttled[1]["at"] as? Double ?? 0) - (throttled[0]["at"] as? Double ?? 0)
                #expect(gap >= 1.9, "the retry came \(gap) s after a Retry-After of 2 s")

                // A failed job is delivered too, as job.failed.
                let failing = try await stack.submitWithWebhook("\(TestStack.unique("failing")) [mock:status=400]", url: receiver.url("failed"), authorization: "Bearer \(key)")
                _ = try await stack.waitForDelivery(failing, authorization: "Bearer \(key)") { $0["state"] as? String == "delivered" }
                let failedPayload = try #require(receiver.requests("failed").first?["payload"] as? [String: Any])
                #expect(failedPayload["type"] as? String == "job.failed")
            } }
        }

        @Test func cancelledAndExpiredJobsAreDeliveredOnce() async throws {
            let receiver = WebhookReceiver()
            let extra = ["LLMGW_WORKER_CONCURRENCY": "1", "LLMGW_PROVIDER_TIMEOUT_SECONDS": "120", "LLMGW_LOG_LEVEL": "debug"]
            let stack = try GatewayStack(extra: Self.local.merging(extra) { $1 })
            try await withReceiver(receiver) { try await withStack(stack) { stack in
                try await stack.startMock()
                try await stack.startIngress()
                try await receiver.start(secret: try await stack.rotateDefaultWebhookSecret())

                // No worker yet: one job is cancelled while queued, another outlives its deadline.
                let queued = try await stack.submitWithWebhook(TestStack.unique("cancel-queued"), url: receiver.url("cancelled"))
                let cancel = try await HTTP.post("\(stack.baseURL)/gateway/jobs/\(queued)/cancel", raw: [])
                #expect(cancel.status == 200, "\(cancel.text)")
                let expiring = try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: [
                    "provider": "openai", "prompt": TestStack.unique("expire"), "ttl_seconds": 1, "webhook": ["url": receiver.url("expired")],
                ])
                #expect(expiring.status == 202, "\(expiring.text)")
                let expired = try #require(expiring.json?["id"] as? String)
                let deadline = Date().addingTimeInterval(1.2)
                try await waitFor("the deadline to pass", timeout: .seconds(5)) { Date() > deadline }

                // The worker skips the cancelled record, expires the other one, and sends both events.
                let worker = try await stack.startWorker()
                for (id, name, status) in [(queued, "cancelled", "cancelled"), (expired, "expired", "expired")] {
                    let delivery = try await stack.waitForDelivery(id) { $0["state"] as? String == "delivered" }
                    #expect(attempts(delivery).map { $0["status_code"] as? Int } == [200])
                    let requests = receiver.requests(name)
                    #expect(requests.count == 1, "\(requests)")
                    #expect(requests.first?["verified"] as? Bool == true)
                    #expect(requests.first?["webhook_id"] as? String == "msg_\(id)")
                    let payload = try #require(requests.first?["payload"] as? [String: Any])
                    #expect(payload["type"] as? String == "job.\(status)")
                    let data = try #require(payload["data"] as? [String: Any])
                    #expect(data["id"] as? String == id)
                    #expect(data["status"] as? String == status)
                    #expect(data["result"] == nil)
                }
                // The cancelled job's record reached the worker, which sent nothing more for it.
                try await stack.waitForSkip(queued, worker: worker)
                #expect(receiver.requests("cancelled").count == 1)

                // A running job cancelled: its own event only; the worker's aborted run adds no job.failed.
                let prompt = "\(TestStack.unique("cancel-running")) [mock:delay_ms=60000]"
                let running = try await stack.submitWithWebhook(prompt, url: receiver.url("running"))
                try await waitFor("the provider call to start", timeout: .seconds(30)) { try await stack.mockCalls(prompt: prompt) == 1 }
                #expect(try await HTTP.post("\(stack.baseURL)/gateway/jobs/\(running)/cancel", raw: []).status == 200)
                _ = try await stack.waitForDelivery(running) { $0["state"] as? String == "delivered" }
                let metrics = "http://127.0.0.1:\(try #require(stack.workerHTTPPorts.first))/metrics"
                try await waitFor("the aborted run to end", timeout: .seconds(30)) {
                    try await Observability.Scrape(metrics).sum("llmgw_jobs_in_flight") == 0
                }
                // A job after it runs to the end on the same worker: the cancelled run's finish came before.
                let after = try await stack.submitWithWebhook(TestStack.unique("after"), url: receiver.url("after"))
                _ = try await stack.waitForDelivery(after) { $0["state"] as? String == "delivered" }
                let events = receiver.requests("running").compactMap { ($0["payload"] as? [String: Any])?["type"] as? String }
                #expect(events == ["job.cancelled"])
                let job = try #require(try await HTTP.get("\(stack.baseURL)/gateway/jobs/\(running)").json)
                #expect((job["webhook_deliveries"] as? [[String: Any]])?.count == 1)
            } }
        }

        @Test func aKeysEndpointsReceiveItsJobsFromEveryRoute() async throws {
            let receiver = WebhookReceiver()
            try await withReceiver(receiver) { try await withStack(try await GatewayStack.start(extra: Self.local)) { stack in
                try await receiver.start(secret: try await stack.rotateDefaultWebhookSecret())
                let keyID = try stack.defaultKeyID
                let registered = try await stack.admin("PUT", "/admin/keys/\(keyID)/webhook-endpoints", json: ["urls": [receiver.url("every")]])
                #expect(registered.status == 200, "\(registered.text)")

                // An OpenAI-style chat completion and a streamed query: neither names a webhook, both reach the key's endpoint.
                let chat = try await HTTP.post("\(stack.baseURL)/v1/chat/completions", json: [
                    "model": "openai/gpt-4o-mini", "messages": [["role": "user", "content": TestStack.unique("chat-hook")]],
                ])
                #expect(chat.status == 200, "\(chat.text)")
                let streamed = try await SSEClient.request(
                    "POST", "\(stack.baseURL)/gateway/query", json: ["provider": "openai", "prompt": TestStack.unique("stream-hook"), "stream": true],
                    headers: [("Authorization", "Bearer \(try #require(stack.apiKey))")])
                #expect(streamed.status == 200)
                for id in [try #require(chat.header("x-gateway-job-id")), try #require(streamed.header("x-gateway-job-id"))] {
                    let delivery = try await stack.waitForDelivery(id) { $0["state"] as? String == "delivered" }
                    #expect(delivery["url"] as? String == receiver.url("every"))
                }
                let events = receiver.requests("every")
                #expect(events.count == 2)
                #expect(events.allSatisfy { $0["verified"] as? Bool == true && ($0["payload"] as? [String: Any])?["type"] as? String == "job.completed" })

                // Removing the endpoint reaches the worker at once (its cache of the key's endpoints is dropped):
                // the next job gets no delivery.
                let removed = try await stack.admin("PUT", "/admin/keys/\(keyID)/webhook-endpoints", json: ["urls": [String]()])
                #expect(removed.status == 200, "\(removed.text)")
                let after = try await HTTP.post("\(stack.baseURL)/v1/chat/completions", json: [
                    "model": "openai/gpt-4o-mini", "messages": [["role": "user", "content": TestStack.unique("no-hook")]],
                ])
                #expect(after.status == 200, "\(after.text)")
                let record = try await stack.waitForJob(try #require(after.header("x-gateway-job-id")))
                #expect((record["webhook_deliveries"] as? [[String: Any]] ?? []).isEmpty, "\(record)")
                #expect(receiver.requests("every").count == 2)
            } }
        }

        @Test func deadLettersAreListedAndRedeliveredAndGoneDisablesEndpoints() async throws {
            let receiver = WebhookReceiver()
            try await withReceiver(receiver) { try await withStack(try await GatewayStack.start(extra: Self.local)) { stack in
                try await receiver.start(secret: try await stack.rotateDefaultWebhookSecret())

                // Five attempts (four delays) all fail: dead-lettered, then redelivered by the admin API.
                let id = try await stack.submitWithWebhook(TestStack.unique("dead"), url: receiver.url("dead", query: "fail=5&status=503"))
                let dead = try await stack.waitForDelivery(id) { $0["state"] as? String == "dead" }
                #expect(attempts(dead).count == 5)
                let deliveryID = try #require(dead["id"] as? String)
                let listed = try await stack.admin("GET", "/admin/webhooks/dead")
                #expect(listed.status == 200)
                #expect(((listed.json?["data"] as? [[String: Any]]) ?? []).contains { $0["id"] as? String == deliveryID }, "\(listed.text)")
                let unauthorized = try await HTTP.post("\(stack.baseURL)/admin/webhooks/\(deliveryID)/redeliver", json: [:], headers: [("Authorization", "Bearer wrong")])
                #expect(unauthorized.status == 401)
                #expect((unauthorized.json?["error"] as? [String: Any])?["code"] as? String == "invalid_admin_token")
                let redeliver = try await stack.admin("POST", "/admin/webhooks/\(deliveryID)/redeliver")
                #expect(redeliver.status == 202, "\(redeliver.text)")
                let delivered = try await stack.waitForDelivery(id) { $0["state"] as? String == "delivered" }
                #expect(attempts(delivered).last?["status_code"] as? Int == 200)
                let after = try await stack.admin("GET", "/admin/webhooks/dead")
                #expect(!((after.json?["data"] as? [[String: Any]]) ?? []).contains { $0["id"] as? String == deliveryID })
                #expect(Set(receiver.requests("dead").compactMap { $0["webhook_id"] as? String }) == ["msg_\(id)"])

                // A key's registered endpoint that answers 410 Gone is disabled after one attempt.
                let keyID = try stack.defaultKeyID
                let gone = receiver.url("gone", query: "fail=100&status=410")
                let registered = try await stack.admin("PUT", "/admin/keys/\(keyID)/webhook-endpoints", json: ["urls": [gone]])
                #expect(registered.status == 200, "\(registered.text)")
                let reply = try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": TestStack.unique("registered")])
                let job = try #require(reply.json?["id"] as? String)
                let disabled = try await stack.waitForDelivery(job) { $0["state"] as? String == "disabled" }
                #expect(attempts(disabled).map { $0["status_code"] as? Int } == [410])
                #expect(disabled["url"] as? String == gone)
                let endpoints = try await stack.admin("GET", "/admin/keys/\(keyID)/webhook-endpoints")
                let endpoint = try #require((endpoints.json?["data"] as? [[String: Any]])?.first)
                #expect(endpoint["disabled_at"] is Double, "\(endpoints.text)")
                _ = try await stack.admin("PUT", "/admin/keys/\(keyID)/webhook-endpoints", json: ["urls": [String]()])
            } }
        }

        /// A name that resolves to 127.0.0.1 is refused at connect time without an allowlist, and the same delivery
        /// goes through once a worker allowlists 127.0.0.1/32.
        @Test func theSSRFGuardRefusesLoopbackUnlessAllowlisted() async throws {
            let receiver = WebhookReceiver()
            var guarded = Self.local
            guarded["LLMGW_WEBHOOK_ALLOWLIST"] = nil
            guarded["LLMGW_WEBHOOK_RETRY_SCHEDULE"] = "0.2"
            let stack = try GatewayStack(extra: guarded)
            try await withReceiver(receiver) { try await withStack(stack) { stack in
                try await stack.startMock()
                let strictWorker = try await stack.startWorker()
                try await stack.startIngress()
                try await receiver.start(secret: try await stack.rotateDefaultWebhookSecret())

                // https only by default: plain http is refused at submission unless allowed.
                let httpOnly = try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": "x", "webhook": ["url": "ftp://example.com/x"]])
                #expect(httpOnly.status == 400)
                #expect((httpOnly.json?["error"] as? [String: Any])?["code"] as? String == "invalid_webhook_url")

                let id = try await stack.submitWithWebhook(TestStack.unique("ssrf"), url: receiver.url("ssrf"))
                let refused = try await stack.waitForDelivery(id) { $0["state"] as? String == "dead" }
                for attempt in attempts(refused) {
                    #expect(attempt["status_code"] == nil)
                    #expect((attempt["error"] as? String ?? "").contains("loopback"), "\(attempt)")
                }
                let metadata = try await stack.submitWithWebhook(TestStack.unique("metadata"), url: "http://169.254.169.254/latest/meta-data/")
                let blocked = try await stack.waitForDelivery(metadata) { $0["state"] as? String == "dead" }
                #expect((attempts(blocked).first?["error"] as? String ?? "").contains("metadata"), "\(blocked)")
                #expect(receiver.requests("ssrf").isEmpty)

                await strictWorker.stop()
                try await stack.startWorker(extra: ["LLMGW_WEBHOOK_ALLOWLIST": "127.0.0.1/32"])
                let deliveryID = try #require(refused["id"] as? String)
                #expect(try await stack.admin("POST", "/admin/webhooks/\(deliveryID)/redeliver").status == 202)
                let delivered = try await stack.waitForDelivery(id) { $0["state"] as? String == "delivered" }
                #expect(attempts(delivered).last?["status_code"] as? Int == 200)
                #expect(receiver.requests("ssrf").count == 1)
                #expect(receiver.requests("ssrf").first?["verified"] as? Bool == true)
            } }
        }

        @Test func deliveriesSurviveAKilledWorker() async throws {
            let receiver = WebhookReceiver()
            var slow = Self.local
            slow["LLMGW_WEBHOOK_RETRY_SCHEDULE"] = "1,1,1,1,1,1,1,1"
            let stack = try GatewayStack(extra: slow)
            try await withReceiver(receiver) { try await withStack(stack) { stack in
                try await stack.startMock()
                let first = try await stack.startWorker()
                try await stack.startIngress()
                try await receiver.start(secret: try await stack.rotateDefaultWebhookSecret())

                let id = try await stack.submitWithWebhook(TestStack.unique("restart"), url: receiver.url("restart", query: "fail=3&status=500"))
                _ = try await stack.waitForDelivery(id) { attempts($0).count >= 1 }
                first.signal(SIGKILL)
                #expect(await first.waitForExit(timeout: .seconds(10)) != nil)
                let before = receiver.requests("restart").count
                #expect(before < 4)

                try await stack.startWorker()
                let delivery = try await stack.waitForDelivery(id, timeout: .seconds(90)) { $0["state"] as? String == "delivered" }
                #expect(attempts(delivery).last?["status_code"] as? Int == 200)
                let requests = receiver.requests("restart")
                #expect(requests.count >= 4)
                #expect(requests.last?["status"] as? Int == 200)
                #expect(Set(requests.compactMap { $0["webhook_id"] as? String }) == ["msg_\(id)"])
                print("webhook delivery across kill -9: \(before) attempts before the kill, \(requests.count) in all, delivered by the new worker")
            } }
        }
    }
}

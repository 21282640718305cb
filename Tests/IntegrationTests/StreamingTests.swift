import AsyncHTTPClient
import Foundation
import NIOCore
import Testing

extension Integration {
    /// Streaming through the queue: the worker relays each provider delta into the job's Redis Stream and the ingress
    /// forwards it at once, as server-sent events.
    @Suite(.serialized)
    struct Streaming {
        static func start() async throws -> GatewayStack {
            // These tests are about streaming, not tenancy: every caller is anonymous.
            let stack = try GatewayStack(extra: ["LLMGW_AUTH": "disabled"])
            try await stack.startMock()
            try await stack.startWorker(providers: "openai,anthropic,gemini,cohere")
            try await stack.startIngress()
            return stack
        }

        @Test(arguments: ["anthropic", "gemini", "openai", "cohere"])
        func theFirstDeltaArrivesWhileTheProviderIsStillGenerating(provider: String) async throws {
            try await withStack(try await Self.start()) { stack in
                // 20 tokens, 100 ms apart: the provider needs about 2 s in all.
                let prompt = TestStack.unique("ttft-\(provider)") + " [mock:tokens=20,interval_ms=100]"
                let reply = try await SSEClient.request("POST", "\(stack.baseURL)/gateway/query", json: ["provider": provider, "prompt": prompt, "stream": true])
                #expect(reply.status == 200)
                #expect(reply.header("content-type")?.hasPrefix("text/event-stream") == true)
                let events = reply.events
                #expect(events.map(\.event).first == "queued")
                #expect(events.map(\.event).last == "completed", "\(events.map(\.event))")
                let deltas = events.filter { $0.event == "delta" }
                let text = deltas.compactMap { $0.json?["text"] as? String }.joined()
                #expect(text == MockReply.text(prompt, tokens: 20), "\(text)")
                #expect(deltas.count >= 10, "\(deltas.count) delta events")
                let completed = try #require(events.last)
                #expect(completed.json?["response"] as? String == text)
                #expect(completed.json?["provider"] as? String == provider)
                #expect((completed.json?["usage"] as? [String: Any])?["completion_tokens"] as? Int == 20)

                // Buffer nothing: the first delta reached the client long before the provider finished. The deltas
                // arrive spread over the generation (19 pauses of 100 ms), not in one burst at the end, whatever
                // the queue added before the first one.
                let first = try #require(deltas.first).at
                let last = try #require(deltas.last).at
                print("\(provider): first delta after \(first), last after \(last), completed after \(completed.at)")
                #expect(last - first >= .milliseconds(1_500), "deltas spread over \(last - first)")
                #expect(first * 2 < completed.at, "first delta \(first) of \(completed.at)")

                // Every event carries its stream entry id, in increasing order.
                let ids = events.compactMap(\.id)
                #expect(ids.count == events.count)
                #expect(ids == ids.sorted { StreamEntryID($0) < StreamEntryID($1) })

                // The worker recorded the time to first token of the streamed call.
                let jobID = try #require(reply.header("x-gateway-job-id"))
                let job = try #require(try await HTTP.get("\(stack.baseURL)/gateway/jobs/\(jobID)").json)
                let attempt = try #require((job["attempt_log"] as? [[String: Any]])?.last)
                let ttft = try #require(attempt["time_to_first_token_ms"] as? Int)
                let latency = try #require(attempt["latency_ms"] as? Int)
                #expect(ttft * 4 < latency, "ttft \(ttft) ms of \(latency) ms")
            }
        }

        @Test func aStreamedQueryKeepsItsIdempotencyKeyDeadlineAndWebhookRules() async throws {
            try await withStack(try await Self.start()) { stack in
                let url = "\(stack.baseURL)/gateway/query"
                let prompt = TestStack.unique("stream-idem") + " [mock:tokens=5,interval_ms=10]"
                let key = [("Idempotency-Key", TestStack.unique("stream-key"))]
                let first = try await SSEClient.request("POST", url, json: ["provider": "openai", "prompt": prompt, "stream": true], headers: key)
                #expect(first.status == 200)
                #expect(first.events.map(\.event).last == "completed", "\(first.events.map(\.event))")
                let id = try #require(first.header("x-gateway-job-id"))
                #expect(first.header("Idempotent-Replayed") == nil)

                // The same key streams the same job again, from its first event, and calls nobody.
                let again = try await SSEClient.request("POST", url, json: ["provider": "openai", "prompt": prompt, "stream": true], headers: key)
                #expect(again.status == 200)
                #expect(again.header("x-gateway-job-id") == id)
                #expect(again.header("Idempotent-Replayed") == "true")
                #expect(again.events.map(\.event) == first.events.map(\.event))
                #expect(again.events.last?.json?["response"] as? String == first.events.last?.json?["response"] as? String)
                #expect(try await stack.mockCalls(prompt: prompt) == 1)

                // The key with another request, a past deadline and a refused webhook URL: each a 4xx before any job.
                let reused = try await HTTP.post(url, json: ["provider": "openai", "prompt": prompt + " other", "stream": true], headers: key)
                #expect(reused.status == 422, "\(reused.text)")
                let late = try await HTTP.post(url, json: ["provider": "openai", "prompt": prompt, "stream": true, "deadline": "2001-01-01T00:00:00Z"])
                #expect(late.status == 400, "\(late.text)")
                #expect((late.json?["error"] as? [String: Any])?["param"] as? String == "deadline")
                let hook = try await HTTP.post(url, json: ["provider": "openai", "prompt": prompt, "stream": true, "webhook": ["url": "http://example.com/hook"]])
                #expect(hook.status == 400, "\(hook.text)")
                #expect((hook.json?["error"] as? [String: Any])?["code"] as? String == "invalid_webhook_url")
            }
        }

        @Test func theOpenAIRouteStreamsChatCompletionChunks() async throws {
            try await withStack(try await Self.start()) { stack in
                let prompt = TestStack.unique("chunks") + " [mock:tokens=12,interval_ms=50]"
                let reply = try await SSEClient.request("POST", "\(stack.baseURL)/v1/chat/completions", json: [
                    "model": "gemini/gemini-2.0-flash", "messages": [["role": "user", "content": prompt]],
                    "stream": true, "stream_options": ["include_usage": true],
                ])
                #expect(reply.status == 200)
                let events = reply.events
                #expect(events.last?.data == "[DONE]")
                let chunks = events.dropLast().compactMap(\.json)
                #expect(chunks.count == events.count - 1, "every event but [DONE] is JSON")
                #expect(chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" })
                #expect(Set(chunks.compactMap { $0["id"] as? String }).count == 1)
                func delta(_ chunk: [String: Any]) -> [String: Any]? { ((chunk["choices"] as? [[String: Any]])?.first)?["delta"] as? [String: Any] }
                let firstChunk = try #require(chunks.first)
                #expect(delta(firstChunk)?["role"] as? String == "assistant")
                let contents = chunks.compactMap { delta($0)?["content"] as? String }.filter { !$0.isEmpty }
                #expect(contents.joined() == MockReply.text(prompt, tokens: 12))
                #expect(contents.count > 1)
                let reasons = chunks.compactMap { ((($0["choices"] as? [[String: Any]])?.first)?["finish_reason"] as? String) }
                #expect(reasons == ["stop"])
                let usage = try #require(chunks.last?["usage"] as? [String: Any])
                #expect(chunks.last?["choices"] as? [Any] != nil && (chunks.last?["choices"] as? [Any])?.isEmpty == true)
                #expect(usage["completion_tokens"] as? Int == 12)
                // The first content chunk came well before the end: 11 pauses of 50 ms separate them.
                let firstContent = try #require(events.first { ($0.json.flatMap(delta)?["content"] as? String)?.isEmpty == false })
                let end = try #require(events.last)
                #expect(end.at - firstContent.at >= .milliseconds(400), "first content \(firstContent.at) of \(end.at)")

                // A failure after the stream started ends it with an OpenAI error object.
                let failing = try await SSEClient.request("POST", "\(stack.baseURL)/v1/chat/completions", json: [
                    "model": "anthropic/claude-3-5-haiku-latest", "messages": [["role": "user", "content": TestStack.unique("bad") + " [mock:status=400]"]],
                    "stream": true,
                ])
                let error = try #require(failing.events.last?.json?["error"] as? [String: Any], "\(failing.events.map(\.data))")
                #expect(error["code"] as? String == "invalid_request")
                #expect(failing.events.contains { $0.data == "[DONE]" } == false)
            }
        }

        @Test func resumingWithLastEventIDGivesExactlyTheRemainingEvents() async throws {
            try await withStack(try await Self.start()) { stack in
                // An async streamed job: submit, attach while it runs, drop the connection, resume.
                let prompt = TestStack.unique("resume") + " [mock:tokens=16,interval_ms=100]"
                let submitted = try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "anthropic", "prompt": prompt, "stream": true])
                #expect(submitted.status == 202, "\(submitted.text)")
                let id = try #require(submitted.json?["id"] as? String)
                let firstPart = try await SSEClient.request("GET", "\(stack.baseURL)/gateway/jobs/\(id)/events", stopAfter: 5)
                #expect(firstPart.events.count == 5)
                #expect(firstPart.events.map(\.event).prefix(2) == ["queued", "started"])
                let lastSeen = try #require(firstPart.events.last?.id)
                let rest = try await SSEClient.request("GET", "\(stack.baseURL)/gateway/jobs/\(id)/events", headers: [("Last-Event-ID", lastSeen)])
                #expect(rest.events.last?.event == "completed")

                // The whole feed, read after the job ended, is exactly the two parts joined.
                let whole = try await SSEClient.request("GET", "\(stack.baseURL)/gateway/jobs/\(id)/events")
                #expect(whole.events.map(\.id) == (firstPart.events + rest.events).map(\.id))
                #expect(whole.events.map(\.data).dropLast() == (firstPart.events + rest.events).map(\.data).dropLast())
                #expect(whole.events.map(\.event) == ["queued", "started"] + Array(repeating: "delta", count: whole.events.count - 3) + ["completed"])
                let text = whole.events.filter { $0.event == "delta" }.compactMap { $0.json?["text"] as? String }.joined()
                #expect(text == MockReply.text(prompt, tokens: 16))
                let record = try #require(whole.events.last?.json)
                #expect(record["status"] as? String == "completed")
                #expect((record["result"] as? [String: Any])?["text"] as? String == text)

                // Resuming from the middle, after the end, gives the rest again, and only the rest.
                let middle = try #require(whole.events[7].id)
                let tail = try await SSEClient.request("GET", "\(stack.baseURL)/gateway/jobs/\(id)/events", headers: [("Last-Event-ID", middle)])
                #expect(tail.events.map(\.id) == whole.events.dropFirst(8).map(\.id))

                // A job that was not streamed still has its lifecycle.
                let plain = try #require(try await HTTP.post("\(stack.baseURL)/gateway/jobs", json: ["provider": "openai", "prompt": TestStack.unique("plain")]).json?["id"] as? String)
                _ = try await stack.waitForJob(plain)
                let lifecycle = try await SSEClient.request("GET", "\(stack.baseURL)/gateway/jobs/\(plain)/events")
                #expect(lifecycle.events.map(\.event) == ["queued", "started", "completed"])

                // Unknown jobs and malformed ids are refused.
                let unknown = try await HTTP.get("\(stack.baseURL)/gateway/jobs/job_01ARZ3NDEKTSV4RRFFQ69G5FAV/events")
                #expect(unknown.status == 404)
                let badID = try await HTTP.get("\(stack.baseURL)/gateway/jobs/\(plain)/events", headers: [("Last-Event-ID", "yesterday")])
                #expect(badID.status == 400)
            }
        }

        @Test func aClientLeavingASyncStreamDoesNotCancelTheJob() async throws {
            try await withStack(try await Self.start()) { stack in
                let prompt = TestStack.unique("leave") + " [mock:tokens=20,interval_ms=100]"
                let partial = try await SSEClient.request("POST", "\(stack.baseURL)/gateway/query", json: ["provider": "gemini", "prompt": prompt, "stream": true], stopAfter: 3)
                #expect(partial.events.map(\.event) == ["queued", "started", "delta"])
                let id = try #require(partial.header("x-gateway-job-id"))
                let job = try await stack.waitForJob(id)
                #expect(job["status"] as? String == "completed")
                #expect((job["result"] as? [String: Any])?["text"] as? String == MockReply.text(prompt, tokens: 20))
                #expect(try await stack.mockCalls(prompt: prompt) == 1)
            }
        }
    }
}

/// The mock's deterministic reply (see `MockText` in the mock provider): `mock reply: <prompt>` as word tokens,
/// cycled to `tokens` of them.
enum MockReply {
    static func text(_ prompt: String, tokens: Int) -> String {
        let words = ("mock reply: " + prompt).split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init)
        return (0..<tokens).map { $0 == 0 ? words[0] : " " + words[$0 % words.count] }.joined()
    }
}

/// A stream entry id, compared the way Redis orders them.
struct StreamEntryID: Comparable {
    var milliseconds: UInt64
    var sequence: UInt64

    init(_ text: String) {
        let parts = text.split(separator: "-")
        milliseconds = UInt64(parts.first ?? "") ?? 0
        sequence = parts.count > 1 ? UInt64(parts[1]) ?? 0 : 0
    }

    static func < (lhs: StreamEntryID, rhs: StreamEntryID) -> Bool { (lhs.milliseconds, lhs.sequence) < (rhs.milliseconds, rhs.sequence) }
}

/// Reads server-sent events as they arrive, stamping each with its arrival time since the request was sent.
enum SSEClient {
    struct Event: Sendable {
        var id: String?
        var event: String?
        var data: String
        var at: Duration

        var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] }
    }

    struct Reply: Sendable {
        var status: Int
        var headers: [(String, String)]
        var events: [Event]

        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    }

    /// Sends a request and collects its events until the body ends, or, with `stopAfter`, until that many arrived;
    /// then the connection is closed, as a client that goes away would.
    static func request(
        _ method: String, _ url: String, json: Any? = nil, headers: [(String, String)] = [], stopAfter: Int? = nil
    ) async throws -> Reply {
        // A client of its own, so that leaving early really closes the connection.
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            var request = HTTPClientRequest(url: url)
            request.method = .init(rawValue: method)
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            if let json {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json)))
            }
            let started = ContinuousClock.now
            let response = try await client.execute(request, timeout: .seconds(60))
            var events: [Event] = []
            var pending = ""
            reading: for try await buffer in response.body {
                pending += String(buffer: buffer)
                while let end = pending.range(of: "\n\n") {
                    let block = String(pending[..<end.lowerBound])
                    pending = String(pending[end.upperBound...])
                    var event = Event(id: nil, event: nil, data: "", at: ContinuousClock.now - started)
                    var dataLines: [String] = []
                    for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                        if line.hasPrefix(":") { continue }
                        let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                        let value = parts.count > 1 ? String(parts[1].drop(while: { $0 == " " })) : ""
                        switch parts[0] {
                        case "id": event.id = value
                        case "event": event.event = value
                        case "data": dataLines.append(value)
                        default: break
                        }
                    }
                    guard !dataLines.isEmpty else { continue }
                    event.data = dataLines.joined(separator: "\n")
                    events.append(event)
                    if let stopAfter, events.count >= stopAfter { break reading }
                }
            }
            let reply = Reply(status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) }, events: events)
            try await client.shutdown()
            return reply
        } catch {
            try? await client.shutdown()
            throw error
        }
    }
}

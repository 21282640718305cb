import Foundation
import Protocol
import Testing

@Suite("Job wire types", .serialized, .timeLimit(.minutes(2)))
struct JobWireTests {
    @Test("only completed, failed, cancelled and expired are final; in_progress is spelled with an underscore")
    func statuses() throws {
        #expect(JobStatus.allCases.filter(\.isFinal) == [.completed, .failed, .cancelled, .expired])
        #expect(String(decoding: try JSONEncoder().encode(JobStatus.inProgress), as: UTF8.self) == #""in_progress""#)
        #expect(try decode(JobStatus.self, from: #""in_progress""#) == .inProgress)
    }

    @Test("JobEnvelope round-trips with snake_case keys")
    func envelope() throws {
        let envelope = JobEnvelope(
            id: JobID.make(milliseconds: 1_735_689_600_123),
            provider: "openai",
            request: ChatRequest(model: "gpt-4o", messages: [.user("hi")], maxTokens: 5),
            fallbacks: [ModelRef(provider: "anthropic", model: "claude-x")],
            enqueuedAt: 1_735_689_600_123,
            replyTo: RedisKeys.notifyChannel(instance: "ingress-1")
        )
        let object = try jsonObject(envelope)
        #expect(object["enqueued_at"] as? Int == 1_735_689_600_123)
        #expect(object["reply_to"] as? String == "llmgw:notify:ingress-1")
        let decoded = try JSONDecoder().decode(JobEnvelope.self, from: JSONEncoder().encode(envelope))
        #expect(decoded.id == envelope.id)
        #expect(decoded.request == envelope.request)
        #expect(decoded.fallbacks == envelope.fallbacks)
        #expect(decoded.enqueuedAt == envelope.enqueuedAt)
        #expect(decoded.replyTo == envelope.replyTo)
    }

    @Test("JobRecord uses snake_case keys and the gateway.job object name")
    func record() throws {
        let record = JobRecord(
            id: "job_01HZX3K5M8Q2R4T6V8W0Y2A4C6", status: .failed, provider: "openai", model: "gpt-4o",
            createdAt: 1.5, startedAt: 2.5, completedAt: 3.5, attempts: 2,
            error: JobFailure(message: "upstream", type: "server_error", code: "provider_error", providerStatus: 502),
            attemptLog: [AttemptRecord(provider: "openai", model: "gpt-4o", outcome: "server", httpStatus: 502, latencyMs: 12, error: "bad gateway")]
        )
        let object = try jsonObject(record)
        #expect(object["object"] as? String == "gateway.job")
        #expect(object["status"] as? String == "failed")
        for key in ["created_at", "started_at", "completed_at", "attempt_log"] {
            #expect(object[key] != nil, "missing \(key)")
        }
        let failure = try #require(object["error"] as? [String: Any])
        #expect(failure["provider_status"] as? Int == 502)
        let attempt = try #require((object["attempt_log"] as? [[String: Any]])?.first)
        #expect(attempt["http_status"] as? Int == 502)
        #expect(attempt["latency_ms"] as? Int == 12)
        let decoded = try JSONDecoder().decode(JobRecord.self, from: JSONEncoder().encode(record))
        #expect(decoded.error == record.error)
        #expect(decoded.attemptLog == record.attemptLog)
        #expect(decoded.status == .failed)
    }
}

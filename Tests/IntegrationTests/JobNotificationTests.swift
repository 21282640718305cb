import Foundation
import Protocol
import ResultStore
import Testing

/// The finish script's notification format, parsed without Redis (the script's side is covered by
/// `finishNotifiesTheWaitingReplica`).
@Suite("Job notifications")
struct JobNotificationTests {
    static func field(_ name: String, _ value: String) -> String { "\(name) \(value.utf8.count) \(value)" }

    @Test("a bare id (expiry, cancellation) carries no record")
    func bareID() {
        let parsed = JobNotification.parse(Array("job_01ABC".utf8))
        #expect(parsed.id == "job_01ABC")
        #expect(parsed.record == nil)
    }

    @Test("fields with spaces and newlines in their values are read by length")
    func fields() throws {
        let completion = ChatCompletion(model: "m", text: "two\nlines and spaces", finishReason: .stop, usage: nil)
        let result = String(decoding: try JSONEncoder().encode(completion), as: UTF8.self)
        let payload = ["job_01ABC", Self.field("id", "job_01ABC"), Self.field("status", "completed"), Self.field("provider", "openai"),
                       Self.field("model", "m"), Self.field("created_at", "1.000"), Self.field("completed_at", "2.500"),
                       Self.field("attempts", "1"), Self.field("result", result)].joined(separator: "\n")
        let parsed = JobNotification.parse(Array(payload.utf8))
        let record = try #require(parsed.record)
        #expect(record.id == "job_01ABC" && record.status == .completed && record.completedAt == 2.5 && record.attempts == 1)
        #expect(record.result == completion)
    }

    @Test("a record with webhook deliveries, a wrong length or another job's id is read from Redis instead")
    func fallbacks() {
        let base = [Self.field("id", "job_01ABC"), Self.field("status", "completed")]
        let withWebhooks = (["job_01ABC"] + base + [Self.field("webhooks", "job_01ABC.0")]).joined(separator: "\n")
        #expect(JobNotification.parse(Array(withWebhooks.utf8)).record == nil)
        let truncated = "job_01ABC\nstatus 40 completed"
        #expect(JobNotification.parse(Array(truncated.utf8)).record == nil)
        #expect(JobNotification.parse(Array(truncated.utf8)).id == "job_01ABC")
        let otherJob = (["job_01XYZ"] + base).joined(separator: "\n")
        #expect(JobNotification.parse(Array(otherJob.utf8)).record == nil)
    }
}

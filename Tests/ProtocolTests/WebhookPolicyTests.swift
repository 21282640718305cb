import Foundation
import Protocol
import Testing

@Suite struct WebhookPolicyTests {
    /// Every address a webhook must not reach without an allowlist, with the reason the delivery log gives.
    @Test(arguments: [
        ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
        ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"), ("192.168.1.1", "private"),
        ("169.254.10.10", "link-local"), ("fe80::1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"), ("100.127.255.254", "carrier-grade NAT"),
        ("169.254.169.254", "cloud metadata"), ("fd00:ec2::254", "cloud metadata"),
        ("fc00::1", "unique-local"), ("fd12:3456::1", "unique-local"),
        ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"), ("::ffff:169.254.169.254", "cloud metadata"),
        ("::ffff:100.64.0.1", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"), ("::", "unspecified"),
        ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("255.255.255.255", "reserved"),
        ("64:ff9b::a00:1", "NAT64"), ("2002:7f00:1::", "6to4"),
    ])
    func refusesInternalAddresses(address: String, reason: String) throws {
        let ip = try #require(IPAddress(address))
        let refusal = try #require(WebhookAddressPolicy().refusal(host: "example.com", address: ip), "\(address) was allowed")
        #expect(refusal.contains(reason), "\(address): \(refusal)")
    }

    @Test(arguments: ["93.184.216.34", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::"])
    func allowsPublicAddresses(address: String) throws {
        let ip = try #require(IPAddress(address))
        #expect(WebhookAddressPolicy().refusal(host: "example.com", address: ip) == nil)
    }

    @Test func allowlistedNetworksAndHostsBypassTheGuard() throws {
        let policy = try #require(WebhookAddressPolicy(allowHTTP: true, allowlist: "127.0.0.1/32, 10.0.0.0/8,fd00::/8, Receiver.Internal"))
        #expect(policy.refusal(host: "localhost", address: try #require(IPAddress("127.0.0.1"))) == nil)
        #expect(policy.refusal(host: "localhost", address: try #require(IPAddress("127.0.0.2"))) != nil)
        #expect(policy.refusal(host: "x", address: try #require(IPAddress("10.200.1.1"))) == nil)
        // An IPv4 network also covers the IPv4-mapped IPv6 form of its addresses.
        #expect(policy.refusal(host: "x", address: try #require(IPAddress("::ffff:127.0.0.1"))) == nil)
        #expect(policy.refusal(host: "x", address: try #require(IPAddress("fd00::5"))) == nil)
        #expect(policy.refusal(host: "receiver.internal", address: try #require(IPAddress("192.168.0.9"))) == nil)
        #expect(policy.refusal(host: "other.internal", address: try #require(IPAddress("192.168.0.9"))) != nil)
    }

    @Test func schemesNeedHTTPSUnlessPlainHTTPIsAllowed() {
        let strict = WebhookAddressPolicy()
        #expect(strict.refusal(scheme: "https", host: "example.com") == nil)
        #expect(strict.refusal(scheme: "http", host: "example.com")?.contains("LLMGW_WEBHOOK_ALLOW_HTTP") == true)
        #expect(strict.refusal(scheme: "ftp", host: "example.com") != nil)
        #expect(strict.refusal(scheme: "https", host: nil) != nil)
        #expect(WebhookAddressPolicy(allowHTTP: true).refusal(scheme: "http", host: "example.com") == nil)
    }

    @Test(arguments: ["10.0.0.0/33", "not a host!", "1.2.3.4/x", "::1/129"])
    func malformedAllowlistsAreRejected(allowlist: String) {
        #expect(WebhookAddressPolicy(allowHTTP: false, allowlist: allowlist) == nil)
    }

    @Test func cidrMatchingHonoursThePrefix() throws {
        let network = try #require(CIDR("172.16.0.0/12"))
        #expect(network.contains(try #require(IPAddress("172.20.1.1"))))
        #expect(!network.contains(try #require(IPAddress("172.32.0.0"))))
        #expect(!network.contains(try #require(IPAddress("2001:db8::1"))))
        let v6 = try #require(CIDR("2001:db8::/32"))
        #expect(v6.contains(try #require(IPAddress("2001:db8:ffff::1"))))
        #expect(!v6.contains(try #require(IPAddress("2001:db9::1"))))
    }
}

@Suite struct WebhookSigningTests {
    /// The Standard Webhooks reference vector (the same the reference libraries test against).
    @Test func signatureMatchesTheReferenceVector() throws {
        let secret = try #require(WebhookSecret(parsing: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        let signature = secret.signature(messageID: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: Array(#"{"test": 2432232314}"#.utf8))
        #expect(signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    @Test func generatedSecretsRoundTrip() throws {
        let secret = WebhookSecret.generate()
        #expect(secret.text.hasPrefix("whsec_"))
        #expect(secret.key.count == 32)
        #expect(WebhookSecret(parsing: secret.text) == secret)
        #expect(WebhookSecret(parsing: "whsec_") == nil)
        #expect(WebhookSecret(parsing: "sk_abc") == nil)
    }

    @Test func largeResultsAreReplacedByTheJobURL() {
        let small = ChatCompletion(model: "m", text: "hi", finishReason: .stop, usage: nil)
        let event = WebhookEvent.make(jobID: "job_1", provider: "openai", model: "m", result: small, error: nil, at: 1)
        #expect(event.type == "job.completed")
        #expect(event.data.result?.text == "hi")
        #expect(event.data.url == nil)
        let large = ChatCompletion(model: "m", text: String(repeating: "x", count: WebhookEvent.inlineLimit + 1), finishReason: .stop, usage: nil)
        let big = WebhookEvent.make(jobID: "job_1", provider: "openai", model: "m", result: large, error: nil, at: 1)
        #expect(big.data.result == nil)
        #expect(big.data.url == "/gateway/jobs/job_1")
        let failed = WebhookEvent.make(jobID: "job_2", provider: "openai", model: "m", result: nil, error: JobFailure(message: "no", type: "upstream_error", code: "upstream_error"), at: 1)
        #expect(failed.type == "job.failed")
        #expect(failed.data.status == .failed)
    }
}

@Suite struct WebhookRetryScheduleTests {
    struct Fixed: RandomNumberGenerator {
        var value: UInt64
        mutating func next() -> UInt64 { value }
    }

    @Test func delaysFollowTheScheduleWithinTheJitterThenStop() {
        let schedule = WebhookRetrySchedule(delays: [5, 300, 1_800], jitter: 0.2)
        var generator = SystemRandomNumberGenerator()
        for (attempt, base) in [(1, 5.0), (2, 300.0), (3, 1_800.0)] {
            let delay = schedule.delay(afterAttempt: attempt, retryAfter: nil, using: &generator)
            #expect(delay.map { $0 >= base * 0.8 && $0 <= base * 1.2 } == true, "attempt \(attempt): \(String(describing: delay))")
        }
        #expect(schedule.delay(afterAttempt: 4, retryAfter: nil, using: &generator) == nil)
        #expect(schedule.maxAttempts == 4)
    }

    @Test func retryAfterReplacesTheScheduledDelay() {
        let schedule = WebhookRetrySchedule(delays: [5, 300], jitter: 0.2)
        var generator = Fixed(value: 0)
        #expect(schedule.delay(afterAttempt: 1, retryAfter: 42, using: &generator) == 42)
        #expect(schedule.delay(afterAttempt: 1, retryAfter: 1e9, using: &generator) == 86_400)
        // No attempts are left after the last one, whatever the receiver asks.
        #expect(schedule.delay(afterAttempt: 3, retryAfter: 1, using: &generator) == nil)
    }

    @Test func schedulesParseFromConfiguration() throws {
        #expect(WebhookRetrySchedule(parsing: "0.5, 2,60")?.delays == [0.5, 2, 60])
        #expect(WebhookRetrySchedule(parsing: "1,-2") == nil)
        #expect(WebhookRetrySchedule(parsing: "") == nil)
        let configuration = try GatewayConfiguration.load(environment: [
            "LLMGW_WEBHOOK_RETRY_SCHEDULE": "1,2", "LLMGW_WEBHOOK_ALLOW_HTTP": "true", "LLMGW_WEBHOOK_ALLOWLIST": "127.0.0.1/32",
        ])
        #expect(configuration.lifecycle.webhookSchedule.delays == [1, 2])
        #expect(configuration.lifecycle.webhookPolicy.allowHTTP)
    }

    @Test func badWebhookSecretNamesTheVariableWithoutEchoingIt() {
        do {
            _ = try GatewayConfiguration.load(environment: ["LLMGW_WEBHOOK_SECRET": "supersecretvalue"])
            Issue.record("accepted a malformed secret")
        } catch {
            #expect(error.variable == "LLMGW_WEBHOOK_SECRET")
            #expect(!error.description.contains("supersecretvalue"))
        }
    }

    @Test func deadlinesParseRFC3339AndUnixSeconds() throws {
        #expect(JobDeadline.parse("2030-01-01T00:00:00Z") == 1_893_456_000)
        #expect(JobDeadline.parse("2030-01-01T01:00:00.500+01:00") == 1_893_456_000.5)
        #expect(JobDeadline.parse("tomorrow") == nil)
        let submission = try JSONDecoder().decode(JobSubmission.self, from: Data(#"{"prompt":"x","deadline":1893456000,"priority":"batch","webhook":{"url":"https://example.com/h"}}"#.utf8))
        #expect(submission.deadline == 1_893_456_000)
        #expect(submission.priority == .batch)
        #expect(submission.webhook?.url == "https://example.com/h")
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(JobSubmission.self, from: Data(#"{"prompt":"x","deadline":"soon"}"#.utf8)) }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(JobSubmission.self, from: Data(#"{"prompt":"x","priority":"urgent"}"#.utf8)) }
    }
}

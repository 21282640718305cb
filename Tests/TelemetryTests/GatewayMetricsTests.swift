import Foundation
import Telemetry
import Testing

@Suite("GatewayMetrics", .serialized, .timeLimit(.minutes(2)))
struct GatewayMetricsTests {
    /// The exposition's sample lines as `name{labels}` → value.
    static func samples(_ metrics: GatewayMetrics) -> [String: Double] {
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = value
        }
        return samples
    }

    @Test("ingress series with fixed labels exist at zero before any traffic")
    func ingressRegistration() {
        let metrics = GatewayMetrics()
        metrics.registerIngress()
        let samples = Self.samples(metrics)
        #expect(samples["llmgw_http_requests_in_flight"] == 0)
        #expect(samples[#"llmgw_cache_requests_total{result="hit"}"#] == 0)
        #expect(samples[#"llmgw_cache_requests_total{result="miss"}"#] == 0)
        #expect(samples[#"llmgw_rejections_total{reason="rate_limited"}"#] == 0)
        #expect(samples[#"llmgw_rejections_total{reason="over_budget"}"#] == 0)
        #expect(samples["llmgw_enqueue_duration_seconds_count"] == 0)
        #expect(samples["llmgw_sync_wait_duration_seconds_count"] == 0)
    }

    @Test("worker series exist per provider, and webhook outcomes, before any job")
    func workerRegistration() {
        let metrics = GatewayMetrics()
        metrics.registerWorker(providers: ["openai", "anthropic"])
        let samples = Self.samples(metrics)
        for provider in ["openai", "anthropic"] {
            #expect(samples[#"llmgw_jobs_in_flight{provider="\#(provider)"}"#] == 0)
            #expect(samples[#"llmgw_retries_total{provider="\#(provider)"}"#] == 0)
            #expect(samples[#"llmgw_fallbacks_total{provider="\#(provider)"}"#] == 0)
        }
        for outcome in ["delivered", "retried", "failed"] {
            #expect(samples[#"llmgw_webhook_deliveries_total{outcome="\#(outcome)"}"#] == 0)
        }
    }

    @Test("HTTP requests count by route template, method and status; the histogram by route and method")
    func httpRequests() {
        let metrics = GatewayMetrics()
        metrics.httpRequest(route: "/gateway/jobs/{id}", method: "GET", status: 200, duration: .milliseconds(3))
        metrics.httpRequest(route: "/gateway/jobs/{id}", method: "GET", status: 200, duration: .milliseconds(40))
        metrics.httpRequest(route: "/gateway/jobs/{id}", method: "GET", status: 404, duration: .milliseconds(2))
        metrics.httpRequest(route: GatewayMetrics.unmatchedRoute, method: "GET", status: 404, duration: .milliseconds(1))
        metrics.httpRequestsInFlight(1)
        metrics.httpRequestsInFlight(1)
        metrics.httpRequestsInFlight(-1)
        let samples = Self.samples(metrics)
        #expect(samples[#"llmgw_http_requests_total{route="/gateway/jobs/{id}",method="GET",status="200"}"#] == 2)
        #expect(samples[#"llmgw_http_requests_total{route="/gateway/jobs/{id}",method="GET",status="404"}"#] == 1)
        #expect(samples[#"llmgw_http_requests_total{route="unmatched",method="GET",status="404"}"#] == 1)
        #expect(samples[#"llmgw_http_request_duration_seconds_count{route="/gateway/jobs/{id}",method="GET"}"#] == 3)
        // 3 ms and 2 ms fall in the 5 ms bucket, 40 ms does not.
        #expect(samples[#"llmgw_http_request_duration_seconds_bucket{route="/gateway/jobs/{id}",method="GET",le="0.005"}"#] == 2)
        #expect(samples[#"llmgw_http_request_duration_seconds_bucket{route="/gateway/jobs/{id}",method="GET",le="0.05"}"#] == 3)
        let sum = samples[#"llmgw_http_request_duration_seconds_sum{route="/gateway/jobs/{id}",method="GET"}"#] ?? 0
        #expect(abs(sum - 0.045) < 1e-9)
        #expect(samples["llmgw_http_requests_in_flight"] == 1)
    }

    @Test("the calls other modules make change their series")
    func publicCalls() {
        let metrics = GatewayMetrics()
        metrics.cacheRequest(hit: true)
        metrics.cacheRequest(hit: true)
        metrics.cacheRequest(hit: false)
        metrics.rejection(reason: .overBudget)
        metrics.webhookDelivery(outcome: .delivered)
        metrics.usage(provider: "openai", model: "gpt-4o", keyID: "key_1", promptTokens: 7, completionTokens: 5, costUSD: 0.25)
        metrics.usage(provider: "openai", model: "gpt-4o", keyID: "key_1", promptTokens: 3, completionTokens: 1, costUSD: 0.5)
        metrics.jobEnded(provider: "openai", model: "gpt-4o", outcome: .failed, run: .seconds(2), endToEnd: .seconds(3))
        metrics.upstreamError(provider: "openai", errorClass: "rate_limited")
        metrics.consumerLag(topic: "llm.jobs.openai", partition: 2, lag: 42)
        var samples = Self.samples(metrics)
        #expect(samples[#"llmgw_cache_requests_total{result="hit"}"#] == 2)
        #expect(samples[#"llmgw_cache_requests_total{result="miss"}"#] == 1)
        #expect(samples[#"llmgw_rejections_total{reason="over_budget"}"#] == 1)
        #expect(samples[#"llmgw_webhook_deliveries_total{outcome="delivered"}"#] == 1)
        #expect(samples[#"llmgw_tokens_total{provider="openai",model="gpt-4o",key_id="key_1",kind="prompt"}"#] == 10)
        #expect(samples[#"llmgw_tokens_total{provider="openai",model="gpt-4o",key_id="key_1",kind="completion"}"#] == 6)
        #expect(samples[#"llmgw_cost_usd_total{provider="openai",model="gpt-4o",key_id="key_1"}"#] == 0.75)
        #expect(samples[#"llmgw_jobs_total{provider="openai",model="gpt-4o",outcome="failed"}"#] == 1)
        #expect(samples[#"llmgw_job_run_seconds_sum{provider="openai"}"#] == 2)
        #expect(samples[#"llmgw_job_end_to_end_seconds_sum{provider="openai"}"#] == 3)
        #expect(samples[#"llmgw_upstream_errors_total{provider="openai",class="rate_limited"}"#] == 1)
        #expect(samples[#"llmgw_consumer_lag{topic="llm.jobs.openai",partition="2"}"#] == 42)
        metrics.removeConsumerLag(topic: "llm.jobs.openai", partition: 2)
        samples = Self.samples(metrics)
        #expect(samples[#"llmgw_consumer_lag{topic="llm.jobs.openai",partition="2"}"#] == nil)
        // A partition assigned again gets its series back, not the removed one.
        metrics.consumerLag(topic: "llm.jobs.openai", partition: 2, lag: 7)
        samples = Self.samples(metrics)
        #expect(samples[#"llmgw_consumer_lag{topic="llm.jobs.openai",partition="2"}"#] == 7)
    }

    /// The dashboard, the alert rules and the README use exactly the names defined here.
    @Test("every metric is documented in the README and every name infra uses is defined")
    func namesMatchDocumentationAndInfra() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let metricsSection = try #require(readme.range(of: "## Metrics").map { readme[$0.upperBound...] })
        let defined = Set(GatewayMetrics.Names.all.map(\.name))
        #expect(defined.count == 22)
        for name in defined {
            #expect(metricsSection.contains("`\(name)`"), "README's Metrics section does not document \(name)")
        }
        for file in ["infra/grafana/dashboards/llm-gateway.json", "infra/helm/llm-gateway/files/alerts.yml"] {
            let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
            let used = try Regex(#"llmgw_[a-z0-9_]+"#)
            for match in text.matches(of: used) {
                var name = String(text[match.range])
                for suffix in ["_bucket", "_count", "_sum"] where name.hasSuffix(suffix) && !defined.contains(name) {
                    name = String(name.dropLast(suffix.count))
                }
                #expect(defined.contains(name), "\(file) uses \(name), which the gateway does not export")
            }
        }
    }
}

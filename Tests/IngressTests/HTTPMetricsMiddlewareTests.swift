import Hummingbird
import HummingbirdTesting
import Telemetry
import Testing

@testable import Ingress

/// The HTTP metrics count a buffered response when its handler returns, and a streamed one (server-sent events)
/// once its last event is written: a stream's request stays in flight, and is timed, for as long as it lasts.
@Suite("HTTP metrics middleware")
struct HTTPMetricsMiddlewareTests {
    /// The value of the sample `name{…}` whose labels include each of `labels`; 0 when there is none.
    static func sample(_ metrics: GatewayMetrics, _ name: String, _ labels: String...) -> Double {
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let series = line.prefix { $0 != " " }
            guard series == name || series.hasPrefix(name + "{"), labels.allSatisfy({ series.contains($0) }) else { continue }
            return Double(line.split(separator: " ").last ?? "") ?? .nan
        }
        return 0
    }

    /// `/buffered` answers a body of known length; `/stream` sends what the metrics say while it is open, then,
    /// 200 ms later, its last event.
    static func application(_ metrics: GatewayMetrics) -> some ApplicationProtocol {
        let router = Router()
        router.middlewares.add(HTTPMetricsMiddleware(metrics: metrics))
        router.get("/buffered") { _, _ in "done" }
        router.get("/stream") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/event-stream"], body: ResponseBody { writer in
                let counted = sample(metrics, "llmgw_http_requests_total", "route=\"/stream\"")
                let inFlight = sample(metrics, "llmgw_http_requests_in_flight")
                try await writer.write(ByteBuffer(string: "data: counted=\(counted) in_flight=\(inFlight)\n\n"))
                try await Task.sleep(for: .milliseconds(200))
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
            })
        }
        return Application(router: router)
    }

    @Test("a buffered response is counted once, with its route template and status")
    func countsABufferedResponse() async throws {
        let metrics = GatewayMetrics()
        try await Self.application(metrics).test(.router) { client in
            try await client.execute(uri: "/buffered", method: .get) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/nowhere", method: .get) { response in
                #expect(response.status == .notFound)
            }
        }
        #expect(Self.sample(metrics, "llmgw_http_requests_total", "route=\"/buffered\"", "status=\"200\"") == 1)
        #expect(Self.sample(metrics, "llmgw_http_request_duration_seconds_count", "route=\"/buffered\"") == 1)
        #expect(Self.sample(metrics, "llmgw_http_requests_total", "route=\"\(GatewayMetrics.unmatchedRoute)\"", "status=\"404\"") == 1)
        #expect(Self.sample(metrics, "llmgw_http_requests_in_flight") == 0)
    }

    @Test("a stream is in flight until its last event is written, and its duration covers the whole stream")
    func countsAStreamWhenItEnds() async throws {
        let metrics = GatewayMetrics()
        try await Self.application(metrics).test(.router) { client in
            try await client.execute(uri: "/stream", method: .get) { response in
                #expect(response.status == .ok)
                let body = String(buffer: response.body)
                #expect(body.hasPrefix("data: counted=0.0 in_flight=1.0\n\n"), "\(body)")
                #expect(body.hasSuffix("data: [DONE]\n\n"), "\(body)")
            }
        }
        #expect(Self.sample(metrics, "llmgw_http_requests_total", "route=\"/stream\"", "status=\"200\"") == 1)
        #expect(Self.sample(metrics, "llmgw_http_request_duration_seconds_count", "route=\"/stream\"") == 1)
        #expect(Self.sample(metrics, "llmgw_http_request_duration_seconds_sum", "route=\"/stream\"") >= 0.2)
        #expect(Self.sample(metrics, "llmgw_http_requests_in_flight") == 0)
    }
}

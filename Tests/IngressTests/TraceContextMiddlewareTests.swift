import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Telemetry
import Testing
import Tracing

@testable import Ingress

/// Without an OTLP endpoint the ingress keeps only the trace context of a request: the handler runs in a span that
/// continues the client's `traceparent`, or starts a new trace. Uses the real swift-otel tracer, exporting nothing.
@Suite("Trace context middleware")
struct TraceContextMiddlewareTests {
    static let incomingTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let incomingSpanID = "00f067aa0ba902b7"

    /// An application whose one route answers the `traceparent` its handler would send on (to Kafka, to providers).
    static func application() throws -> some ApplicationProtocol {
        let tracer = try GatewayTracing.makeTracer(serviceName: "ingress-tests", tracesEndpoint: nil, logger: Logger(label: "otel")).tracer
        let router = Router()
        router.middlewares.add(TraceContextMiddleware(tracer: tracer))
        router.get("/trace") { _, _ in
            let headers = (ServiceContext.current ?? .topLevel).kafkaHeaders(instrument: tracer)
            return headers.last { $0.name == "traceparent" }.map { String(decoding: $0.value, as: UTF8.self) } ?? "none"
        }
        return Application(router: router)
    }

    /// `00-<trace id>-<span id>-<flags>`, split.
    static func parse(_ traceparent: String) throws -> (traceID: String, spanID: String) {
        let parts = traceparent.split(separator: "-").map(String.init)
        try #require(parts.count == 4 && parts[0] == "00" && parts[1].count == 32 && parts[2].count == 16, "not a W3C traceparent: \(traceparent)")
        return (parts[1], parts[2])
    }

    @Test("a request's traceparent is continued: same trace, the request's own span")
    func continuesTheClientsTrace() async throws {
        try await Self.application().test(.router) { client in
            let incoming = "00-\(Self.incomingTraceID)-\(Self.incomingSpanID)-01"
            try await client.execute(uri: "/trace", method: .get, headers: [HTTPField.Name("traceparent")!: incoming]) { response in
                #expect(response.status == .ok)
                let (traceID, spanID) = try Self.parse(String(buffer: response.body))
                #expect(traceID == Self.incomingTraceID)
                #expect(spanID != Self.incomingSpanID)
            }
        }
    }

    @Test("without a traceparent every request starts a trace of its own")
    func startsATrace() async throws {
        try await Self.application().test(.router) { client in
            var traceIDs: Set<String> = []
            for _ in 0..<2 {
                try await client.execute(uri: "/trace", method: .get) { response in
                    #expect(response.status == .ok)
                    let (traceID, _) = try Self.parse(String(buffer: response.body))
                    #expect(traceID != String(repeating: "0", count: 32))
                    traceIDs.insert(traceID)
                }
            }
            #expect(traceIDs.count == 2)
        }
    }
}

import Logging
import Telemetry
import Testing
import Tracing

/// The trace context survives the Kafka hop: the ingress injects `traceparent` into the record headers, and the
/// worker's span, extracted from them, continues the same trace. Uses the real swift-otel tracer, exporting nothing.
@Suite("Trace propagation", .serialized, .timeLimit(.minutes(2)))
struct TracePropagationTests {
    static let incomingTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let incomingSpanID = "00f067aa0ba902b7"
    static let incoming = "00-\(incomingTraceID)-\(incomingSpanID)-01"

    static func makeTracer() throws -> any Tracer {
        try GatewayTracing.makeTracer(serviceName: "telemetry-tests", tracesEndpoint: nil, logger: Logger(label: "otel")).tracer
    }

    /// `00-<trace id>-<span id>-<flags>`, split.
    static func parse(_ traceparent: String?) throws -> (traceID: String, spanID: String) {
        let parts = try #require(traceparent).split(separator: "-").map(String.init)
        try #require(parts.count == 4 && parts[0] == "00", "not a W3C traceparent: \(traceparent ?? "nil")")
        return (parts[1], parts[2])
    }

    static func traceparent(in headers: [(name: String, value: [UInt8])]) -> String? {
        headers.last { $0.name == "traceparent" }.map { String(decoding: $0.value, as: UTF8.self) }
    }

    @Test("a request's traceparent reaches the worker's span and its log metadata")
    func acrossKafka() throws {
        try across(Self.makeTracer())
    }

    func across<T: Tracer>(_ tracer: T) throws {
        // Ingress: the request span continues the client's trace; the producer span's context goes into the record.
        let requestContext = ServiceContext.extracted(
            fromKafkaHeaders: [(name: "traceparent", value: Array(Self.incoming.utf8))], instrument: tracer)
        let recordHeaders = tracer.withSpan("POST /gateway/jobs", context: requestContext, ofKind: .server) { request in
            tracer.withSpan("llm.jobs.openai publish", context: request.context, ofKind: .producer) { producer in
                producer.context.kafkaHeaders(instrument: tracer)
            }
        }
        let produced = try Self.parse(Self.traceparent(in: recordHeaders))
        #expect(produced.traceID == Self.incomingTraceID)
        #expect(produced.spanID != Self.incomingSpanID, "the record must name the producer span as its parent")

        // Worker: a span extracted from the record's headers is in the same trace, and log lines inside it say so.
        let workerContext = ServiceContext.extracted(fromKafkaHeaders: recordHeaders, instrument: tracer)
        let (workerTraceparent, metadata) = tracer.withSpan("llm.jobs.openai process", context: workerContext, ofKind: .consumer) { span in
            var headers: [(name: String, value: String)] = []
            tracer.inject(span.context, into: &headers, using: HTTPHeaderListInjector())
            return (headers.first { $0.name == "traceparent" }?.value, GatewayTracing.loggingMetadataProvider.get())
        }
        let worker = try Self.parse(workerTraceparent)
        #expect(worker.traceID == Self.incomingTraceID)
        #expect(worker.spanID != produced.spanID)
        #expect(metadata["trace_id"] == .string(Self.incomingTraceID))
        #expect(metadata["span_id"] == .string(worker.spanID))
    }

    @Test("without incoming context the request starts a new trace, which still crosses the hop")
    func newTrace() throws {
        try newTrace(Self.makeTracer())
    }

    func newTrace<T: Tracer>(_ tracer: T) throws {
        let headers = tracer.withSpan("POST /gateway/jobs", context: .topLevel, ofKind: .server) { span in
            span.context.kafkaHeaders(instrument: tracer)
        }
        let produced = try Self.parse(Self.traceparent(in: headers))
        #expect(produced.traceID.count == 32 && produced.traceID != String(repeating: "0", count: 32))
        let extracted = ServiceContext.extracted(fromKafkaHeaders: headers, instrument: tracer)
        let metadata = tracer.withSpan("process", context: extracted, ofKind: .consumer) { _ in GatewayTracing.loggingMetadataProvider.get() }
        #expect(metadata["trace_id"] == .string(produced.traceID))
    }

    @Test("a record without trace headers starts the worker's own trace; outside a span logs carry no trace id")
    func noHeaders() throws {
        let tracer = try Self.makeTracer()
        #expect(GatewayTracing.loggingMetadataProvider.get()["trace_id"] == nil)
        #expect(ServiceContext.topLevel.kafkaHeaders(instrument: tracer).isEmpty)
        let extracted = ServiceContext.extracted(fromKafkaHeaders: [(name: "other", value: [1, 2])], instrument: tracer)
        #expect(Self.traceparent(in: extracted.kafkaHeaders(instrument: tracer)) == nil)
    }
}

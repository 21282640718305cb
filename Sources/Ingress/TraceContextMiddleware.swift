import Hummingbird
import HTTPTypes
import Tracing

/// The request's trace context, for a process that exports no spans (no OTLP endpoint configured).
///
/// Hummingbird's `TracingMiddleware` fills a dozen span attributes and wraps the response body to end the span
/// once written: work for a span that someone records. Without an exporter no span leaves the process, so this
/// keeps only what the context is for: it continues an incoming `traceparent` (or starts a trace), so that log
/// lines carry the trace id and the trace travels on with the job in its Kafka headers and provider calls.
/// With an endpoint configured the router uses `TracingMiddleware` instead.
struct TraceContextMiddleware<Context: RequestContext>: RouterMiddleware {
    let tracer: any Tracer

    init(tracer: any Tracer = InstrumentationSystem.tracer) {
        self.tracer = tracer
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var parent = ServiceContext.current ?? .topLevel
        tracer.extract(request.headers, into: &parent, using: HTTPFieldsExtractor())
        let span = tracer.startSpan("HTTP request", context: parent, ofKind: .server)
        defer { span.end() }
        return try await ServiceContext.$current.withValue(span.context) {
            try await next(request, context)
        }
    }
}

/// Reads propagation headers (`traceparent`, `tracestate`) from a request.
private struct HTTPFieldsExtractor: Extractor {
    func extract(key: String, from headers: HTTPFields) -> String? {
        HTTPField.Name(key).flatMap { headers[$0] }
    }
}

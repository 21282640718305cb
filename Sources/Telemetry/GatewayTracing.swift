import Logging
import OTel
import ServiceLifecycle
import Tracing

/// The process' tracer: OpenTelemetry through swift-otel, with W3C trace context propagation.
///
/// Span contexts are always created, so that log lines carry a `trace_id` and the `traceparent` travels with every
/// job; spans are recorded and exported by OTLP/HTTP only when an endpoint is configured (or an incoming
/// `traceparent` asks for sampling).
public enum GatewayTracing {
    /// Builds the tracer.
    /// - Parameters:
    ///   - serviceName: OpenTelemetry's `service.name` (`llm-gateway-ingress`, `llm-gateway-worker`).
    ///   - tracesEndpoint: the OTLP/HTTP traces URL (`http://collector:4318/v1/traces`); `nil` exports nothing.
    /// - Returns: the tracer, and the service that exports and flushes its spans; run it in the `ServiceGroup`.
    /// - Throws: when swift-otel rejects the configuration (for example `OTEL_SDK_DISABLED=true`).
    public static func makeTracer(serviceName: String, tracesEndpoint: String?, logger: Logger) throws -> (tracer: any Tracer, service: any Service) {
        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName
        configuration.diagnosticLogger = .custom(logger)
        configuration.metrics.enabled = false
        configuration.logs.enabled = false
        configuration.propagators = [.traceContext]
        if let tracesEndpoint {
            configuration.traces.exporter = .otlp
            configuration.traces.otlpExporter.protocol = .httpProtobuf
            configuration.traces.otlpExporter.endpoint = tracesEndpoint
        } else {
            // Nothing would receive the spans: record none, but keep creating span contexts, so that trace ids
            // still reach the logs and travel in Kafka headers and provider calls. A sampled incoming
            // `traceparent` is still honoured.
            configuration.traces.exporter = .none
            configuration.traces.sampler = .parentBasedAlwaysOff
        }
        let backend = try OTel.makeTracingBackend(configuration: configuration)
        return (backend.factory, backend.service)
    }

    /// Installs `tracer` as the process' tracer. Call once, before the first span.
    public static func bootstrap(_ tracer: any Tracer) {
        InstrumentationSystem.bootstrap(tracer)
    }

    /// Adds `trace_id`, `span_id` and `trace_flags` of the current span to every log line.
    public static let loggingMetadataProvider: Logger.MetadataProvider = OTel.makeLoggingMetadataProvider()

    /// The W3C header that carries the trace context, in HTTP requests and Kafka record headers.
    public static let traceparentHeader = "traceparent"
}

/// Writes trace context into Kafka record headers.
public struct KafkaHeadersInjector: Injector {
    public init() {}

    public func inject(_ value: String, forKey key: String, into carrier: inout [(name: String, value: [UInt8])]) {
        carrier.removeAll { $0.name == key }
        carrier.append((name: key, value: Array(value.utf8)))
    }
}

/// Reads trace context from Kafka record headers.
public struct KafkaHeadersExtractor: Extractor {
    public init() {}

    public func extract(key: String, from carrier: [(name: String, value: [UInt8])]) -> String? {
        carrier.last { $0.name.lowercased() == key.lowercased() }.map { String(decoding: $0.value, as: UTF8.self) }
    }
}

/// Writes trace context into a list of HTTP header fields (an outgoing provider request).
public struct HTTPHeaderListInjector: Injector {
    public init() {}

    public func inject(_ value: String, forKey key: String, into carrier: inout [(name: String, value: String)]) {
        carrier.removeAll { $0.name.lowercased() == key.lowercased() }
        carrier.append((name: key, value: value))
    }
}

extension ServiceContext {
    /// The trace context a Kafka record carries, or a top-level context when it carries none.
    public static func extracted(
        fromKafkaHeaders headers: [(name: String, value: [UInt8])],
        instrument: any Instrument = InstrumentationSystem.instrument
    ) -> ServiceContext {
        var context = ServiceContext.topLevel
        instrument.extract(headers, into: &context, using: KafkaHeadersExtractor())
        return context
    }

    /// Kafka record headers carrying this context's trace (`traceparent`), empty when there is no span.
    public func kafkaHeaders(instrument: any Instrument = InstrumentationSystem.instrument) -> [(name: String, value: [UInt8])] {
        var headers: [(name: String, value: [UInt8])] = []
        instrument.inject(self, into: &headers, using: KafkaHeadersInjector())
        return headers
    }
}

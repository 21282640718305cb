import Protocol
import Testing

@Suite("Telemetry configuration", .serialized, .timeLimit(.minutes(2)))
struct TelemetryConfigurationTests {
    static func endpoint(_ environment: [String: String]) throws(ConfigurationError) -> String? {
        try GatewayConfiguration.load(environment: environment).otlpTracesEndpoint
    }

    @Test("no endpoint exports nothing; prompts are not logged by default")
    func defaults() throws {
        let configuration = try GatewayConfiguration.load(environment: [:])
        #expect(configuration.otlpTracesEndpoint == nil)
        #expect(configuration.logPrompts == false)
    }

    @Test("base URLs get /v1/traces; the per-signal variable is used as is; LLMGW_OTLP_ENDPOINT wins")
    func endpoints() throws {
        #expect(try Self.endpoint(["LLMGW_OTLP_ENDPOINT": "http://collector:4318"]) == "http://collector:4318/v1/traces")
        #expect(try Self.endpoint(["LLMGW_OTLP_ENDPOINT": "http://collector:4318/"]) == "http://collector:4318/v1/traces")
        #expect(try Self.endpoint(["LLMGW_OTLP_ENDPOINT": "https://c.example/v1/traces"]) == "https://c.example/v1/traces")
        #expect(try Self.endpoint(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318"]) == "http://otel:4318/v1/traces")
        #expect(try Self.endpoint(["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://otel:4318/custom"]) == "http://otel:4318/custom")
        #expect(try Self.endpoint([
            "LLMGW_OTLP_ENDPOINT": "http://mine:4318", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://theirs:4318",
        ]) == "http://mine:4318/v1/traces")
    }

    @Test("bad values name their variable")
    func badValues() throws {
        #expect(throws: ConfigurationError.self) { try Self.endpoint(["LLMGW_OTLP_ENDPOINT": "collector:4318"]) }
        do {
            _ = try Self.endpoint(["OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"])
            Issue.record("gRPC accepted")
        } catch {
            #expect(error.variable == "OTEL_EXPORTER_OTLP_PROTOCOL")
        }
        #expect(try Self.endpoint(["OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"]) == nil)
        do {
            _ = try GatewayConfiguration.load(environment: ["LLMGW_LOG_PROMPTS": "yes please"])
            Issue.record("a bad LLMGW_LOG_PROMPTS was accepted")
        } catch {
            #expect(error.variable == "LLMGW_LOG_PROMPTS")
        }
        #expect((try? GatewayConfiguration.load(environment: ["LLMGW_LOG_PROMPTS": "true"]))?.logPrompts == true)
    }
}

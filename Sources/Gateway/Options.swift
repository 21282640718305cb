import ArgumentParser
import Foundation
import Logging
import Protocol
import ServiceLifecycle
import Telemetry

/// Flags shared by the commands that talk to Redis and Kafka. A flag wins over its environment variable.
struct CommonOptions: ParsableArguments {
    @Option(help: "Kafka bootstrap servers, host:port[,…] (LLMGW_KAFKA_BROKERS).")
    var brokers: String?

    @Option(name: .customLong("redis-url"), help: "Redis URL, redis://[password@]host[:port][/db] (LLMGW_REDIS_URL).")
    var redisURL: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (LLMGW_LOG_LEVEL).")
    var logLevel: String?

    /// The validated configuration, or a one-line error naming the variable, then exit.
    func load(extra: [String: String?] = [:]) throws -> GatewayConfiguration {
        var environment = ProcessInfo.processInfo.environment
        let overrides: [String: String?] = [
            "LLMGW_KAFKA_BROKERS": brokers,
            "LLMGW_REDIS_URL": redisURL,
            "LLMGW_LOG_LEVEL": logLevel,
        ].merging(extra) { $1 }
        for (name, value) in overrides {
            if let value { environment[name] = value }
        }
        do {
            let configuration = try GatewayConfiguration.load(environment: environment)
            bootstrapLogging(level: configuration.logLevel)
            return configuration
        } catch {
            FileHandle.standardError.write(Data("llm-gateway: configuration error: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}

/// Installs the JSON log handler once per process. Lines written inside a span carry its `trace_id`.
func bootstrapLogging(level: String) {
    let level = Logger.Level(rawValue: level) ?? .info
    LoggingSystem.bootstrap(
        { label, provider in JSONLogHandler(label: label, level: level, metadataProvider: provider) },
        metadataProvider: GatewayTracing.loggingMetadataProvider)
}

/// Installs the OpenTelemetry tracer once per process. Returns the service that exports spans by OTLP (when
/// configured) and flushes them at shutdown; list it first in the `ServiceGroup` so that it stops last.
func bootstrapTracing(serviceName: String, configuration: GatewayConfiguration, logger: Logger) -> ServiceGroupConfiguration.ServiceConfiguration? {
    do {
        let backend = try GatewayTracing.makeTracer(serviceName: serviceName, tracesEndpoint: configuration.otlpTracesEndpoint, logger: logger)
        GatewayTracing.bootstrap(backend.tracer)
        logger.info("Tracing", metadata: ["otlp_traces_endpoint": "\(configuration.otlpTracesEndpoint ?? "none")"])
        return .init(service: backend.service)
    } catch {
        logger.warning("Tracing disabled", metadata: ["error": "\(error)"])
        return nil
    }
}

/// A process-unique id: host, pid and a random suffix.
func instanceID(role: String) -> String {
    let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
    let random = String(UInt32.random(in: 0...UInt32.max), radix: 36)
    return "\(role)-\(host)-\(getpid())-\(random)"
}

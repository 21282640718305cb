import ArgumentParser
import Hummingbird
import Logging
import MockProvider
import ServiceLifecycle

struct MockProviderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mock-provider",
        abstract: "Run a local LLM server that speaks every provider's wire format, for demos, tests and benchmarks."
    )

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on.") var port = 3030
    @Option(name: .customLong("delay-ms"), help: "Delay before every answer.") var delayMs = 0
    @Option(name: .customLong("stream-interval-ms"), help: "Pause between streamed tokens.") var streamIntervalMs = 0
    @Option(name: .customLong("error-rate"), help: "Share of calls, 0…1, that fail with a 500.") var errorRate = 0.0
    @Option(name: .customLong("log-level")) var logLevel = "info"

    func validate() throws {
        guard (0...1).contains(errorRate) else { throw ValidationError("--error-rate must be between 0 and 1") }
        guard (1...65535).contains(port) else { throw ValidationError("--port must be between 1 and 65535") }
    }

    func run() async throws {
        bootstrapLogging(level: logLevel)
        LLMGateway.installExecutor()
        var options = MockProvider.Options()
        options.host = host
        options.port = port
        options.delayMs = delayMs
        options.streamIntervalMs = streamIntervalMs
        options.errorRate = errorRate
        let logger = Logger(label: "llm-gateway.mock")
        let app = MockProvider.makeApplication(options: options, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [.init(service: app)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

import ArgumentParser
import Foundation
import Hummingbird
import Ingress
import Kafka
import Logging
import NIOCore
import Protocol
import Redis
import ResultStore
import ServiceLifecycle
import Telemetry

struct IngressCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ingress", abstract: "Run the HTTP ingress.")

    @OptionGroup var common: CommonOptions

    @Option(help: "Address to listen on (LLMGW_HTTP_HOST).")
    var host: String?

    @Option(help: "Port to listen on (LLMGW_HTTP_PORT).")
    var port: Int?

    func run() async throws {
        let configuration = try common.load(extra: ["LLMGW_HTTP_HOST": host, "LLMGW_HTTP_PORT": port.map(String.init)])
        LLMGateway.installExecutor(threads: configuration.eventLoopThreads)
        let logger = Logger(label: "llm-gateway.ingress")
        let tracing = bootstrapTracing(serviceName: "llm-gateway-ingress", configuration: configuration, logger: logger)
        let metrics = GatewayMetrics()
        metrics.registerIngress()
        let endpoint = configuration.redisSettings
        let redis = RedisClient(endpoint: endpoint, connections: 4, timeoutMs: configuration.redisTimeoutMs, logger: logger)
        let store = ResultStore(redis: redis, resultTTL: configuration.resultTTL)
        let producer = try KafkaProducer(configuration: configuration.kafka, logger: logger)
        let waiters = JobWaiters(
            instanceID: instanceID(role: "ingress"), store: store, endpoint: endpoint,
            timeoutMs: configuration.redisTimeoutMs, logger: logger)
        let streamReader = RedisStreamReader(endpoint: endpoint, timeoutMs: configuration.redisTimeoutMs, logger: logger)
        let jobs = JobService(configuration: configuration, store: store, producer: producer, waiters: waiters, metrics: metrics, feed: JobEventFeed(reader: streamReader), logger: logger)
        let jwt: JWTVerifier?
        do {
            jwt = try JWTVerifier(configuration: configuration.tenancy)
        } catch {
            FileHandle.standardError.write(Data("llm-gateway: configuration error: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let authenticator = Authenticator(
            keys: KeyStore(redis: redis), jwt: jwt, configuration: configuration.tenancy, endpoint: endpoint,
            timeoutMs: configuration.redisTimeoutMs, logger: logger)
        let tenancy = TenancyGate(
            authenticator: authenticator, usage: UsageStore(redis: redis),
            configuration: configuration.tenancy,
            events: .init(
                cacheLookup: { metrics.cacheRequest(hit: $0) },
                rejection: { metrics.rejection(reason: $0 ? .overBudget : .rateLimited) }),
            logger: logger)
        if !configuration.tenancy.authEnabled {
            logger.warning("Authentication is disabled (LLMGW_AUTH=disabled): every caller is the tenant 'anonymous'")
        }
        let routes = IngressRoutes(jobs: jobs, tenancy: tenancy) {
            async let redisUp = redis.ping()
            async let brokerUp = producer.isBrokerReachable()
            return (await redisUp, await brokerUp)
        }
        let app = Application(
            router: routes.makeRouter(),
            configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort), serverName: "llm-gateway"),
            logger: logger
        )
        reportMissingKeys(configuration, providers: Array(configuration.providers.keys), logger: logger)
        let resources = ShutdownHook(logger: logger) {
            waiters.shutdown()
            authenticator.shutdown()
            streamReader.shutdown()
            producer.shutdown()
            redis.shutdown()
        }
        let group = ServiceGroup(configuration: .init(
            services: Array([tracing].compactMap { $0 }) + [.init(service: resources), .init(service: app)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        let nice = configuration.nice.map { CPUPriority.lower(to: $0, logger: logger) } ?? CPUPriority.current
        logger.info("Ingress starting", metadata: [
            "address": "\(configuration.httpHost):\(configuration.httpPort)", "librdkafka": "\(librdkafkaVersion)",
            "redis": "\(configuration.redis)", "brokers": "\(configuration.kafkaBrokers)",
            "event_loop_threads": "\(NIOSingletons.groupLoopCountSuggestion)", "nice": "\(nice)",
            "allocator": "\(MemoryAllocator.description)",
        ])
        try await group.run()
    }
}

/// Waits for graceful shutdown, then releases resources. Listed first in the group, so it runs last.
struct ShutdownHook: Service {
    let logger: Logger
    let release: @Sendable () async -> Void

    init(logger: Logger, release: @escaping @Sendable () async -> Void) {
        self.logger = logger
        self.release = release
    }

    func run() async throws {
        try? await gracefulShutdown()
        await release()
        logger.info("Resources released")
    }
}

/// Says once at startup which providers cannot be called for want of a key.
func reportMissingKeys(_ configuration: GatewayConfiguration, providers: [String], logger: Logger) {
    let missing = providers.sorted().filter { id in
        configuration.providers[id]?.apiKey == nil && ProviderDescriptor.builtIn.contains { $0.id == id }
    }
    guard !missing.isEmpty else { return }
    let variables = missing.map { GatewayConfiguration.environmentPrefix($0) + "_API_KEY" }
    logger.warning("Providers without an API key; their jobs fail until one is set", metadata: [
        "providers": "\(missing.joined(separator: ","))", "variables": "\(variables.joined(separator: ","))",
    ])
}

extension GatewayConfiguration {
    var redisSettings: RedisEndpointSettings {
        RedisEndpointSettings(host: redis.host, port: redis.port, database: redis.database, username: redis.username, password: redis.password)
    }

    var kafka: KafkaConfiguration {
        var kafka = KafkaConfiguration(brokers: kafkaBrokers)
        kafka.messageTimeoutMs = produceTimeoutMs
        kafka.sessionTimeoutMs = kafkaSessionTimeoutMs
        kafka.fetchWaitMaxMs = kafkaFetchWaitMs
        kafka.lingerMs = kafkaLingerMs
        kafka.debugContexts = kafkaDebug
        return kafka
    }

    /// The batch lane's consumers: the same, with the batch lane's fetch wait.
    var batchKafka: KafkaConfiguration {
        var kafka = self.kafka
        kafka.fetchWaitMaxMs = kafkaBatchFetchWaitMs
        return kafka
    }
}

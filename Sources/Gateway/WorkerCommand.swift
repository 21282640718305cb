import ArgumentParser
import Hummingbird
import Kafka
import Logging
import NIOCore
import Protocol
import Redis
import ResultStore
import ServiceLifecycle
import Telemetry
import Worker

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "worker", abstract: "Consume and run the jobs of some providers.")

    @OptionGroup var common: CommonOptions

    @Option(name: .customLong("provider"), help: "Provider ids to consume, repeatable or comma-separated (openai, anthropic, …).")
    var providers: [String] = []

    @Option(help: "Jobs run at once per provider (LLMGW_WORKER_CONCURRENCY).")
    var concurrency: Int?

    @Option(name: .customLong("http-port"), help: "Port for /healthz, /readyz and /metrics; 0 disables (LLMGW_WORKER_HTTP_PORT).")
    var httpPort: Int?

    func run() async throws {
        let configuration = try common.load(extra: [
            "LLMGW_WORKER_CONCURRENCY": concurrency.map(String.init),
            "LLMGW_WORKER_HTTP_PORT": httpPort.map(String.init),
        ])
        let ids = providers.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
        guard !ids.isEmpty else {
            throw ValidationError("--provider is required, e.g. --provider openai")
        }
        for id in ids where configuration.providers[id] == nil {
            throw ValidationError("unknown provider '\(id)'; known: \(configuration.providers.keys.sorted().joined(separator: ", "))")
        }
        LLMGateway.installExecutor(threads: configuration.eventLoopThreads ?? 1)
        let logger = Logger(label: "llm-gateway.worker")
        let tracing = bootstrapTracing(serviceName: "llm-gateway-worker", configuration: configuration, logger: logger)
        let metrics = GatewayMetrics()
        metrics.registerWorker(providers: ids)
        let redis = RedisClient(endpoint: configuration.redisSettings, connections: 4, timeoutMs: configuration.redisTimeoutMs, logger: logger)
        let store = ResultStore(redis: redis, resultTTL: configuration.resultTTL)
        let producer = try KafkaProducer(configuration: configuration.kafka, logger: logger)
        let client = ProviderClient(timeouts: .init(
            connect: configuration.providerConnectTimeout,
            firstByte: configuration.providerFirstByteTimeout,
            total: configuration.providerTimeout),
            spans: configuration.exportsSpans)
        let runner = JobRunner(providers: configuration.providers, client: client, maxAttempts: configuration.providerMaxAttempts)
        let workerID = instanceID(role: "worker")
        let cancellations = JobCancellations(store: store, endpoint: configuration.redisSettings, timeoutMs: configuration.redisTimeoutMs, logger: logger)
        let webhookKeys = WebhookKeyStore(redis: redis)
        let endpointCache = WebhookEndpointCache(
            keys: webhookKeys, ttl: .milliseconds(Int64(configuration.tenancy.keyCacheSeconds * 1000)),
            endpoint: configuration.redisSettings, timeoutMs: configuration.redisTimeoutMs, logger: logger)
        let secrets = KeyStoreWebhookSecrets(keys: webhookKeys, fallback: configuration.lifecycle.webhookFallbackSecret, endpointCache: endpointCache)
        let lifecycle = WorkerLifecycle(
            cancellations: cancellations, planner: WebhookPlanner(secrets: secrets),
            webhookRetention: configuration.lifecycle.webhookSchedule.retention)
        // Dispatch hints go to the interactive topics only: they serve clients that wait for their job.
        let hints = configuration.dispatchHints
            ? DispatchHintListener(
                topics: ids.map { Topics.jobs(provider: $0) }, endpoint: configuration.redisSettings,
                timeoutMs: configuration.redisTimeoutMs, logger: logger)
            : nil
        var consumers: [KafkaConsumer] = []
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        for id in ids {
            let consumer = try KafkaConsumer(
                configuration: configuration.kafka,
                groupID: Topics.consumerGroup(provider: id),
                topics: [Topics.jobs(provider: id)],
                maxInFlight: configuration.workerConcurrency,
                logger: logger,
                onAssignment: { partitions in
                    // Hear the hints of the partitions this worker owns, and only those.
                    hints?.assign(topic: Topics.jobs(provider: id), partitions: partitions.map(\.partition))
                })
            consumers.append(consumer)
            services.append(.init(service: WorkerService(
                workerID: workerID, configuration: configuration, consumer: consumer, producer: producer,
                store: store, runner: runner, metrics: metrics, logger: logger, lifecycle: lifecycle,
                hints: hints?.feeds[Topics.jobs(provider: id)])))
            // The batch lane: its own topic, group and in-flight bound, so bulk jobs never take interactive slots.
            let batch = try KafkaConsumer(
                configuration: configuration.batchKafka,
                groupID: Topics.consumerGroup(provider: id, lane: .batch),
                topics: [Topics.jobs(provider: id, lane: .batch)],
                maxInFlight: configuration.lifecycle.batchConcurrency,
                logger: logger)
            services.append(.init(service: WorkerService(
                workerID: workerID, configuration: configuration, consumer: batch, producer: producer,
                store: store, runner: runner, metrics: metrics, logger: logger, lifecycle: lifecycle)))
        }
        services.append(.init(service: WebhookDispatcher(
            store: store, sender: WebhookSender(policy: configuration.lifecycle.webhookPolicy, timeout: configuration.lifecycle.webhookTimeout),
            secrets: secrets, configuration: configuration.lifecycle, logger: logger)))
        reportMissingKeys(configuration, providers: ids, logger: logger)
        let resources = ShutdownHook(logger: logger) {
            try? await client.shutdown()
            cancellations.shutdown()
            endpointCache.shutdown()
            hints?.shutdown()
            producer.shutdown()
            redis.shutdown()
        }
        // Dependency-first: the tracer stops last (flushing spans), the lag sampler before the consumers close.
        var all: [ServiceGroupConfiguration.ServiceConfiguration] = [tracing].compactMap { $0 } + [.init(service: resources)] + services
        all.append(.init(service: ConsumerLagSampler(consumers: consumers, metrics: metrics, logger: logger)))
        if configuration.workerHTTPPort != 0 {
            let probes = WorkerProbes(redis: redis, consumers: consumers, metrics: metrics)
            all.append(.init(service: Application(
                router: probes.makeRouter(),
                configuration: .init(address: .hostname(configuration.httpHost, port: configuration.workerHTTPPort), serverName: "llm-gateway-worker"),
                logger: logger)))
        }
        let group = ServiceGroup(configuration: .init(services: all, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        let nice = configuration.nice.map { CPUPriority.lower(to: $0, logger: logger) } ?? CPUPriority.current
        logger.info("Worker starting", metadata: [
            "worker_id": "\(workerID)", "providers": "\(ids.joined(separator: ","))",
            "concurrency": "\(configuration.workerConcurrency)", "librdkafka": "\(librdkafkaVersion)",
            "event_loop_threads": "\(NIOSingletons.groupLoopCountSuggestion)", "nice": "\(nice)",
            "allocator": "\(MemoryAllocator.description)",
        ])
        try await group.run()
    }
}

import Dispatch
import Kafka
import Logging
import ServiceLifecycle
import Telemetry

/// Samples the consumer lag of every assigned partition into `llmgw_consumer_lag`, every `interval`.
///
/// `KafkaConsumer.lag()` blocks on broker round trips, so each sample runs on a dedicated serial queue, never on
/// the cooperative pool. List this service after the worker services: it stops first, before the consumers close.
public struct ConsumerLagSampler: Service {
    let consumers: [KafkaConsumer]
    let metrics: GatewayMetrics
    let interval: Duration
    let logger: Logger
    private let queue = DispatchQueue(label: "llm-gateway.consumer-lag")

    public init(consumers: [KafkaConsumer], metrics: GatewayMetrics, interval: Duration = .seconds(5), logger: Logger) {
        self.consumers = consumers
        self.metrics = metrics
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var reported: Set<TopicPartition> = []
            while !Task.isCancelled {
                let samples = await sample()
                let current = Set(samples.map(\.partition))
                for sample in samples {
                    metrics.consumerLag(topic: sample.partition.topic, partition: sample.partition.partition, lag: sample.lag)
                }
                // A revoked partition is another consumer's to report now.
                for gone in reported.subtracting(current) {
                    metrics.removeConsumerLag(topic: gone.topic, partition: gone.partition)
                }
                reported = current
                try? await Task.sleep(for: interval)
            }
        }
    }

    private func sample() async -> [(partition: TopicPartition, lag: Int64)] {
        await withCheckedContinuation { continuation in
            queue.async { [consumers] in
                continuation.resume(returning: consumers.flatMap { $0.lag() })
            }
        }
    }
}

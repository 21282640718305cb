/// Kafka topic and consumer-group names: the only place they are spelled.
public enum Topics {
    /// The topic a provider's jobs are produced to, keyed by job id.
    public static func jobs(provider: String) -> String { "llm.jobs.\(provider)" }

    /// The consumer group of the workers of one provider.
    public static func consumerGroup(provider: String) -> String { "llm-gateway.worker.\(provider)" }

    /// Records that could not be decoded or failed permanently, with their error.
    public static let deadLetters = "llm.jobs.dead-letter"

    /// Partitions each job topic is created with by `make run` and the tests.
    public static let defaultPartitions = 6
}

/// Kafka topic and consumer-group names: the only place they are spelled.
public enum Topics {
    /// The topic a provider's jobs are produced to, keyed by job id.
    public static func jobs(provider: String) -> String { "llm.jobs.\(provider)" }

    /// The topic of a provider's jobs in a lane: the interactive lane is `jobs(provider:)`, the batch lane
    /// `llm.jobs.<provider>.batch`.
    public static func jobs(provider: String, lane: JobLane) -> String {
        lane == .batch ? "\(jobs(provider: provider)).batch" : jobs(provider: provider)
    }

    /// The consumer group of a provider's workers in a lane.
    public static func consumerGroup(provider: String, lane: JobLane) -> String {
        lane == .batch ? "\(consumerGroup(provider: provider)).batch" : consumerGroup(provider: provider)
    }

    /// The consumer group of the workers of one provider.
    public static func consumerGroup(provider: String) -> String { "llm-gateway.worker.\(provider)" }

    /// Records that could not be decoded or failed permanently, with their error.
    public static let deadLetters = "llm.jobs.dead-letter"

    /// Partitions each job topic is created with by `make run` and the tests.
    public static let defaultPartitions = 6
}

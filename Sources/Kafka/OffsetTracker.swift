/// Decides which offset of each partition may be committed when records finish out of order.
///
/// A consumer runs several records of a partition at once. Committing offset `n` tells the group that every
/// record below `n` is done, so the committable offset is the lowest offset still running, or one past the
/// highest finished when nothing runs.
public struct OffsetTracker: Sendable {
    private struct PartitionState: Sendable {
        var running: Set<Int64> = []
        var highestSeen: Int64 = -1
        var lastCommittable: Int64 = -1
    }

    private var partitions: [TopicPartition: PartitionState] = [:]

    public init() {}

    /// Records that `offset` was handed out for processing.
    public mutating func started(_ partition: TopicPartition, offset: Int64) {
        var state = partitions[partition] ?? PartitionState(lastCommittable: offset)
        state.running.insert(offset)
        state.highestSeen = max(state.highestSeen, offset)
        partitions[partition] = state
    }

    /// Records that `offset` is done and returns the offset to store for the partition, or `nil` when the
    /// committable offset did not move.
    public mutating func finished(_ partition: TopicPartition, offset: Int64) -> Int64? {
        guard var state = partitions[partition], state.running.remove(offset) != nil else { return nil }
        let committable = state.running.min() ?? (state.highestSeen + 1)
        defer { partitions[partition] = state }
        guard committable > state.lastCommittable else { return nil }
        state.lastCommittable = committable
        return committable
    }

    /// Forgets a partition that was revoked; its running records will be redelivered elsewhere.
    public mutating func revoke(_ partition: TopicPartition) {
        partitions[partition] = nil
    }

    /// Whether `offset` of `partition` was already handed out (it may have finished since). `false` for a
    /// partition that handed out nothing since it was assigned.
    public func delivered(_ partition: TopicPartition, offset: Int64) -> Bool {
        guard let state = partitions[partition] else { return false }
        return offset <= state.highestSeen
    }

    /// The number of records running.
    public var runningCount: Int { partitions.values.reduce(0) { $0 + $1.running.count } }
}

import Kafka

/// Per partition, the highest offset below which every request is done: only that is stored
/// for commit, so a crash re-runs unfinished checks and never skips one.
struct OffsetTracker {
    /// One partition's requests in offset order; a new generation after each (re)assignment so
    /// that completions from before a revocation are ignored.
    struct PartitionState {
        var generation: Int
        var pending: [Int64] = []  // offsets received, in order
        var pendingSet: Set<Int64> = []  // the same, for look-ups
        var receivedAt: [ContinuousClock.Instant] = []  // when each pending offset arrived
        var done: Set<Int64> = []
        var lastStored: Int64 = -1
    }

    private var partitions: [TopicPartition: PartitionState] = [:]
    private var nextGeneration = 0

    /// A newly assigned partition starts afresh, even when records of it arrived before the
    /// assignment (around a revocation): those were begun under no assignment, and keeping them
    /// would make their re-deliveries look like duplicates while the quarantine forgot them.
    mutating func assign(_ tps: [TopicPartition]) {
        for tp in tps {
            nextGeneration += 1
            partitions[tp] = PartitionState(generation: nextGeneration)
        }
    }

    mutating func revoke(_ tps: [TopicPartition]) {
        for tp in tps { partitions[tp] = nil }
    }

    /// Records a received request; returns its generation, or nil when it must not run here:
    /// * a record delivered again within the same assignment (librdkafka 2.0 re-fetches from the
    ///   stored position after a pause and resume) is not begun twice. Running it twice would
    ///   answer it twice, and its second entry would hold the partition's commit;
    /// * a record of a partition not assigned here (rebalance events and records come in one
    ///   ordered stream, so this should not happen) is left to the partition's owner: begun
    ///   under no assignment, its offset could never be stored and its state would outlive it.
    mutating func begin(_ tp: TopicPartition, offset: Int64, at time: ContinuousClock.Instant = .now) -> Int? {
        guard let state = partitions[tp] else { return nil }
        if state.pendingSet.contains(offset) || offset < state.lastStored { return nil }
        partitions[tp]?.pending.append(offset)
        partitions[tp]?.pendingSet.insert(offset)
        partitions[tp]?.receivedAt.append(time)
        return partitions[tp]?.generation
    }

    /// Marks a request done; returns the offset to store (next to read) when it advanced.
    mutating func complete(_ tp: TopicPartition, offset: Int64, generation: Int) -> Int64? {
        guard var state = partitions[tp], state.generation == generation else { return nil }
        state.done.insert(offset)
        var advanced: Int64? = nil
        var head = 0
        while head < state.pending.count, state.done.contains(state.pending[head]) {
            state.done.remove(state.pending[head])
            advanced = state.pending[head] + 1
            head += 1
        }
        if head > 0 {
            for o in state.pending.prefix(head) { state.pendingSet.remove(o) }
            state.pending.removeFirst(head)
            state.receivedAt.removeFirst(head)
        }
        if let a = advanced, a > state.lastStored { state.lastStored = a } else { advanced = nil }
        partitions[tp] = state
        return advanced
    }

    /// Requests received and not yet committable.
    var uncommitted: Int { partitions.values.reduce(0) { $0 + $1.pending.count } }

    var assigned: [TopicPartition] { Array(partitions.keys) }

    /// When the oldest record not yet committable arrived (nil: everything is committable).
    var oldestUncommittedSince: ContinuousClock.Instant? { partitions.values.compactMap(\.receivedAt.first).min() }
}

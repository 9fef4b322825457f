import Kafka

/// The worker's loop as a pure state machine: events in (a record arrived, a check finished,
/// partitions came or went, a quarantine mark was written, stop), actions out (start a check,
/// store an offset, pause, write a mark, exit). No I/O, no clock, no tasks: `CheckWorkerService`
/// feeds it and carries out its actions, and `WorkerLoopTests` drives it directly.
///
/// It owns every scheduling rule of the worker, each in one place:
/// * at most `concurrency` checks in flight, and at most `maxInFlightPerTenant` of one tenant
///   (the record key), so that one tenant's flood cannot take every slot; a record that cannot
///   start waits in the backlog, later records of other tenants go past it. A check holds its
///   slot until its result is handed to the producer (`evaluated`), not until the broker
///   acknowledges it (`finished`): waiting for delivery reports costs no slot; what waits for
///   them is bounded by `maxPublishing` (4 × concurrency) and `maxUncommitted`;
/// * records waiting to start (the backlog and those the quarantine holds back: `held`) are
///   bounded by the consumer, not by pausing: the service reports `held` after every batch of events and
///   the consumer's poll thread stops taking records while `held` plus those in transit reach
///   `maxHeld` (`KafkaConsumer.holding`). Pausing made librdkafka 2.0 drop what it had prefetched
///   and fetch it again, and a burst spent most of its time waiting for those fetches (bench
///   pipeline: about 300 checks/s, the worker idle with thousands of records waiting);
/// * the gate opens anyway after `KafkaConsumer.maxGateWait` (rebalances come through polls), so
///   when nothing starts for long (every check stuck on a slow dependency, the quarantine's
///   marks not acknowledged) records keep coming: partitions pause when `held`
///   reaches twice `maxHeld`, and resume below `maxHeld`;
/// * partitions pause when `maxUncommitted` records are received and not committable (done
///   records behind a slow one count: the head of a partition holds their commit), or when
///   `maxPublishing` results await their delivery reports; they resume below half of both;
/// * an offset is stored only when every record before it on its partition has its answer
///   published (OffsetTracker), and never for a partition's older assignment;
/// * the poison-record quarantine (PoisonGuard) decides what runs alone or is dead-lettered;
/// * on stop: pause, drop the backlog records above every started record of their partition,
///   run the others (a partition's commit cannot pass a record that was not answered, so
///   dropping one below an answered record made the next owner answer that record again), and
///   so the quarantine's suspects below a started record too (one at a time, as always); wait
///   for the checks in flight and their delivery reports, then exit (`drained`); a grace timer
///   cancels what is left.
struct WorkerLoop<Item: Sendable> {
    struct Configuration: Sendable, Equatable {
        var concurrency: Int
        var maxInFlightPerTenant: Int
        var maxUncommitted: Int
        /// Window of the quarantine's reservations (2 × concurrency).
        var reservationWindow: Int64 { Int64(2 * concurrency) }
        /// Results awaiting their delivery reports at most before partitions pause (4 ×
        /// concurrency): each holds its encoded result, so a slow broker must not let them pile up.
        var maxPublishing: Int { 4 * max(1, concurrency) }
        /// Records taken from the consumer and not yet started (in transit, backlog, held by the
        /// quarantine) at most: one round of `concurrency`.
        var maxHeld: Int { max(1, concurrency) }
    }

    /// A record taken from Kafka, with what the loop needs to schedule it.
    struct Job: Sendable {
        var item: Item
        var partition: TopicPartition
        var offset: Int64
        /// The record key: the tenant the request names (for the per-tenant cap only).
        var tenant: String
        /// The generation of the partition's assignment when the record arrived.
        var generation: Int
    }

    enum Mode: Sendable, Equatable {
        case normal
        /// A suspect in the quarantine slot.
        case alone
        /// A poison record: answered and dead-lettered without running.
        case poisoned
    }

    enum Level: Sendable, Equatable { case info, warning, error }

    enum Event {
        case received(Item, TopicPartition, offset: Int64, tenant: String, at: ContinuousClock.Instant)
        case starts([TopicPartition: PartitionStart])
        case assigned([TopicPartition], epochFloor: Int64)
        case revoked([TopicPartition])
        /// A check's result is computed and handed to the producer: its slot is free (its offset
        /// waits for `finished`).
        case evaluated(tenant: String)
        /// A check's records were acknowledged (or could not be published).
        case finished(TopicPartition, offset: Int64, generation: Int, tenant: String, published: Bool, alone: Bool)
        /// A quarantine mark write ended; `permanent` when no retry can fix its failure.
        case markWritten(TopicPartition, PartitionMark, failed: Bool, permanent: Bool)
        case tick
        case stop
        case graceExpired
    }

    enum Action {
        case start(Job, Mode, attempt: Int)
        case writeMark(TopicPartition, PartitionMark)
        case storeOffset(TopicPartition, Int64)
        case pauseAll
        case resumeAll
        /// Newly assigned partitions: librdkafka keeps a pause across revocation, so set it.
        case setPaused([TopicPartition], Bool)
        /// The mark an orderly hand-over of this partition writes (nil: none).
        case handOver(TopicPartition, PartitionMark?)
        case log(Level, String)
        case quarantineOff
        case startGraceTimer
        case cancelAll
        case exit
    }

    let configuration: Configuration
    private(set) var tracker = OffsetTracker()
    private(set) var quarantine: PoisonGuard<Job>
    private var starts: [TopicPartition: PartitionStart] = [:]
    private(set) var inFlight = 0
    private(set) var inFlightByTenant: [String: Int] = [:]
    /// Checks evaluated whose records await their delivery reports.
    private(set) var publishing = 0
    /// Records waiting for a slot, in arrival order. Changed only through `enqueue`,
    /// `removeFromBacklog` and `takeFromBacklog`, which keep `backlogByTenant` equal to it.
    private(set) var backlog: [Job] = []
    /// How many records of each tenant wait in the backlog.
    private(set) var backlogByTenant: [String: Int] = [:]
    private(set) var paused = false
    private(set) var stopping = false
    /// The highest offset started on each partition in its current assignment (for stop).
    private var highestStarted: [TopicPartition: Int64] = [:]
    /// (partition, offset) → times received in this process, for `attempt`.
    private var deliveries: [DeliveryKey: Int] = [:]
    static var maxRememberedDeliveries: Int { 200_000 }

    struct DeliveryKey: Hashable {
        var partition: TopicPartition
        var offset: Int64
    }

    init(configuration: Configuration, quarantineEnabled: Bool, owner: String) {
        self.configuration = configuration
        self.quarantine = PoisonGuard<Job>(window: configuration.reservationWindow, enabled: quarantineEnabled, owner: owner)
    }

    /// Checks in flight, records waiting for a slot, and records the quarantine holds back.
    var load: Int { inFlight + held }
    /// Records received and not started: the backlog and those the quarantine holds back (the
    /// consumer stops taking records at `maxHeld` of them).
    var held: Int { backlog.count + quarantine.waiting }
    var uncommitted: Int { tracker.uncommitted }
    /// When the oldest record not yet committable arrived.
    var oldestUncommittedSince: ContinuousClock.Instant? { tracker.oldestUncommittedSince }
    var runningAlone: TopicPartition? { quarantine.runningAlone }
    var suspects: Int { quarantine.suspectCount }
    /// Nothing left that must run here before a stop ends: no check in flight or awaiting its
    /// delivery report, no waiting record, and no suspect below a started record of its partition.
    private var drained: Bool {
        inFlight == 0 && publishing == 0 && backlog.isEmpty && !quarantine.hasSuspect(below: highestStarted)
    }

    /// Work is waiting or running (for liveness: the loop must make progress then).
    var busy: Bool { inFlight > 0 || publishing > 0 || !backlog.isEmpty }

    mutating func handle(_ event: Event) -> [Action] {
        switch event {
        case .received(let item, let tp, let offset, let tenant, let time):
            guard !stopping, let generation = tracker.begin(tp, offset: offset, at: time) else { return [] }
            let job = Job(item: item, partition: tp, offset: offset, tenant: tenant, generation: generation)
            var out = apply(quarantine.receive(tp, offset: offset, item: job))
            if tracker.uncommitted >= configuration.maxUncommitted || publishing >= configuration.maxPublishing
                || held >= 2 * configuration.maxHeld
            {
                out += setPaused(true)
            }
            return out
        case .starts(let found):
            starts.merge(found) { $1 }
            return []
        case .assigned(let parts, let epochFloor):
            tracker.assign(parts)
            for tp in parts { highestStarted[tp] = nil }
            var out: [Action] = []
            for tp in parts {
                let verdict = quarantine.assign(tp, start: starts.removeValue(forKey: tp), epochFloor: epochFloor)
                if let poison = verdict.poison {
                    out.append(.log(.error, "partition \(tp): offset \(poison) was in progress during two worker deaths; it is dead-lettered, not run again"))
                }
                if let suspects = verdict.suspects {
                    out.append(
                        .log(
                            .warning,
                            "partition \(tp): its previous owner stopped unexpectedly; offsets \(suspects.lowerBound)..<\(suspects.upperBound) run one at a time in the quarantine slot"
                        ))
                }
            }
            out += apply([])
            out.append(.setPaused(parts, paused || stopping))
            return out
        case .revoked(let parts):
            // In-flight checks of these partitions finish or are abandoned; nothing is committed for them.
            tracker.revoke(parts)
            for tp in parts { highestStarted[tp] = nil }
            var actions: [PoisonGuard<Job>.Action] = []
            var out: [Action] = []
            for tp in parts {
                actions += quarantine.revoke(tp)
                out.append(.handOver(tp, nil))
            }
            let gone = Set(parts)
            removeFromBacklog { gone.contains($0.partition) }
            return out + apply(actions) + exitIfDrained()
        case .evaluated(let tenant):
            inFlight -= 1
            publishing += 1
            let left = (inFlightByTenant[tenant] ?? 1) - 1
            inFlightByTenant[tenant] = left > 0 ? left : nil
            return fillFromBacklog() + (publishing >= configuration.maxPublishing ? setPaused(true) : resumeIfLight())
        case .finished(let tp, let offset, let generation, _, let published, let alone):
            publishing -= 1
            var out: [Action] = []
            var actions: [PoisonGuard<Job>.Action] = []
            if published, let next = tracker.complete(tp, offset: offset, generation: generation) {
                out.append(.storeOffset(tp, next))
                actions += quarantine.progress(tp, next: next)
            }
            if alone { actions += quarantine.finishedAlone(tp, offset: offset) }
            out += apply(actions)
            out += fillFromBacklog()
            out += resumeIfLight()
            if stopping, drained { out.append(.exit) }
            return out
        case .markWritten(let tp, let mark, let failed, let permanent):
            guard failed else { return apply(quarantine.written(tp, mark)) + exitIfDrained() }
            if !permanent {
                quarantine.writeFailed(tp, mark)
                return [.log(.warning, "a quarantine mark could not be written, retrying")]
            }
            return [.log(.error, "quarantine marks cannot be written: the quarantine is off until the worker restarts"), .quarantineOff]
                + apply(quarantine.disable()) + exitIfDrained()
        case .tick:
            return apply(quarantine.tick())
        case .stop:
            guard !stopping else { return [] }
            stopping = true
            var out = setPaused(true)
            let started = highestStarted
            removeFromBacklog { $0.offset > (started[$0.partition] ?? -1) }
            out += fillFromBacklog()
            out.append(
                .log(
                    .info,
                    "graceful shutdown: waiting for \(inFlight) in-flight check(s), \(backlog.count) waiting below them on their partitions, \(quarantine.suspectCount) suspect(s) of a takeover, and \(publishing) awaiting delivery"
                ))
            out.append(drained ? .exit : .startGraceTimer)
            return out
        case .graceExpired:
            return [
                .log(
                    .warning,
                    "grace period over: abandoning \(inFlight) check(s), \(backlog.count) waiting, \(quarantine.suspectCount) suspect(s) and \(publishing) awaiting delivery; their requests stay uncommitted"
                ),
                .cancelAll, .exit,
            ]
        }
    }

    /// `.exit` when stopping and drained (after events that can end the last waiting work
    /// without a check finishing: a revocation, a mark written, the quarantine turned off).
    private func exitIfDrained() -> [Action] { stopping && drained ? [.exit] : [] }

    private func canStart(_ job: Job) -> Bool {
        inFlight < configuration.concurrency && (inFlightByTenant[job.tenant] ?? 0) < configuration.maxInFlightPerTenant
    }

    private mutating func start(_ job: Job, _ mode: Mode) -> [Action] {
        inFlight += 1
        inFlightByTenant[job.tenant, default: 0] += 1
        if job.offset > (highestStarted[job.partition] ?? -1) { highestStarted[job.partition] = job.offset }
        let key = DeliveryKey(partition: job.partition, offset: job.offset)
        var attempt = (deliveries[key] ?? 0) + 1
        deliveries[key] = attempt
        if deliveries.count > Self.maxRememberedDeliveries { deliveries.removeAll(keepingCapacity: true) }
        // A suspect was delivered at least once before (to the worker that died), a poison
        // record at least twice.
        if mode == .alone { attempt = max(attempt, 2) }
        if mode == .poisoned { attempt = max(attempt, 3) }
        return [.start(job, mode, attempt: attempt)]
    }

    private mutating func apply(_ actions: [PoisonGuard<Job>.Action]) -> [Action] {
        var out: [Action] = []
        // Hand-over marks first, so that they are never behind a mark written below.
        for tp in quarantine.drainChanged() { out.append(.handOver(tp, quarantine.cleanMark(tp))) }
        for action in actions {
            switch action {
            case .run(let job):
                // While stopping only what lies below a started record runs (see `.stop`): here
                // the suspects a quarantine that turned off hands back as normal records.
                if stopping, job.offset > (highestStarted[job.partition] ?? -1) { continue }
                if canStart(job) { out += start(job, .normal) } else { enqueue(job) }
            case .runAlone(let job):
                // The quarantine slot: one suspect at a time, next to normal checks. Started even
                // while stopping: its mark already says it runs alone here, and a hand-over must
                // not name a record that never ran.
                out += start(job, .alone)
            case .deadLetter(let job):
                if stopping { continue }
                out += start(job, .poisoned)
            case .write(let tp, let mark):
                out.append(.writeMark(tp, mark))
            }
        }
        return out + resumeIfLight()
    }

    /// Starts waiting records, in order, skipping those whose tenant is at its cap. While stopping,
    /// the backlog holds only records below a started one of their partition (see `.stop`).
    private mutating func fillFromBacklog() -> [Action] {
        var out: [Action] = []
        var i = 0
        // Scanning is O(backlog) and runs on every event: not at all when no waiting tenant is
        // below its cap, and no further once a start leaves none (a burst of one tenant made
        // every event step over the whole backlog: 17 % of a worker's CPU, and throughput fell
        // to about 100 checks/s).
        var startable = anyWaitingTenantCanStart
        while startable, inFlight < configuration.concurrency, i < backlog.count {
            if canStart(backlog[i]) {
                out += start(takeFromBacklog(at: i), .normal)
                startable = anyWaitingTenantCanStart
            } else {
                i += 1
            }
        }
        return out
    }

    /// Whether some tenant with records in the backlog is below its in-flight cap.
    private var anyWaitingTenantCanStart: Bool {
        backlogByTenant.keys.contains { (inFlightByTenant[$0] ?? 0) < configuration.maxInFlightPerTenant }
    }

    private mutating func enqueue(_ job: Job) {
        backlog.append(job)
        backlogByTenant[job.tenant, default: 0] += 1
    }

    private mutating func takeFromBacklog(at index: Int) -> Job {
        let job = backlog.remove(at: index)
        let left = (backlogByTenant[job.tenant] ?? 1) - 1
        backlogByTenant[job.tenant] = left > 0 ? left : nil
        return job
    }

    private mutating func removeFromBacklog(where shouldRemove: (Job) -> Bool) {
        backlog.removeAll(where: shouldRemove)
        backlogByTenant = backlog.reduce(into: [:]) { $0[$1.tenant, default: 0] += 1 }
    }

    private mutating func resumeIfLight() -> [Action] {
        guard paused, !stopping, tracker.uncommitted < max(1, configuration.maxUncommitted / 2),
            publishing < max(1, configuration.maxPublishing / 2), held < configuration.maxHeld
        else { return [] }
        return setPaused(false)
    }

    private mutating func setPaused(_ value: Bool) -> [Action] {
        guard value != paused else { return [] }
        paused = value
        return [value ? .pauseAll : .resumeAll]
    }
}

extension WorkerLoop.Configuration {
    /// The loop's configuration from the worker's settings.
    init(worker: WorkerConfiguration.WorkerSection) {
        self.init(concurrency: worker.concurrency, maxInFlightPerTenant: worker.maxInFlightPerTenant, maxUncommitted: worker.maxUncommitted)
    }
}

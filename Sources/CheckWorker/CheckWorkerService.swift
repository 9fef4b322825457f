import Crypto
import ExchangeChecks
import Foundation
import GraphReports
import Kafka
import Logging
import Tracing
import ServiceLifecycle
import Synchronization

/// Health as /healthz and /readyz report it.
public final class WorkerHealth: Sendable {
    struct State {
        var running = false, joined = false, graphReachable = false, stuckThreads = 0, stuck = false
        var busy = false, paused = false
        var lastProgress = ContinuousClock.now
        var pausedIdleSince: ContinuousClock.Instant? = nil
    }
    private let state = Mutex(State())
    /// With work waiting, the loop must finish a check at least this often to count as live.
    public let livenessWindow: Duration
    /// A worker paused with nothing in flight for this long is not ready.
    public static let pausedIdleWindow: Duration = .seconds(10)

    /// Health that is neither live nor ready until the worker reports; `livenessWindow` is
    /// `worker.livenessSeconds`.
    public init(livenessWindow: Duration = .seconds(60)) {
        self.livenessWindow = livenessWindow
    }

    /// Updates the given parts of the state (nil leaves one unchanged): loop running, group joined,
    /// Graph reachable, stuck thread count, `stuck` (the process exits for a restart: not live), work
    /// waiting, partitions paused. Work arriving at an idle worker starts the liveness window afresh.
    public func set(
        running: Bool? = nil, joined: Bool? = nil, graphReachable: Bool? = nil, stuckThreads: Int? = nil, stuck: Bool? = nil,
        busy: Bool? = nil, paused: Bool? = nil
    ) {
        state.withLock {
            if let stuckThreads { $0.stuckThreads = stuckThreads }
            if let stuck { $0.stuck = stuck }
            if let running { $0.running = running }
            if let joined { $0.joined = joined }
            if let graphReachable { $0.graphReachable = graphReachable }
            // Work arriving at an idle worker starts the liveness window afresh.
            if let busy, busy != $0.busy {
                if busy { $0.lastProgress = .now }
                $0.busy = busy
            }
            if let paused { $0.paused = paused }
            if $0.paused, !$0.busy {
                if $0.pausedIdleSince == nil { $0.pausedIdleSince = .now }
            } else {
                $0.pausedIdleSince = nil
            }
        }
    }

    /// A check finished (the loop advanced).
    public func progressed() {
        state.withLock { $0.lastProgress = .now }
    }

    /// Work waits and no check finished within the liveness window.
    var stalled: Bool { state.withLock { Self.stalled($0, window: livenessWindow) } }

    static func stalled(_ s: State, window: Duration) -> Bool {
        s.busy && s.lastProgress.duration(to: .now) > window
    }

    /// Live: the loop runs, the worker has not decided to exit for a restart (`stuck`: a fatal
    /// Kafka error, an unpublishable result, or more stuck evaluation threads than
    /// `worker.maxStuckThreads`), and with work waiting the loop made progress within the
    /// liveness window.
    public var live: Bool { state.withLock { $0.running && !$0.stuck && !Self.stalled($0, window: livenessWindow) } }
    /// Ready: live, the group joined, Graph answered the last probe, and not paused with
    /// nothing in flight for long.
    public var ready: Bool {
        state.withLock {
            $0.running && !$0.stuck && !Self.stalled($0, window: livenessWindow) && $0.joined && $0.graphReachable
                && !($0.pausedIdleSince.map { $0.duration(to: .now) > Self.pausedIdleWindow } ?? false)
        }
    }
    /// The whole state as one line of `key=value` pairs: the body of /healthz and /readyz.
    public var details: String {
        state.withLock {
            "running=\($0.running) groupJoined=\($0.joined) graphReachable=\($0.graphReachable) stuckEvaluationThreads=\($0.stuckThreads) busy=\($0.busy) paused=\($0.paused) stalled=\(Self.stalled($0, window: livenessWindow))"
        }
    }
}

/// The marks an orderly revocation writes (progress is committed by librdkafka): kept up to date
/// by the loop, taken by the consumer's rebalance callback on its poll thread.
final class HandOverMarks: Sendable {
    private let marks = Mutex<[TopicPartition: PartitionMark]>([:])
    private let alone = Mutex<TopicPartition?>(nil)
    func set(_ tp: TopicPartition, _ mark: PartitionMark?) { marks.withLock { $0[tp] = mark } }
    /// The partition whose suspect runs alone in this process right now.
    var runningAlone: TopicPartition? {
        get { alone.withLock { $0 } }
        set { alone.withLock { $0 = newValue } }
    }
    func take(_ tps: [TopicPartition]) -> [TopicPartition: PartitionMark] {
        marks.withLock { all in
            var out: [TopicPartition: PartitionMark] = [:]
            for tp in tps { if let m = all.removeValue(forKey: tp) { out[tp] = m } }
            return out
        }
    }
}

/// The pipeline: consume requests, run checks with bounded concurrency, publish results, store
/// offsets only for requests whose result was acknowledged (highest contiguous per partition),
/// dead-letter bad input, and shut down gracefully (finish in-flight within the grace period,
/// flush, commit, leave the group).
public final class CheckWorkerService: Service, Sendable {
    let configuration: WorkerConfiguration
    let kafka: KafkaConfiguration
    let processor: CheckProcessor
    let metrics: WorkerMetrics
    let health: WorkerHealth
    let logger: Logger

    /// A worker with its parts; nothing connects before `run`. `kafka` is the Kafka client
    /// configuration (`WorkerConfiguration.kafkaConfiguration`, with any bootstrap override).
    public init(
        configuration: WorkerConfiguration, kafka: KafkaConfiguration, processor: CheckProcessor,
        metrics: WorkerMetrics, health: WorkerHealth, logger: Logger
    ) {
        self.configuration = configuration
        self.kafka = kafka
        self.processor = processor
        self.metrics = metrics
        self.health = health
        self.logger = logger
    }

    enum Input: Sendable {
        case kafka(KafkaConsumerEvent)
        /// A check's result is computed and about to be published: its slot is free.
        case evaluated(tenant: String)
        /// The first attempt to publish a result in the background failed.
        case republish(Republish)
        /// A check's task ended; `published` when its result (and dead-letter copy) were acknowledged.
        case finished(TopicPartition, offset: Int64, generation: Int, tenant: String, published: Bool, alone: Bool)
        /// A quarantine mark was acknowledged (`failure` nil) or not.
        case markWritten(TopicPartition, PartitionMark, failure: KafkaError?)
        case tick
        /// A fatal Kafka error (producer or consumer): the worker cannot go on.
        case fatal(KafkaError)
        /// A record could not be published and no retry can fix it (PublishPolicy): the worker
        /// stops before committing anything after that record.
        case cannotPublish(topic: String, KafkaError)
        case stop
        case graceExpired
    }

    /// Runs the worker until a graceful shutdown: checks that the output topics exist, opens the
    /// quarantine's state topic, consumes `kafka.requests` and answers each request, then commits,
    /// flushes and leaves the group within `worker.shutdownGraceSeconds`. Exits the process on a fatal
    /// Kafka error or an unpublishable result (69), stuck evaluation threads (70) or a shutdown overrun
    /// (75); throws when a Kafka client cannot be created or an output topic is missing (StartupError).
    public func run() async throws {
        var consumerConfig = kafka
        consumerConfig.groupId = configuration.kafka.group
        let defaults = [
            "enable.auto.commit": "true", "auto.commit.interval.ms": "1000",
            "partition.assignment.strategy": "cooperative-sticky", "auto.offset.reset": "earliest",
        ]
        for (k, v) in defaults where consumerConfig.properties[k] == nil { consumerConfig.properties[k] = v }
        var producerConfig = KafkaConfiguration(kafka.properties.filter { !Self.consumerOnly.contains($0.key) })
        if producerConfig.properties["linger.ms"] == nil { producerConfig.properties["linger.ms"] = "5" }
        let log = logger
        let kafkaLog: KafkaLogHandler = { level, facility, message in
            if level <= 4 { log.warning("kafka: \(facility): \(message)") }
        }
        // The loop's mailbox, drained a batch at a time (InputQueue).
        let inputs = InputQueue<Input>()
        // A fatal producer error (e.g. the idempotent producer lost its sequence) cannot be
        // recovered in process: the loop exits so that the worker is restarted.
        let producer = try KafkaProducer(
            configuration: producerConfig, log: kafkaLog,
            onError: { error in
                if error.isFatal { inputs.post(.fatal(error)) }
            })
        // Start-up talks to the broker and may wait for it: SIGTERM/SIGINT here ends the worker
        // at once (exit 0), with nothing consumed.
        let clientConfig = KafkaConfiguration(kafka.properties.filter { !Self.consumerOnly.contains($0.key) })
        let started: QuarantineStore?? = try await cancelWhenGracefulShutdown {
            do {
                try await self.requireOutputTopics(clientConfig)
            } catch is CancellationError where Task.isShuttingDownGracefully {
                return nil
            }
            if Task.isShuttingDownGracefully { return nil }
            let store = await self.quarantineStore(clientConfig)
            return Task.isShuttingDownGracefully ? nil : .some(store)
        }
        guard let started else {
            await producer.close(timeout: .milliseconds(200))
            logger.info("worker stopped before taking requests (shutdown requested during start-up)")
            return
        }
        let store = started
        metrics.quarantineEnabled(store != nil)
        // The quarantine's marks: read when partitions arrive, a clean one written when they go
        // in order (docs/poison-records.md). Both run on the consumer's poll thread.
        let handOver = HandOverMarks()
        let hooks = RebalanceHooks(
            onAssign: { [logger] starts in
                guard let store else { return starts }
                switch store.read(Array(starts.keys)) {
                case .success(let marks):
                    return starts.reduce(into: [:]) { out, entry in
                        var start = entry.value
                        start.metadata = marks[entry.key]
                        out[entry.key] = start
                    }
                case .failure(let error):
                    logger.error("cannot read the quarantine's marks from \(store.topic): these partitions start without quarantine: \(error)")
                    return starts
                }
            },
            onRevoke: { [logger, configuration] parts in
                // A suspect of these partitions that runs alone goes on in this process after they go:
                // wait for it (up to its budget and grace), so that the hand-over can say "clean".
                let budget = configuration.worker.checkTimeoutSeconds + configuration.worker.evaluationGraceSeconds + 2
                let until = Date().addingTimeInterval(budget)
                while let alone = handOver.runningAlone, parts.contains(alone), Date() < until { usleep(50_000) }
                var marks = handOver.take(parts)
                if let alone = handOver.runningAlone, parts.contains(alone) {
                    // Still running: no clean mark, so the next owner sees it was running alone.
                    marks[alone] = nil
                    logger.warning("partition \(alone) is handed over while its suspect still runs alone here; it stays marked as running")
                }
                guard let store, !marks.isEmpty else { return }
                // A C callback that must block until the writes are acknowledged: a task does the
                // async sends, this (non-cooperative) thread waits for it.
                let done = DispatchSemaphore(value: 0)
                let toWrite = marks
                Task {
                    await withTaskGroup(of: Void.self) { group in
                        for (tp, mark) in toWrite { group.addTask { _ = try? await producer.send(store.record(tp, mark)) } }
                    }
                    done.signal()
                }
                if done.wait(timeout: .now() + .seconds(Int(QuarantineStore.writeTimeout.components.seconds))) == .timedOut {
                    logger.warning(
                        "the hand-over marks of \(marks.count) partition(s) were not acknowledged in time; their next owner will treat their in-flight records as suspects"
                    )
                }
            })
        let consumer = try KafkaConsumer(
            configuration: consumerConfig, topics: [configuration.kafka.requests],
            rebalanceHooks: hooks, handOffLimit: WorkerLoop<KafkaMessage>.Configuration(worker: configuration.worker).maxHeld, log: kafkaLog,
            sink: { inputs.post(.kafka($0)) })
        health.set(running: true)
        logger.info(
            "worker consuming",
            metadata: [
                "topic": "\(configuration.kafka.requests)", "group": "\(configuration.kafka.group)",
                "concurrency": "\(configuration.worker.concurrency)",
            ])

        let pool = processor.pool
        let stuckLimit = configuration.worker.maxStuckThreads == 0 ? pool.threadCount : configuration.worker.maxStuckThreads
        let monitor = Task { [metrics, health, logger] in
            var tick = 0
            while !Task.isCancelled {
                if tick % 5 == 0, let lag = consumer.lag() { metrics.consumerLag(lag) }
                // The watchdog: evaluation threads past their check's budget plus grace.
                let stuck = pool.stuckThreads
                metrics.stuckThreads(stuck)
                health.set(stuckThreads: stuck)
                inputs.post(.tick)  // retries failed quarantine marks
                if stuck >= stuckLimit {
                    // The stuck threads cannot be stopped and a graceful shutdown would wait for them.
                    await Self.exitForRestart(
                        code: Self.watchdogExitCode, health: health, logger: logger,
                        "\(stuck) evaluation thread(s) stuck past their checks' time budget: exiting so that the worker is restarted; uncommitted requests will be redelivered"
                    )
                }
                tick += 1
                try? await Task.sleep(for: .seconds(1))
            }
        }
        // Heartbeats (WorkerHeartbeat) for `submit --wait`'s orphan answer: one send at a time, so
        // a broker that is down delays them instead of piling them up. A missing topic turns them off.
        let heartbeats = Task { [configuration, logger] in
            let topic = configuration.kafka.heartbeatTopic
            guard !topic.isEmpty else { return }
            while !Task.isCancelled {
                let beat = WorkerHeartbeat(worker: configuration.worker.name, group: configuration.kafka.group, requests: configuration.kafka.requests)
                do throws(KafkaError) {
                    try await producer.send(OutgoingMessage(topic: topic, key: Array(configuration.worker.name.utf8), value: beat.encoded()))
                } catch  where error.isPermanent {
                    logger.warning(
                        "heartbeats off: cannot publish to kafka.heartbeatTopic '\(topic)' (\(error)); submit --wait cannot tell orphaned checks early. Create the topic, or set heartbeatTopic to \"\" to silence this."
                    )
                    return
                } catch {
                    // Retriable (broker down, leader moving): the next beat tries again.
                }
                try? await Task.sleep(for: WorkerHeartbeat.interval)
            }
        }
        let shutdown = ShutdownDeadline(grace: configuration.worker.shutdownGrace)
        await withGracefulShutdownHandler {
            await self.loop(inputs: inputs, consumer: consumer, producer: producer, store: store, handOver: handOver)
        } onGracefulShutdown: {
            shutdown.begin()
            inputs.post(.stop)
        }
        monitor.cancel()
        heartbeats.cancel()
        health.set(running: false)
        logger.info("worker stopping: flushing results and committing offsets")
        // Flushing, committing and leaving the group talk to the broker, which may be down: they
        // get what is left of the grace period, and the process ends when it is over.
        // Commit first: an offset is stored only once its answer was acknowledged, so the
        // commit cannot wait for the flush; the flush then gets half of what is left.
        let deadline = shutdown.deadline
        let logger = self.logger
        // Not a child task: if the service group cancelled the worker (another service failed),
        // closing must still run rather than end at once with the cancelled timer.
        await Task {
            await Self.finish(by: deadline, logger: logger) {
                try? await consumer.commit()
                _ = await producer.flush(timeout: max(.zero, ContinuousClock.now.duration(to: deadline) / 2))
                await consumer.close()
                await producer.close(timeout: .milliseconds(200))
            }
        }.value
        inputs.finish()
        logger.info("worker stopped")
    }

    /// Runs the last steps of a shutdown; if they are not over by `deadline` (the broker is
    /// unreachable: a synchronous commit or leaving the group can wait for minutes), the process
    /// exits with `shutdownOverrunExitCode`. Nothing is lost: what was not committed is
    /// redelivered to the partitions' next owner.
    static func finish(by deadline: ContinuousClock.Instant, logger: Logger, _ steps: @escaping @Sendable () async -> Void) async {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await steps(); return true
            }
            group.addTask {
                try? await Task.sleep(until: deadline, clock: .continuous)
                return false
            }
            if await group.next() == false {
                logger.error(
                    "shutdown did not finish within worker.shutdownGraceSeconds (is the broker reachable?): exiting now; requests whose offsets were not committed will be redelivered to the next owner of their partitions"
                )
                exit(shutdownOverrunExitCode)
            }
            group.cancelAll()
        }
    }

    /// Before taking a request, the topics this worker answers on (results, dead letters, every
    /// allowed reply topic) must exist: a worker that could not answer would hold or lose every
    /// check. Checked by a metadata request, never by writing a probe record. A topic that does
    /// not exist or may not be described stops the worker at once (`StartupError`); a broker that
    /// cannot be reached is retried every few seconds until it answers or the worker is stopped.
    func requireOutputTopics(_ clientConfig: KafkaConfiguration) async throws {
        var topics: [(role: String, name: String)] = [("results", configuration.kafka.results), ("dead-letter", configuration.kafka.deadLetter)]
        for reply in configuration.kafka.allowedReplyTopics.sorted() where reply != configuration.kafka.results {
            topics.append(("allowed reply", reply))
        }
        for topic in topics {
            var delay: Duration = .seconds(1)
            while true {
                try Task.checkCancellation()
                do throws(KafkaError) {
                    // A shutdown stops waiting for this at once (the lookup is abandoned).
                    let partitions = try await KafkaMetadata.partitions(of: topic.name, configuration: clientConfig)
                    if partitions.isEmpty { throw KafkaError(message: "the topic has no partitions") }
                    break
                } catch  where Task.isCancelled {
                    throw CancellationError()
                } catch  where error.isRetriable {
                    logger.warning("cannot describe the \(topic.role) topic '\(topic.name)' yet, retrying: \(error)")
                    try await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(10))
                } catch {
                    throw StartupError(
                        "the \(topic.role) topic '\(topic.name)' does not exist or cannot be described by this worker (\(error)); create it, or grant this worker Describe and Write on it, before starting workers"
                    )
                }
            }
        }
    }

    /// The state topic of the quarantine, or nil (quarantine off, logged) when it is unusable.
    func quarantineStore(_ clientConfig: KafkaConfiguration) async -> QuarantineStore? {
        let topic = configuration.kafka.stateTopic
        do {
            let partitions = try await KafkaMetadata.partitions(of: topic, configuration: clientConfig)
            guard !partitions.isEmpty else {
                logger.error(
                    "the state topic \(topic) has no partitions: the poison-record quarantine is off (create it, compacted; see docs/poison-records.md)")
                return nil
            }
            return QuarantineStore(topic: topic, group: configuration.kafka.group, partitions: Int32(clamping: partitions.count), kafka: clientConfig)
        } catch {
            logger.error(
                "the state topic \(topic) is not available: the poison-record quarantine is off (create it, compacted; see docs/poison-records.md): \(error)")
            return nil
        }
    }

    /// Exit code of a worker stopped by a fatal Kafka error (EX_UNAVAILABLE).
    public static let fatalKafkaExitCode: Int32 = 69
    /// Exit code of a worker stopped by its watchdog (EX_SOFTWARE).
    public static let watchdogExitCode: Int32 = 70
    /// Exit code of a shutdown that could not flush, commit or leave the group within its grace
    /// period (EX_TEMPFAIL): nothing is lost, uncommitted requests are redelivered.
    public static let shutdownOverrunExitCode: Int32 = 75

    /// A fatal Kafka error: nothing more can be published; requests not acknowledged stay
    /// uncommitted and are redelivered, the records in flight become suspects of the quarantine.
    static func exitOnFatal(_ error: KafkaError, health: WorkerHealth, logger: Logger) async {
        await exitForRestart(
            code: fatalKafkaExitCode, health: health, logger: logger,
            "fatal Kafka error, exiting so that the worker is restarted: \(error)")
    }

    /// The worker cannot go on in this process: /healthz fails, the log says why, and the
    /// process exits at once so that it is restarted.
    static func exitForRestart(code: Int32, health: WorkerHealth, logger: Logger, _ reason: String) async {
        health.set(stuck: true)
        logger.critical("\(reason)")
        try? await Task.sleep(for: .seconds(2))  // let /healthz report it and the log line flush
        exit(code)
    }

    /// Errors that no retry can fix (the state topic is missing or not writable): the quarantine
    /// is switched off rather than holding every record back.
    /// An unknown topic or partition is not among them: brokers answer so for a while during
    /// leader moves and restarts, and a failed mark is written again at the next tick.
    static func disablesQuarantine(_ error: KafkaError) -> Bool {
        error.isPermanent && !KafkaError.unknownTopicCodes.contains(error.code)
    }

    static let consumerOnly: Set<String> = [
        "group.id", "session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy", "auto.offset.reset",
        "enable.auto.commit", "auto.commit.interval.ms", "max.poll.interval.ms", "group.instance.id", "enable.auto.offset.store",
        "fetch.min.bytes", "fetch.wait.max.ms", "queued.min.messages", "queued.max.messages.kbytes",
    ]

    /// Feeds the inputs to the pure `WorkerLoop` and carries out its actions: starts checks in
    /// the task group, stores offsets, pauses partitions, writes quarantine marks.
    func loop(
        inputs: InputQueue<Input>, consumer: KafkaConsumer, producer: KafkaProducer, store: QuarantineStore?, handOver: HandOverMarks
    ) async {
        let worker = configuration.worker
        var machine = WorkerLoop<KafkaMessage>(
            configuration: .init(worker: worker),
            quarantineEnabled: store != nil, owner: String(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16)))

        await withDiscardingTaskGroup { group in
            /// Carries out the actions; false when the loop must end.
            func perform(_ actions: [WorkerLoop<KafkaMessage>.Action]) -> Bool {
                var goOn = true
                for action in actions {
                    switch action {
                    case .start(let job, let mode, let attempt):
                        let message = job.item
                        if mode == .alone { metrics.quarantined() }
                        group.addTask {
                            // One span per record, continuing the request's trace (RequestTrace).
                            let published: PublishResult? = await withSpan(
                                TraceSpan.consume, context: RequestTrace.context(of: message.headers), ofKind: .consumer
                            ) { span in
                                TraceSpan.messaging(span, operation: "process", topic: message.topic)
                                if span.isRecording {
                                    span.attributes[TraceSpan.Attribute.partition] = String(message.partition)
                                    span.attributes[TraceSpan.Attribute.offset] = message.offset
                                    span.attributes[TraceSpan.Attribute.attempt] = attempt
                                }
                                let outcome =
                                    mode == .poisoned
                                    ? self.processor.poisoned(message.value, key: message.keyString, headers: message.headers, attempt: attempt)
                                    : await self.processor.process(message.value, key: message.keyString, headers: message.headers, attempt: attempt)
                                Self.describe(span, outcome.result)
                                // Evaluated: the slot is free while the records await their delivery reports.
                                inputs.post(.evaluated(tenant: job.tenant))
                                // Most checks: one result record and no span to time its send. Its
                                // delivery report posts `finished` (no task waits for it); a failed
                                // first attempt goes on in a task of its own (`.republish`).
                                // Not for a check cancelled (grace over): its made-up answer
                                // is not published (`send` returns `.cancelled`).
                                if outcome.deadLetterReason == nil, !span.isRecording, !Task.isCancelled {
                                    // Built in a publish span, as on the awaited path: the
                                    // result's traceparent names that span (docs/tracing.md).
                                    let record = withSpan(TraceSpan.publish, ofKind: .producer) { _ in self.resultRecord(outcome, for: message) }
                                    self.publishInBackground(
                                        record, outcome: outcome, for: message, job: job, alone: mode == .alone, producer: producer, inputs: inputs)
                                    return nil
                                }
                                return await self.publish(outcome, for: message, producer: producer)
                            }
                            guard let published else { return }
                            Self.postEnd(published, of: job, alone: mode == .alone, to: inputs)
                        }
                    case .writeMark(let tp, let mark):
                        guard let store else { continue }
                        // Writes may be stored out of order; readers pick the newest by epoch and
                        // sequence (PartitionMark.latest).
                        group.addTask {
                            var failure: KafkaError? = nil
                            do throws(KafkaError) { _ = try await producer.send(store.record(tp, mark)) } catch { failure = error }
                            inputs.post(.markWritten(tp, mark, failure: failure))
                        }
                    case .storeOffset(let tp, let next):
                        do { try consumer.store(tp, offset: next) } catch { logger.debug("offset not stored: \(error)") }
                    case .pauseAll, .resumeAll:
                        let pause = { if case .pauseAll = action { true } else { false } }()
                        let parts = consumer.assignment.map { $0 }
                        do {
                            if pause { try consumer.pause(parts) } else { try consumer.resume(parts) }
                        } catch {
                            logger.warning("cannot \(pause ? "pause" : "resume") partitions: \(error)")
                        }
                        metrics.paused(pause)
                        health.set(paused: pause)
                    case .setPaused(let parts, let pause):
                        do {
                            if pause { try consumer.pause(parts) } else { try consumer.resume(parts) }
                        } catch {
                            logger.warning("cannot set the pause of newly assigned partitions: \(error)")
                        }
                    case .handOver(let tp, let mark):
                        handOver.set(tp, mark)
                    case .log(let level, let text):
                        switch level {
                        case .info: logger.info("\(text)")
                        case .warning: logger.warning("\(text)")
                        case .error: logger.error("\(text)")
                        }
                    case .quarantineOff:
                        metrics.quarantineEnabled(false)
                    case .startGraceTimer:
                        // In-flight checks get the grace period minus what closing needs.
                        let grace = configuration.worker.shutdownGrace
                        let forChecks = grace - ShutdownDeadline.closeReserve(grace)
                        group.addTask {
                            try? await Task.sleep(for: forChecks)
                            if !Task.isCancelled { inputs.post(.graceExpired) }
                        }
                    case .cancelAll:
                        group.cancelAll()
                    case .exit:
                        goOn = false
                    }
                }
                // At once, not per batch: the revoke hook (poll thread) reads it to decide
                // whether a partition's suspect still runs here (review finding).
                handOver.runningAlone = machine.runningAlone
                return goOn
            }
            /// What the loop holds, for the consumer's gate, metrics and health: once per batch.
            func report() {
                // The consumer's gate: records in transit plus these stay under maxHeld.
                consumer.holding(machine.held)
                metrics.inFlight(machine.inFlight)
                metrics.uncommitted(machine.uncommitted)
                metrics.quarantineWaiting(machine.suspects)
                health.set(busy: machine.busy)
            }

            // Inputs come a batch at a time (everything posted since the last batch): the
            // bookkeeping above runs once per batch, not once per input.
            var goOn = true
            while goOn, let batch = await inputs.next() {
                var records = 0
                for input in batch {
                    let actions: [WorkerLoop<KafkaMessage>.Action]
                    switch input {
                    case .kafka(.message(let m)):
                        actions = machine.handle(.received(m, m.topicPartition, offset: m.offset, tenant: m.keyString ?? "", at: .now))
                        records += 1
                    case .kafka(.starts(let found)):
                        actions = machine.handle(.starts(found))
                    case .kafka(.assigned(let parts)):
                        actions = machine.handle(.assigned(parts, epochFloor: Int64(Date().timeIntervalSince1970 * 1000)))
                        health.set(joined: true)
                        logger.info("partitions assigned", metadata: ["partitions": "\(parts.sorted().map(\.description).joined(separator: ","))"])
                    case .kafka(.revoked(let parts)), .kafka(.lost(let parts)):
                        actions = machine.handle(.revoked(parts))
                        logger.info("partitions revoked", metadata: ["partitions": "\(parts.sorted().map(\.description).joined(separator: ","))"])
                    case .markWritten(let tp, let mark, let failure):
                        if let failure { logger.warning("quarantine mark write to \(store?.topic ?? "") failed: \(failure)") }
                        actions = machine.handle(.markWritten(tp, mark, failed: failure != nil, permanent: failure.map(Self.disablesQuarantine) ?? false))
                    case .kafka(.error(let e)):
                        if e.isFatal {
                            await Self.exitOnFatal(e, health: health, logger: logger)
                        }
                        logger.warning("kafka error: \(e)")
                        continue
                    case .kafka(.partitionEnd):
                        // Only with enable.partition.eof, which a worker does not ask for.
                        continue
                    case .fatal(let e):
                        await Self.exitOnFatal(e, health: health, logger: logger)
                        continue
                    case .cannotPublish(let topic, let e):
                        // The loop stops here: no later completion stores an offset, so nothing is
                        // committed after the record that could not be answered.
                        await Self.exitForRestart(
                            code: Self.fatalKafkaExitCode, health: health, logger: logger,
                            "cannot publish to the topic '\(topic)' (\(e)); exiting so that nothing more is committed (check that the topic exists and this worker may write to it)"
                        )
                        continue
                    case .evaluated(let tenant):
                        actions = machine.handle(.evaluated(tenant: tenant))
                    case .republish(let retry):
                        // The first attempt of a result sent in the background failed: the
                        // publishing policy goes on from that failure, as for any other send.
                        group.addTask {
                            let published = await self.publishRecords(
                                retry.outcome, for: retry.message, producer: producer, firstAttempt: (retry.record, retry.failure))
                            Self.postEnd(published, of: retry.job, alone: retry.alone, to: inputs)
                        }
                        continue
                    case .finished(let tp, let offset, let generation, let tenant, let published, let alone):
                        health.progressed()
                        actions = machine.handle(
                            .finished(
                                tp, offset: offset, generation: generation, tenant: tenant,
                                published: published, alone: alone))
                    case .tick:
                        actions = machine.handle(.tick)
                        metrics.oldestUncommittedAge(machine.oldestUncommittedSince.map { $0.duration(to: .now) } ?? .zero)
                    case .stop:
                        actions = machine.handle(.stop)
                    case .graceExpired:
                        actions = machine.handle(.graceExpired)
                    }
                    if !perform(actions) {
                        goOn = false
                        break
                    }
                }
                report()
                // Out of transit only after report() has told the consumer what the loop holds,
                // so that its count never dips while records change hands.
                consumer.handled(records)
            }
            // Leaving the group's body: anything still running (a grace timer) is cancelled.
            group.cancelAll()
        }
        // Every check has ended (the group waited for them): nothing runs alone any more.
        handOver.runningAlone = nil
    }

    /// A result whose background send failed, with what its retries need.
    struct Republish: Sendable {
        /// The record as first sent (its headers name the span it was built in).
        var record: OutgoingMessage
        var outcome: CheckProcessor.Outcome
        var message: KafkaMessage
        var job: WorkerLoop<KafkaMessage>.Job
        var alone: Bool
        var failure: KafkaError
    }

    /// Sends a check's result (no dead-letter copy) without a task waiting for its delivery
    /// report: the report posts `finished`, or `republish` when the first attempt failed.
    func publishInBackground(
        _ record: OutgoingMessage, outcome: CheckProcessor.Outcome, for message: KafkaMessage, job: WorkerLoop<KafkaMessage>.Job,
        alone: Bool, producer: KafkaProducer, inputs: InputQueue<Input>
    ) {
        let metrics = self.metrics
        producer.send(record) { delivery in
            switch delivery {
            case .success:
                metrics.resultProduced()
                Self.postEnd(.published, of: job, alone: alone, to: inputs)
            case .failure(let error):
                inputs.post(.republish(Republish(record: record, outcome: outcome, message: message, job: job, alone: alone, failure: error)))
            }
        }
    }

    /// Tells the loop how publishing a check's records ended: `cannotPublish` first when no
    /// retry can fix it, then `finished` (the one place for all three paths).
    static func postEnd(_ published: PublishResult, of job: WorkerLoop<KafkaMessage>.Job, alone: Bool, to inputs: InputQueue<Input>) {
        if case .failed(let topic, let error) = published { inputs.post(.cannotPublish(topic: topic, error)) }
        inputs.post(
            .finished(
                job.partition, offset: job.offset, generation: job.generation, tenant: job.tenant, published: published == .published,
                alone: alone))
    }

    /// How publishing one check's records ended.
    enum PublishResult: Sendable, Equatable {
        /// Every record (result, dead-letter copy) was acknowledged: the offset may be committed.
        case published
        /// The task was cancelled (shutdown past its grace period): nothing is committed.
        case cancelled
        /// A record met an error no retry can fix (PublishPolicy): the worker must stop.
        case failed(topic: String, KafkaError)
    }

    /// Produces the result (and the dead-letter copy). Retriable failures are retried until they
    /// succeed or the task is cancelled; a result too large for one record is answered by a short
    /// UNKNOWN of kind `publish`; a permanent failure ends in `.failed`.
    func publish(_ outcome: CheckProcessor.Outcome, for message: KafkaMessage, producer: KafkaProducer) async -> PublishResult {
        await withSpan(TraceSpan.publish, ofKind: .producer) { span in
            TraceSpan.messaging(span, operation: "send", topic: outcome.topic)
            let published = await publishRecords(outcome, for: message, producer: producer)
            switch published {
            case .published: break
            // A closed word, never the Kafka error's text.
            case .cancelled: span.setStatus(SpanStatus(code: .error, message: "cancelled"))
            case .failed: span.setStatus(SpanStatus(code: .error, message: "failed"))
            }
            return published
        }
    }

    /// The span attributes of a check's outcome: its id (user names redacted, as in logs),
    /// tenant and mode when they were valid, its status and error kind (closed sets). Never its
    /// output or labels.
    static func describe(_ span: any Span, _ result: CheckResultMessage) {
        guard span.isRecording else { return }
        if let id = result.id { span.attributes[TraceSpan.Attribute.requestId] = PersonalData.redactUserNames(id) }
        if let tenant = result.tenant { span.attributes[TraceSpan.Attribute.tenant] = tenant }
        if let mode = result.mode { span.attributes[TraceSpan.Attribute.mode] = mode }
        span.attributes[TraceSpan.Attribute.status] = result.status
        if let kind = result.error?.kind { TraceSpan.fail(span, kind: kind) }
    }

    /// The result record of a check: its id and content type, and the request's trace.
    func resultRecord(_ outcome: CheckProcessor.Outcome, for message: KafkaMessage) -> OutgoingMessage {
        var headers = [KafkaHeader("exocheck-id", outcome.result.id ?? ""), KafkaHeader("content-type", "application/json")]
        // Only a W3C-shaped traceparent is written (RequestTrace): anything else could make the
        // result unpublishable or echo a hostile value.
        if let trace = RequestTrace.resultTraceparent(request: message.headers) {
            headers.append(KafkaHeader(RequestTrace.header, trace))
        }
        return OutgoingMessage(
            topic: outcome.topic, key: (outcome.key ?? message.keyString).map { Array($0.utf8) },
            value: outcome.value, headers: headers)
    }

    /// `firstAttempt`: the result record was first sent in the background and failed: the same
    /// record is sent again, the policy going on from that failure.
    func publishRecords(
        _ outcome: CheckProcessor.Outcome, for message: KafkaMessage, producer: KafkaProducer,
        firstAttempt: (record: OutgoingMessage, failure: KafkaError)? = nil
    ) async -> PublishResult {
        let result = firstAttempt?.record ?? resultRecord(outcome, for: message)
        switch await send(result, producer: producer, what: "result", firstFailure: firstAttempt?.failure) {
        case .delivered: break
        case .cancelled: return .cancelled
        case .failed(let error): return .failed(topic: result.topic, error)
        case .tooLarge:
            // Larger than a record may be even after ResultSizePolicy (e.g. the broker's limit is
            // lower than the producer's): answer the check with a short UNKNOWN of kind
            // `publish` that carries only the id header.
            let fallback = outcome.result.publishFailure(topic: outcome.topic, bytes: result.value.count)
            let small = OutgoingMessage(
                topic: outcome.topic, key: result.key, value: fallback.encoded(),
                headers: [KafkaHeader("exocheck-id", fallback.id ?? ""), KafkaHeader("content-type", "application/json")])
            switch await send(small, producer: producer, what: "fallback result") {
            case .delivered: break
            case .cancelled: return .cancelled
            case .failed(let error), .tooLarge(let error): return .failed(topic: small.topic, error)
            }
        }
        metrics.resultProduced()
        if let reason = outcome.deadLetterReason {
            // The original headers travel with the copy unless they are what made the record bad.
            let headerBytes = message.headers.reduce(0) { $0 + $1.name.utf8.count + ($1.value?.count ?? 0) }
            var dltHeaders =
                headerBytes <= CheckProcessor.maxHeaderBytes
                ? message.headers
                : [KafkaHeader(DeadLetterHeader.headersDropped, "\(message.headers.count) headers, \(headerBytes) bytes")]
            dltHeaders.append(contentsOf: [
                KafkaHeader(DeadLetterHeader.sourceTopic, message.topic), KafkaHeader(DeadLetterHeader.sourcePartition, String(message.partition)),
                KafkaHeader(DeadLetterHeader.sourceOffset, String(message.offset)), KafkaHeader(DeadLetterHeader.reason, reason),
                KafkaHeader(DeadLetterHeader.errorKind, outcome.result.error?.kindName ?? CheckErrorKind.invalidRequest.rawValue),
            ])
            let copy = OutgoingMessage(topic: configuration.kafka.deadLetter, key: message.key, value: message.value, headers: dltHeaders)
            switch await send(copy, producer: producer, what: "dead-letter copy") {
            case .delivered: break
            case .cancelled: return .cancelled
            case .failed(let error): return .failed(topic: copy.topic, error)
            case .tooLarge:
                // Not publishable whole (e.g. larger than the producer's message.max.bytes): a stub
                // keeps the record's start, its size and SHA-256, its headers' verdict and the
                // reason, so that the request is still committed and its partition goes on.
                var stubHeaders = dltHeaders
                stubHeaders.append(contentsOf: [
                    KafkaHeader(
                        DeadLetterHeader.truncated,
                        "\(message.value.count) bytes; the first \(min(message.value.count, Self.deadLetterStubBytes)) kept"),
                    KafkaHeader(DeadLetterHeader.sourceSize, String(message.value.count)),
                    KafkaHeader(DeadLetterHeader.sourceSHA256, SHA256.hash(data: message.value).map { String(format: "%02x", $0) }.joined()),
                ])
                let stub = OutgoingMessage(
                    topic: configuration.kafka.deadLetter, key: message.key.map { Array($0.prefix(1024)) },
                    value: Array(message.value.prefix(Self.deadLetterStubBytes)), headers: stubHeaders)
                switch await send(stub, producer: producer, what: "dead-letter stub") {
                case .delivered: break
                case .cancelled: return .cancelled
                case .failed(let error), .tooLarge(let error): return .failed(topic: stub.topic, error)
                }
            }
            metrics.deadLettered(kind: outcome.result.error?.kind ?? .invalidRequest)
        }
        return .published
    }

    /// Bytes of a record kept in its dead-letter stub when the whole copy cannot be published.
    public static let deadLetterStubBytes = 65_536

    /// How one record's send ended (after the retries of PublishPolicy).
    enum SendResult: Sendable, Equatable {
        case delivered
        case cancelled
        /// Larger than a record may be: the caller sends something smaller instead.
        case tooLarge(KafkaError)
        /// No retry can fix it (KafkaError.isPermanent), or a non-retriable error persisted.
        case failed(KafkaError)
    }

    /// `firstFailure`: a first attempt already made (in the background) failed with it; the
    /// policy goes on from there.
    func send(_ message: OutgoingMessage, producer: KafkaProducer, what: String, firstFailure: KafkaError? = nil) async -> SendResult {
        var policy = PublishPolicy()
        var earlier = firstFailure
        while !Task.isCancelled {
            do throws(KafkaError) {
                if let failure = earlier {
                    earlier = nil
                    throw failure
                }
                try await producer.send(message)
                return .delivered
            } catch {
                // Shutdown past its grace period: the send was abandoned, nothing is committed.
                if Task.isCancelled { return .cancelled }
                switch policy.next(after: error) {
                case .tooLarge:
                    logger.error("cannot publish the \(what) to \(message.topic): \(error)")
                    return .tooLarge(error)
                case .fail:
                    logger.error("cannot publish the \(what) to \(message.topic), giving up: \(error)")
                    return .failed(error)
                case .retry(after: let delay):
                    metrics.produceRetry()
                    logger.warning("publishing the \(what) to \(message.topic) failed, retrying: \(error)")
                    try? await Task.sleep(for: delay)
                }
            }
        }
        return .cancelled
    }
}

/// The worker cannot start (a topic it answers on is missing, …): the message says what to fix.
public struct StartupError: Error, Sendable, CustomStringConvertible {
    /// What is wrong and what to fix.
    public let description: String
    /// An error with this message.
    public init(_ description: String) { self.description = description }
}

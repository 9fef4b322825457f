import ExchangeChecks
import Foundation
import GraphReports
import Kafka
import Logging
import ServiceLifecycle
import Synchronization

/// Health as /healthz and /readyz report it.
public final class WorkerHealth: Sendable {
    private let state = Mutex((running: false, joined: false, graphReachable: false, stuckThreads: 0, stuck: false))
    public init() {}
    public func set(running: Bool? = nil, joined: Bool? = nil, graphReachable: Bool? = nil, stuckThreads: Int? = nil, stuck: Bool? = nil) {
        state.withLock {
            if let stuckThreads { $0.stuckThreads = stuckThreads }
            if let stuck { $0.stuck = stuck }
            if let running { $0.running = running }
            if let joined { $0.joined = joined }
            if let graphReachable { $0.graphReachable = graphReachable }
        }
    }
    /// Live: the loop runs and the evaluation threads are not all stuck.
    public var live: Bool { state.withLock { $0.running && !$0.stuck } }
    /// Ready: live, the group joined, and Graph answered the last probe.
    public var ready: Bool { state.withLock { $0.running && !$0.stuck && $0.joined && $0.graphReachable } }
    public var details: String {
        state.withLock {
            "running=\($0.running) groupJoined=\($0.joined) graphReachable=\($0.graphReachable) stuckEvaluationThreads=\($0.stuckThreads)"
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

    public init(configuration: WorkerConfiguration, kafka: KafkaConfiguration, processor: CheckProcessor,
                metrics: WorkerMetrics, health: WorkerHealth, logger: Logger) {
        self.configuration = configuration
        self.kafka = kafka
        self.processor = processor
        self.metrics = metrics
        self.health = health
        self.logger = logger
    }

    enum Input: Sendable {
        case kafka(KafkaConsumerEvent)
        case completed(TopicPartition, offset: Int64, generation: Int)
        case stop
        case graceExpired
    }

    public func run() async throws {
        var consumerConfig = kafka
        consumerConfig.groupId = configuration.kafka.group
        let defaults = ["enable.auto.commit": "true", "auto.commit.interval.ms": "1000",
                        "partition.assignment.strategy": "cooperative-sticky", "auto.offset.reset": "earliest"]
        for (k, v) in defaults where consumerConfig.properties[k] == nil { consumerConfig.properties[k] = v }
        var producerConfig = KafkaConfiguration(kafka.properties.filter { !Self.consumerOnly.contains($0.key) })
        if producerConfig.properties["linger.ms"] == nil { producerConfig.properties["linger.ms"] = "5" }
        let log = logger
        let kafkaLog: KafkaLogHandler = { level, facility, message in
            if level <= 4 { log.warning("kafka: \(facility): \(message)") }
        }
        let producer = try KafkaProducer(configuration: producerConfig, log: kafkaLog)
        let consumer = try KafkaConsumer(configuration: consumerConfig, topics: [configuration.kafka.requests], log: kafkaLog)
        health.set(running: true)
        logger.info("worker consuming", metadata: ["topic": "\(configuration.kafka.requests)", "group": "\(configuration.kafka.group)",
                                                   "concurrency": "\(configuration.worker.concurrency)"])

        let (inputs, continuation) = AsyncStream<Input>.makeStream()
        let forwarder = Task {
            for await event in consumer.events { continuation.yield(.kafka(event)) }
        }
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
                if stuck >= stuckLimit {
                    health.set(stuck: true)
                    logger.critical("\(stuck) evaluation thread(s) stuck past their checks' time budget: exiting so that the worker is restarted; uncommitted requests will be redelivered")
                    // The stuck threads cannot be stopped and a graceful shutdown would wait for them.
                    try? await Task.sleep(for: .seconds(2))  // let /healthz report it and the log line flush
                    exit(70)
                }
                tick += 1
                try? await Task.sleep(for: .seconds(1))
            }
        }
        await withGracefulShutdownHandler {
            await self.loop(inputs: inputs, continuation: continuation, consumer: consumer, producer: producer)
        } onGracefulShutdown: {
            continuation.yield(.stop)
        }
        monitor.cancel()
        health.set(running: false)
        logger.info("worker stopping: flushing results and committing offsets")
        _ = await producer.flush(timeout: .seconds(10))
        await consumer.close()
        await producer.close()
        continuation.finish()
        forwarder.cancel()
        logger.info("worker stopped")
    }

    static let consumerOnly: Set<String> = [
        "group.id", "session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy", "auto.offset.reset",
        "enable.auto.commit", "auto.commit.interval.ms", "max.poll.interval.ms", "group.instance.id", "enable.auto.offset.store",
        "fetch.min.bytes", "fetch.wait.max.ms", "queued.min.messages", "queued.max.messages.kbytes",
    ]

    func loop(inputs: AsyncStream<Input>, continuation: AsyncStream<Input>.Continuation,
              consumer: KafkaConsumer, producer: KafkaProducer) async {
        let concurrency = configuration.worker.concurrency
        var tracker = OffsetTracker()
        var inFlight = 0
        var backlog: [(KafkaMessage, Int)] = []
        var paused = false
        var stopping = false
        var deliveries: [String: Int] = [:]  // (partition, offset) → times received, for `attempt`

        await withDiscardingTaskGroup { group in
            func start(_ message: KafkaMessage, generation: Int) {
                inFlight += 1
                let deliveryKey = "\(message.topicPartition)@\(message.offset)"
                let attempt = (deliveries[deliveryKey] ?? 0) + 1
                deliveries[deliveryKey] = attempt
                if deliveries.count > 200_000 { deliveries.removeAll(keepingCapacity: true) }
                metrics.inFlight(inFlight)
                group.addTask {
                    let outcome = await self.processor.process(message.value, key: message.keyString, headers: message.headers, attempt: attempt)
                    if await self.publish(outcome, for: message, producer: producer) {
                        continuation.yield(.completed(message.topicPartition, offset: message.offset, generation: generation))
                    }
                }
            }
            func setPaused(_ value: Bool) {
                guard value != paused else { return }
                paused = value
                let parts = consumer.assignment.map { $0 }
                do {
                    if value { try consumer.pause(parts) } else { try consumer.resume(parts) }
                } catch {
                    logger.warning("cannot \(value ? "pause" : "resume") partitions: \(error)")
                }
            }

            loop: for await input in inputs {
                switch input {
                case .kafka(.message(let m)):
                    guard !stopping, let generation = tracker.begin(m.topicPartition, offset: m.offset) else { continue }
                    if inFlight < concurrency { start(m, generation: generation) } else { backlog.append((m, generation)) }
                    if inFlight + backlog.count >= concurrency { setPaused(true) }
                case .kafka(.assigned(let parts)):
                    tracker.assign(parts)
                    health.set(joined: true)
                    logger.info("partitions assigned", metadata: ["partitions": "\(parts.sorted().map(\.description).joined(separator: ","))"])
                    if paused || stopping { try? consumer.pause(parts) }
                case .kafka(.revoked(let parts)), .kafka(.lost(let parts)):
                    // Finish or abandon in-flight checks of these partitions, never commit for them.
                    tracker.revoke(parts)
                    let gone = Set(parts)
                    backlog.removeAll { gone.contains($0.0.topicPartition) }
                    logger.info("partitions revoked", metadata: ["partitions": "\(parts.sorted().map(\.description).joined(separator: ","))"])
                case .kafka(.error(let e)):
                    logger.warning("kafka error: \(e)")
                case .completed(let tp, let offset, let generation):
                    inFlight -= 1
                    if let next = tracker.complete(tp, offset: offset, generation: generation) {
                        do { try consumer.store(tp, offset: next) } catch { logger.debug("offset not stored: \(error)") }
                    }
                    while !stopping, inFlight < concurrency, !backlog.isEmpty {
                        let (m, g) = backlog.removeFirst()
                        start(m, generation: g)
                    }
                    metrics.inFlight(inFlight)
                    metrics.uncommitted(tracker.uncommitted)
                    if paused, !stopping, inFlight + backlog.count < max(1, concurrency / 2) { setPaused(false) }
                    if stopping, inFlight == 0 { break loop }
                case .stop:
                    guard !stopping else { continue }
                    stopping = true
                    setPaused(true)
                    backlog.removeAll()
                    logger.info("graceful shutdown: waiting for \(inFlight) in-flight check(s)")
                    if inFlight == 0 { break loop }
                    let grace = configuration.worker.shutdownGraceSeconds
                    Task {
                        try? await Task.sleep(for: .milliseconds(Int64(grace * 1000)))
                        continuation.yield(.graceExpired)
                    }
                case .graceExpired:
                    logger.warning("grace period over: abandoning \(inFlight) check(s); their requests stay uncommitted")
                    group.cancelAll()
                    break loop
                }
            }
        }
    }

    /// Produces the result (and the dead-letter copy); true when every record was acknowledged.
    /// Retriable failures are retried until they succeed or the task is cancelled.
    func publish(_ outcome: CheckProcessor.Outcome, for message: KafkaMessage, producer: KafkaProducer) async -> Bool {
        var headers = [KafkaHeader("exocheck-id", outcome.result.id ?? ""), KafkaHeader("content-type", "application/json")]
        // Only a W3C-shaped traceparent is copied: anything else could make the result unpublishable.
        if let trace = message.headers.last(where: { $0.name == "traceparent" })?.value, CheckRequestDecoder.isTraceparent(trace) {
            headers.append(KafkaHeader("traceparent", String(decoding: trace, as: UTF8.self)))
        }
        let result = OutgoingMessage(topic: outcome.topic, key: (outcome.key ?? message.keyString).map { Array($0.utf8) },
                                     value: outcome.result.encoded(), headers: headers)
        if !(await sendWithRetry(result, producer: producer, what: "result")) {
            if Task.isCancelled { return false }
            // Not publishable as is (e.g. too large): answer the check with a short UNKNOWN.
            var fallback = outcome.result
            fallback.status = "UNKNOWN"
            fallback.exitCode = 3
            fallback.output = "UNKNOWN: the result of this check could not be published (\(result.value.count) bytes); see the worker's log. "
            fallback.summary = fallback.output.trimmingCharacters(in: .whitespaces)
            fallback.perfdata = []
            fallback.error = .init(kind: "graph", message: "The result could not be published to \(outcome.topic).")
            let small = OutgoingMessage(topic: outcome.topic, key: result.key, value: fallback.encoded(), headers: headers)
            if !(await sendWithRetry(small, producer: producer, what: "fallback result")), Task.isCancelled { return false }
        }
        metrics.resultProduced()
        if let reason = outcome.deadLetterReason {
            // The original headers travel with the copy unless they are what made the record bad.
            let headerBytes = message.headers.reduce(0) { $0 + $1.name.utf8.count + ($1.value?.count ?? 0) }
            var dltHeaders = headerBytes <= CheckProcessor.maxHeaderBytes ? message.headers
                : [KafkaHeader("exocheck-headers-dropped", "\(message.headers.count) headers, \(headerBytes) bytes")]
            dltHeaders.append(contentsOf: [
                KafkaHeader("exocheck-source-topic", message.topic), KafkaHeader("exocheck-source-partition", String(message.partition)),
                KafkaHeader("exocheck-source-offset", String(message.offset)), KafkaHeader("exocheck-dlt-reason", reason),
                KafkaHeader("exocheck-error-kind", outcome.result.error?.kind ?? "invalid-request"),
            ])
            let copy = OutgoingMessage(topic: configuration.kafka.deadLetter, key: message.key, value: message.value, headers: dltHeaders)
            guard await sendWithRetry(copy, producer: producer, what: "dead-letter copy") else { return false }
            metrics.deadLettered(kind: outcome.result.error?.kind ?? "invalid-request")
        }
        return true
    }

    func sendWithRetry(_ message: OutgoingMessage, producer: KafkaProducer, what: String) async -> Bool {
        var delay = 0.5
        while !Task.isCancelled {
            do {
                try await producer.send(message)
                return true
            } catch {
                if error.isFatal || error.code == KafkaError.messageTooLarge || error.isConfiguration {
                    logger.error("cannot publish the \(what) to \(message.topic): \(error)")
                    return false
                }
                metrics.produceRetry()
                logger.warning("publishing the \(what) to \(message.topic) failed, retrying: \(error)")
                try? await Task.sleep(for: .milliseconds(Int64(delay * 1000)))
                delay = min(delay * 2, 5)
            }
        }
        return false
    }
}

import ArgumentParser
import CheckWorker
import ExchangeChecks
import Foundation
import Kafka
import Synchronization

/// `exocheck bench pipeline`: one worker with warm caches and small tenants, driven by an
/// independent producer and consumer through dev-broker. A burst measures checks per second
/// (and the worker's CPU per check); kcat then produces and consumes as many messages of the same
/// size on the same broker, the reference; a fixed offered rate measures latency.
struct BenchPipeline: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "One warm worker through dev-broker: checks/s vs kcat, and latency at a fixed rate."
    )

    @Option(help: "Checks in the burst.") var checks = 50_000
    @Option(help: "Generated tenants (12 users each).") var tenants = 10
    @Option(help: "Offered rate of the latency phase, checks per second.") var rate = 10_000
    @Option(help: "Length of the latency phase, seconds.") var rateSeconds = 5
    @Option(help: "The worker's concurrency.") var concurrency = 64
    @Option(help: "Requests in flight from the bench's producer.") var window = 20_000
    @Option(help: "The worker's fetch.wait.max.ms (dev-broker holds an empty Fetch this long; unset: librdkafka's 500).")
    var workerFetchWaitMs: Int?
    @Option(name: .customLong("worker-property"), help: "A librdkafka property of the worker, key=value (repeatable), e.g. fetch.error.backoff.ms=10.")
    var workerProperties: [String] = []

    /// When each id was sent and when its result arrived.
    final class Clock: Sendable {
        let state = Mutex<(sent: [String: ContinuousClock.Instant], latencies: [Double], arrived: Int)>(([:], [], 0))
        func sent(_ id: String) { state.withLock { $0.sent[id] = .now } }
        func arrived(_ id: String) {
            state.withLock { s in
                s.arrived += 1
                if let t = s.sent.removeValue(forKey: id) { s.latencies.append(BenchWorker.ms(t.duration(to: .now))) }
            }
        }
        var arrivedCount: Int { state.withLock { $0.arrived } }
        func reset() -> [Double] {
            state.withLock { s in
                let l = s.latencies
                s = ([:], [], 0)
                return l
            }
        }
    }

    func run() async throws {
        guard checks > 0, tenants > 0, rate > 0, rateSeconds > 0 else { throw ValidationError("every count must be at least 1") }
        var properties = workerFetchWaitMs.map { ["fetch.wait.max.ms": String($0)] } ?? [:]
        for item in workerProperties {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("--worker-property takes key=value") }
            properties[parts[0]] = parts[1]
        }
        let setup = try await BenchSetup(
            prefix: "bpipe", partitions: 16, tenants: tenants, users: 12, concurrency: concurrency,
            kafkaProperties: properties, extraTopics: ["bpipe.kcat:16"])
        let worker = try setup.startWorker(0)
        let bootstrap = setup.bootstrap
        let producer = try KafkaProducer(
            configuration: KafkaConfiguration([
                "bootstrap.servers": bootstrap, "linger.ms": "5", "queue.buffering.max.messages": "1000000", "log_level": "3",
            ]))
        var readerConfig = KafkaConfiguration(["bootstrap.servers": bootstrap, "log_level": "3", "fetch.wait.max.ms": "10"])
        readerConfig.groupId = nil
        let start = try await KafkaMetadata.startOffsets(topic: setup.results, position: .end, configuration: readerConfig)
        let results = try KafkaConsumer(configuration: readerConfig, assignment: start)
        let clock = Clock()
        let shapes: [(CheckMode, [String])] = [(.mailboxUsage, []), (.emailActivity, []), (.mailboxUsage, ["--filter-counters=^active|^total"])]
        func request(_ prefix: String, _ i: Int) -> CheckRequest {
            let (mode, args) = shapes[i % shapes.count]
            return CheckRequest(id: "\(prefix)-\(i)", tenant: setup.tenantNames[(i / shapes.count) % tenants], mode: mode, arguments: args)
        }
        let requestsTopic = setup.requests
        let send: @Sendable (CheckRequest) async throws -> Void = { r in
            clock.sent(r.id)
            try await producer.send(
                OutgoingMessage(
                    topic: requestsTopic, key: Array(r.tenant.utf8), value: r.encoded(),
                    headers: [KafkaHeader("exocheck-id", r.id), KafkaHeader("content-type", "application/json")]))
        }
        func waitFor(_ count: Int, limit: Duration) async -> Bool {
            let end = ContinuousClock.now.advanced(by: limit)
            while clock.arrivedCount < count, ContinuousClock.now < end { try? await Task.sleep(for: .milliseconds(2)) }
            return clock.arrivedCount >= count
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await event in results.events {
                    if case .message(let m) = event, let id = m.header("exocheck-id") { clock.arrived(id) }
                }
            }
            // Warm-up: every tenant and shape once (reports downloaded and parsed, results memoised).
            try await Task.sleep(for: .seconds(4))
            let warm = (0..<(tenants * shapes.count)).map { request("warm", $0) }
            for r in warm { try await send(r) }
            guard await waitFor(warm.count, limit: .seconds(120)) else { throw ValidationError("the warm-up got no answers (logs in \(setup.dir))") }
            _ = clock.reset()
            SafeOutput.print(
                "exocheck bench pipeline: one worker (concurrency \(concurrency), fetch wait \(workerFetchWaitMs.map { "\($0) ms" } ?? "500 ms")\(workerProperties.isEmpty ? "" : ", " + workerProperties.joined(separator: ", "))), \(tenants) tenants of 12 users, \(shapes.count) shapes, warm; dev-broker; 16 partitions"
            )

            // Burst.
            let requests = (0..<checks).map { request("burst", $0) }
            let averageSize = requests.map { $0.encoded().count }.reduce(0, +) / max(1, requests.count)
            let cpu0 = BenchSubmit.processCPU(worker.processIdentifier)
            let t0 = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { senders in
                for (i, r) in requests.enumerated() {
                    if i >= window { try await senders.next() }
                    senders.addTask { try await send(r) }
                }
                try await senders.waitForAll()
            }
            guard await waitFor(checks, limit: .seconds(600)) else { throw ValidationError("only \(clock.arrivedCount) of \(checks) results arrived") }
            let burstSeconds = BenchWorker.ms(t0.duration(to: .now)) / 1000
            let workerCPU = BenchSubmit.processCPU(worker.processIdentifier) - cpu0
            var burst = clock.reset().sorted()
            let throughput = Double(checks) / burstSeconds
            SafeOutput.print(
                String(
                    format: "  burst: %d checks in %.2f s = %.0f checks/s; worker CPU %.3f ms per check; request %d B on average",
                    checks, burstSeconds, throughput, workerCPU / Double(checks) * 1000, averageSize))
            if !burst.isEmpty {
                SafeOutput.print(
                    String(format: "    (queueing under the burst: p50 %.0f ms, p99 %.0f ms)", burst[burst.count / 2], burst[burst.count * 99 / 100]))
            }
            burst.removeAll()

            // kcat: as many messages of the same size, produced then consumed.
            if let kcat = BenchKafka.which("kcat") {
                let file = setup.dir + "/kcat.txt"
                let line = String(repeating: "x", count: max(1, averageSize - 1)) + "\n"
                _ = FileManager.default.createFile(atPath: file, contents: Data(String(repeating: line, count: checks).utf8))
                let k0 = ContinuousClock.now
                try BenchKafka.runQuietly(kcat, ["-P", "-b", bootstrap, "-t", "bpipe.kcat", "-l", file, "-X", "linger.ms=5"])
                let produce = BenchWorker.ms(k0.duration(to: .now)) / 1000
                let k1 = ContinuousClock.now
                try BenchKafka.runQuietly(kcat, ["-C", "-b", bootstrap, "-t", "bpipe.kcat", "-o", "beginning", "-c", "\(checks)", "-e", "-q", "-f", ""])
                let consume = BenchWorker.ms(k1.duration(to: .now)) / 1000
                let kcatRate = Double(checks) / (produce + consume)
                SafeOutput.print(
                    String(
                        format: "  kcat: produce %.2f s + consume %.2f s = %.0f messages/s through both; worker/kcat %.2f",
                        produce, consume, kcatRate, throughput / kcatRate))
            } else {
                SafeOutput.print("  kcat: not found (apt-get install kcat)")
            }

            // A fixed offered rate.
            let total = rate * rateSeconds
            let tick = 10  // ms
            let perTick = max(1, rate * tick / 1000)
            let r0 = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { senders in
                var i = 0
                var next = r0
                while i < total {
                    for _ in 0..<perTick where i < total {
                        let r = request("rate", i)
                        senders.addTask { try await send(r) }
                        i += 1
                    }
                    next = next.advanced(by: .milliseconds(tick))
                    try await Task.sleep(until: next, clock: .continuous)
                }
                try await senders.waitForAll()
            }
            let all = await waitFor(total, limit: .seconds(120))
            let latencies = clock.reset().sorted()
            if latencies.isEmpty {
                SafeOutput.print("  fixed rate: no results")
            } else {
                SafeOutput.print(
                    String(
                        format: "  fixed rate %d checks/s for %d s: submit→result p50 %.1f ms, p99 %.1f ms, max %.1f ms%@",
                        rate, rateSeconds, latencies[latencies.count / 2], latencies[latencies.count * 99 / 100], latencies[latencies.count - 1],
                        all ? "" : " (\(latencies.count) of \(total) answered)"))
            }
            group.cancelAll()
        }
        await producer.close()
        await results.close()
        await setup.stop()
    }
}

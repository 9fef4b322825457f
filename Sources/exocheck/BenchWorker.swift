import ArgumentParser
import CheckWorker
import ExchangeChecks
import Foundation
import GraphSimulator
import Kafka

/// `exocheck bench worker`: N tenants × M checks through dev-broker, the Graph simulator and
/// worker processes; then the same checks as one `exocheck run` process each (sampled), as the
/// baseline.
struct BenchWorker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Throughput and latency of worker processes vs one 'exocheck run' process per check."
    )

    @Option(help: "Tenants.") var tenants = 50
    @Option(help: "Checks per tenant.") var checks = 100
    @Option(help: "Users per generated tenant.") var users = 200
    @Option(help: "Worker processes.") var workers = 2
    @Option(help: "Concurrency per worker.") var concurrency = 64
    @Option(help: "'exocheck run' processes for the baseline sample.") var baselineSample = 100

    func run() async throws {
        let setup = try await BenchSetup(prefix: "bench", partitions: 16, tenants: tenants, users: users, concurrency: concurrency)
        let me = setup.executable, dir = setup.dir, bootstrap = setup.bootstrap, sim = setup.simulator, names = setup.tenantNames
        for i in 0..<workers { try setup.startWorker(i) }
        // Wait for the group: a warm-up request per tenant answered.
        let results = try KafkaConsumer(
            configuration: KafkaConfiguration([
                "bootstrap.servers": bootstrap, "group.id": "bench-reader-\(getpid())", "auto.offset.reset": "latest",
                "session.timeout.ms": "6000", "heartbeat.interval.ms": "500", "log_level": "3",
            ]), topics: ["bench.results"])
        let producer = try KafkaProducer(configuration: KafkaConfiguration(["bootstrap.servers": bootstrap, "linger.ms": "5", "log_level": "3"]))
        let argsets: [(CheckMode, [String])] = [(.mailboxUsage, []), (.emailActivity, []), (.mailboxUsage, ["--filter-counters=.*"])]
        var sent: [String: ContinuousClock.Instant] = [:]
        var latencies: [Double] = []
        var durations: [Double] = []
        var iterator = results.events.makeAsyncIterator()
        func drain(_ ids: Set<String>) async {
            var pending = ids
            while !pending.isEmpty, let event = await iterator.next() {
                guard case .message(let m) = event, let r = CheckResultMessage.decode(m.value), let id = r.id, pending.remove(id) != nil else { continue }
                if let t = sent[id] { latencies.append(Self.ms(t.duration(to: .now))) }
                durations.append(r.durationMs)
            }
        }
        try await Task.sleep(for: .seconds(4))
        let warm = names.map { CheckRequest(id: "warm-\($0)", tenant: $0, mode: .mailboxUsage) }
        for r in warm { try await producer.send(OutgoingMessage(topic: "bench.requests", key: Array(r.tenant.utf8), value: r.encoded())) }
        await drain(Set(warm.map(\.id)))
        await sim.reset()
        latencies.removeAll()
        durations.removeAll()

        let total = tenants * checks
        let requests = (0..<total).map { i -> CheckRequest in
            let (mode, args) = argsets[i % argsets.count]
            return CheckRequest(id: "bench-\(i)", tenant: names[i % tenants], mode: mode, arguments: args)
        }
        SafeOutput.print("exocheck bench worker: \(tenants) tenants × \(checks) checks = \(total), \(workers) worker process(es), concurrency \(concurrency)")
        let start = ContinuousClock.now
        let submitter = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for r in requests {
                    group.addTask { try await producer.send(OutgoingMessage(topic: "bench.requests", key: Array(r.tenant.utf8), value: r.encoded())) }
                }
                try await group.waitForAll()
            }
        }
        for r in requests { sent[r.id] = .now }
        await drain(Set(requests.map(\.id)))
        try await submitter.value
        let seconds = Self.ms(start.duration(to: .now)) / 1000
        let stats = await sim.stats()
        latencies.sort()
        durations.sort()
        func pct(_ a: [Double], _ p: Double) -> Double { a.isEmpty ? 0 : a[min(a.count - 1, Int(Double(a.count) * p))] }
        SafeOutput.print(String(format: "  workers: %.0f checks/s (%.2f s for the burst)", Double(total) / seconds, seconds))
        SafeOutput.print(
            String(
                format: "  check duration in the worker: p50 %.1f ms, p99 %.1f ms; submit→result under the burst: p50 %.0f ms, p99 %.0f ms",
                pct(durations, 0.5), pct(durations, 0.99), pct(latencies, 0.5), pct(latencies, 0.99)))
        SafeOutput.print(
            "  Graph calls during the batch: \(stats.tokenRequests) token, \(stats.reportRequests) report, \(stats.downloadRequests) download (\(total) checks)"
        )

        // Baseline: one `exocheck run` process per check (sampled).
        let sample = min(baselineSample, total)
        let state = dir + "/state"
        let t0 = ContinuousClock.now
        for i in 0..<sample {
            let r = requests[i]
            let p = try BenchProcess.spawn(
                me,
                [
                    "run", "--mode=\(r.mode.rawValue)", "--tenant=\(r.tenant).onmicrosoft.com",
                    "--client-id=\(SimulatorConfiguration.defaultClientId)", "--client-secret=\(SimulatorConfiguration.defaultClientSecret)",
                    "--login-endpoint=\(sim.baseURL)", "--graph-endpoint=\(sim.baseURL)", "--statefile-dir=\(state)",
                ] + r.arguments,
                log: "/dev/null")
            p.waitUntilExit()
        }
        let baseline = Double(sample) / (Self.ms(t0.duration(to: .now)) / 1000)
        SafeOutput.print(
            String(
                format: "  baseline: %.1f checks/s with one 'exocheck run' process per check (%d sampled, sequential); worker/baseline %.0f×",
                baseline, sample, (Double(total) / seconds) / baseline))
        await producer.close()
        await results.close()
        await setup.stop()
    }

    static func ms(_ d: Duration) -> Double { Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15 }
}

/// Child processes of the benchmarks (broker, workers, `exocheck run`), with their output to a log.
enum BenchProcess {
    static func spawn(_ exe: String, _ args: [String], log: String, env: [String: String] = [:]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        var e = ProcessInfo.processInfo.environment
        for (k, v) in env { e[k] = v }
        p.environment = e
        if log == "/dev/null" {
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
        } else {
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            p.standardOutput = FileHandle(forWritingAtPath: log)
            p.standardError = FileHandle(forWritingAtPath: log)
        }
        try p.run()
        return p
    }

    /// The trimmed content of `path` once it is written, waiting at most `limit`.
    static func waitForFile(_ path: String, limit: Duration = .seconds(10)) async throws -> String {
        let end = ContinuousClock.now.advanced(by: limit)
        while ContinuousClock.now < end {
            if let s = try? String(contentsOfFile: path, encoding: .utf8) {
                let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
                if !t.isEmpty { return t }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ValidationError("\(path) did not appear")
    }
}

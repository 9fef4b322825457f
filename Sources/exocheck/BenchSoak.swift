import ArgumentParser
import CheckWorker
import ExchangeChecks
import Foundation
import GraphSimulator
import Kafka

/// `exocheck bench soak`: many checks through one worker process with the report cache on, in
/// waves; after each wave the worker's resident memory, open file descriptors and threads are
/// sampled from /proc. The curves show whether anything grows with the number of checks; at the
/// end, after the worker idles, file descriptors and threads must be back near their baseline
/// (taken after the warm-up), else the command exits 1.
struct BenchSoak: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Checks in waves through one worker; RSS, file-descriptor and thread curves; fails if fds or threads leak.",
        discussion: """
            Defaults: 200,000 checks over 20 tenants in waves of 5,000 (release build: about 5 minutes
            on 2 cores). CI runs a short smoke of it (--checks 3000 --wave 500) from the test suite.
            """
    )

    @Option(help: "Checks in total.") var checks = 200_000
    @Option(help: "Checks per wave (each wave is awaited before the next).") var wave = 5_000
    @Option(help: "Tenants (generated).") var tenants = 20
    @Option(help: "Users per generated tenant.") var users = 200
    @Option(help: "Worker concurrency.") var concurrency = 64
    @Option(help: "File descriptors above the baseline tolerated at the end.") var fdTolerance = 8
    @Option(help: "Threads above the baseline tolerated at the end.") var threadTolerance = 4

    func validate() throws {
        guard checks > 0, wave > 0, tenants > 0, users > 0, concurrency > 0 else { throw ValidationError("every count must be positive") }
    }

    func run() async throws {
        let setup = try await BenchSetup(prefix: "soak", partitions: 8, tenants: tenants, users: users, concurrency: concurrency)
        let dir = setup.dir, bootstrap = setup.bootstrap, sim = setup.simulator, names = setup.tenantNames
        let pid = try setup.startWorker(0).processIdentifier

        let results = try KafkaConsumer(
            configuration: KafkaConfiguration([
                "bootstrap.servers": bootstrap, "group.id": "soak-reader-\(getpid())", "auto.offset.reset": "latest",
                "session.timeout.ms": "6000", "heartbeat.interval.ms": "500", "log_level": "3",
            ]), topics: ["soak.results"])
        let producer = try KafkaProducer(configuration: KafkaConfiguration(["bootstrap.servers": bootstrap, "linger.ms": "5", "log_level": "3"]))
        var iterator = results.events.makeAsyncIterator()
        var statuses: [String: Int] = [:]
        func drain(_ ids: Set<String>, timeout: Duration = .seconds(300)) async throws {
            var pending = ids
            let until = ContinuousClock.now.advanced(by: timeout)
            while !pending.isEmpty {
                guard ContinuousClock.now < until else {
                    throw ValidationError("\(pending.count) of \(ids.count) results did not arrive within \(timeout); see \(dir)/worker.log")
                }
                guard let event = await iterator.next() else { break }
                guard case .message(let m) = event, let r = CheckResultMessage.decode(m.value), let id = r.id, pending.remove(id) != nil else { continue }
                statuses[r.error?.kindName ?? r.status, default: 0] += 1
            }
        }
        let argsets: [(CheckMode, [String])] = [(.mailboxUsage, []), (.emailActivity, []), (.mailboxUsage, ["--filter-counters=.*"])]
        func send(_ range: Range<Int>, prefix: String) async throws -> Set<String> {
            let requests = range.map { i -> CheckRequest in
                let (mode, args) = argsets[i % argsets.count]
                return CheckRequest(id: "\(prefix)-\(i)", tenant: names[i % tenants], mode: mode, arguments: args)
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for r in requests {
                    group.addTask { try await producer.send(OutgoingMessage(topic: "soak.requests", key: Array(r.tenant.utf8), value: r.encoded())) }
                }
                try await group.waitForAll()
            }
            return Set(requests.map(\.id))
        }

        // Warm-up: every tenant and argument set once, then the baseline.
        try await Task.sleep(for: .seconds(3))
        try await drain(try await send(0..<(tenants * argsets.count), prefix: "warm"))
        try await Task.sleep(for: .seconds(2))
        let baseline = try Self.sample(pid)
        SafeOutput.print("exocheck bench soak: \(checks) checks in waves of \(wave), \(tenants) tenants, concurrency \(concurrency), one worker")
        SafeOutput.print("      checks     RSS MB      fds  threads   checks/s")
        SafeOutput.print(String(format: "  %10d %10.1f %8d %8d          -", 0, baseline.rssMB, baseline.fds, baseline.threads))
        var done = 0
        while done < checks {
            let n = min(wave, checks - done)
            let start = ContinuousClock.now
            try await drain(try await send(done..<(done + n), prefix: "soak"))
            let seconds = BenchWorker.ms(start.duration(to: .now)) / 1000
            done += n
            let s = try Self.sample(pid)
            SafeOutput.print(String(format: "  %10d %10.1f %8d %8d %10.0f", done, s.rssMB, s.fds, s.threads, Double(n) / max(seconds, 0.001)))
        }
        // Idle, then compare with the baseline.
        try await Task.sleep(for: .seconds(5))
        let end = try Self.sample(pid)
        let outcome = statuses.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        SafeOutput.print(
            String(
                format: "  after 5 s idle: RSS %.1f MB (baseline %.1f), fds %d (baseline %d), threads %d (baseline %d)",
                end.rssMB, baseline.rssMB, end.fds, baseline.fds, end.threads, baseline.threads))
        SafeOutput.print("  results: \(outcome)")
        let stats = await sim.stats()
        SafeOutput.print("  Graph calls: \(stats.tokenRequests) token, \(stats.reportRequests) report, \(stats.downloadRequests) download")
        await producer.close()
        await results.close()
        await setup.stop()
        var leaks: [String] = []
        if end.fds > baseline.fds + fdTolerance { leaks.append("file descriptors \(baseline.fds) → \(end.fds)") }
        if end.threads > baseline.threads + threadTolerance { leaks.append("threads \(baseline.threads) → \(end.threads)") }
        if !leaks.isEmpty {
            SafeOutput.print("  LEAK: \(leaks.joined(separator: "; ")) (tolerance \(fdTolerance) fds, \(threadTolerance) threads)")
            throw ExitCode(1)
        }
        SafeOutput.print("  fds and threads back at their baseline")
    }

    struct Sample {
        var rssMB: Double
        var fds: Int
        var threads: Int
    }

    /// Resident memory, open file descriptors and threads of `pid`, from /proc.
    static func sample(_ pid: Int32) throws -> Sample {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        func field(_ name: String) -> Double {
            for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
                return Double(line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "") ?? 0
            }
            return 0
        }
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
        return Sample(rssMB: field("VmRSS") / 1024, fds: fds, threads: Int(field("Threads")))
    }
}

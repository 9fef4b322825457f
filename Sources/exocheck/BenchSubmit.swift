import ArgumentParser
import CheckWorker
import Foundation
import Kafka

/// `exocheck bench submit`: `exocheck submit --wait` as a Nagios command runs it, one process
/// per check against a warm worker, side by side: on its own with librdkafka's fetch wait
/// (500 ms, the old behaviour) and with submit's (50 ms), and through `exocheck submitter`.
/// Wall time per submit and CPU per submit (the submit process; for the submitter, its own CPU
/// during the submit too), then what each fetch wait costs an idle reader.
struct BenchSubmit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "'submit --wait' wall time and CPU: on its own (two fetch waits) vs through 'exocheck submitter'."
    )

    @Option(help: "Submits per variant (the variants take turns).") var submits = 30

    struct Variant {
        let name: String
        let arguments: [String]
        var wall: [Double] = []
        var cpu: Double = 0
        var daemonCPU: Double = 0
        var failures = 0
    }

    func run() async throws {
        guard submits > 0 else { throw ValidationError("--submits must be at least 1") }
        // The worker reads requests with a 50 ms fetch wait: dev-broker holds an empty Fetch for the
        // whole wait, so the worker's 500 ms default would add up to half a second to every
        // variant alike (Apache Kafka answers a waiting Fetch as soon as a record arrives).
        let setup = try await BenchSetup(
            prefix: "bsub", partitions: 4, tenants: 1, users: 12, concurrency: 8, kafkaProperties: ["fetch.wait.max.ms": "50"])
        try setup.startWorker(0)
        let me = setup.executable, dir = setup.dir
        let socket = dir + "/submitter.sock"
        let daemon = try BenchProcess.spawn(
            me, ["submitter", "--socket", socket, "--config", dir + "/worker.yaml", "--bootstrap-servers", setup.bootstrap], log: dir + "/submitter.log")
        defer { if daemon.isRunning { daemon.terminate() } }
        let base = [
            "submit", "--config", dir + "/worker.yaml", "--bootstrap-servers", setup.bootstrap, "--wait", "--timeout", "30",
            "--tenant=\(setup.tenantNames[0])", "--mode=email-activity",
        ]
        var variants = [
            Variant(name: "on its own, fetch wait 500 ms (librdkafka's default; before)", arguments: base + ["--fetch-wait-ms", "500"]),
            Variant(name: "on its own, fetch wait 50 ms (submit's default)", arguments: base),
            Variant(name: "through 'exocheck submitter'", arguments: base + ["--socket", socket]),
        ]
        SafeOutput.print(
            "exocheck bench submit: \(submits) submits per variant, one worker (fetch wait 50 ms), one 12-user tenant (warm), dev-broker")
        // Warm-up: the worker has joined and cached the tenant's report; the submitter listens.
        let warmEnd = ContinuousClock.now.advanced(by: .seconds(60))
        var warm = false
        while !warm, ContinuousClock.now < warmEnd {
            warm = try Self.submit(me, base, log: dir + "/warm.out").ok && FileManager.default.fileExists(atPath: socket)
        }
        guard warm else { throw ValidationError("the worker or the submitter did not answer within 60 s (logs in \(dir))") }
        for _ in 0..<2 { _ = try Self.submit(me, base + ["--socket", socket], log: dir + "/warm.out") }

        for _ in 0..<submits {
            for i in variants.indices {
                let daemonBefore = Self.processCPU(daemon.processIdentifier)
                let childBefore = Self.childrenCPU()
                let t0 = ContinuousClock.now
                let outcome = try Self.submit(me, variants[i].arguments, log: dir + "/submit.out")
                variants[i].wall.append(BenchWorker.ms(t0.duration(to: .now)))
                variants[i].cpu += Self.childrenCPU() - childBefore
                if i == 2 { variants[i].daemonCPU += Self.processCPU(daemon.processIdentifier) - daemonBefore }
                if !outcome.ok { variants[i].failures += 1 }
            }
        }
        for v in variants {
            let wall = v.wall.sorted()
            func pct(_ p: Double) -> Double { wall[min(wall.count - 1, Int(Double(wall.count) * p))] }
            var line = String(
                format: "  %@: wall p50 %.0f ms, p90 %.0f ms; CPU per submit %.1f ms", v.name, pct(0.5), pct(0.9), v.cpu / Double(submits) * 1000)
            if v.daemonCPU > 0 { line += String(format: " + %.1f ms in the submitter", v.daemonCPU / Double(submits) * 1000) }
            if v.failures > 0 { line += " (\(v.failures) did not print OK)" }
            SafeOutput.print(line)
        }

        // What a fetch wait costs while nothing arrives: the submitter idle, and a lone reader.
        let idle = 5.0
        let d0 = Self.processCPU(daemon.processIdentifier)
        try await Task.sleep(for: .seconds(idle))
        SafeOutput.print(
            String(
                format: "  submitter idle (two readers, fetch wait 50 ms): %.1f ms CPU per second",
                (Self.processCPU(daemon.processIdentifier) - d0) / idle * 1000))
        for wait in [500, 50, 10] {
            var kafka = KafkaConfiguration(["bootstrap.servers": setup.bootstrap, "log_level": "3", "fetch.wait.max.ms": String(wait)])
            kafka.groupId = nil
            let start = try await KafkaMetadata.startOffsets(topic: setup.results, position: .end, configuration: kafka)
            let reader = try KafkaConsumer(configuration: kafka, assignment: start)
            try await Task.sleep(for: .seconds(1))
            let c0 = Self.selfCPU()
            try await Task.sleep(for: .seconds(idle))
            let used = Self.selfCPU() - c0
            await reader.close()
            SafeOutput.print(String(format: "  a reader of 4 empty partitions, fetch wait %3d ms: %.1f ms CPU per second", wait, used / idle * 1000))
        }
        daemon.terminate()
        daemon.waitUntilExit()
        await setup.stop()
    }

    /// Runs one submit; whether it printed an OK line.
    static func submit(_ exe: String, _ args: [String], log: String) throws -> (ok: Bool, output: String) {
        let p = try BenchProcess.spawn(exe, args, log: log)
        p.waitUntilExit()
        let out = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return (p.terminationStatus == 0 && out.hasPrefix("OK"), out)
    }

    /// CPU seconds of reaped children (user + system).
    static func childrenCPU() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &usage)
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// CPU seconds of this process, every thread.
    static func selfCPU() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    static func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }

    /// CPU seconds of a running process from /proc (utime + stime, clock ticks).
    static func processCPU(_ pid: Int32) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

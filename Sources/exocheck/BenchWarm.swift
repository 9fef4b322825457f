import ArgumentParser
import CheckWorker
import ExchangeChecks
import Foundation
import GraphReports
import GraphSimulator

/// `exocheck bench warm`: what a check costs once its reports are cached (issue 11, "parse once,
/// evaluate many"). The worker's check path without Kafka: the report cache in front of a Graph
/// session to a simulator process (generated tenants), the evaluation pool, and
/// `ExchangeCheckRunner.runRendered` with the check's normalised shape, as the worker calls it.
/// CPU is this process's CPU time (the simulator is another process).
struct BenchWarm: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "warm",
        abstract: "CPU per check with warm caches on large tenants: first evaluations, memoised shapes, a poller's mix, RSS of many cached tenants.",
        discussion: """
            Starts `exocheck simulate-graph` with --tenants generated tenants of --users users, then:
              1. cold: download, parse into a snapshot and evaluate the first check of tenant 0;
              2. each shape of the mix, first on the warm snapshot;
              3. the mix repeated --repeat times round robin (a poller repeating its checks);
              4. the same mix with 10 users per tenant (a small tenant, side by side);
              5. every tenant's reports cached: resident memory and the cache's bytes.
            Figures and their targets: docs/benchmarks.md.
            """
    )

    @Option(help: "Generated tenants (all cached in step 5).") var tenants = 10
    @Option(help: "Users per generated tenant.") var users = 100_000
    @Option(help: "Round-robin repetitions of the mix in step 3.") var `repeat` = 2_000

    /// The mix a poller repeats: default counters of both modes, a regex mailbox filter, a user
    /// filter with a threshold.
    static let mix: [(name: String, mode: CheckMode, args: [String])] = [
        ("mailbox-usage, default counters", .mailboxUsage, []),
        ("email-activity, default counters", .emailActivity, []),
        ("mailbox-usage, regex filter", .mailboxUsage, ["--filter-mailbox=^(james|mary)\\.[a-z]+[0-9]*7@"]),
        ("email-activity, user filter + threshold", .emailActivity, ["--filter-user=^john\\.", "--warning-send-count=40"]),
    ]

    func run() async throws {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
        let dir = NSTemporaryDirectory() + "exocheck-bench-warm-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        SafeOutput.print("exocheck bench warm: \(tenants) tenants of \(users) users (and one of 10), mix of \(Self.mix.count) shapes")
        SafeOutput.print("  starting the Graph simulator (generating the tenants' reports takes a while) …")
        let sim = try BenchProcess.spawn(
            exe, ["simulate-graph", "--generated", "\(tenants)", "--users", "\(users)", "--port-file", dir + "/port"], log: dir + "/sim.log")
        let small = try BenchProcess.spawn(
            exe, ["simulate-graph", "--generated", "1", "--users", "10", "--port-file", dir + "/port-small"], log: dir + "/sim-small.log")
        defer {
            sim.terminate()
            small.terminate()
        }
        let base = "http://127.0.0.1:" + (try await BenchProcess.waitForFile(dir + "/port", limit: .seconds(600)))
        let smallBase = "http://127.0.0.1:" + (try await BenchProcess.waitForFile(dir + "/port-small"))

        let transport = HTTPTransport.make()
        let pool = EvaluationPool(threads: 2, grace: .seconds(5))
        let tokens = TokenCache()
        // Large enough that nothing is evicted: step 5 measures what caching every tenant costs.
        let cache = ReportCache(ttl: .seconds(3_600), budget: 1_000, maxBytes: 4 << 30)
        func source(_ tenant: String, _ base: String) -> CachedReports {
            let session = GraphSession(
                app: AppIdentity(
                    tenant: "\(tenant).onmicrosoft.com", clientId: SimulatorConfiguration.defaultClientId,
                    credential: .secret(SimulatorConfiguration.defaultClientSecret),
                    endpoints: GraphEndpoints(login: base, graph: base)),
                transport: transport, tokenCache: tokens)
            return CachedReports(cache: cache, tenant: tenant, session: session, parser: pool)
        }
        let configs = try Self.mix.map { shape -> (String, CheckConfiguration, String) in
            let spec = try CheckSpec(mode: shape.mode, options: CentreonArguments(shape.args))
            return (shape.name, spec.configuration, spec.shape)
        }
        let utc = TimeZone(identifier: "UTC") ?? .current
        var failures = 0
        func check(_ reports: CachedReports, _ c: (String, CheckConfiguration, String)) async -> (cpu: Double, wall: Double) {
            let cpu0 = CPUTime.process()
            let t0 = ContinuousClock.now
            let (outcome, _) = await ExchangeCheckRunner.runRendered(
                c.1, reports: reports, deadline: .now.advanced(by: .seconds(120)), timeZone: utc, executor: pool, shape: c.2)
            if let e = outcome.error {
                failures += 1
                if failures <= 3 { SafeOutput.print("  check failed: \(e.kind.rawValue): \(e.message)") }
            }
            return (CPUTime.process() - cpu0, BenchWorker.ms(t0.duration(to: .now)))
        }
        func row(_ name: String, _ cpu: Double, _ wall: Double) {
            let padded = name.count >= 56 ? name : name + String(repeating: " ", count: 56 - name.count)
            SafeOutput.print("  " + padded + String(format: " CPU %9.3f ms   wall %9.3f ms", cpu, wall))
        }

        // 1. Cold: the download is wall time; parse, snapshot and evaluation are CPU here.
        let t0 = source("gen-0", base)
        SafeOutput.print("1. cold (download + parse + first evaluation), tenant gen-0:")
        let cold = await check(t0, configs[0])
        row("first check (\(configs[0].0))", cold.cpu, cold.wall)
        let coldEmail = await check(t0, configs[1])
        row("first check (\(configs[1].0))", coldEmail.cpu, coldEmail.wall)

        // 2. Each other shape, first on the warm snapshots.
        SafeOutput.print("2. a new shape on warm snapshots (first evaluation):")
        let thresholdVariant = try CheckSpec(mode: .mailboxUsage, options: CentreonArguments(["--warning-active-mailboxes=10:"]))
        let variant = (
            "mailbox-usage, default counters, new thresholds", thresholdVariant.configuration,
            thresholdVariant.shape
        )
        let firstDefault = await check(t0, variant)
        row(variant.0, firstDefault.cpu, firstDefault.wall)
        for c in configs.dropFirst(2) {
            let first = await check(t0, c)
            row(c.0, first.cpu, first.wall)
        }
        // The regex filter's matching alone, both ways side by side on the same snapshot: one pass
        // through ICU's C API (what checks do) and one NSRegularExpression call per row (before).
        let mailboxRequest = ReportRequest(report: CheckMode.mailboxUsage.reportName, parameter: .period("D7"))
        let unanchored = try FilterRegex(#"smith[0-9]*@"#)
        if case .success(let snapshot) = await t0.report(mailboxRequest, deadline: .now.advanced(by: .seconds(120))).body,
            let table = try? snapshot.mailboxUsage(), let anchored = configs[2].1.instanceFilter
        {
            for filter in [anchored, unanchored] {
                let names = table.user
                let onePass0 = CPUTime.process()
                let mask = filter.matchMask(names)
                let onePass = CPUTime.process() - onePass0
                let perRow0 = CPUTime.process()
                let perRow = (0..<names.count).map { filter.matches(names[$0]) }
                let perRowCPU = CPUTime.process() - perRow0
                row("  filter \(filter.pattern), one pass (\(names.count) names)", onePass, 0)
                row("  the same, one NSRegularExpression call per row", perRowCPU, 0)
                let ratio = String(format: "%.1f", perRowCPU / max(onePass, 1e-9))
                SafeOutput.print("  ratio per row / one pass: \(ratio) (\(mask == perRow ? "same matches" : "MATCHES DIFFER"))")
                if mask != perRow { failures += 1 }
            }
        }

        // 3. The mix repeated: every shape memoised.
        SafeOutput.print("3. the mix repeated \(self.repeat) times (memoised shapes), tenant gen-0:")
        var perShape = [Double](repeating: 0, count: configs.count)
        let loopCPU0 = CPUTime.process()
        let loop0 = ContinuousClock.now
        for i in 0..<max(1, self.repeat) {
            for (k, c) in configs.enumerated() {
                let r = await check(t0, c)
                if i > 0 { perShape[k] += r.cpu }
            }
        }
        let n = Double(max(1, self.repeat) * configs.count)
        let loopCPU = CPUTime.process() - loopCPU0
        let loopWall = BenchWorker.ms(loop0.duration(to: .now))
        row("average per check over the mix", loopCPU / n, loopWall / n)
        for (k, c) in configs.enumerated() where self.repeat > 1 {
            row("  \(c.0) (memoised)", perShape[k] / Double(self.repeat - 1), 0)
        }

        // 4. A small tenant, side by side.
        let tiny = source("gen-0", smallBase)
        _ = await check(tiny, configs[0])
        _ = await check(tiny, configs[1])
        for c in configs { _ = await check(tiny, c) }
        let smallCPU0 = CPUTime.process()
        for _ in 0..<max(1, self.repeat) { for c in configs { _ = await check(tiny, c) } }
        let smallCPU = CPUTime.process() - smallCPU0
        SafeOutput.print("4. the same mix on a 10-user tenant:")
        row("average per check over the mix", smallCPU / n, 0)
        SafeOutput.print(String(format: "  ratio 100k-user / 10-user tenant: %.2f", (loopCPU / n) / max(smallCPU / n, 1e-9)))

        // 5. Every tenant cached.
        SafeOutput.print("5. all \(tenants) tenants cached (both modes' reports):")
        for t in 1..<max(1, tenants) {
            let s = source("gen-\(t)", base)
            _ = await check(s, configs[0])
            _ = await check(s, configs[1])
            SafeOutput.print("  tenant gen-\(t) cached; RSS \(String(format: "%.0f", ProcessMemory.currentRSSMegabytes())) MB")
        }
        let cached = await cache.bytes
        SafeOutput.print(
            String(
                format: "  resident memory %.0f MB (peak %.0f MB); the cache counts %.0f MB in %d reports and %d memoised values",
                ProcessMemory.currentRSSMegabytes(), ProcessMemory.peakRSSMegabytes(), Double(cached) / 1_048_576, await cache.count,
                await cache.memoCount))
        if failures > 0 { SafeOutput.print("  \(failures) checks failed") }
        await pool.shutdown()
        await transport.shutdown()
        if failures > 0 { throw ExitCode(1) }
    }
}

/// This process's CPU time (user + system, all threads), in milliseconds.
enum CPUTime {
    static func process() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) * 1000 + Double(ts.tv_nsec) / 1e6
    }
}

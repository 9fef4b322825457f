import ArgumentParser
import CheckWorker
import ExchangeChecks
import Foundation
import GraphReports
import GraphSimulator
import Kafka
import Logging
import ServiceLifecycle

/// `exocheck demo`: everything in one process, no external service: a mock Kafka cluster, the
/// Graph simulator with generated tenants (healthy, over quota, throttled, one with a wrong
/// secret), two workers, and a batch of checks; a live view, then a summary. Exit 0 when every
/// check was answered.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Self-contained demo: embedded Kafka broker, simulated Graph tenants, two workers, a batch of checks."
    )

    @Option(help: "Checks per tenant.") var checksPerTenant = 20
    @Option(help: "Give up after this many seconds.") var timeout: Double = 180

    func run() async throws {
        let quiet = Logger(label: "exocheck.demo", factory: { _ in SwiftLogNoOpLogHandler() })
        let cluster = try MockCluster(brokers: 3)
        defer { cluster.close() }
        try cluster.createTopic("exocheck.requests", partitions: 8)
        try cluster.createTopic("exocheck.results", partitions: 8)
        try cluster.createTopic("exocheck.requests.DLT", partitions: 1)
        try cluster.createTopic("exocheck.worker-state", partitions: 8)
        try cluster.createTopic("exocheck.workers", partitions: 1)

        var specs: [GeneratedTenantSpec] = []
        for i in 1...6 {
            specs.append(.init(name: "healthy-\(i)", data: GeneratedData(users: 500, seed: UInt64(i), domain: "healthy\(i).example", overQuotaRatio: 0)))
        }
        for i in 1...3 {
            specs.append(.init(name: "overquota-\(i)", data: GeneratedData(users: 500, seed: UInt64(100 + i), domain: "full\(i).example", overQuotaRatio: 0.3)))
        }
        specs.append(
            .init(
                name: "throttled", data: GeneratedData(users: 500, seed: 200, domain: "busy.example"),
                faults: [FaultRule(on: .report, status: 429, retryAfter: 1, times: 2)]))
        specs.append(.init(name: "wrong-secret", data: GeneratedData(users: 100, seed: 300, domain: "oops.example")))
        let sim = try await GraphSimulator(configuration: .standard(generated: specs)).start()
        defer { Task { await sim.stop() } }

        var config = WorkerConfiguration()
        config.worker.concurrency = 16
        config.worker.checkTimeoutSeconds = 20
        config.graph.loginEndpoint = sim.baseURL
        config.graph.graphEndpoint = sim.baseURL
        let endpoints = GraphEndpoints(login: sim.baseURL, graph: sim.baseURL)
        for s in specs {
            let secret = s.name == "wrong-secret" ? "the-secret-id-instead-of-its-value" : SimulatorConfiguration.defaultClientSecret
            config.tenants[s.name] = .init(
                name: s.name, tenantId: "\(s.name).onmicrosoft.com", clientId: SimulatorConfiguration.defaultClientId,
                credential: .secret(secret), endpoints: endpoints)
        }
        let kafka = KafkaConfiguration([
            "bootstrap.servers": cluster.bootstrapServers, "session.timeout.ms": "6000",
            "heartbeat.interval.ms": "500", "log_level": "2",
        ])
        SafeOutput.print("exocheck demo")
        SafeOutput.print("  Kafka (embedded, 3 brokers): \(cluster.bootstrapServers)")
        SafeOutput.print("  Microsoft login + Graph (simulated): \(sim.baseURL)")
        SafeOutput.print("  tenants: 6 healthy, 3 over quota, 1 throttled (429 + Retry-After), 1 with a wrong client secret")
        SafeOutput.print("  starting 2 workers…")

        let transport = HTTPTransport.make()
        var groups: [ServiceGroup] = []
        for n in 1...2 {
            var c = config
            c.worker.name = "demo-worker-\(n)"
            let processor = CheckProcessor(
                configuration: c, transport: transport, tokens: TokenCache(refreshMargin: .seconds(300), failureMemory: .seconds(60)),
                reports: ReportCache(ttl: .seconds(900)), metrics: WorkerMetrics(), logger: quiet)
            let service = CheckWorkerService(
                configuration: c, kafka: kafka, processor: processor, metrics: WorkerMetrics(),
                health: WorkerHealth(), logger: quiet)
            groups.append(ServiceGroup(services: [service], logger: quiet))
        }
        let running = groups.map { g in Task { try await g.run() } }

        // The batch: each tenant gets mailbox and email checks with the plugin's usual options.
        let argsets: [(CheckMode, [String])] = [
            (.mailboxUsage, []), (.mailboxUsage, ["--filter-counters=^status$"]),
            (.emailActivity, ["--warning-active-users=40:", "--critical-active-users=20:"]), (.mailboxUsage, ["--warning-total-usage-active=100GB"]),
        ]
        var requests: [CheckRequest] = []
        for s in specs {
            for i in 0..<checksPerTenant {
                let (mode, args) = argsets[i % argsets.count]
                requests.append(
                    CheckRequest(
                        id: "demo-\(s.name)-\(i)", tenant: s.name, mode: mode, arguments: args,
                        labels: ["host": s.name, "service": mode.rawValue]))
            }
        }
        let neededReportCalls = requests.reduce(0) { $0 + ($1.mode == .emailActivity ? 2 : 1) }
        let reader = try KafkaConsumer(
            configuration: KafkaConfiguration([
                "bootstrap.servers": cluster.bootstrapServers, "group.id": "demo-results", "auto.offset.reset": "earliest",
                "session.timeout.ms": "6000", "heartbeat.interval.ms": "500", "log_level": "2",
            ]), topics: ["exocheck.results"])
        try await Task.sleep(for: .seconds(3))
        let producer = try KafkaProducer(configuration: kafka)
        let submitted = ContinuousClock.now
        for r in requests {
            try await producer.send(
                OutgoingMessage(
                    topic: "exocheck.requests", key: Array(r.tenant.utf8), value: r.encoded(),
                    headers: [KafkaHeader("exocheck-id", r.id)]))
        }
        SafeOutput.print("  submitted \(requests.count) checks for \(specs.count) tenants\n")

        var results: [String: CheckResultMessage] = [:]
        var latencies: [Double] = []
        var lastView = ContinuousClock.now
        let wanted = Set(requests.map(\.id))
        let deadline = ContinuousClock.now.advanced(by: Duration(clampedSeconds: timeout))
        // Closing the reader at the deadline ends its event stream, so the loop below cannot hang.
        let watchdog = Task {
            try? await Task.sleep(until: deadline, clock: .continuous)
            if !Task.isCancelled { await reader.close() }
        }
        var iterator = reader.events.makeAsyncIterator()
        while results.count < wanted.count, ContinuousClock.now < deadline {
            guard let event = await iterator.next() else { break }
            if case .message(let m) = event, let r = CheckResultMessage.decode(m.value), let id = r.id, wanted.contains(id), results[id] == nil {
                results[id] = r
                let elapsed = submitted.duration(to: .now)
                latencies.append(Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
            }
            if lastView.duration(to: .now) > .milliseconds(500) || results.count == wanted.count {
                lastView = .now
                SafeOutput.print("  " + Self.progress(results.values, total: wanted.count))
            }
        }
        watchdog.cancel()
        await producer.close()
        await reader.close()
        for g in groups { await g.triggerGracefulShutdown() }
        for t in running { _ = try? await t.value }
        await transport.shutdown()
        let stats = await sim.stats()
        Self.summary(
            results: Array(results.values), total: wanted.count, latencies: latencies,
            neededReportCalls: neededReportCalls, stats: stats)
        guard results.count == wanted.count else {
            SafeOutput.print("\nnot every check was answered within \(Int(timeout)) s")
            throw ExitCode(1)
        }
    }

    static func progress(_ results: some Collection<CheckResultMessage>, total: Int) -> String {
        var by: [String: Int] = [:]
        for r in results { by[r.status, default: 0] += 1 }
        let width = 30
        let done = total == 0 ? width : results.count * width / total
        return "[" + String(repeating: "#", count: done) + String(repeating: ".", count: width - done) + "] "
            + "\(results.count)/\(total)  OK \(by["OK"] ?? 0)  WARNING \(by["WARNING"] ?? 0)  CRITICAL \(by["CRITICAL"] ?? 0)  UNKNOWN \(by["UNKNOWN"] ?? 0)"
    }

    static func summary(results: [CheckResultMessage], total: Int, latencies: [Double], neededReportCalls: Int, stats: SimulatorStats) {
        func pct(_ a: [Double], _ p: Double) -> String {
            let s = a.sorted()
            return s.isEmpty ? "-" : String(format: "%.0f ms", s[min(s.count - 1, Int(Double(s.count) * p))])
        }
        var by: [String: Int] = [:]
        var errors: [String: Int] = [:]
        var tokenHits = 0, reportHits = 0, reportMisses = 0
        for r in results {
            by[r.status, default: 0] += 1
            if let e = r.error { errors[e.kindName, default: 0] += 1 }
            if r.cache.token == "hit" { tokenHits += 1 }
            if r.cache.report == "hit" || r.cache.report == "revalidated" || r.cache.report == "stale" { reportHits += 1 }
            if r.cache.report == "miss" { reportMisses += 1 }
        }
        let actualReportCalls = stats.reportRequests
        SafeOutput.print(
            """

            Summary
              checks answered      \(results.count)/\(total)
              by status            OK \(by["OK"] ?? 0), WARNING \(by["WARNING"] ?? 0), CRITICAL \(by["CRITICAL"] ?? 0), UNKNOWN \(by["UNKNOWN"] ?? 0)
              errors               \(errors.isEmpty ? "none" : errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
              check duration       p50 \(pct(results.map(\.durationMs), 0.5)), p90 \(pct(results.map(\.durationMs), 0.9)), p99 \(pct(results.map(\.durationMs), 0.99))
              submit → result      p50 \(pct(latencies, 0.5)), p99 \(pct(latencies, 0.99))
              token cache          \(tokenHits) hits, \(stats.tokenRequests) token requests to the login endpoint
              report cache         \(reportHits) checks served from cache, \(reportMisses) downloaded
              Graph report calls   \(actualReportCalls) made instead of \(neededReportCalls) without the cache (\(max(0, neededReportCalls - actualReportCalls)) saved; \(stats.byStatus["429"] ?? 0) answered 429 and were retried)
            """)
        if let sample = results.first(where: { $0.error?.kind == .auth }) {
            SafeOutput.print("  the wrong-secret tenant says: \(sample.summary)")
        }
    }
}

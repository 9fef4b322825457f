import CheckWorker
import ExchangeChecks
import ExocheckTestSupport
import Foundation
import Testing

/// The worker's /metrics against Prometheus' own linter (Debian `prometheus` package's
/// `promtool`, installed by scripts/install-deps.sh), after checks of every outcome have run.
@Suite("Prometheus conventions", .serialized)
struct PrometheusTests {
    static let promtool = "/usr/bin/promtool"

    @Test("/metrics passes promtool check metrics (help texts, names, units, counters ending in _total) after OK, refused and failed checks",
          .enabled(if: FileManager.default.isExecutableFile(atPath: PrometheusTests.promtool)
                       || ProcessInfo.processInfo.environment["EXOCHECK_REQUIRE_INTEROP"] == "1",
                   "needs Debian's prometheus package for promtool (scripts/install-deps.sh installs it)"))
    func promtoolCheckMetrics() async throws {
        let fleet = try await WorkerFleet(tenants: 2, users: 5)
        try await fleet.use {
            _ = try fleet.startWorker("w")
            #expect(await fleet.waitForAssignments(1))
            let requests = [
                CheckRequest(id: "m-ok", tenant: "t0", mode: .mailboxUsage),
                CheckRequest(id: "m-email", tenant: "t1", mode: .emailActivity, arguments: ["--filter-counters=.*"]),
                CheckRequest(id: "m-unknown-tenant", tenant: "nobody", mode: .mailboxUsage),
                CheckRequest(id: "m-bad-threshold", tenant: "t0", mode: .mailboxUsage, arguments: ["--warning-items=abc"]),
            ]
            try await fleet.submit(requests, rawRecords: [(nil, Array("not json".utf8))])
            let sink = ResultSink()
            #expect(try await fleet.collect(into: sink, timeout: .seconds(90)) { await $0.ids.isSuperset(of: Set(requests.map(\.id))) })
            let text = try await fleet.metrics("w")
            let file = fleet.dir + "/metrics.txt"
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            let lint = try await runProcess("/bin/sh", ["-c", "\(Self.promtool) check metrics < \(file)"])
            #expect(lint.exitCode == 0 && lint.stdout.isEmpty && lint.stderr.isEmpty,
                    "promtool check metrics (exit \(lint.exitCode)):\n\(lint.stdout)\(lint.stderr)")
            // Every family has a help text (swift-metrics has none: the worker registers them).
            let families = Set(text.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }
                .map { line in String(line.prefix { $0 != "{" && $0 != " " }) }
                .map { name in ["_bucket", "_sum", "_count"].reduce(name) { n, s in n.hasSuffix(s) ? String(n.dropLast(s.count)) : n } })
            let helped = Set(text.split(separator: "\n").filter { $0.hasPrefix("# HELP ") }.map { String($0.split(separator: " ")[2]) })
            #expect(families.subtracting(helped).isEmpty, "families without # HELP: \(families.subtracting(helped).sorted())")

            // The Grafana dashboard: every query parses as PromQL (as recording rules, through
            // promtool), and every exocheck metric it names is on /metrics.
            let dashboard = try JSONSerialization.jsonObject(with: Data(contentsOf: ExocheckBinary.packageRoot.appendingPathComponent("deploy/grafana/exocheck-dashboard.json"))) as? [String: Any]
            let exprs = ((dashboard?["panels"] as? [[String: Any]]) ?? []).flatMap { ($0["targets"] as? [[String: Any]]) ?? [] }.compactMap { $0["expr"] as? String }
            #expect(exprs.count >= 14, "the dashboard's queries: \(exprs.count)")
            let promql = exprs.map { $0.replacingOccurrences(of: "$__rate_interval", with: "5m").replacingOccurrences(of: "$job", with: "exocheck") }
            let rules = "groups:\n  - name: dashboard\n    rules:\n" + promql.enumerated().map { i, e in
                "      - record: dashboard:query_\(i)\n        expr: '\(e.replacingOccurrences(of: "'", with: "''"))'\n"
            }.joined()
            try rules.write(toFile: fleet.dir + "/dashboard-rules.yaml", atomically: true, encoding: .utf8)
            let check = try await runProcess(Self.promtool, ["check", "rules", fleet.dir + "/dashboard-rules.yaml"])
            #expect(check.exitCode == 0, "promtool check rules on the dashboard's queries:\n\(check.stdout)\(check.stderr)")
            let named = Set(exprs.flatMap { e in
                e.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "_") }).map(String.init).filter { $0.hasPrefix("exocheck_") }
            }.map { name in ["_bucket", "_sum", "_count"].reduce(name) { n, s in n.hasSuffix(s) ? String(n.dropLast(s.count)) : n } })
            #expect(!named.isEmpty)
            #expect(named.subtracting(families).isEmpty, "the dashboard names metrics /metrics does not have: \(named.subtracting(families).sorted())")
        }
    }
}

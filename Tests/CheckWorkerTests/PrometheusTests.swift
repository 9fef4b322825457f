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

    @Test("credential expiry: a tenant whose secret expires within graph.credentialExpiryWarningDays gets a warning in the result's warnings (output stays run's), others none; an expired one says so; the expiry is exocheck_credential_expiry_timestamp_seconds by tenant and kind; a bad secretExpires stops the worker at start")
    func credentialExpiry() async throws {
        let soon = Date().addingTimeInterval(5 * 86_400 + 3_600)
        let day = soon.formatted(Date.ISO8601FormatStyle().year().month().day())
        let fleet = try await WorkerFleet(tenants: 3, users: 5, tenantSettings: [
            "t0": "secretExpires: \(day)", "t1": "secretExpires: 2020-01-01", "t2": "secretExpires: 2099-01-01",
        ])
        try await fleet.use {
            _ = try fleet.startWorker("w")
            #expect(await fleet.waitForAssignments(1))
            let requests = fleet.tenantNames.map { CheckRequest(id: "x-\($0)", tenant: $0, mode: .mailboxUsage) }
            try await fleet.submit(requests)
            let sink = ResultSink()
            #expect(try await fleet.collect(into: sink, timeout: .seconds(90)) { await $0.ids.isSuperset(of: Set(requests.map(\.id))) })
            let byId = await sink.byId()
            let soonResult = try #require(byId["x-t0"]?.first)
            #expect(soonResult.warnings?.count == 1)
            #expect(soonResult.warnings?.first?.hasPrefix("The client secret of tenant 't0' expires in 4 days (") == true, "\(soonResult.warnings ?? [])")
            #expect(!soonResult.output.contains("expires"), "output stays the plugin's")
            #expect(soonResult.status == "OK" || soonResult.status == "WARNING" || soonResult.status == "CRITICAL")
            let raw = await sink.raw.first { $0.contains("\"x-t2\"") } ?? ""
            #expect(!raw.contains("warnings"), "no warnings: the field is left out")
            #expect(byId["x-t2"]?.first?.warnings == nil)
            #expect(byId["x-t1"]?.first?.warnings?.first?.contains("expired") == true)
            let text = try await fleet.metrics("w")
            #expect(text.contains("# HELP exocheck_credential_expiry_timestamp_seconds "))
            let expected = String(Int(CredentialExpiry.parseDate(day)?.timeIntervalSince1970 ?? 0))
            let line = text.split(separator: "\n").first { $0.hasPrefix("exocheck_credential_expiry_timestamp_seconds{") && $0.contains("tenant=\"t0\"") }
            #expect(line?.contains("kind=\"secret\"") == true)
            #expect(line.map { Double($0.split(separator: " ").last ?? "") == Double(expected) } == true, "\(line ?? "none") vs \(expected)")
            #expect(!text.contains("tenant=\"contoso\""), "no expiry configured: no series")
        }
        // Validated before the worker starts: a date it cannot read is a configuration error.
        let bad = try await WorkerFleet(tenants: 1, users: 5, tenantSettings: ["t0": "secretExpires: next-tuesday"])
        try await bad.use {
            let check = try await runProcess(WorkerFleet.exocheck, ["worker", "--config", bad.dir + "/worker.yaml", "--check-config"],
                                         environment: ProcessInfo.processInfo.environment.merging(["EXOCHECK_TEST_SECRET": WorkerFleet.secret]) { $1 })
            #expect(check.exitCode != 0)
            #expect(check.stderr.contains("tenants.t0.secretExpires must be a date such as 2027-06-30"), "\(check.stderr)")
        }
    }
}

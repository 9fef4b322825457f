import CheckWorker
import ExchangeChecks
import ExocheckTestSupport
import Foundation
import GraphReports
import Kafka
import Testing

/// Adding a tenant or rotating a credential without a restart (issue 12 item 6): SIGHUP re-reads
/// the configuration, validated whole before it takes effect.
@Suite("Configuration reload (SIGHUP)", .serialized)
struct ConfigReloadTests {
    static func config(_ tenants: String, kafka: String = "{requests: r}") throws -> WorkerConfiguration {
        try WorkerConfiguration.parse("kafka: \(kafka)\ntenants:\n\(tenants)", environment: ["A": "one", "B": "two"])
    }

    @Test("the plan: tenants added, removed, and changed (secret, Microsoft tenant, endpoint); other sections need a restart")
    func plan() throws {
        let running = try Self.config("  a: {tenantId: a, clientId: c, clientSecretEnv: A}\n  b: {tenantId: b, clientId: c, clientSecretEnv: A}\n  d: {tenantId: d, clientId: c, clientSecretEnv: A}")
        let loaded = try Self.config(
            "  a: {tenantId: a, clientId: c, clientSecretEnv: A}\n  b: {tenantId: b, clientId: c, clientSecretEnv: B}\n  e: {tenantId: e, clientId: c, clientSecretEnv: A}",
            kafka: "{requests: other}")
        let p = ReloadPlan(running: running, loaded: loaded)
        #expect(p.added == ["e"] && p.removed == ["d"] && p.changed == ["b"] && p.needsRestart == ["kafka"])
        #expect(p.summary == "tenants added: e; removed: d; credential or identity changed: b; changes to kafka need a restart and were not applied")
        // Endpoints and the warning window apply through the tenants: no restart needed.
        let endpoints = try WorkerConfiguration.parse(
            "kafka: {requests: r}\ngraph: {graphEndpoint: \"https://graph.example\", credentialExpiryWarningDays: 5}\ntenants:\n  a: {tenantId: a, clientId: c, clientSecretEnv: A}\n  b: {tenantId: b, clientId: c, clientSecretEnv: A}\n  d: {tenantId: d, clientId: c, clientSecretEnv: A}",
            environment: ["A": "one"])
        let moved2 = ReloadPlan(running: running, loaded: endpoints)
        #expect(moved2.needsRestart.isEmpty && moved2.changed == ["a", "b", "d"])
        // A YAML error names the problem and its place, never the line (it may hold a secret).
        #expect {
            _ = try WorkerConfiguration.parse("kafka:\n  properties: {sasl.password: \"hunter2\"\n  requests: [")
        } throws: { error in
            let text = "\(error)"
            return text.contains("not valid YAML") && text.contains("line") && !text.contains("hunter2")
        }
        let same = ReloadPlan(running: running, loaded: running)
        #expect(same.added.isEmpty && same.removed.isEmpty && same.changed.isEmpty && same.needsRestart.isEmpty)
        let moved = try Self.config("  a: {tenantId: elsewhere, clientId: c, clientSecretEnv: A}\n  b: {tenantId: b, clientId: c, clientSecretEnv: A}\n  d: {tenantId: d, clientId: c, clientSecretEnv: A}")
        #expect(ReloadPlan(running: running, loaded: moved).changed == ["a"])
        // A name pointed at another Microsoft tenant reads other reports: another cache name.
        #expect(running.tenants["a"]?.reportCacheName != moved.tenants["a"]?.reportCacheName)
        // A rotated secret reads the same reports.
        #expect(running.tenants["b"]?.reportCacheName == loaded.tenants["b"]?.reportCacheName)
    }

    @Test("SIGHUP: an added tenant is answered without a restart; a broken file is refused with a log line and a metric while the worker goes on; a removed tenant is refused and its expiry series goes")
    func sighup() async throws {
        let fleet = try await WorkerFleet(tenants: 2, users: 5)
        try await fleet.use {
            let path = fleet.dir + "/worker.yaml"
            let full = try fleet.configuration()
            try WorkerFleet.configuration(full, without: ["t1"]).write(toFile: path, atomically: true, encoding: .utf8)
            let w = try fleet.startWorker("w")
            #expect(await fleet.waitForAssignments(1))
            let sink = ResultSink()
            func ask(_ id: String, _ tenant: String) async throws -> CheckResultMessage? {
                try await fleet.submit([CheckRequest(id: id, tenant: tenant, mode: .mailboxUsage)])
                _ = try await fleet.collect(into: sink, timeout: .seconds(60)) { await $0.ids.contains(id) }
                return await sink.byId()[id]?.first
            }
            #expect(try await ask("r-before", "t1")?.error?.kind == .unknownTenant)

            // t1 added, t0's secret given an expiry: applied on SIGHUP.
            try full.replacingOccurrences(of: "clientSecretEnv: EXOCHECK_TEST_SECRET}", with: "clientSecretEnv: EXOCHECK_TEST_SECRET, secretExpires: 2099-01-01}")
                .write(toFile: path, atomically: true, encoding: .utf8)
            w.signal(SIGHUP)
            #expect(await eventually(timeout: .seconds(20)) { w.log.contains("configuration reloaded: tenants added: t1; removed: none; credential or identity changed: none") })
            let added = try #require(try await ask("r-added", "t1"))
            #expect(added.error == nil && added.tenant == "t1", "\(added.output)")
            var metrics = try await fleet.metrics("w")
            #expect(WorkerFleet.value(of: #"exocheck_config_reloads_total{result="applied"}"#, in: metrics) == 1)
            #expect(metrics.contains(#"exocheck_credential_expiry_timestamp_seconds{tenant="t0",kind="secret"}"#) || metrics.contains(#"exocheck_credential_expiry_timestamp_seconds{kind="secret",tenant="t0"}"#), "\(metrics.split(separator: "\n").filter { $0.contains("expiry") })")

            // A broken file: refused, named, nothing changes.
            try "tenants: {t0: }\n".write(toFile: path, atomically: true, encoding: .utf8)
            w.signal(SIGHUP)
            #expect(await eventually(timeout: .seconds(20)) { w.log.contains("configuration reload refused, the running configuration stays: tenants.t0 is empty") })
            #expect(try await ask("r-after-broken", "t1")?.error == nil)
            metrics = try await fleet.metrics("w")
            #expect(WorkerFleet.value(of: #"exocheck_config_reloads_total{result="refused"}"#, in: metrics) == 1)
            #expect(WorkerFleet.value(of: "exocheck_config_last_reload_successful", in: metrics) == 0)

            // t0 removed: refused from now on; its expiry series goes.
            try WorkerFleet.configuration(full, without: ["t0"]).write(toFile: path, atomically: true, encoding: .utf8)
            w.signal(SIGHUP)
            #expect(await eventually(timeout: .seconds(20)) { w.log.contains("removed: t0") })
            #expect(try await ask("r-removed", "t0")?.error?.kind == .unknownTenant)
            metrics = try await fleet.metrics("w")
            #expect(!metrics.contains(#"tenant="t0""#), "the removed tenant's series is gone")
            #expect(WorkerFleet.value(of: "exocheck_config_last_reload_successful", in: metrics) == 1)
            #expect(w.process.isRunning, "SIGHUP never stops the worker")
        }
    }
}

import CheckWorker
import ExchangeChecks
import Foundation
import GraphSimulator
import Kafka
import Testing
import ExocheckTestSupport

/// Issue 8, item 3: a record that kills workers is found and dead-lettered after its second
/// death, across restarts and group members, while its neighbours are answered. The "poison"
/// here is real: the simulator holds the poison tenant's token request, and the test SIGKILLs
/// whichever worker asked for it — as a record that crashes the process would.
@Suite("Poison records: quarantine after a worker death", .serialized)
struct PoisonRecordTests {
    static let worker = #"{concurrency: 4, listen: "127.0.0.1:0", shutdownGraceSeconds: 2, checkTimeoutSeconds: 20}"#
    /// t0 is the poison tenant (its token request hangs until the worker is killed); t1…t4 answer
    /// after 3 s, so that they are in flight when a worker dies.
    static let faults: [String: [FaultRule]] = [
        "t0": [FaultRule(on: .token, delay: 60)],
        "t1": [FaultRule(on: .report, delay: 3)], "t2": [FaultRule(on: .report, delay: 3)],
        "t3": [FaultRule(on: .report, delay: 3)], "t4": [FaultRule(on: .report, delay: 3)],
    ]

    static func record(_ id: String, _ tenant: String) -> HostileInputWorkerTests.Record {
        .init(id: id, value: HostileInputWorkerTests.request(id, tenant: tenant, mode: "mailbox-usage"))
    }

    /// Waits until the poison tenant's token request number `n` arrives, then SIGKILLs `worker`.
    static func killOnPoison(_ fleet: WorkerFleet, _ worker: WorkerFleet.WorkerProcess, request n: Int) async -> Bool {
        let arrived = await eventually(timeout: .seconds(90)) {
            (await fleet.simulator.stats().tokensByTenant["t0.onmicrosoft.com"] ?? 0) >= n
        }
        worker.signal(SIGKILL)
        _ = await worker.wait(timeout: .seconds(10))
        return arrived
    }

    /// A fresh fleet (the poison and slow tenants) for `body`; its teardown is awaited.
    static func withFleet(_ body: (WorkerFleet) async throws -> Void) async throws {
        let fleet = try await WorkerFleet(tenants: 5, users: 20, partitions: 2, worker: worker, faults: faults)
        try await fleet.use {
            do { try await body(fleet) } catch { Issue.record(error) }
        }
    }

    @Test("a record in flight during two worker deaths is dead-lettered, not run a third time; innocent neighbours are answered")
    func poisonRecordIsDeadLetteredAfterTheSecondDeath() async throws {
        try await Self.withFleet { fleet in
            let w1 = try fleet.startWorker("w1")
            #expect(await fleet.waitForAssignments(1))
            // One partition: the poison record between innocent neighbours (all in flight at once).
            let first = [Self.record("innocent-1", "t1"), Self.record("poison", "t0"), Self.record("innocent-2", "t2"),
                         Self.record("innocent-3", "t3")]
            try await HostileInputWorkerTests.send(fleet, first, key: "k")
            #expect(await Self.killOnPoison(fleet, w1, request: 1), "the poison check started on worker 1")

            // A new member takes the partitions over, runs the suspects one at a time, and dies
            // again when the poison record runs alone.
            let w2 = try fleet.startWorker("w2")
            #expect(await Self.killOnPoison(fleet, w2, request: 2), "the poison check ran again, alone, on worker 2")
            #expect(w2.log.contains("run one at a time in the quarantine slot"), "worker 2 quarantined the suspects")

            // The third member dead-letters it without running it and answers everyone else.
            let w3 = try fleet.startWorker("w3")
            let innocents = Set(first.compactMap(\.id)).subtracting(["poison"])
            let sink = ResultSink()
            let answered = try await fleet.collect(into: sink, timeout: .seconds(120)) { sink in
                await sink.ids.isSuperset(of: innocents.union(["poison"]))
            }
            let gotIds = await sink.ids
            #expect(answered, "missing \(innocents.union(["poison"]).subtracting(gotIds).sorted())")
            let byId = await sink.byId()
            for id in innocents {
                let results = byId[id] ?? []
                #expect(results.contains { $0.status == "OK" && $0.error == nil }, "\(id) answered: \(results.map(\.output))")
                #expect(!results.contains { $0.error?.kind == .poison }, "\(id) is innocent")
            }
            // Answered as poison, never run. (At least once: if its partition changes hands again
            // before the commit of that answer lands, the next owner answers it again — as poison.)
            let poison = byId["poison"] ?? []
            let groupEvents = w3.log.split(separator: "\n").filter {
                $0.contains("assigned") || $0.contains("revoked") || $0.contains("poison") || $0.contains("quarantine")
            }.joined(separator: "\n")
            #expect(!poison.isEmpty && poison.allSatisfy { $0.error?.kind == .poison && $0.status == "UNKNOWN" },
                    "\(poison.map(\.output)); worker 3: \(groupEvents)")
            #expect((poison.first?.attempt ?? 0) >= 3)
            let tokenRequests = await fleet.simulator.stats().tokensByTenant["t0.onmicrosoft.com"] ?? 0
            #expect(tokenRequests == 2, "the poison record never ran a third time (\(tokenRequests) token requests)")
            #expect(w3.process.isRunning)
            #expect(w3.log.contains("was in progress during two worker deaths"))

            // A dead-letter copy per answer, naming its source and reason.
            let copies = try await HostileInputWorkerTests.deadLetters(fleet, count: poison.count)
            #expect(copies.count == poison.count && copies.allSatisfy { $0.header("exocheck-source-offset") == "1" })
            #expect(copies.first?.header("exocheck-dlt-reason") == CheckProcessor.poisonReason)
            #expect(copies.first?.header("exocheck-error-kind") == "poison")
            #expect(copies.first?.header("exocheck-source-offset") == "1")

            // The worker goes on: a normal request afterwards is answered.
            let after = CheckRequest(id: "after-poison", tenant: "t1", mode: .mailboxUsage)
            try await fleet.submit([after])
            let afterSink = ResultSink()
            #expect(try await fleet.collect(into: afterSink, timeout: .seconds(60)) { await $0.ids.contains(after.id) })
            let metrics = try await fleet.metrics("w3")
            // Every kind's series exists at 0: the ones that counted something.
            let deadLettered = metrics.split(separator: "\n").filter { $0.hasPrefix("exocheck_dead_lettered_total{") && !$0.hasSuffix(" 0") && !$0.hasSuffix(" 0.0") }
            #expect(deadLettered.count == 1 && deadLettered.allSatisfy { $0.hasPrefix(#"exocheck_dead_lettered_total{kind="poison"} "#) },
                    "only the poison record is dead-lettered: \(deadLettered); worker 3: \(groupEvents)")
            #expect((WorkerFleet.value(of: "exocheck_quarantined_checks_total", in: metrics) ?? 0) > 0)
        }
    }

    @Test("an orderly hand-over (SIGTERM) leaves nothing suspect: the next member runs everything normally")
    func orderlyHandOverIsNotADeath() async throws {
        try await Self.withFleet { fleet in
            let w1 = try fleet.startWorker("w1")
            #expect(await fleet.waitForAssignments(1))
            let records = [Self.record("a", "t1"), Self.record("b", "t2"), Self.record("c", "t3")]
            try await HostileInputWorkerTests.send(fleet, records, key: "k")
            #expect(await eventually(timeout: .seconds(30)) { (await fleet.simulator.stats().byTenantReport.count) >= 3 })
            w1.signal(SIGTERM)
            #expect(await w1.wait(timeout: .seconds(30)) == 0, "worker 1 stopped cleanly")
            let w2 = try fleet.startWorker("w2")
            let sink = ResultSink()
            #expect(try await fleet.collect(into: sink, timeout: .seconds(90)) { await $0.ids.isSuperset(of: ["a", "b", "c"]) })
            #expect(!w2.log.contains("quarantine slot"), "no suspects after an orderly hand-over")
            #expect(!w2.log.contains("two worker deaths"))
        }
    }
}

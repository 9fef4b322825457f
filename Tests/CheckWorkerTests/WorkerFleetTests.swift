import CheckWorker
import ExchangeChecks
import Foundation
import GraphSimulator
import Kafka
import Testing
import ExocheckTestSupport

/// The check worker end to end: separate `exocheck worker` processes, a real Kafka-protocol
/// broker (librdkafka's mock cluster) and the Graph simulator, all on loopback.
@Suite("Worker fleet, end to end", .serialized)
struct WorkerFleetTests {
    /// Argument sets used by the batches (Centreon options as existing services use them).
    static let combos: [(CheckMode, [String])] = [
        (.emailActivity, []),
        (.emailActivity, ["--warning-active-users=60:", "--critical-active-users=40:"]),
        (.emailActivity, ["--filter-counters=.*", "--warning-send-count=50", "--use-new-perfdata"]),
        (.mailboxUsage, []),
        (.mailboxUsage, ["--filter-counters=.*", "--verbose"]),
        (.mailboxUsage, ["--filter-counters=^status$", "--critical-status=%{used} > %{prohibit_send_receive_quota}"]),
        (.mailboxUsage, ["--warning-total-usage-active=1GB", "--range-perfdata=1"]),
        (.emailActivity, ["--filter-user=^adele", "--output-ignore-perfdata"]),
    ]

    static func batch(_ count: Int, tenants: [String], prefix: String) -> [CheckRequest] {
        (0..<count).map { i in
            let (mode, args) = combos[i % combos.count]
            return CheckRequest(id: "\(prefix)-\(i)", tenant: tenants[(i / combos.count) % tenants.count], mode: mode,
                                arguments: args, labels: ["host": "host-\(i % 7)", "combo": "\(i % combos.count)"])
        }
    }

    /// Every result must equal what `exocheck run` prints for the same tenant and arguments.
    static func checkAgainstRun(_ fleet: WorkerFleet, _ results: [CheckResultMessage]) async throws {
        var pairs: [String: (String, Int)] = [:]
        for r in results {
            guard let tenant = r.tenant, let combo = r.labels["combo"].flatMap(Int.init) else { continue }
            pairs["\(tenant)|\(combo)"] = (tenant, combo)
        }
        var reference: [String: (String, Int32)] = [:]
        try await withThrowingTaskGroup(of: (String, (String, Int32)).self) { group in
            var running = 0
            for (key, (tenant, combo)) in pairs {
                if running >= 4 {
                    if let (k, v) = try await group.next() { reference[k] = v }
                    running -= 1
                }
                running += 1
                group.addTask {
                    (key, try await runReference(fleet, tenant: tenant, mode: combos[combo].0, args: combos[combo].1))
                }
            }
            for try await (k, v) in group { reference[k] = v }
        }
        var mismatches = 0
        for r in results {
            guard let tenant = r.tenant, let combo = r.labels["combo"].flatMap(Int.init), let (text, code) = reference["\(tenant)|\(combo)"] else { continue }
            if r.output != text || r.exitCode != Int(code) {
                mismatches += 1
                if mismatches <= 3 { Issue.record("\(r.id ?? "?"): worker output differs from exocheck run:\n\(r.output)\n---\n\(text)") }
            }
        }
        #expect(mismatches == 0)
    }

    @Test("2,000 requests over 50 tenants with 2 workers: every request answered exactly like exocheck run; tokens and downloads cached")
    func fleet() async throws {
        let fleet = try await WorkerFleet(tenants: 50)
        try await fleet.use {
            let a = try fleet.startWorker("a")
            let b = try fleet.startWorker("b")
            #expect(await fleet.waitForAssignments(2))
            try await Task.sleep(for: .seconds(2))
            let requests = Self.batch(2000, tenants: fleet.tenantNames, prefix: "fleet")
            try await fleet.submit(requests)
            let sink = ResultSink()
            let wanted = Set(requests.map(\.id))
            #expect(try await fleet.collect(into: sink) { await $0.ids.isSuperset(of: wanted) })
            let results = await sink.results
            #expect(Set(results.compactMap(\.id)) == wanted)
            // Key = tenant, traceparent echoed, labels echoed.
            let keys = await sink.keys
            let traces = await sink.traceparents
            for r in requests.prefix(50) {
                #expect(keys[r.id] == r.tenant)
                #expect(traces[r.id] == traceparent(for: r.id))
            }
            #expect(results.allSatisfy { $0.labels["host"] != nil && $0.error == nil })
            // Graph calls (counted before the reference runs below add their own): at most one token
            // request per tenant per worker, and at most one report call per tenant and report per
            // worker within the cache period (each worker has its own cache).
            let stats = await fleet.simulator.stats()
            try await Self.checkAgainstRun(fleet, results)
            for t in fleet.tenantNames {
                #expect((stats.tokensByTenant["\(t).onmicrosoft.com"] ?? 0) <= 2, "\(t) token requests")
            }
            let maxPerTenantReport = stats.byTenantReport.filter { !$0.key.contains("contoso") }.values.max() ?? 0
            #expect(maxPerTenantReport <= 2, "report calls per tenant and report: \(maxPerTenantReport)")
            let metrics = try await fleet.metrics("a")
            #expect(metrics.contains("exocheck_checks_total"))
            #expect((WorkerFleet.value(of: #"exocheck_report_cache_total{result="hit"}"#, in: metrics) ?? 0) > 0)
            // The results validate against the JSON Schema (independent validator).
            try await Self.validate(await sink.raw, fleet: fleet)
            // No secret or access token in results, logs or metrics.
            let everything = (await sink.raw).joined() + a.log + b.log + metrics + (try await fleet.metrics("b"))
            #expect(!everything.contains(WorkerFleet.secret))
            #expect(!everything.contains("eyJhbGciOi"), "an access token leaked")
        }
    }

    static func validate(_ raw: [String], fleet: WorkerFleet) async throws {
        let file = fleet.dir + "/results.jsonl"
        try raw.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let schema = ExocheckBinary.packageRoot.appendingPathComponent("schemas")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", schema.appendingPathComponent("validate.py").path, schema.appendingPathComponent("check-result.schema.json").path, file, "--lines"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = await withCheckedContinuation { c in
            Thread {
                let d = out.fileHandleForReading.readDataToEndOfFile()
                p.waitUntilExit()
                c.resume(returning: String(decoding: d, as: UTF8.self))
            }.start()
        }
        let validatorMissing = text.contains("No module named 'jsonschema'")
        if validatorMissing {
            #expect(ProcessInfo.processInfo.environment["EXOCHECK_REQUIRE_INTEROP"] != "1", "python jsonschema is required")
        } else {
            #expect(p.terminationStatus == 0, "\(text.prefix(2000))")
        }
    }

    @Test("kill -9 of one of two workers mid-batch: every request still answered, each answer correct")
    func killNine() async throws {
        let fleet = try await WorkerFleet(tenants: 20)
        try await fleet.use {
            let a = try fleet.startWorker("a")
            _ = try fleet.startWorker("b")
            #expect(await fleet.waitForAssignments(2))
            try await Task.sleep(for: .seconds(2))
            let requests = Self.batch(5000, tenants: fleet.tenantNames, prefix: "kill")
            let sink = ResultSink()
            let wanted = Set(requests.map(\.id))
            let killer = Task {
                _ = await eventually(timeout: .seconds(120)) { await sink.results.count >= 1000 }
                a.signal(SIGKILL)
            }
            try await fleet.submit(requests)
            #expect(try await fleet.collect(into: sink, timeout: .seconds(240)) { await $0.ids.isSuperset(of: wanted) })
            await killer.value
            #expect(a.process.isRunning == false)
            let byId = await sink.byId()
            #expect(Set(byId.keys) == wanted)
            // Duplicates are allowed, but each must be the same correct answer.
            let inconsistent = byId.values.filter { Set($0.map(\.output)).count > 1 }.count
            #expect(inconsistent == 0)
            try await Self.checkAgainstRun(fleet, byId.values.compactMap(\.first))
        }
    }

    @Test("SIGTERM of one of two workers mid-batch: every request answered once, no duplicates")
    func sigterm() async throws {
        let fleet = try await WorkerFleet(tenants: 20)
        try await fleet.use {
            let a = try fleet.startWorker("a")
            let b = try fleet.startWorker("b")
            #expect(await fleet.waitForAssignments(2))
            try await Task.sleep(for: .seconds(2))
            let requests = Self.batch(3000, tenants: fleet.tenantNames, prefix: "term")
            let sink = ResultSink()
            let wanted = Set(requests.map(\.id))
            let stopper = Task {
                _ = await eventually(timeout: .seconds(120)) { await sink.results.count >= 600 }
                a.signal(SIGTERM)
                return await a.wait(timeout: .seconds(60))
            }
            try await fleet.submit(requests)
            #expect(try await fleet.collect(into: sink, timeout: .seconds(240)) { await $0.ids.isSuperset(of: wanted) })
            #expect(await stopper.value == 0, "the worker exits 0 after a graceful shutdown")
            try await Task.sleep(for: .seconds(2))
            let results = await sink.results
            let byId = await sink.byId()
            #expect(Set(byId.keys) == wanted)
            let duplicates = byId.values.filter { $0.count > 1 }.count
            let sample = byId.values.filter { $0.count > 1 }.prefix(3).map { $0.map { "\($0.id ?? "") by \($0.worker) attempt \($0.attempt) at \($0.checkedAt)" }.joined(separator: ", ") }
            #expect(duplicates == 0, "\(duplicates) duplicated results (\(sample)); \(results.count) results for \(wanted.count) requests; worker a's group events: \(a.log.split(separator: "\n").filter { $0.contains("revoked") || $0.contains("assigned") || $0.contains("quarantine") }.suffix(20).joined(separator: "\n")); worker b's: \(b.log.split(separator: "\n").filter { $0.contains("revoked") || $0.contains("assigned") || $0.contains("quarantine") || $0.contains("suspect") }.suffix(20).joined(separator: "\n"))")
            #expect(a.log.contains("worker stopped"))
        }
    }

    @Test("broker down for 10 s mid-batch: the worker survives and finishes the batch")
    func brokerOutage() async throws {
        let fleet = try await WorkerFleet(tenants: 10)
        try await fleet.use {
            let w = try fleet.startWorker("solo")
            #expect(await fleet.waitForAssignments(1))
            let first = Self.batch(400, tenants: fleet.tenantNames, prefix: "before")
            let second = Self.batch(400, tenants: fleet.tenantNames, prefix: "during")
            try await fleet.submit(first)
            try fleet.cluster.setBroker(-1, up: false)
            try await Task.sleep(for: .seconds(10))
            try fleet.cluster.setBroker(-1, up: true)
            try await fleet.submit(second)
            let sink = ResultSink()
            let wanted = Set((first + second).map(\.id))
            let answered = try await fleet.collect(into: sink, timeout: .seconds(180)) { await $0.ids.isSuperset(of: wanted) }
            let missing = wanted.subtracting(await sink.ids).count
            #expect(answered, "\(missing) unanswered; worker log: \(w.log.split(separator: "\n").filter { !$0.contains("check done") }.suffix(40).joined(separator: "\n"))")
            #expect(w.process.isRunning)
        }
    }

    @Test("SIGTERM with the broker down: the worker still ends within its grace period, saying what it could not do (was: flush, commit and close waited on the broker)")
    func sigtermBrokerDown() async throws {
        let grace = 4.0
        let fleet = try await WorkerFleet(tenants: 4, worker: #"{concurrency: 4, listen: "127.0.0.1:0", shutdownGraceSeconds: \#(grace)}"#)
        try await fleet.use {
            let w = try fleet.startWorker("w")
            #expect(await fleet.waitForAssignments(1))
            let sink = ResultSink()
            try await fleet.submit(Self.batch(40, tenants: fleet.tenantNames, prefix: "down"))
            _ = try await fleet.collect(into: sink, timeout: .seconds(60)) { await $0.results.count >= 10 }
            try await fleet.submit(Self.batch(40, tenants: fleet.tenantNames, prefix: "late"))
            try fleet.cluster.setBroker(-1, up: false)
            try await Task.sleep(for: .seconds(1))
            let clock = ContinuousClock()
            let start = clock.now
            w.signal(SIGTERM)
            let code = await w.wait(timeout: .seconds(60))
            let took = start.duration(to: clock.now)
            try? fleet.cluster.setBroker(-1, up: true)
            #expect(code != nil, "still running 60 s after SIGTERM with shutdownGraceSeconds \(grace)")
            // The grace period bounds the whole shutdown (closing gets at least 2 s after the checks'
            // share, grace − 1 s here); 2 s of slack for noise.
            #expect(took < .seconds(grace + 1 + 2), "shutdown took \(took) with shutdownGraceSeconds \(grace)")
            #expect(code == 0 || code == CheckWorkerService.shutdownOverrunExitCode, "exit code \(code.map(String.init) ?? "none")")
            #expect(w.log.contains("worker stopped") || w.log.contains("shutdown did not finish"), "\(w.log.suffix(2_000))")
        }
    }

    @Test("a check cancelled when the grace period ends publishes nothing: its made-up UNKNOWN ('cancelled while waiting to retry') is not an answer, the next owner runs it (was: sent in the background and flushed at close)")
    func cancelledAtGraceNotPublished() async throws {
        let grace = 3.0
        let fleet = try await WorkerFleet(
            tenants: 1, worker: #"{concurrency: 4, listen: "127.0.0.1:0", shutdownGraceSeconds: \#(grace)}"#,
            faults: ["t0": [FaultRule(on: .report, status: 429, retryAfter: 12)]])
        try await fleet.use {
            let w = try fleet.startWorker("w")
            #expect(await fleet.waitForAssignments(1))
            try await fleet.submit([CheckRequest(id: "waits-1", tenant: "t0", mode: .mailboxUsage, arguments: [])])
            // The check is in its 12 s retry wait when the worker is told to stop.
            try await Task.sleep(for: .seconds(3))
            w.signal(SIGTERM)
            let code = await w.wait(timeout: .seconds(60))
            #expect(code != nil)
            #expect(w.log.contains("grace period over"), "\(w.log.suffix(2_000))")
            let sink = ResultSink()
            _ = try await fleet.collect(into: sink, timeout: .seconds(5)) { await $0.ids.contains("waits-1") }
            let outputs = await sink.results.map(\.output)
            #expect(await !sink.ids.contains("waits-1"), "\(outputs)")
        }
    }

    @Test("SIGTERM while starting with the broker down: the worker stops within its grace period, exit 0 (was: it kept retrying the topic check and ignored the signal)")
    func sigtermDuringStartup() async throws {
        let grace = 4.0
        let fleet = try await WorkerFleet(tenants: 1, worker: #"{concurrency: 4, listen: "127.0.0.1:0", shutdownGraceSeconds: \#(grace)}"#)
        try await fleet.use {
            try fleet.cluster.setBroker(-1, up: false)
            let w = try fleet.startWorker("w")
            // The worker is in its start-up check of the output topics, retrying.
            #expect(await eventually(timeout: .seconds(30)) { w.log.contains("cannot describe the results topic") }, "\(w.log.suffix(1_000))")
            let start = ContinuousClock.now
            w.signal(SIGTERM)
            let code = await w.wait(timeout: .seconds(30))
            let took = start.duration(to: .now)
            try? fleet.cluster.setBroker(-1, up: true)
            #expect(code == 0, "exit code \(code.map(String.init) ?? "none: still running 30 s after SIGTERM")")
            #expect(took < .seconds(grace + 2), "stopping took \(took) with shutdownGraceSeconds \(grace)")
            #expect(w.log.contains("stopped before taking requests"), "\(w.log.suffix(1_000))")
            #expect(!w.log.contains("partitions assigned"))
        }
    }

    @Test("a fatal producer error: the worker exits 69 at once and the request it could not answer is answered after a restart (was: kept running, results failing)")
    func fatalProducerError() async throws {
        let fleet = try await WorkerFleet(tenants: 1, partitions: 1, faults: ["t0": [FaultRule(on: .report, delay: 3)]])
        try await fleet.use {
            let w = try fleet.startWorker("w")
            #expect(await fleet.waitForAssignments(1))
            let request = CheckRequest(id: "fatal-1", tenant: "t0", mode: .mailboxUsage)
            try await fleet.submit([request])
            // While the check waits for Graph, the broker makes the idempotent producer's next
            // Produce requests fail with OUT_OF_ORDER_SEQUENCE_NUMBER: a fatal error in librdkafka.
            try await Task.sleep(for: .milliseconds(500))
            fleet.cluster.pushRequestErrors(apiKey: 0, [45])
            let code = await w.wait(timeout: .seconds(30))
            #expect(code == CheckWorkerService.fatalKafkaExitCode, "exit code \(code.map(String.init) ?? "none: still running")")
            #expect(w.log.contains("fatal Kafka error"))
            let again = try fleet.startWorker("w2")
            let sink = ResultSink()
            #expect(try await fleet.collect(into: sink, timeout: .seconds(90)) { await $0.ids.contains("fatal-1") })
            #expect(again.process.isRunning)
        }
    }

    @Test("bad input of 24 kinds: each answered or dead-lettered as specified; the worker keeps going")
    func badInput() async throws {
        let fleet = try await WorkerFleet(tenants: 2)
        try await fleet.use {
            let w = try fleet.startWorker("solo")
            #expect(await fleet.waitForAssignments(1))
            let t = fleet.tenantNames[0]
            func j(_ s: String) -> [UInt8] { Array(s.utf8) }
            // (id, body, expected error kind, dead-lettered)
            let cases: [(String?, [UInt8], String, Bool)] = [
                (nil, j("not json at all"), "invalid-request", true),
                (nil, j("[1,2,3]"), "invalid-request", true),
                (nil, [0xFF, 0xFE, 0x00, 0x01], "invalid-request", true),
                ("b-trunc", j(#"{"id":"b-trunc","tenant":"\#(t)","mode":"#), "invalid-request", true),
                ("b-idnum", j(#"{"id":"b-idnum","tenant":5,"mode":"email-activity"}"#), "invalid-request", true),
                ("b-nomode", j(#"{"id":"b-nomode","tenant":"\#(t)"}"#), "invalid-request", true),
                ("b-mode", j(#"{"id":"b-mode","tenant":"\#(t)","mode":"teams-activity"}"#), "invalid-request", true),
                ("b-field", j(#"{"id":"b-field","tenant":"\#(t)","mode":"email-activity","priority":1}"#), "invalid-request", true),
                ("b-secret", j(#"{"id":"b-secret","tenant":"\#(t)","mode":"email-activity","options":{"client-secret":"hunter2"}}"#), "invalid-request", true),
                ("b-secret2", j(#"{"id":"b-secret2","tenant":"\#(t)","mode":"email-activity","clientSecret":"hunter2"}"#), "invalid-request", true),
                ("b-endpoint", j(#"{"id":"b-endpoint","tenant":"\#(t)","mode":"email-activity","args":["--graph-endpoint=http://evil.example"]}"#), "invalid-request", true),
                ("b-statedir", j(#"{"id":"b-statedir","tenant":"\#(t)","mode":"email-activity","options":{"statefile-dir":"/tmp"}}"#), "invalid-request", true),
                ("b-option", j(#"{"id":"b-option","tenant":"\#(t)","mode":"email-activity","options":{"no-such-option":"1"}}"#), "invalid-request", true),
                ("b-threshold", j(#"{"id":"b-threshold","tenant":"\#(t)","mode":"email-activity","options":{"warning-active-users":"abc"}}"#), "invalid-request", true),
                ("b-regex", j(#"{"id":"b-regex","tenant":"\#(t)","mode":"email-activity","options":{"filter-user":"(("}}"#), "invalid-request", true),
                ("b-expr", j(#"{"id":"b-expr","tenant":"\#(t)","mode":"mailbox-usage","options":{"warning-status":"%{used} >"}}"#), "invalid-request", true),
                ("b-types", j(#"{"id":"b-types","tenant":"\#(t)","mode":"email-activity","options":{"verbose":[true]}}"#), "invalid-request", true),
                ("b-args", j(#"{"id":"b-args","tenant":"\#(t)","mode":"email-activity","args":[1,2]}"#), "invalid-request", true),
                ("b-both", j(#"{"id":"b-both","tenant":"\#(t)","mode":"email-activity","args":[],"options":{}}"#), "invalid-request", true),
                ("b-deadline", j(#"{"id":"b-deadline","tenant":"\#(t)","mode":"email-activity","deadline":"soon"}"#), "invalid-request", true),
                ("b-replyto", j(#"{"id":"b-replyto","tenant":"\#(t)","mode":"email-activity","replyTo":"elsewhere"}"#), "invalid-request", true),
                ("b-tenant", j(#"{"id":"b-tenant","tenant":"nobody","mode":"email-activity"}"#), "unknown-tenant", true),
                ("b-expired", j(#"{"id":"b-expired","tenant":"\#(t)","mode":"email-activity","deadline":"2020-01-01T00:00:00Z"}"#), "expired", false),
                // Over maxRequestBytes: still answered under its id (read from the first bytes).
                ("b-huge", j(#"{"id":"b-huge","tenant":"\#(t)","mode":"email-activity","labels":{"x":""# + String(repeating: "y", count: 70_000) + #""}}"#), "invalid-request", true),
            ]
            let good = CheckRequest(id: "after-bad", tenant: t, mode: .mailboxUsage)
            try await fleet.submit([], rawRecords: cases.map { (t, $0.1) })
            try await fleet.submit([good])
            let sink = ResultSink()
            let answeredIds = Set(cases.compactMap(\.0) + ["after-bad"])
            #expect(try await fleet.collect(into: sink, timeout: .seconds(60)) { sink in
                let ids = await sink.ids
                let count = await sink.results.count
                return ids.isSuperset(of: answeredIds) && count >= cases.count + 1
            })
            let byId = await sink.byId()
            for (id, _, kind, _) in cases {
                guard let id else { continue }
                #expect(byId[id]?.first?.error?.kindName == kind, "\(id)")
                #expect(byId[id]?.first?.status == "UNKNOWN" && byId[id]?.first?.exitCode == 3, "\(id)")
            }
            let anonymous = await sink.results.filter { $0.id == nil }
            #expect(anonymous.count == cases.filter { $0.0 == nil }.count)
            #expect(byId["after-bad"]?.first?.error == nil, "the worker keeps going")
            // An expired request says how late it was (was: only its deadline).
            let expired = byId["b-expired"]?.first?.error?.message ?? ""
            #expect(expired.contains("passed ") && expired.contains(" days before this worker got to it"), "\(expired)")
            // Dead-letter copies name the source and the reason.
            let dlt = try KafkaConsumer(configuration: KafkaConfiguration([
                "bootstrap.servers": fleet.cluster.bootstrapServers, "group.id": "dlt-\(UUID().uuidString.prefix(6))",
                "auto.offset.reset": "earliest", "log_level": "3",
            ]), topics: [fleet.deadLetter])
            var copies: [KafkaMessage] = []
            let expectedCopies = cases.filter(\.3).count
            let reader = Task {
                var got: [KafkaMessage] = []
                for await e in dlt.events {
                    if case .message(let m) = e { got.append(m) }
                    if got.count == expectedCopies { break }
                }
                return got
            }
            let timeout = Task {
                try? await Task.sleep(for: .seconds(30))
                await dlt.close()
            }
            copies = await reader.value
            timeout.cancel()
            await dlt.close()
            #expect(copies.count == expectedCopies)
            #expect(copies.allSatisfy {
                $0.header("exocheck-source-topic") == fleet.requests && $0.header("exocheck-source-partition") != nil
                    && $0.header("exocheck-source-offset") != nil && !($0.header("exocheck-dlt-reason") ?? "").isEmpty
            })
            #expect(w.process.isRunning)
            let everything = (await sink.raw).joined() + w.log + (try await fleet.metrics("solo"))
            #expect(!everything.contains("hunter2"), "a secret from a request leaked")
            #expect(!everything.contains(WorkerFleet.secret))
            let metrics = try await fleet.metrics("solo")
            let deadLettered = metrics.split(separator: "\n").filter { $0.hasPrefix("exocheck_dead_lettered_total{") }
                .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
            #expect(deadLettered > 0, "dead-lettered copies counted: \(deadLettered)")
            try await Self.validate(await sink.raw, fleet: fleet)
        }
    }
}

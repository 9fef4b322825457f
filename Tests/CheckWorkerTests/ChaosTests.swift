import CheckWorker
import ExchangeChecks
import Foundation
import GraphSimulator
import Kafka
import Synchronization
import Testing
import ExocheckTestSupport

/// Chaos: a batch through three workers while the broker and Graph misbehave. Afterwards every
/// request has an answer, every answer is what `exocheck run` prints for its data, and Graph
/// calls per tenant and report stayed within the call budget.
/// Runs in its own phase of `scripts/test.sh` (`EXOCHECK_CHAOS=1` enables it; about two minutes).
/// When requests are left unanswered it prints where they are in both topics, the group's
/// committed offsets and the live workers' gauges, and keeps the workers' logs
/// (docs/benchmarks.md, "Chaos", has the runs so far).
@Suite("Chaos: brokers, Graph and workers fail during a batch", .serialized,
       .enabled(if: ProcessInfo.processInfo.environment["EXOCHECK_CHAOS"] == "1", "set EXOCHECK_CHAOS=1"))
struct ChaosTests {
    /// Requests in the batch (EXOCHECK_CHAOS_REQUESTS; the default is what CI runs, about two
    /// minutes on 2 cores in a debug build).
    static var requestCount: Int {
        ProcessInfo.processInfo.environment["EXOCHECK_CHAOS_REQUESTS"].flatMap(Int.init) ?? 20_000
    }

    @Test("broker down and up, leader moves, Fetch/OffsetCommit errors, a worker SIGKILLed and restarted, Graph 429 storms, 5xx bursts and slow answers: every request answered correctly, Graph within budget")
    func chaos() async throws {
        // Graph faults, each limited so that retries within a check's budget get through.
        let faults: [String: [FaultRule]] = [
            "t1": [FaultRule(on: .report, status: 429, retryAfter: 1, times: 6)],
            "t2": [FaultRule(on: .report, status: 503, times: 4), FaultRule(on: .report, status: 500, skip: 4, times: 2)],
            "t3": [FaultRule(on: .report, delay: 2)],
            "t4": [FaultRule(on: .download, stallBody: 1.5, times: 2)],
            // A login outage: the worker retries the token request (`run`, like the plugin, does not).
            "t5": [FaultRule(on: .token, status: 503, times: 2)],
        ]
        // The test broker keeps only about 5 MiB per partition (older records are deleted). With
        // 40 users per tenant (results of about 4.7 KB) and 8 partitions, a results partition held
        // only its last ~1,100 records, and a reader that fell behind during the broker outage lost
        // results (CI run of stop 17: 802 "unanswered"). 10 users (about 2 KB) and 16 partitions
        // (the 12 tenant keys land on 12 different ones: ~1,670 results, 3.4 MB each) keep every
        // result; the test says so when the broker deleted any.
        let fleet = try await WorkerFleet(tenants: 12, users: 10, partitions: 16, faults: faults, brokers: 3)
        try await fleet.use {
            let a = try fleet.startWorker("a")
            _ = try fleet.startWorker("b")
            let c = try fleet.startWorker("c")
            #expect(await fleet.waitForAssignments(3))
            let requests = WorkerFleetTests.batch(Self.requestCount, tenants: fleet.tenantNames, prefix: "chaos")
            let wanted = Set(requests.map(\.id))
            let sink = ResultSink()
            let started = ContinuousClock.now
            let chaos = Task {
                func at(_ fraction: Double) async {
                    _ = await eventually(timeout: .seconds(300)) { await sink.results.count >= Int(Double(wanted.count) * fraction) }
                }
                await at(0.10)
                // No injected Produce errors: librdkafka's idempotent producer acks earlier messages
                // implicitly when a later request succeeds (rd_kafka_dr_implicit_ack), which is sound
                // because a real broker refuses a sequence gap; librdkafka 2.0.2's mock checks sequences
                // only for transactional producers (rd_kafka_mock_validate_records), so one injected
                // error on a request with the next one in flight lost acknowledged results (CI
                // rehearsal of 10a438b: 3 results of one batch, offsets committed, no publish error).
                // Producer failures are still exercised by the broker outage and the leader moves.
                fleet.cluster.pushRequestErrors(apiKey: 1, [6, 6])        // Fetch: NOT_LEADER
                // OffsetCommit: the coordinator is loading. Not COORDINATOR_NOT_AVAILABLE/NOT_COORDINATOR,
                // which make the client look the coordinator up again: they were suspected of
                // triggering librdkafka 2.0.2's mock assertion (rdkafka_mock_cgrp.c:567), which was
                // later seen without them too (scripts/test.sh retries that abort once; see
                // docs/benchmarks.md, "Chaos"). Coordinator loss is still covered by the broker that
                // goes down below.
                fleet.cluster.pushRequestErrors(apiKey: 8, [14, 14, 14])
                await at(0.25)
                try? fleet.cluster.setPartitionLeader(topic: fleet.requests, partition: 0, broker: 2)
                try? fleet.cluster.setPartitionLeader(topic: fleet.results, partition: 1, broker: 3)
                await at(0.40)
                c.signal(SIGKILL)
                await at(0.50)
                try? fleet.cluster.setBroker(2, up: false)
                try? await Task.sleep(for: .seconds(5))
                try? fleet.cluster.setBroker(2, up: true)
                _ = try? fleet.startWorker("c2")
                await at(0.70)
                try? fleet.cluster.setPartitionLeader(topic: fleet.requests, partition: 3, broker: 1)
            }
            try await fleet.submit(requests)
            let complete = try await fleet.collect(into: sink, timeout: .seconds(300)) { await $0.ids.isSuperset(of: wanted) }
            chaos.cancel()
            let elapsed = started.duration(to: .now)
            // The test broker deletes a partition's oldest records beyond about 5 MiB (librdkafka's
            // mock cluster, rdkafka_mock.c: max_size): results deleted before the reader saw them
            // would look like unanswered requests, so say so when it happened.
            let marks = (try? await KafkaMetadata.watermarks(of: fleet.results, configuration: KafkaConfiguration(["bootstrap.servers": fleet.cluster.bootstrapServers]))) ?? [:]
            let deleted = marks.filter { $0.value.low > 0 }.sorted { $0.key.partition < $1.key.partition }
            let retention = deleted.isEmpty ? "the test broker deleted no results"
                : "the test broker's retention deleted results: " + deleted.map { "\($0.key.partition): offsets 0..<\($0.value.low) of \($0.value.high)" }.joined(separator: ", ")
            let byId = await sink.byId()
            let missing = wanted.subtracting(byId.keys)
            let quarantineLog = fleet.workers.flatMap { w in
                w.log.split(separator: "\n").filter { $0.contains("quarantine") || $0.contains("suspect") || $0.contains("poison") }.suffix(15)
            }.joined(separator: "\n")
            var diagnosis = ""
            if !missing.isEmpty {
                // Where the unanswered requests are: their tenants (the record key, so the partition),
                // what each live worker's gauges say, and every log line that names one of them.
                let tenants = Set(requests.filter { missing.contains($0.id) }.map(\.tenant)).sorted()
                diagnosis += "tenants of the unanswered: \(tenants)\n\(retention)\n"
                // Read both topics whole, outside any group: where each unanswered request is, whether
                // a result for it exists after all (then the reader missed it), and the group's
                // committed offsets (past the request: it was skipped).
                let requestsFound = await Self.scan(fleet, topic: fleet.requests) { m in
                    guard let id = m.header("traceparent").flatMap({ tp in missing.first { traceparent(for: $0) == tp } }) else { return nil }
                    return "\(id) at \(m.topicPartition)@\(m.offset)"
                }
                diagnosis += "in the requests topic: \(requestsFound)\n"
                let resultsFound = await Self.scan(fleet, topic: fleet.results) { m in
                    guard let r = CheckResultMessage.decode(m.value), let id = r.id, missing.contains(id) else { return nil }
                    return "\(id) answered by \(r.worker) attempt \(r.attempt) at \(m.topicPartition)@\(m.offset)"
                }
                diagnosis += "in the results topic after all: \(resultsFound)\n"
                if let consumer = try? KafkaConsumer(configuration: KafkaConfiguration(["bootstrap.servers": fleet.cluster.bootstrapServers,
                                                                                         "group.id": fleet.group, "log_level": "3"]),
                                                     assignment: [:]),
                   let parts = try? await KafkaMetadata.partitions(of: fleet.requests, configuration: KafkaConfiguration(["bootstrap.servers": fleet.cluster.bootstrapServers])) {
                    let committed = try? await consumer.committed(parts.map { TopicPartition(fleet.requests, $0) })
                    diagnosis += "committed: \(committed.map { $0.sorted { $0.key.partition < $1.key.partition }.map { "\($0.key.partition)=\($0.value)" } } ?? [])\n"
                    await consumer.close()
                }
                // Keep the workers' logs (the fleet's folder is removed at shutdown).
                let kept = NSTemporaryDirectory() + "exocheck-chaos-logs-\(UUID().uuidString.prefix(6))"
                try? FileManager.default.copyItem(atPath: fleet.dir, toPath: kept)
                diagnosis += "worker logs kept in \(kept)\n"
                for w in fleet.workers where w.process.isRunning {
                    let name = URL(fileURLWithPath: w.logPath).deletingPathExtension().lastPathComponent
                    let gauges = ((try? await fleet.metrics(name)) ?? "").split(separator: "\n")
                        .filter { !$0.hasPrefix("#") && ($0.contains("in_flight") || $0.contains("uncommitted") || $0.contains("paused") || $0.contains("lag")) }
                    diagnosis += "worker \(name): \(gauges.joined(separator: "; "))\n"
                    let lines = w.log.split(separator: "\n").filter { line in missing.contains { line.contains("\"\($0)\"") } }
                    diagnosis += lines.suffix(10).joined(separator: "\n") + "\n"
                    diagnosis += w.log.split(separator: "\n").filter { $0.contains("assigned") || $0.contains("revoked") || $0.contains("pause") || $0.contains("kafka") }.suffix(15).joined(separator: "\n") + "\n"
                }
            }
            #expect(complete && missing.isEmpty, "\(missing.count) requests unanswered, e.g. \(missing.sorted().prefix(5)); the workers' quarantine events:\n\(quarantineLog)\n\(diagnosis)")
            // Duplicates are allowed (at least once), but each must be the same answer. One
            // exception, the documented limit of the poison quarantine (docs/poison-records.md,
            // "Limits"): a lost session counts as a death, so a suspect of the killed worker that
            // was running alone during the broker outage can be dead-lettered as `poison` after it
            // was answered (seen once in a CI rehearsal, session 10). Such a request has exactly
            // one other answer besides the poison refusal; at most 3 are tolerated, and reported.
            func isPoison(_ r: CheckResultMessage) -> Bool { r.error?.kind == .poison }
            let poisonedAfterAnswer = byId.values.filter { answers in
                answers.contains(where: isPoison) && Set(answers.filter { !isPoison($0) }.map(\.output)).count == 1
            }
            let inconsistent = byId.values.filter { answers in
                Set(answers.map(\.output)).count > 1 && !poisonedAfterAnswer.contains { $0.first?.id == answers.first?.id }
            }
            #expect(inconsistent.isEmpty, "\(inconsistent.count) requests answered differently, e.g. \(inconsistent.first.map { $0.map(\.output) } ?? [])")
            #expect(poisonedAfterAnswer.count <= 3, "\(poisonedAfterAnswer.count) answered requests later dead-lettered as poison")
            if !poisonedAfterAnswer.isEmpty {
                print("chaos: \(poisonedAfterAnswer.count) answered request(s) later dead-lettered as poison (documented limit): \(poisonedAfterAnswer.compactMap { $0.first?.id })")
            }
            // The first normal answer of each request is the one checked below.
            let errors = byId.values.compactMap { $0.first { !isPoison($0) } ?? $0.first }.filter { $0.error != nil }
            #expect(errors.isEmpty, "\(errors.count) error answers, e.g. \(errors.prefix(3).map { "\($0.error?.kindName ?? ""): \($0.error?.message ?? "")" })")
            try await WorkerFleetTests.checkAgainstRun(fleet, byId.values.compactMap { $0.first { !isPoison($0) } ?? $0.first })
            // Graph calls per tenant and report within the budget (14 per 10 minutes).
            let stats = await fleet.simulator.stats()
            let over = stats.byTenantReport.filter { $0.value > 14 }
            #expect(over.isEmpty, "over the call budget: \(over)")
            #expect(a.process.isRunning)
            let duplicates = byId.values.filter { $0.count > 1 }.count
            print("chaos: \(wanted.count) requests, \(await sink.results.count) results (\(duplicates) duplicated), \(elapsed); Graph: \(stats.tokenRequests) token, \(stats.reportRequests) report, \(stats.downloadRequests) download requests; busiest tenant/report: \(stats.byTenantReport.values.max() ?? 0) calls; results partitions' end offsets: \(marks.values.map(\.high).sorted()); \(retention)")
        }
    }

    /// Reads `topic` whole (every partition from its start to its end at the time of the call,
    /// outside any group) and returns what `pick` makes of its records.
    static func scan(_ fleet: WorkerFleet, topic: String, pick: @escaping @Sendable (KafkaMessage) -> String?) async -> [String] {
        let config = KafkaConfiguration(["bootstrap.servers": fleet.cluster.bootstrapServers, "log_level": "3"])
        guard let ends = try? await KafkaMetadata.startOffsets(topic: topic, position: .end, configuration: config),
              let starts = try? await KafkaMetadata.startOffsets(topic: topic, position: .beginning, configuration: config),
              let consumer = try? KafkaConsumer(configuration: config, assignment: starts) else { return ["(cannot read \(topic))"] }
        let found = Mutex<[String]>([])
        let reached = Mutex<[TopicPartition: Int64]>([:])
        let task = Task {
            for await event in consumer.events {
                guard case .message(let m) = event else { continue }
                if let text = pick(m) { found.withLock { $0.append(text) } }
                reached.withLock { $0[m.topicPartition] = m.offset + 1 }
            }
        }
        _ = await eventually(timeout: .seconds(60)) {
            reached.withLock { r in ends.allSatisfy { (r[$0.key] ?? starts[$0.key] ?? 0) >= $0.value } }
        }
        await consumer.close()
        await task.value
        return found.withLock { $0 }
    }
}

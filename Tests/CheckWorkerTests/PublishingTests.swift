import CheckWorker
import ExchangeChecks
import Foundation
import GraphSimulator
import Kafka
import Testing

/// "No commit without an answer": results that fit, publishing failures, topics that vanish.
@Suite("Publishing: every committed request has an answer", .serialized)
struct PublishingTests {
    @Test("a per-mailbox result larger than a record: answered with its real state, cut to fit, truncated (was: UNKNOWN 'could not be published', kind graph)")
    func resultLargerThanRecord() async throws {
        // 2,000 mailboxes with per-mailbox counters print about 120 KB; the producer allows 60 KB.
        let fleet = try await WorkerFleet(tenants: 1, users: 2_000, partitions: 1, kafkaProperties: ["message.max.bytes": "60000"])
        try await fleet.use {
            let w = try fleet.startWorker("w")
            #expect(await fleet.waitForAssignments(1))
            let args = ["--filter-counters=.*", "--verbose", "--critical-status=%{used} > 0"]
            try await fleet.submit([CheckRequest(id: "big-1", tenant: "t0", mode: .mailboxUsage, arguments: args)])
            let sink = ResultSink()
            #expect(try await fleet.collect(into: sink, timeout: .seconds(90)) { await $0.ids.contains("big-1") })
            let (reference, code) = try await runReference(fleet, tenant: "t0", mode: .mailboxUsage, args: args)
            #expect(reference.utf8.count > 60_000, "the reference output must be larger than a record: \(reference.utf8.count) bytes")
            let raw = await sink.raw.first { $0.contains("\"big-1\"") } ?? ""
            let result = try #require(await sink.results.first { $0.id == "big-1" })
            #expect(raw.utf8.count <= 60_000 - ResultSizePolicy.recordOverheadBytes)
            #expect(result.truncated == true)
            #expect(result.error == nil)
            #expect(result.exitCode == Int(code))
            #expect(result.status == "CRITICAL")
            // The output starts like the plugin's: same summary, then the global perfdata in order.
            let referenceHead = reference.split(separator: "\n", maxSplits: 1)[0]
            let (summary, perf) = (referenceHead.components(separatedBy: "|")[0], referenceHead.components(separatedBy: "|")[1])
            // Every mailbox is CRITICAL, so the summary alone is larger than half a record: cut.
            #expect(summary.utf8.count > 30_000)
            #expect(result.output.hasPrefix(String(summary.prefix(5_000))))
            #expect(result.summary.hasSuffix("(summary cut)"))
            // Old-style labels (no --use-new-perfdata): global metrics have no instance suffix.
            let globals = ["active_mailboxes", "total_usage_active", "total_usage_inactive"]
            let globalPerf = perf.split(separator: " ").filter { item in globals.contains { item.hasPrefix("'\($0)'=") } }.map(String.init)
            #expect(globalPerf.count == 3, "reference perfdata: \(perf.prefix(300))")
            for item in globalPerf { #expect(result.output.contains(item), "global perfdata \(item) kept") }
            let keptGlobal = result.perfdata.filter { globals.contains($0.label) }
            #expect(keptGlobal.count == 3)
            let instance = result.perfdata.filter { !globals.contains($0.label) }
            #expect(!instance.isEmpty, "some per-instance perfdata kept")
            #expect(instance.count < perf.split(separator: " ").count - 3, "some per-instance perfdata cut")
            #expect(result.output.hasSuffix(")"))
            #expect(result.output.contains("(exocheck: result cut to fit the results topic's record limit of \(60_000 - ResultSizePolicy.recordOverheadBytes) bytes"))
            // The kept items are the reference's first ones, in the text as in the array.
            let firstLine = result.output.split(separator: "\n", maxSplits: 1)[0]
            let keptText = firstLine.components(separatedBy: "|")[1]
            #expect(perf.hasPrefix(keptText), "kept perfdata is a prefix of the reference's")
            #expect(keptText.split(separator: " ").count == result.perfdata.count)
            try await WorkerFleetTests.validate(await sink.raw, fleet: fleet)
            #expect(w.process.isRunning)
        }
    }

    @Test("the results topic does not exist at start: the worker refuses to start and names it (was: started, then every answer failed)")
    func missingResultsTopicAtStart() async throws {
        let fleet = try await WorkerFleet(tenants: 1, partitions: 1)
        try await fleet.use {
            fleet.cluster.setTopicError(fleet.results, code: 3)
            let w = try fleet.startWorker("w")
            let code = await w.wait(timeout: .seconds(30))
            #expect(code != nil && code != 0, "exit code \(code.map(String.init) ?? "none: still running")")
            #expect(w.log.contains("the results topic '\(fleet.results)' does not exist"))
            #expect(!w.log.contains("partitions assigned"))
        }
    }

    @Test("an allowed reply topic deleted while the worker runs: it exits 69 without committing, a restarted worker answers once the topic is back (was: a fallback on another topic or retried forever)")
    func replyTopicDeleted() async throws {
        let reply = "reply-\(UUID().uuidString.prefix(8).lowercased())"
        // Unknown topics fail a record after topic.metadata.propagation.max.ms (30 s by default).
        let fleet = try await WorkerFleet(tenants: 1, partitions: 1, kafkaProperties: ["topic.metadata.propagation.max.ms": "1000"],
                                          replyTopics: [reply])
        try await fleet.use {
            let w = try fleet.startWorker("w")
            #expect(await fleet.waitForAssignments(1))
            fleet.cluster.setTopicError(reply, code: 3)
            try await fleet.submit([CheckRequest(id: "reply-1", tenant: "t0", mode: .mailboxUsage, replyTo: reply)])
            let code = await w.wait(timeout: .seconds(60))
            #expect(code == CheckWorkerService.fatalKafkaExitCode, "exit code \(code.map(String.init) ?? "none: still running")")
            #expect(w.log.contains("cannot publish to the topic '\(reply)'"))
            fleet.cluster.setTopicError(reply, code: 0)
            let again = try fleet.startWorker("w2")
            let sink = ResultSink()
            #expect(try await fleet.collect(into: sink, from: reply, timeout: .seconds(90)) { await $0.ids.contains("reply-1") })
            let answers = await sink.results.filter { $0.id == "reply-1" }
            #expect(answers.allSatisfy { $0.error == nil }, "answered by the check itself, not by a fallback")
            let elsewhere = ResultSink()
            _ = try await fleet.collect(into: elsewhere, timeout: .seconds(3)) { _ in false }
            #expect(await !elsewhere.ids.contains("reply-1"), "no fallback answer on the results topic")
            #expect(again.process.isRunning)
        }
    }
}

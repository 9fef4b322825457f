import CheckWorker
import ExchangeChecks
import ExocheckTestSupport
import Foundation
import Kafka
import Testing

/// Results topics are written by any producer too: readers (`results`, `submit --wait`) must
/// survive whatever a record holds.
@Suite("Hostile result records", .serialized)
struct HostileResultTests {
    /// A valid result as a JSON object, with `changes` applied.
    func record(id: String, _ changes: [String: Any] = [:]) -> [UInt8] {
        var o: [String: Any] = [
            "id": id, "tenant": "t0", "mode": "email-activity", "labels": [String: String](), "status": "OK", "exitCode": 0,
            "output": "OK: fine", "summary": "OK: fine", "perfdata": [Any](), "reportDate": "", "checkedAt": "2026-12-02T00:00:00Z",
            "durationMs": 5, "worker": "w", "attempt": 1, "cache": ["token": "miss", "report": "miss"], "error": NSNull(),
        ]
        for (k, v) in changes { o[k] = v }
        return Array((try? JSONSerialization.data(withJSONObject: o)) ?? Data())
    }

    @Test("decode refuses a result whose exit code is not 0 to 3 or whose duration is out of range; a valid one is read")
    func decodeBounds() {
        #expect(CheckResultMessage.decode(record(id: "ok-1")) != nil)
        for changes: [String: Any] in [["exitCode": 7], ["exitCode": -1], ["exitCode": 99_999_999_999], ["durationMs": 1e300], ["durationMs": -5],
                                       ["attempt": -1]] {
            #expect(CheckResultMessage.decode(record(id: "bad", changes)) == nil, "\(changes)")
        }
    }

    @Test("decode reads up to 8 warnings of up to 1,024 bytes each and refuses more (readers print them)")
    func warningBounds() {
        #expect(CheckResultMessage.decode(record(id: "w", ["warnings": Array(repeating: String(repeating: "é", count: 512), count: 8)]))?.warnings?.count == 8)
        #expect(CheckResultMessage.decode(record(id: "w", ["warnings": Array(repeating: "w", count: 9)])) == nil)
        #expect(CheckResultMessage.decode(record(id: "w", ["warnings": [String(repeating: "x", count: 1_025)]])) == nil)
        #expect(CheckResultMessage.decode(record(id: "w", ["warnings": "not a list"])) == nil)
        // Empty, blank or with a control character (a forged one could move the cursor or add lines
        // to submit --wait's stderr): refused.
        for bad: [Any] in [[], [""], ["a\u{1b}[2Jb"], ["line\nbreak"], ["sep\u{2028}"]] {
            #expect(CheckResultMessage.decode(record(id: "w", ["warnings": bad])) == nil, "\(bad)")
        }
        // warningLines replaces control characters anyway, for a message built in process.
        var built = CheckResultMessage.decode(record(id: "w"))
        built?.warnings = ["a\u{1b}[2Jb\nc\u{9b}d", "ok"]
        #expect(built?.warningLines == ["exocheck: warning: a [2Jb c d", "exocheck: warning: ok"])
    }

    @Test("exocheck results (table) skips a result with an absurd duration or exit code and goes on (was: a trap in Int(durationMs))")
    func resultsSurvives() async throws {
        let fleet = try await WorkerFleet(tenants: 1, users: 4)
        try await fleet.use {
            let producer = try KafkaProducer(configuration: KafkaConfiguration(["bootstrap.servers": fleet.cluster.bootstrapServers, "log_level": "3"]))
            for value in [record(id: "h1", ["durationMs": 1e300]), record(id: "h2", ["exitCode": 99_999_999_999]), record(id: "good-1")] {
                try await producer.send(OutgoingMessage(topic: fleet.results, key: Array("t0".utf8), value: value, partition: 0))
            }
            await producer.close()
            let (code, out, err) = try await exocheck([
                "results", "--config", fleet.dir + "/worker.yaml", "--from", "beginning", "--format", "table", "--count", "1", "--idle-timeout", "20",
            ])
            #expect(code == 0, "\(err)")
            #expect(out.contains("OK: fine") && !out.contains("h1"), "\(out)")
        }
    }

    @Test("submit --wait ignores a forged result with its id but an impossible exit code (was: a trap in Int32(exitCode)), and answers on timeout")
    func submitSurvives() async throws {
        let fleet = try await WorkerFleet(tenants: 1, users: 4)
        try await fleet.use {
            let id = "forged-\(UUID().uuidString.prefix(8))"
            async let submitted = exocheck([
                "submit", "--config", fleet.dir + "/worker.yaml", "--wait", "--timeout", "8", "--orphan-timeout", "0", "--id", id,
                "--tenant=t0", "--mode=email-activity",
            ])
            try await Task.sleep(for: .seconds(3))
            let producer = try KafkaProducer(configuration: KafkaConfiguration(["bootstrap.servers": fleet.cluster.bootstrapServers, "log_level": "3"]))
            let parts = try await KafkaMetadata.partitions(of: fleet.results, configuration: KafkaConfiguration(["bootstrap.servers": fleet.cluster.bootstrapServers]))
            for p in parts {
                try await producer.send(
                    OutgoingMessage(
                        topic: fleet.results, key: Array("t0".utf8), value: record(id: id, ["exitCode": 99_999_999_999]), headers: [KafkaHeader("exocheck-id", id)],
                        partition: p))
            }
            await producer.close()
            let (code, out, err) = try await submitted
            #expect(code == 3 && out.hasPrefix("UNKNOWN: No result for check \(id)"), "\(code) \(out) \(err)")
        }
    }
}

@Suite("results --report-older-than", .serialized)
struct OldReportFlagTests {
    @Test("results flags results whose report Graph last confirmed longer ago than --report-older-than (table and summary); --only-old-reports shows only those; results without reportAgeSeconds are never flagged")
    func flagsOldReports() async throws {
        let fleet = try await WorkerFleet(tenants: 1, users: 4)
        try await fleet.use {
            let make = HostileResultTests()
            let producer = try KafkaProducer(configuration: KafkaConfiguration(["bootstrap.servers": fleet.cluster.bootstrapServers, "log_level": "3"]))
            for value in [
                make.record(id: "fresh-1", ["reportAgeSeconds": 600, "summary": "OK: fresh"]),
                make.record(id: "old-1", ["reportAgeSeconds": 200_000, "summary": "OK: old"]),
                make.record(id: "none-1", ["summary": "OK: no age"]),
            ] {
                try await producer.send(OutgoingMessage(topic: fleet.results, key: Array("t0".utf8), value: value, partition: 0))
            }
            await producer.close()
            let base = ["results", "--config", fleet.dir + "/worker.yaml", "--from", "beginning", "--format", "table", "--idle-timeout", "20"]
            let (code, out, err) = try await exocheck(base + ["--report-older-than", "86400", "--count", "3"])
            #expect(code == 0, "\(err)")
            let lines = out.split(separator: "\n")
            #expect(lines.contains { $0.contains("OLD REPORT (2 days) OK: old") }, "\(out)")
            #expect(lines.filter { $0.contains("OLD REPORT") }.count == 1, "\(out)")
            #expect(err.contains("3 shown") && err.contains("1 with a report older than 86400 s"), "\(err)")
            let (onlyCode, onlyOut, _) = try await exocheck(base + ["--report-older-than", "3600", "--only-old-reports", "--count", "1"])
            #expect(onlyCode == 0 && onlyOut.contains("OK: old") && !onlyOut.contains("OK: fresh") && !onlyOut.contains("no age"), "\(onlyOut)")
            let (badCode, _, badErr) = try await exocheck(base + ["--only-old-reports"])
            #expect(badCode != 0 && badErr.contains("--only-old-reports needs --report-older-than"))
        }
    }
}

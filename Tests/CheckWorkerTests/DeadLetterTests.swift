import CheckWorker
import ExchangeChecks
import ExocheckTestSupport
import Foundation
import Kafka
import Testing

/// `exocheck dlq` (issue 12 item 6): reading dead-letter records back, filters, what a replay
/// sends and refuses; then list, show and replay against a worker on a real broker.
@Suite("Dead letters: exocheck dlq", .serialized)
struct DeadLetterTests {
    static func message(
        partition: Int32 = 0, offset: Int64 = 7, key: String? = "contoso", value: String = #"{"id":"r-1","tenant":"contoso","mode":"mailbox-usage"}"#,
        headers: [KafkaHeader] = [], timestamp: Int64? = 1_796_083_200_000
    ) -> KafkaMessage {
        KafkaMessage(
            topic: "dlt", partition: partition, offset: offset, key: key.map { Array($0.utf8) }, value: Array(value.utf8), headers: headers,
            timestamp: timestamp)
    }

    static let workerHeaders = [
        KafkaHeader("exocheck-id", "r-1"), KafkaHeader("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        KafkaHeader(DeadLetterHeader.sourceTopic, "requests"), KafkaHeader(DeadLetterHeader.sourcePartition, "3"),
        KafkaHeader(DeadLetterHeader.sourceOffset, "99"), KafkaHeader(DeadLetterHeader.reason, "Tenant 'contoso' is not configured on this worker"),
        KafkaHeader(DeadLetterHeader.errorKind, "unknown-tenant"),
    ]

    @Test("a record reads back its kind, reason, tenant, id, source and time; missing headers leave fields empty, never fail")
    func readsBack() {
        let r = DeadLetterRecord(Self.message(headers: Self.workerHeaders))
        #expect(r.kind == "unknown-tenant")
        #expect(r.reason.hasPrefix("Tenant 'contoso'"))
        #expect(r.tenant == "contoso" && r.id == "r-1" && r.source == "requests:3:99")
        #expect(r.time == Date(timeIntervalSince1970: 1_796_083_200))
        #expect(r.listLine.hasPrefix("0:7  2026-12-01T00:00:00.000Z  unknown-tenant  tenant=contoso  id=r-1  Tenant"))
        let bare = DeadLetterRecord(Self.message(key: nil, value: "\u{1}\u{2}", headers: [], timestamp: nil))
        #expect(bare.kind == "?" && bare.reason.isEmpty && bare.tenant.isEmpty && bare.id.isEmpty && bare.source.isEmpty && bare.time == nil)
        #expect(DeadLetterRecord(Self.message(headers: [])).id == "r-1", "the id from the JSON value when there is no header")
    }

    @Test("hostile records: control characters become spaces, fields are capped, a non-UTF-8 value is shown as base64, absurd timestamps and replay counts are ignored")
    func hostile() {
        let r = DeadLetterRecord(Self.message(
            key: "evil\u{1b}[2J\nkey", value: "x",
            headers: [KafkaHeader(DeadLetterHeader.reason, String(repeating: "r", count: 100_000)), KafkaHeader(DeadLetterHeader.errorKind, "a\u{85}b"),
                      KafkaHeader(DeadLetterHeader.replayCount, "-5")],
            timestamp: Int64.max))
        #expect(r.tenant == "evil [2J key")
        #expect(r.kind == "a b")
        #expect(DeadLetterRecord.printable("a\u{202e}b\u{2028}c\u{200b}d") == "a b c d", "bidi overrides, separators and zero-width characters cannot disguise a line")
        #expect(r.reason.count == DeadLetterRecord.fieldLimit + 1 && r.reason.hasSuffix("…"))
        #expect(r.time == nil)
        #expect(r.replayCount == 0)
        var m = Self.message(headers: [])
        m.value = [0xff, 0xfe, 0x00]
        #expect(DeadLetterRecord(m).json["valueBase64"] as? String == "//4A")
        #expect(DeadLetterRecord(m).json["value"] == nil)
    }

    @Test("a replay sends the original key, value and headers without the dead-letter ones, plus exocheck-replay-of and a replay count")
    func replayMessage() {
        var headers = Self.workerHeaders
        headers.append(KafkaHeader(DeadLetterHeader.replayCount, "1"))
        let r = DeadLetterRecord(Self.message(headers: headers))
        let out = r.replay(to: "requests")
        #expect(out.topic == "requests" && out.key == Array("contoso".utf8) && out.value == r.message.value)
        #expect(out.headers.map(\.name) == ["exocheck-id", "traceparent", DeadLetterHeader.replayOf, DeadLetterHeader.replayCount])
        #expect(out.headers[2].stringValue == "dlt:0:7")
        #expect(out.headers[3].stringValue == "2")
    }

    @Test("never replayed: a stub (the request's end was lost), a poison request unless allowed, one replayed --max-replays times")
    func refusals() {
        #expect(DeadLetterRecord(Self.message(headers: Self.workerHeaders)).replayRefusal(maxReplays: 3, allowPoison: false) == nil)
        let stub = DeadLetterRecord(Self.message(headers: Self.workerHeaders + [KafkaHeader(DeadLetterHeader.truncated, "9 bytes")]))
        #expect(stub.replayRefusal(maxReplays: 3, allowPoison: true)?.contains("cannot be sent again") == true)
        let poison = DeadLetterRecord(Self.message(headers: [KafkaHeader(DeadLetterHeader.errorKind, "poison")]))
        #expect(poison.replayRefusal(maxReplays: 3, allowPoison: false)?.contains("--allow-poison") == true)
        #expect(poison.replayRefusal(maxReplays: 3, allowPoison: true) == nil)
        let dropped = DeadLetterRecord(Self.message(headers: Self.workerHeaders + [KafkaHeader(DeadLetterHeader.headersDropped, "40 headers")]))
        #expect(dropped.replayRefusal(maxReplays: 3, allowPoison: false)?.contains("too large") == true, "its id and trace context are gone")
        let heavy = DeadLetterRecord(Self.message(headers: [KafkaHeader("x-big", String(repeating: "h", count: CheckProcessor.maxHeaderBytes - 20))]))
        #expect(heavy.replayRefusal(maxReplays: 3, allowPoison: false)?.contains("would exceed") == true, "the replay's headers would push it over the worker's limit")
        let huge = DeadLetterRecord(Self.message(headers: [KafkaHeader(DeadLetterHeader.replayCount, String(Int.max))]))
        #expect(huge.replayCount == 1_000_000)
        #expect(huge.replay(to: "r").headers.last { $0.name == DeadLetterHeader.replayCount }?.stringValue == "1000001", "no overflow")
        let tired = DeadLetterRecord(Self.message(headers: [KafkaHeader(DeadLetterHeader.replayCount, "3")]))
        #expect(tired.replayRefusal(maxReplays: 3, allowPoison: false)?.contains("--max-replays") == true)
        #expect(tired.replayRefusal(maxReplays: 4, allowPoison: false) == nil)
    }

    @Test("filters: kinds, tenant, id, since, position; partition:offset parses only non-negative integers")
    func filters() {
        let r = DeadLetterRecord(Self.message(headers: Self.workerHeaders))
        var f = DeadLetterFilter()
        #expect(f.matches(r) && !f.isRestrictive)
        f.kinds = ["poison"]
        #expect(!f.matches(r) && f.isRestrictive)
        f.kinds = ["unknown-tenant", "poison"]
        f.tenant = "contoso"
        f.id = "r-1"
        f.since = Date(timeIntervalSince1970: 1_796_083_200)
        f.position = (0, 7)
        #expect(f.matches(r))
        f.position = (0, 8)
        #expect(!f.matches(r))
        f.position = nil
        f.since = Date(timeIntervalSince1970: 1_796_083_201)
        #expect(!f.matches(r))
        #expect(DeadLetterFilter.position("3:42").map { [Int64($0.partition), $0.offset] } == [3, 42])
        for bad in ["", "3", "3:", ":4", "-1:4", "3:-4", "3:4:5", "a:b", "99999999999:1"] { #expect(DeadLetterFilter.position(bad) == nil, "\(bad)") }
    }

    @Test("dlq against a worker: list shows what was refused and why, --kind filters, show prints one record; replay --dry-run sends nothing; after the tenant is added, replay makes the worker answer the original id; poison and hostile forged records are listed safely and never replayed")
    func endToEnd() async throws {
        let fleet = try await WorkerFleet(tenants: 2, users: 5)
        try await fleet.use {
            // t1 is left out of the worker's configuration: its request is refused (unknown tenant).
            let path = fleet.dir + "/worker.yaml"
            let full = try fleet.configuration()
            try WorkerFleet.configuration(full, without: ["t1"]).write(toFile: path, atomically: true, encoding: .utf8)
            let first = try fleet.startWorker("w1")
            #expect(await fleet.waitForAssignments(1))
            let requests = [
                CheckRequest(id: "dl-ok", tenant: "t0", mode: .mailboxUsage),
                CheckRequest(id: "dl-unknown", tenant: "t1", mode: .mailboxUsage),
                CheckRequest(id: "dl-invalid", tenant: "t0", mode: .mailboxUsage, arguments: ["--warning-items=abc"]),
            ]
            try await fleet.submit(requests)
            // Forged straight into the dead-letter topic (anyone with write access can).
            let producer = try KafkaProducer(configuration: KafkaConfiguration(["bootstrap.servers": fleet.cluster.bootstrapServers, "log_level": "3"]))
            _ = try await producer.send(OutgoingMessage(
                topic: fleet.deadLetter, key: Array("t1".utf8), value: Array(#"{"id":"dl-poison","tenant":"t1","mode":"mailbox-usage"}"#.utf8),
                headers: [KafkaHeader(DeadLetterHeader.errorKind, "poison"), KafkaHeader(DeadLetterHeader.reason, "workers died twice")]))
            _ = try await producer.send(OutgoingMessage(
                topic: fleet.deadLetter, key: Array("x\u{1b}]0;pwned\u{7}".utf8), value: [0xff, 0x00, 0x1b],
                headers: [KafkaHeader(DeadLetterHeader.errorKind, "invalid-request\n[fake] line")]))
            await producer.close()
            let sink = ResultSink()
            #expect(try await fleet.collect(into: sink, timeout: .seconds(60)) { await $0.ids.isSuperset(of: Set(requests.map(\.id))) })
            #expect(await sink.byId()["dl-unknown"]?.first?.error?.kind == .unknownTenant)

            func dlq(_ args: [String]) async throws -> (code: Int32, out: String, err: String) {
                let r = try await runProcess(WorkerFleet.exocheck, ["dlq"] + args + ["--config", path, "--timeout", "30"])
                return (r.exitCode, r.stdout, r.stderr)
            }
            // The worker's copies may land just after the results: wait for both.
            #expect(await eventually(timeout: .seconds(30)) { ((try? await dlq(["list"]))?.out.split(separator: "\n").count ?? 0) >= 4 })
            let list = try await dlq(["list"])
            #expect(list.code == 0, "\(list.err)")
            let lines = list.out.split(separator: "\n").map(String.init)
            #expect(lines.count == 4, "\(list.out)")
            #expect(lines.contains { $0.contains("unknown-tenant  tenant=t1  id=dl-unknown") && $0.contains("is not configured") })
            #expect(lines.contains { $0.contains("invalid-request  tenant=t0  id=dl-invalid") })
            #expect(lines.contains { $0.contains("poison  tenant=t1  id=dl-poison") })
            #expect(!list.out.contains("\u{1b}") && !list.out.contains("\u{7}") && !list.out.contains("\n[fake]"), "control characters never reach the terminal")
            #expect(list.err.contains("4 of 4 record(s)"))
            let unknownLine = try #require(lines.first { $0.contains("id=dl-unknown") })
            let position = String(unknownLine.prefix { $0 != " " })

            let filtered = try await dlq(["list", "--kind", "unknown-tenant", "--format", "json"])
            let objects = filtered.out.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            #expect(objects.count == 1 && objects.first?["id"] as? String == "dl-unknown" && objects.first?["source"] as? String != "")
            #expect((try await dlq(["list", "--kind", "no-such-kind"])).code != 0)

            let show = try await dlq(["show", position])
            #expect(show.code == 0)
            #expect(show.out.contains("kind:       unknown-tenant") && show.out.contains("\"id\" : \"dl-unknown\""), "\(show.out)")
            #expect((try await dlq(["show", "0:999999"])).code == 1)

            #expect((try await dlq(["replay"])).err.contains("choose what to replay"), "a replay needs a filter or --all")
            let dry = try await dlq(["replay", "--tenant", "t1", "--dry-run"])
            #expect(dry.code == 0, "\(dry.err)")
            #expect(dry.out.contains("would replay \(position)  unknown-tenant  id=dl-unknown"), "\(dry.out)")
            #expect(dry.out.contains("refused") && dry.out.contains("id=dl-poison") && dry.out.contains("--allow-poison"))
            #expect(dry.err.contains("would replay 1, refused 1"))
            try await Task.sleep(for: .seconds(2))
            #expect(await sink.byId()["dl-unknown"]?.count == 1, "a dry run sends nothing")

            // The operator adds the tenant and restarts the worker, then replays.
            first.signal(SIGTERM)
            _ = await first.wait(timeout: .seconds(30))
            try full.write(toFile: path, atomically: true, encoding: .utf8)
            _ = try fleet.startWorker("w2")
            let replay = try await dlq(["replay", "--kind", "unknown-tenant"])
            #expect(replay.code == 0, "\(replay.err)")
            #expect(replay.out.contains("replayed \(position)  unknown-tenant  id=dl-unknown → \(fleet.requests)"))
            #expect(try await fleet.collect(into: sink, timeout: .seconds(60)) { await ($0.byId()["dl-unknown"] ?? []).contains { $0.error == nil } })
            let answered = try #require(await sink.byId()["dl-unknown"]?.first { $0.error == nil })
            #expect(answered.tenant == "t1" && answered.exitCode != 3)
            // Still in the dead-letter topic (a replay copies, never deletes): four records.
            #expect((try await dlq(["list"])).out.split(separator: "\n").count == 4)
        }
    }
}

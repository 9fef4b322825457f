@testable import ExchangeChecks
import ExocheckTestSupport
import Foundation
import GraphReports
import Kafka
import Testing

@testable import CheckWorker
@testable import GraphSimulator

@Suite("Check request decoding")
struct CheckRequestTests {
    func decode(_ json: String, max: Int = 65_536) -> Result<CheckRequest, RequestRejection> {
        CheckRequestDecoder.decode(Array(json.utf8), maxBytes: max)
    }

    func reason(_ json: String) -> String? {
        if case .failure(let r) = decode(json) { return r.reason }
        return nil
    }

    @Test("options become a Centreon argument list; true flags are set, false ones left out")
    func options() throws {
        guard case .success(let r) = decode(#"{"id":"a","tenant":"contoso","mode":"mailbox-usage","options":{"filter-counters":".*","verbose":true,"use-new-perfdata":false,"warning-items":50000},"labels":{"host":"h"}}"#) else {
            Issue.record("rejected")
            return
        }
        #expect(r.arguments == ["--filter-counters=.*", "--verbose", "--warning-items=50000"])
        #expect(r.labels == ["host": "h"])
        #expect(r.mode == .mailboxUsage)
    }

    @Test("option values are typed by the JSON decoder: a number is its text, 1 is not true, true is not 1, null is refused")
    func typedOptionValues() throws {
        guard case .success(let r) = decode(#"{"id":"a","tenant":"t","mode":"mailbox-usage","options":{"warning-items":5,"critical-items":0.5,"warning-total-mailboxes":-3,"verbose":true}}"#) else {
            Issue.record("rejected")
            return
        }
        #expect(r.arguments == ["--critical-items=0.5", "--verbose", "--warning-items=5", "--warning-total-mailboxes=-3"])
        // 1 for a flag is a value, and a flag takes none (it is not read as true).
        #expect(reason(#"{"id":"a","tenant":"t","mode":"mailbox-usage","options":{"verbose":1}}"#)?.contains("does not take a value") == true)
        // true for a threshold is a flag without its value, not "1".
        guard case .success(let t) = decode(#"{"id":"a","tenant":"t","mode":"mailbox-usage","options":{"warning-items":true}}"#) else {
            Issue.record("rejected")
            return
        }
        #expect(t.arguments == ["--warning-items"])
        #expect(reason(#"{"id":"a","tenant":"t","mode":"mailbox-usage","options":{"warning-items":null}}"#)?.contains("must be a string, a number or a boolean") == true)
        #expect(reason(#"{"id":"a","tenant":"t","mode":"mailbox-usage","options":{"warning-items":{"a":1}}}"#)?.contains("must be a string, a number or a boolean") == true)
    }

    @Test("a field name twice in one object is refused, escapes resolved (was: the decoder kept the first, a validator in front may read the last: another tenant); the same name in different objects is fine")
    func duplicateKeys() {
        for json in [
            #"{"id":"x","tenant":"victim","mode":"mailbox-usage","tenant":"allowed"}"#,
            #"{"id":"x","tenant":"victim","mode":"mailbox-usage","ten\u0061nt":"allowed"}"#,
            #"{"id":"x","tenant":"t","mode":"mailbox-usage","options":{"warning-items":"1","warning-items":"2"}}"#,
            #"{"id":"x","tenant":"t","mode":"mailbox-usage","labels":{"host":"a","host":"b"}}"#,
        ] {
            #expect(reason(json)?.contains("a field name appears twice in one object") == true, "\(json)")
            if case .failure(let r) = decode(json) { #expect(r.id == "x", "the id is still echoed") }
        }
        // Not duplicates: one name in two objects, a value equal to a key, braces inside strings.
        guard case .success = decode(#"{"id":"tenant","tenant":"t","mode":"mailbox-usage","labels":{"tenant":"{\"tenant\":1}","mode":"x"},"options":{"verbose":true}}"#) else {
            Issue.record("refused")
            return
        }
    }

    @Test("nesting just under the decoder's limit (500 levels of arrays in a label) is refused cleanly, not by exhausting the stack")
    func nearLimitNesting() {
        let json = #"{"id":"a","tenant":"t","mode":"mailbox-usage","labels":"# + String(repeating: "[", count: 500) + String(repeating: "]", count: 500) + "}"
        #expect(reason(json)?.contains("'labels' must be an object of strings") == true)
    }

    @Test("a request nested 100,000 levels deep is refused as not valid JSON, without exhausting the stack")
    func deepNesting() {
        let deep = #"{"id":"a","tenant":"t","mode":"mailbox-usage","labels":"# + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}"
        guard case .failure(let r) = decode(deep, max: 1 << 20) else {
            Issue.record("accepted")
            return
        }
        #expect(r.reason.contains("not valid JSON"), "\(r.reason)")
    }

    @Test("args are taken as they are")
    func args() throws {
        guard case .success(let r) = decode(#"{"id":"a","tenant":"t","mode":"email-activity","args":["--filter-counters=.*","--warning-status=%{used} > 1000"]}"#) else {
            Issue.record("rejected")
            return
        }
        #expect(r.arguments == ["--filter-counters=.*", "--warning-status=%{used} > 1000"])
    }

    @Test("bad input is refused with a reason, keeping the id when readable", arguments: [
        ("not json", "not valid JSON"),
        ("[1,2]", "must be a JSON object"),
        (#"{"tenant":"t","mode":"email-activity"}"#, "'id' is required"),
        (#"{"id":5,"tenant":"t","mode":"email-activity"}"#, "'id' is required and must be a string"),
        (#"{"id":"a","mode":"email-activity"}"#, "'tenant' is required"),
        (#"{"id":"a","tenant":"t"}"#, "'mode' is required"),
        (#"{"id":"a","tenant":"t","mode":"teams-activity"}"#, "unknown mode (not shown)"),
        (#"{"id":"a","tenant":"t","mode":"email-activity","colour":"red"}"#, "unknown field (not shown)"),
        (#"{"id":"a","tenant":"t","mode":"email-activity","clientSecret":"x"}"#, "secrets belong to the worker"),
        (#"{"id":"a","tenant":"t","mode":"email-activity","options":{"client-secret":"x"}}"#, "option '--client-secret' is not allowed"),
        (#"{"id":"a","tenant":"t","mode":"email-activity","args":["--graph-endpoint=http://evil"]}"#, "option '--graph-endpoint' is not allowed"),
        (#"{"id":"a","tenant":"t","mode":"email-activity","args":["--login-endpoint","http://evil"]}"#, "option '--login-endpoint' is not allowed"),
        (#"{"id":"a","tenant":"t","mode":"email-activity","options":{"statefile-dir":"/tmp"}}"#, "option '--statefile-dir' is not allowed"),
        (#"{"id":"a","tenant":"t","mode":"email-activity","options":{"filter-user":["x"]}}"#, "must be a string, a number or a boolean"),
        (#"{"id":"a","tenant":"t","mode":"email-activity","args":"--verbose"}"#, "'args' must be an array of strings"),
        (#"{"id":"a","tenant":"t","mode":"email-activity","options":{},"args":[]}"#, "either 'options' or 'args'"),
        (#"{"id":"a","tenant":"t","mode":"email-activity","deadline":"tomorrow"}"#, "RFC 3339"),
        (#"{"id":"a","tenant":"t","mode":"email-activity","labels":{"n":1}}"#, "'labels' must be an object of strings"),
        // Was accepted as any short text without control characters.
        (#"{"id":"a","tenant":"t","mode":"email-activity","replyTo":"results topic"}"#, "'replyTo' must be a Kafka topic name"),
        (#"{"id":"a","tenant":"t","mode":"email-activity","replyTo":".."}"#, "'replyTo' must be a Kafka topic name"),
        (#"{"id":"","tenant":"t","mode":"email-activity"}"#, "'id' must be 1 to 256 bytes"),
    ])
    func rejected(json: String, expected: String) {
        let r = reason(json)
        #expect(r?.contains(expected) == true, "\(r ?? "accepted")")
        #expect(r?.contains("evil") != true, "no values echoed")
    }

    @Test("boundaries: id, tenant and label sizes at, under and over their limits; no control characters")
    func boundaries() {
        func req(id: String = "a", tenant: String = "t", labels: String = "{}") -> String {
            #"{"id":"\#(id)","tenant":"\#(tenant)","mode":"email-activity","labels":\#(labels)}"#
        }
        let idAt = String(repeating: "i", count: CheckRequestDecoder.maxIdBytes)
        #expect(reason(req(id: idAt)) == nil)
        #expect(reason(req(id: idAt + "i"))?.contains("'id' must be 1 to 256 bytes") == true)
        // Bytes, not characters: 129 two-byte characters are 258 bytes.
        #expect(reason(req(id: String(repeating: "é", count: 129))) != nil)
        #expect(reason(req(id: "a\\nb")) != nil, "a newline in an id")
        #expect(reason(req(tenant: String(repeating: "t", count: CheckRequestDecoder.maxTenantBytes))) == nil)
        #expect(reason(req(tenant: String(repeating: "t", count: CheckRequestDecoder.maxTenantBytes + 1))) != nil)
        func labels(_ n: Int, value: String = "v") -> String {
            "{" + (0..<n).map { #""k\#($0)":"\#(value)""# }.joined(separator: ",") + "}"
        }
        #expect(reason(req(labels: labels(CheckRequestDecoder.maxLabels))) == nil)
        #expect(reason(req(labels: labels(CheckRequestDecoder.maxLabels + 1)))?.contains("more than the limit") == true)
        #expect(reason(req(labels: labels(1, value: String(repeating: "v", count: CheckRequestDecoder.maxLabelValueBytes)))) == nil)
        #expect(reason(req(labels: labels(1, value: String(repeating: "v", count: CheckRequestDecoder.maxLabelValueBytes + 1)))) != nil)
        #expect(reason(req(labels: #"{"host":"a\nPROCESS_HOST_CHECK_RESULT"}"#)) != nil, "a newline in a label")
        #expect(reason(req(labels: #"{"ho st":"a"}"#)) != nil, "a label key with a space")
    }

    @Test("option keys holding '=' cannot smuggle options past the option table")
    func smuggling() {
        let cases = [
            #"{"id":"a","tenant":"t","mode":"email-activity","options":{"mode=mailbox-usage":true}}"#,
            #"{"id":"a","tenant":"t","mode":"email-activity","options":{"login-endpoint=http://x":true}}"#,
            #"{"id":"a","tenant":"t","mode":"email-activity","options":{"client-secret=hunter2":"x"}}"#,
            #"{"id":"a","tenant":"t","mode":"email-activity","args":["--mode=mailbox-usage"]}"#,
            #"{"id":"a","tenant":"t","mode":"email-activity","args":["--time-budget=600"]}"#,
            #"{"id":"a","tenant":"t","mode":"email-activity","options":{"timeout":"600"}}"#,
            #"{"id":"a","tenant":"t","mode":"email-activity","args":["client-secret=hunter2"]}"#,
            #"{"id":"a","tenant":"t","mode":"email-activity","args":["--help"]}"#,
        ]
        for json in cases {
            let r = reason(json)
            #expect(r != nil, "accepted: \(json)")
            #expect(r?.contains("hunter2") != true && r?.contains("http://x") != true && r?.contains("mailbox-usage") != true, "\(r ?? "")")
        }
    }

    @Test("traceparent: only the W3C shape is kept")
    func traceparentShape() {
        #expect(CheckRequestDecoder.isTraceparent(Array("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".utf8)))
        #expect(!CheckRequestDecoder.isTraceparent(Array("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01".utf8)))
        #expect(!CheckRequestDecoder.isTraceparent(Array("00-abc-01".utf8)))
        #expect(!CheckRequestDecoder.isTraceparent(Array(repeating: UInt8(ascii: "0"), count: 1_000_000)))
        // W3C: version 00 only (ff is invalid, later versions are not parsed here); an all-zero
        // trace id or parent id is invalid (swift-otel's propagator would refuse it and log the
        // whole carrier).
        #expect(!CheckRequestDecoder.isTraceparent(Array("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".utf8)))
        #expect(!CheckRequestDecoder.isTraceparent(Array("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".utf8)))
        #expect(!CheckRequestDecoder.isTraceparent(Array("00-00000000000000000000000000000000-00f067aa0ba902b7-01".utf8)))
        #expect(!CheckRequestDecoder.isTraceparent(Array("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01".utf8)))
        #expect(CheckRequestDecoder.isTraceparent(Array("00-00000000000000000000000000000001-0000000000000001-00".utf8)))
    }

    @Test("an oversized request is refused before parsing, keeping its id from the header or the first bytes")
    func oversizedKeepsId() {
        let big = #"{"id":"big-1","tenant":"t","mode":"email-activity","labels":{"x":""# + String(repeating: "x", count: 70_000) + #""}}"#
        guard case .failure(let r) = CheckRequestDecoder.decode(Array(big.utf8), maxBytes: 65_536) else { Issue.record("accepted"); return }
        #expect(r.id == "big-1")
        guard case .failure(let h) = CheckRequestDecoder.decode(Array(big.utf8), maxBytes: 65_536, headerId: "from-header") else { return }
        #expect(h.id == "from-header")
    }

    @Test("an oversized request is refused before parsing")
    func oversized() {
        let big = #"{"id":"a","tenant":"t","mode":"email-activity","labels":{"x":""# + String(repeating: "x", count: 70_000) + #""}}"#
        #expect(reason(big)?.contains("exceeds the limit") == true)
    }

    @Test("the id is recovered from a body that is not JSON")
    func recoverId() {
        guard case .failure(let r) = decode(#"{"id":"req-77","tenant":"t", oops}"#) else {
            Issue.record("accepted")
            return
        }
        #expect(r.id == "req-77")
    }

    @Test("a refused request still echoes id, tenant and labels")
    func echoes() {
        guard case .failure(let r) = decode(#"{"id":"x1","tenant":"t","mode":"nope","labels":{"host":"h"}}"#) else {
            Issue.record("accepted")
            return
        }
        #expect(r.id == "x1" && r.tenant == "t" && r.labels == ["host": "h"])
    }

    @Test("deadline in RFC 3339 with or without fractional seconds")
    func deadline() {
        guard case .success(let a) = decode(#"{"id":"a","tenant":"t","mode":"email-activity","deadline":"2026-11-29T03:00:00Z"}"#),
              case .success(let b) = decode(#"{"id":"a","tenant":"t","mode":"email-activity","deadline":"2026-11-29T03:00:00.500+01:00"}"#)
        else {
            Issue.record("rejected")
            return
        }
        #expect(a.deadline == RFC3339.parse("2026-11-29T03:00:00Z"))
        #expect(b.deadline != nil)
    }

    @Test("a request encodes to JSON that decodes to itself")
    func roundTrip() {
        let r = CheckRequest(id: "id-1", tenant: "contoso", mode: .emailActivity, arguments: ["--verbose"],
                             deadline: RFC3339.parse("2030-01-01T00:00:00Z"), labels: ["host": "h"])
        guard case .success(let back) = CheckRequestDecoder.decode(r.encoded(), maxBytes: 65_536) else {
            Issue.record("rejected")
            return
        }
        #expect(back == r)
    }
}

@Suite("Offset tracking")
struct OffsetTrackerTests {
    let tp = TopicPartition("requests", 0)

    @Test("only the highest contiguous completed offset is committable")
    func contiguous() throws {
        var t = OffsetTracker()
        t.assign([tp])
        let first = t.begin(tp, offset: 10)
        let g = try #require(first)
        _ = t.begin(tp, offset: 11)
        _ = t.begin(tp, offset: 12)
        #expect(t.complete(tp, offset: 12, generation: g) == nil)
        #expect(t.complete(tp, offset: 11, generation: g) == nil)
        #expect(t.complete(tp, offset: 10, generation: g) == 13)
        #expect(t.uncommitted == 0)
    }

    @Test("a record of a partition that is not assigned is not begun (was: it created state for it)")
    func unassigned() {
        var t = OffsetTracker()
        #expect(t.begin(tp, offset: 3) == nil)
        t.assign([tp])
        t.revoke([tp])
        #expect(t.begin(tp, offset: 4) == nil)
        #expect(t.uncommitted == 0)
        #expect(t.assigned.isEmpty)
    }

    @Test("completions from before a revocation are ignored")
    func revoked() throws {
        var t = OffsetTracker()
        t.assign([tp])
        let before = t.begin(tp, offset: 5)
        let old = try #require(before)
        t.revoke([tp])
        t.assign([tp])
        let after = t.begin(tp, offset: 5)
        let new = try #require(after)
        #expect(old != new)
        #expect(t.complete(tp, offset: 5, generation: old) == nil)
        #expect(t.complete(tp, offset: 5, generation: new) == 6)
    }
}

@Suite("Worker configuration")
struct WorkerConfigurationTests {
    @Test("a full configuration with secrets from a file and the environment")
    func full() throws {
        let dir = NSTemporaryDirectory() + "exocheck-config-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "s3cret\n".write(toFile: dir + "/secret", atomically: true, encoding: .utf8)
        let yaml = """
        kafka:
          properties: {bootstrap.servers: "127.0.0.1:9092", security.protocol: plaintext}
          requests: r
          results: s
          group: g
        worker: {concurrency: 8, listen: "127.0.0.1:0", shutdownGraceSeconds: 5}
        graph: {timeoutSeconds: 3, reportCacheSeconds: 60}
        tenants:
          contoso: {tenantId: contoso.onmicrosoft.com, clientId: abc, clientSecretFile: secret}
          fabrikam: {tenantId: f, clientId: def, clientSecretEnv: FAB_SECRET, cloud: usgov}
        """
        let c = try WorkerConfiguration.parse(yaml, baseDirectory: dir, environment: ["FAB_SECRET": "x"])
        #expect(c.kafka.properties["bootstrap.servers"] == "127.0.0.1:9092")
        #expect(c.kafka.requests == "r" && c.kafka.results == "s" && c.kafka.group == "g")
        #expect(c.kafka.deadLetter == "exocheck.requests.DLT")
        #expect(c.worker.concurrency == 8)
        #expect(c.graph.reportCacheSeconds == 60)
        #expect(c.tenants["fabrikam"]?.endpoints.graph == "https://graph.microsoft.us")
        if case .secret(let s)? = c.tenants["contoso"]?.credential { #expect(s == "s3cret") } else { Issue.record("no secret") }
        #expect(c.kafkaConfiguration(bootstrapOverride: "b:1").bootstrapServers == "b:1")
    }

    @Test("secretExpires: an unquoted YAML date, a quoted one or an RFC 3339 date-time; absent means unknown; the warning window defaults to 30 days")
    func secretExpires() throws {
        let yaml = """
        graph: {credentialExpiryWarningDays: 10}
        tenants:
          a: {tenantId: a, clientId: b, clientSecretEnv: X, secretExpires: 2027-06-30}
          q: {tenantId: a, clientId: b, clientSecretEnv: X, secretExpires: "2027-06-30"}
          r: {tenantId: a, clientId: b, clientSecretEnv: X, secretExpires: "2027-06-30T12:00:00Z"}
          n: {tenantId: a, clientId: b, clientSecretEnv: X}
        """
        let c = try WorkerConfiguration.parse(yaml, environment: ["X": "y"])
        #expect(c.graph.credentialExpiryWarningDays == 10)
        #expect(c.tenants["a"]?.credentialExpiry == CredentialExpiry(notAfter: Date(timeIntervalSince1970: 1_814_313_600), source: .secret))
        #expect(c.tenants["q"]?.credentialExpiry == c.tenants["a"]?.credentialExpiry)
        #expect(c.tenants["r"]?.credentialExpiry?.notAfter == Date(timeIntervalSince1970: 1_814_356_800))
        #expect(c.tenants["n"]?.credentialExpiry == nil)
        #expect(try WorkerConfiguration.parse("{}").graph.credentialExpiryWarningDays == 30)
    }

    @Test("configuration errors name the key", arguments: [
        ("kafka: {topics: x}", "kafka.topics"),
        ("worker: {concurrency: 0}", "worker.concurrency"),
        ("tenants: {t: {tenantId: a, clientId: b}}", "tenants.t needs clientSecretFile"),
        ("tenants: {t: {tenantId: a, clientId: b, clientSecretEnv: NOPE}}", "environment variable NOPE is not set"),
        ("tenants: {t: {tenantId: a, clientId: b, clientSecretFile: /nonexistent}}", "tenants.t.clientSecretFile"),
        ("tenants: {t: {tenantId: a, clientId: b, clientSecretEnv: X, cloud: mars}}", "tenants.t.cloud"),
        ("tenants: {t: {clientId: b, clientSecretEnv: X}}", "tenants.t.tenantId is required"),
        ("colour: red", "'colour'"),
        ("- a list", "must be a mapping"),
        // Were accepted: a typo in the level fell back to info, an empty tenant was skipped.
        ("log: {level: verbose}", "log.level must be one of trace, debug, info"),
        ("tenants: {t: }", "tenants.t is empty"),
        // Credential expiry (issue 12 item 3).
        ("tenants: {t: {tenantId: a, clientId: b, clientSecretEnv: X, secretExpires: soon}}", "tenants.t.secretExpires must be a date such as 2027-06-30"),
        ("tenants: {t: {tenantId: a, clientId: b, federatedTokenFile: /etc/hostname, secretExpires: 2027-01-01}}", "secretExpires applies to clientSecretFile or clientSecretEnv only"),
        // YAML's own timestamp rule would have read this as March 2.
        ("tenants: {t: {tenantId: a, clientId: b, clientSecretEnv: X, secretExpires: 2027-02-30}}", "tenants.t.secretExpires must be a date"),
        ("tenants: {t: {tenantId: a, clientId: b, clientSecretFile: /dev/zero}}", "the file '/dev/zero' is not a regular file"),
        ("tenants: {t: {tenantId: a, clientId: b, clientSecretFile: \"-----BEGIN PRIVATE KEY-----\\nMIIE\"}}", "(a value that is not a file path: not shown)"),
        ("graph: {credentialExpiryWarningDays: 3651}", "graph.credentialExpiryWarningDays must be from 0"),
        ("graph: {credentialExpiryWarningDays: -1}", "graph.credentialExpiryWarningDays must be an integer"),
    ])
    func errors(yaml: String, expected: String) {
        #expect {
            _ = try WorkerConfiguration.parse(yaml, environment: ["X": "y"])
        } throws: { error in
            "\(error)".contains(expected)
        }
    }
}

@Suite("Request schema follows the option table")
struct RequestSchemaTests {
    @Test("the schema refuses exactly the options the option table refuses in requests")
    func schemaMatchesTable() throws {
        let path = ExocheckBinary.packageRoot.appendingPathComponent("schemas/check-request.schema.json")
        let schema = try JSONSerialization.jsonObject(with: Data(contentsOf: path)) as? [String: Any]
        let options = (schema?["properties"] as? [String: Any])?["options"] as? [String: Any]
        let names = ((options?["propertyNames"] as? [String: Any])?["not"] as? [String: Any])?["enum"] as? [String]
        let refused = Set(OptionTable.entries.filter { $0.use != .check }.map(\.name))
        #expect(Set(names ?? []) == refused)
        for name in refused { #expect(OptionTable.requestRefusal(name) != nil, "\(name)") }
        let labels = (schema?["properties"] as? [String: Any])?["labels"] as? [String: Any]
        #expect(labels?["maxProperties"] as? Int == CheckRequestDecoder.maxLabels)
    }
}

@Suite("Error kinds: one closed set for errors, the wire and the schema")
struct ErrorKindTests {
    @Test("the result schema lists exactly the error kinds of CheckErrorKind")
    func schemaMatchesEnum() throws {
        let path = ExocheckBinary.packageRoot.appendingPathComponent("schemas/check-result.schema.json")
        let schema = try JSONSerialization.jsonObject(with: Data(contentsOf: path)) as? [String: Any]
        let error = (schema?["properties"] as? [String: Any])?["error"] as? [String: Any]
        let kind = (error?["properties"] as? [String: Any])?["kind"] as? [String: Any]
        let names = try #require(kind?["enum"] as? [String])
        #expect(Set(names) == Set(CheckErrorKind.allCases.map(\.rawValue)))
        #expect(names.count == CheckErrorKind.allCases.count)
    }

    @Test("a result with an error kind this build does not know is read, not dropped (rolling upgrades); known kinds are typed")
    func unknownKindIsRead() throws {
        let known = CheckResultMessage.Failure(kind: .publish, message: "m")
        let encoded = try JSONEncoder().encode(known)
        #expect(String(decoding: encoded, as: UTF8.self).contains(#""kind":"publish""#))
        #expect(try JSONDecoder().decode(CheckResultMessage.Failure.self, from: encoded).kind == .publish)
        let future = try JSONDecoder().decode(CheckResultMessage.Failure.self, from: Data(#"{"kind":"quota-exceeded","message":"m"}"#.utf8))
        #expect(future.kind == nil)
        #expect(future.kindName == "quota-exceeded")
        #expect(String(decoding: try JSONEncoder().encode(future), as: UTF8.self).contains(#""kind":"quota-exceeded""#))
    }

    @Test("Graph errors use the same kinds")
    func graphKinds() {
        let e = GraphError(.unknownTenant, "x")
        #expect(e.kind.rawValue == "unknown-tenant")
        #expect(CheckErrorKind(rawValue: "unknown-tenant") == GraphError.Kind.unknownTenant)
    }
}

@Suite("Hostile report values")
struct HostileReportValueTests {
    @Test("a 400-digit report value (Inf) becomes a null metric value, and the result still encodes (was a 0-byte record)")
    func infiniteValue() {
        let huge = String(repeating: "9", count: 400)
        let metrics = CheckResultMessage.metrics([Perfdatum(label: "usage", value: "Inf", unit: "B", min: "0", max: huge)])
        #expect(metrics.first?.value == nil)
        #expect(metrics.first?.max == nil)
        let message = CheckResultMessage(
            id: "x", tenant: "t", mode: "mailbox-usage", labels: [:], status: "OK", exitCode: 0, output: "OK", summary: "OK",
            perfdata: metrics, reportDate: "", checkedAt: "2026-01-01T00:00:00Z", durationMs: 1, worker: "w", attempt: 1,
            cache: .init(token: "hit", report: "hit"), error: nil)
        #expect(!message.encoded().isEmpty)
        // The schema requires "value" (number or null): it is written as null, not left out.
        let json = String(decoding: message.encoded(), as: UTF8.self)
        #expect(json.contains(#""value":null"#), "\(json)")
        #expect(!json.contains(#""max""#))
    }
}

@Suite("Result encoding")
struct ResultEncodingTests {
    /// What `JSONEncoder` writes for the result (the reference the hand-written encoder follows).
    static func reference(_ r: CheckResultMessage) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(r)) ?? Data())
    }

    /// A deterministic generator (SplitMix64), so a failure names the seed that made it.
    struct Generator {
        var random: SplitMix64
        init(state: UInt64) { random = SplitMix64(seed: state) }
        mutating func next() -> UInt64 { random.next() }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }

        static let pieces: [String] = [
            "", "a", "Z", "é", "😀", "\u{2028}", "\u{7F}", "/", "\\", "\"", "\u{0}", "\u{1F}", "\t", "\r\n", "\u{8}", "\u{C}", "\u{1B}[31m",
            "mailbox:john@contoso.com", "OK: All mailboxes are ok", "|", "'label'=1;2;3;0;4",
        ]
        mutating func string() -> String {
            (0..<below(6)).map { _ in Self.pieces[below(Self.pieces.count)] }.joined()
        }
        static let numbers: [Double] = [
            0, -0.0, 1, -1, 0.1, 100, 1e21, 1e-7, 5e-324, .greatestFiniteMagnitude, -.greatestFiniteMagnitude, 123_456_789_012_345_678,
            0.000123, 1e16, 12.5, -3.25e-10, 4_294_967_295, 1_048_576.75, 99.99,
        ]
        mutating func number() -> Double {
            below(3) == 0
                ? Double(bitPattern: next()).isFinite ? Double(bitPattern: next() & 0x7FEF_FFFF_FFFF_FFFF) : 1 : Self.numbers[below(Self.numbers.count)]
        }
        mutating func optional<T>(_ make: (inout Generator) -> T) -> T? {
            below(3) == 0 ? nil : make(&self)
        }
    }

    @Test("the hand-written encoder writes exactly JSONEncoder's bytes (sorted keys, escapes, numbers, nulls, optional fields) over 2,000 generated results")
    func handWrittenEncoderMatchesJSONEncoder() {
        var g = Generator(state: 11)
        for seed in 0..<2_000 {
            var labels: [String: String] = [:]
            for _ in 0..<g.below(5) { labels[g.string()] = g.string() }
            let metrics = (0..<g.below(4)).map { _ in
                CheckResultMessage.Metric(
                    label: g.string(), value: g.optional { $0.number() }, unit: g.string(), warning: g.string(), critical: g.string(),
                    min: g.optional { $0.number() }, max: g.optional { $0.number() })
            }
            var r = CheckResultMessage(
                id: g.optional { $0.string() }, tenant: g.optional { $0.string() }, mode: g.optional { $0.string() }, labels: labels,
                status: g.string(), exitCode: g.below(7) - 3, output: g.string(), summary: g.string(), perfdata: metrics,
                reportDate: g.string(), checkedAt: g.string(), durationMs: g.number(), worker: g.string(), attempt: g.below(1_000_000),
                cache: .init(token: g.string(), report: g.string()),
                error: g.optional { .init(kind: .invalidRequest, message: $0.string()) })
            r.reportAgeSeconds = g.optional { Int(truncatingIfNeeded: $0.next()) }
            r.truncated = [nil, false, true][g.below(3)]
            r.warnings = [nil, [], [g.string()], [g.string(), g.string()]][g.below(4)]
            if g.below(4) == 0 { r.error = .init(kind: .graph, message: "x") }
            let mine = r.encoded()
            let reference = Self.reference(r)
            #expect(mine == reference, "seed \(seed): \(String(decoding: mine, as: UTF8.self)) vs \(String(decoding: reference, as: UTF8.self))")
            if mine != reference { return }
        }
    }

    @Test("a number that is not finite fails the whole encoding (empty), as JSONEncoder does")
    func nonFiniteFails() {
        for bad in [Double.nan, .infinity, -.infinity] {
            let r = CheckResultMessage(
                id: "x", tenant: "t", mode: "m", labels: [:], status: "OK", exitCode: 0, output: "", summary: "", perfdata: [],
                reportDate: "", checkedAt: "", durationMs: bad, worker: "w", attempt: 1, cache: .init(token: "none", report: "none"),
                error: nil)
            #expect(r.encoded().isEmpty)
            #expect(Self.reference(r).isEmpty)
        }
    }
}

/// `JSONValue` as it decoded before the attempts were reordered (the reference of
/// `JSONValueOrderTests`).
private enum ReferenceJSONValue: Decodable, Equatable {
    case string(String)
    case number(String)
    case bool(Bool)
    case null
    case array([ReferenceJSONValue])
    case object([String: ReferenceJSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int64.self) {
            self = .number(String(i))
        } else if let d = try? c.decode(Double.self) {
            self = .number(d.description)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([ReferenceJSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: ReferenceJSONValue].self))
        }
    }

    func same(_ v: JSONValue) -> Bool {
        switch (self, v) {
        case (.string(let a), .string(let b)), (.number(let a), .number(let b)): return a == b
        case (.bool(let a), .bool(let b)): return a == b
        case (.null, .null): return true
        case (.array(let a), .array(let b)): return a.count == b.count && zip(a, b).allSatisfy { $0.same($1) }
        case (.object(let a), .object(let b)): return a.count == b.count && a.allSatisfy { k, x in b[k].map { x.same($0) } ?? false }
        default: return false
        }
    }
}

@Suite("JSON tree decoding")
struct JSONValueOrderTests {
    static let scalars = [
        #""s""#, #""""#, #""1""#, #""true""#, #""\u0061\n""#, "0", "-0", "1", "-1", "1.0", "1.5", "1e2", "1E-2", "-1.25e+3", "9223372036854775807",
        "9223372036854775808", "-9223372036854775809", "1e400", "0.1", "true", "false", "null", "123456789012345678901234567890",
    ]

    @Test("the reordered attempts decode every document to the same tree as before (types are disjoint), and refuse the same documents")
    func sameTreeAsBefore() throws {
        var docs: [String] = Self.scalars
        for a in Self.scalars {
            docs.append("[\(a)]")
            docs.append(#"{"k":\#(a)}"#)
            for b in Self.scalars.prefix(4) {
                docs.append("[\(a),\(b),{\"x\":[\(b)]}]")
                docs.append(#"{"a":\#(a),"b":[\#(b),{}],"c":{"d":\#(b)}}"#)
            }
        }
        // Bad documents, and nesting at and past the decoder's limit.
        docs += ["", "[", "{\"a\"}", "[1,]", "{\"a\":1,}", "tru", "01", "1.", "\"\\x\"", "[\"\u{0}\"]"]
        docs += [String(repeating: "[", count: 400) + String(repeating: "]", count: 400)]
        docs += [String(repeating: "[", count: 600) + String(repeating: "]", count: 600)]
        docs += [String(repeating: "{\"a\":", count: 400) + "1" + String(repeating: "}", count: 400)]
        docs += [String(repeating: "{\"a\":", count: 600) + "1" + String(repeating: "}", count: 600)]
        for doc in docs {
            let reference = try? JSONDecoder().decode(ReferenceJSONValue.self, from: Data(doc.utf8))
            let now = try? JSONDecoder().decode(JSONValue.self, from: Data(doc.utf8))
            switch (reference, now) {
            case (nil, nil): break
            case (let r?, let n?): #expect(r.same(n), "\(doc.prefix(80))")
            default: Issue.record("accepted differently: \(doc.prefix(80))")
            }
        }
    }

    @Test("duplicate keys are found with and without escapes, and keys of different objects do not collide")
    func duplicateKeys() {
        #expect(JSONValue.hasDuplicateKeys(Array(#"{"a":1,"a":2}"#.utf8)))
        #expect(JSONValue.hasDuplicateKeys(Array(#"{"a":1,"\u0061":2}"#.utf8)))
        #expect(JSONValue.hasDuplicateKeys(Array(#"{"é":1,"\u00e9":2}"#.utf8)))
        #expect(!JSONValue.hasDuplicateKeys(Array(#"{"a":{"a":1},"b":[{"a":2}]}"#.utf8)))
        #expect(!JSONValue.hasDuplicateKeys(Array(#"{"a\"":1,"a":2}"#.utf8)))
    }
}

@Suite("Common JSON subset")
struct CommonJSONTests {
    /// Random JSON-ish documents: mostly in the common subset, often just outside it.
    struct Maker {
        var g: ResultEncodingTests.Generator
        static let strings = [
            #""a""#, #""""#, #""host-01.example""#, #""é😀""#, "\"e\u{301}\"", "\"\u{E9}\"", #""\n""#, #""\u0041""#, #""a\"b""#, "\"\u{7F}\"", "\"\u{1}\"", "\"tab\tx\"",
        ]
        static let numbers = ["0", "1", "-1", "42", "-0", "01", "1.5", "1e3", "123456789012345678", "1234567890123456789", "-", "1.", ".5"]
        static let spaces = ["", " ", "\n", "\t", "\r\n", "\u{C}"]

        mutating func space() -> String { Self.spaces[g.below(g.below(8) == 0 ? Self.spaces.count : 2)] }
        mutating func value(_ depth: Int) -> String {
            switch g.below(depth > 34 ? 4 : 7) {
            case 0: return Self.strings[g.below(Self.strings.count)]
            case 1: return Self.numbers[g.below(Self.numbers.count)]
            case 2: return ["true", "false", "null", "tru", "nul"][g.below(g.below(6) == 0 ? 5 : 3)]
            case 3: return Self.strings[g.below(3)]
            case 4: return "[" + (0..<g.below(3)).map { _ in space() + value(depth + 1) + space() }.joined(separator: ",") + "]"
            default: return object(depth + 1)
            }
        }
        mutating func object(_ depth: Int) -> String {
            let keys = ["a", "b", "id", "tenant", "a", "\\u0061", "\u{E9}", "e\u{301}"]
            let members = (0..<g.below(4)).map { _ in "\"\(keys[g.below(g.below(4) == 0 ? keys.count : 4)])\"" + space() + ":" + space() + value(depth) }
            return "{" + space() + members.joined(separator: "," + space()) + space() + "}"
        }
    }

    /// Equal to the byte: `JSONValue`'s `==` compares strings by canonical equivalence.
    static func sameBytes(_ a: JSONValue?, _ b: JSONValue?) -> Bool {
        switch (a, b) {
        case (nil, nil): return true
        case (.string(let x)?, .string(let y)?), (.number(let x)?, .number(let y)?): return Array(x.utf8) == Array(y.utf8)
        case (.bool(let x)?, .bool(let y)?): return x == y
        case (.null?, .null?): return true
        case (.array(let x)?, .array(let y)?): return x.count == y.count && zip(x, y).allSatisfy { sameBytes($0, $1) }
        case (.object(let x)?, .object(let y)?):
            let xs = x.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            let ys = y.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            return xs.count == ys.count && zip(xs, ys).allSatisfy { Array($0.key.utf8) == Array($1.key.utf8) && sameBytes($0.value, $1.value) }
        default: return false
        }
    }

    static func decoderTree(_ bytes: [UInt8]) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    }

    @Test("whatever the common reader accepts, JSONDecoder reads as the same tree and without a repeated key; the rest is left to the decoder (8,000 generated and mutated documents)")
    func commonSubsetMatchesDecoder() {
        var maker = Maker(g: .init(state: 5))
        var common = 0
        var total = 0
        for seed in 0..<4_000 {
            let doc = Array((maker.space() + maker.object(0) + maker.space()).utf8)
            var mutated = doc
            if !mutated.isEmpty {
                let at = maker.g.below(mutated.count)
                switch maker.g.below(4) {
                case 0: mutated[at] = UInt8(truncatingIfNeeded: maker.g.next())
                case 1: mutated.remove(at: at)
                case 2: mutated.insert([0xC3, 0xFF, 0x22, 0x5C, 0x7D, 0x2C, 0x00, 0xEF][maker.g.below(8)], at: at)
                default: mutated = Array(mutated.prefix(at))
                }
            }
            for bytes in [doc, mutated] {
                total += 1
                guard let mine = CommonJSON.parse(bytes) else { continue }
                common += 1
                let reference = Self.decoderTree(bytes)
                #expect(Self.sameBytes(reference, mine), "seed \(seed): \(String(decoding: bytes, as: UTF8.self))")
                #expect(!JSONValue.hasDuplicateKeys(bytes), "seed \(seed): \(String(decoding: bytes, as: UTF8.self))")
                if !Self.sameBytes(reference, mine) { return }
            }
        }
        // Not vacuous: a good share of the documents took the common path.
        #expect(common * 4 > total, "\(common) of \(total)")
    }

    @Test("the edges of the subset: nesting up to maxDepth, 18-digit integers, UTF-8; -0, 01, escapes, floats, a BOM, a repeated key, a top-level array and trailing bytes go to the decoder")
    func edges() {
        func deep(_ n: Int) -> [UInt8] { Array((String(repeating: #"{"a":"#, count: n) + "1" + String(repeating: "}", count: n)).utf8) }
        #expect(CommonJSON.parse(deep(CommonJSON.maxDepth)) == Self.decoderTree(deep(CommonJSON.maxDepth)))
        #expect(CommonJSON.parse(deep(CommonJSON.maxDepth + 1)) == nil)
        #expect(CommonJSON.parse(Array(#"{"n":123456789012345678,"m":-5,"z":0,"s":"é😀","t":true,"f":false,"x":null,"l":[1,[]],"o":{}}"#.utf8)) == Self.decoderTree(Array(#"{"n":123456789012345678,"m":-5,"z":0,"s":"é😀","t":true,"f":false,"x":null,"l":[1,[]],"o":{}}"#.utf8)))
        for outside in [
            #"{"n":-0}"#, #"{"n":01}"#, #"{"n":1.0}"#, #"{"n":1e2}"#, #"{"n":1234567890123456789}"#, #"{"s":"\u0041"}"#, #"{"s":"a\nb"}"#,
            "\u{FEFF}{}", #"{"a":1,"a":2}"#, "[1]", "{} x", "{", "",
        ] {
            #expect(CommonJSON.parse(Array(outside.utf8)) == nil, "\(outside)")
        }
        #expect(CommonJSON.parse([0x7B, 0x22, 0xC3, 0x22, 0x3A, 0x31, 0x7D]) == nil)  // invalid UTF-8 in a key
    }

    @Test("a request in the common form decodes to the same request as through the decoder, and a repeated key is still refused")
    func sameRequest() {
        let json = #"{"id":"r-1","tenant":"contoso.onmicrosoft.com","mode":"mailbox-usage","options":{"warning-items":5,"verbose":true,"filter-counters":"^total"},"labels":{"host":"h","service":"s"}}"#
        #expect(CommonJSON.parse(Array(json.utf8)) != nil)
        guard case .success(let r) = CheckRequestDecoder.decode(Array(json.utf8), maxBytes: 65_536) else {
            Issue.record("rejected")
            return
        }
        #expect(r.arguments == ["--filter-counters=^total", "--verbose", "--warning-items=5"])
        #expect(r.labels == ["host": "h", "service": "s"])
        guard case .failure(let rejection) = CheckRequestDecoder.decode(Array(#"{"id":"r-2","tenant":"a","tenant":"b","mode":"mailbox-usage"}"#.utf8), maxBytes: 65_536) else {
            Issue.record("a repeated key was accepted")
            return
        }
        #expect(rejection.reason.contains("appears twice"))
    }
}

@Suite("A result's summary")
struct ResultSummaryTests {
    @Test("summary: trailing spaces are trimmed by Characters, as before the byte fast path; an output that does not end in a space is kept as is")
    func trailingSpaces() {
        #expect(CheckProcessor.summary("OK: all good  ") == "OK: all good")
        #expect(CheckProcessor.summary("OK: all good") == "OK: all good")
        #expect(CheckProcessor.summary("   ") == "")
        #expect(CheckProcessor.summary("") == "")
        // A space that is not a Character of its own is not trimmed.
        #expect(CheckProcessor.summary("a \u{301}") == "a \u{301}")
        #expect(CheckProcessor.summary("x\u{0600} ") == "x\u{0600} ", "U+0600 (Prepend) and the space form one Character")
        #expect(CheckProcessor.summary("x\u{0600} y  ") == "x\u{0600} y")
        #expect(CheckProcessor.summary("tab\t ") == "tab\t")
        #expect(CheckProcessor.summary("x\u{0600}  ") == "x\u{0600} ", "one space is its own Character, the other is not")
        #expect(CheckProcessor.summary("é  ") == "é")
        #expect(CheckProcessor.summary("e\u{301} ") == "e\u{301}")
    }

    @Test("summary equals trimming by Characters on generated strings of spaces, ASCII, combining marks and Prepend scalars")
    func againstCharacters() {
        func reference(_ short: String) -> String {
            var s = Substring(short)
            while s.last == " " { s = s.dropLast() }
            return String(s)
        }
        let pieces = [" ", " ", "a", "\u{0600}", "\u{301}", "é", "\u{1F600}", "\t", "\r\n", "\u{200D}", "\u{0903}"]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let text = (0..<Int.random(in: 0...6, using: &generator)).map { _ in pieces.randomElement(using: &generator) ?? "" }.joined()
            #expect(CheckProcessor.summary(text) == reference(text), "\(Array(text.unicodeScalars))")
        }
    }
}

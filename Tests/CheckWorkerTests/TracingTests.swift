@testable import CheckWorker
import ExchangeChecks
import ExocheckTestSupport
import Foundation
import Hummingbird
import Kafka
import Logging
import Testing

/// OpenTelemetry spans (issue 12 item 5, docs/tracing.md): a worker exports consume, fetch, token,
/// parse, evaluate and publish spans over OTLP/HTTP when the standard OTEL_* variables ask for it,
/// continuing a request's well-formed `traceparent` and never echoing another.
@Suite("Traces (OpenTelemetry)", .serialized)
struct TracingTests {
    // MARK: - Pure rules

    @Test("export settings: off unless an OTLP endpoint or OTEL_TRACES_EXPORTER=otlp is set; the exporter gets only checked, normalised variables; what swift-otel would crash, hang or spin on is refused by name, never echoing the value")
    func settings() throws {
        func resolve(_ env: [String: String]) throws -> TraceExportSettings { try TraceExportSettings.resolve(env, serviceInstance: "w-1") }
        func exporter(_ env: [String: String]) throws -> TraceExportSettings.Exporter? {
            if case .otlp(let e) = try resolve(env) { return e }
            return nil
        }
        func exporterEnvironment(_ env: [String: String]) throws -> [String: String]? { try exporter(env)?.environment }
        #expect(try resolve([:]) == .off)
        #expect(try resolve(["OTEL_SERVICE_NAME": "w"]) == .off)
        #expect(try resolve(["OTEL_EXPORTER_OTLP_ENDPOINT": "   "]) == .off)
        #expect(try resolve(["OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"]) == .off)
        #expect(try resolve(["OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"]) == .off)
        #expect(try resolve(["OTEL_TRACES_EXPORTER": " OTLP "]).isOn)
        let defaults = try #require(try exporter(["OTEL_TRACES_EXPORTER": "otlp"]))
        #expect(defaults.environment == ["OTEL_RESOURCE_ATTRIBUTES": "service.instance.id=w-1"])
        #expect(defaults.collector == "http://localhost:4318/v1/traces" && defaults.headers.isEmpty && defaults.timeout == .seconds(10))
        // swift-otel exports to the relay, with room to answer after the collector's time limit.
        #expect(
            defaults.environment(relayPort: 4000) == [
                "OTEL_RESOURCE_ATTRIBUTES": "service.instance.id=w-1", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4000/v1/traces",
                "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "12000",
            ])
        // Normalised: the signal's own keys, lower-case protocol, trimmed pairs; propagators, compression
        // and other signals' variables are not passed on.
        let fullExporter = try exporter([
            "OTEL_EXPORTER_OTLP_ENDPOINT": " http://collector:4318 ", "OTEL_EXPORTER_OTLP_PROTOCOL": "HTTP/JSON",
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization = Bearer x , x-tenant=a", "OTEL_PROPAGATORS": "tracecontext,baggage,b3",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", "OTEL_LOGS_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "ParentBased_TraceIdRatio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25", "OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "3000",
        ])
        // The collector's URL, headers and time limit are the relay's; swift-otel never sees them.
        #expect(fullExporter?.collector == "http://collector:4318/v1/traces" && fullExporter?.timeout == .seconds(3))
        #expect(fullExporter?.headers == [.init(name: "authorization", value: "Bearer x"), .init(name: "x-tenant", value: "a")])
        #expect(
            fullExporter?.environment == [
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.25", "OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "100",
                "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,service.instance.id=w-1",
            ])
        // An empty signal key falls back to the shared one (swift-otel would have used the empty one).
        #expect(try exporter(["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "", "OTEL_EXPORTER_OTLP_ENDPOINT": "https://c/"])?.collector == "https://c/v1/traces")
        #expect(try exporter(["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://c/custom", "OTEL_EXPORTER_OTLP_ENDPOINT": "https://d"])?.collector == "https://c/custom")
        #expect(try exporterEnvironment(["OTEL_TRACES_EXPORTER": "otlp", "OTEL_RESOURCE_ATTRIBUTES": "service.instance.id=mine"])?["OTEL_RESOURCE_ATTRIBUTES"] == "service.instance.id=mine")

        func refusal(_ env: [String: String]) -> String? {
            do { _ = try TraceExportSettings.resolve(env, serviceInstance: "w-1"); return nil } catch { return error.description }
        }
        let otlp = ["OTEL_TRACES_EXPORTER": "otlp"]
        #expect(refusal(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"])?.contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported") == true)
        #expect(refusal(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"])?
            .contains("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc") == true)
        #expect(refusal(otlp.merging(["OTEL_EXPORTER_OTLP_PROTOCOL": "thrift-s3cret"]) { $1 }).map { $0.contains("must be http/protobuf or http/json") && !$0.contains("s3cret") } == true)
        #expect(refusal(["OTEL_TRACES_EXPORTER": "zipkin"])?.contains("OTEL_TRACES_EXPORTER must be otlp or none") == true)
        #expect(refusal(["OTEL_TRACES_EXPORTER": "otlp,console"]) != nil)
        for endpoint in ["ftp://user:pw-s3cret@collector", "http://user:pw-s3cret@collector:4318", "http://coll ector", "http://", "http://c\n.example",
                         "http://" + String(repeating: "a", count: 5000)] {
            let text = refusal(["OTEL_EXPORTER_OTLP_ENDPOINT": endpoint])
            #expect(text.map { $0.contains("OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL") && !$0.contains("s3cret") } == true, "\(endpoint)")
        }
        // Headers: a control character (a wrapped base64 credential) would make every export fail
        // with the value in the error; refused, never echoed.
        for headers in ["authorization=Bearer s3cret\nmore", "authorization", "=v", "a b=c", "k=", "k=v\u{7F}"] {
            let text = refusal(otlp.merging(["OTEL_EXPORTER_OTLP_HEADERS": headers]) { $1 })
            #expect(text.map { $0.contains("OTEL_EXPORTER_OTLP_HEADERS must be a list of name=value pairs") && !$0.contains("s3cret") } == true, "\(headers)")
        }
        // swift-otel stops the process on these samplers; the others are bounded here.
        for sampler in ["jaeger_remote", "parentbased_jaeger_remote", "xray", "nonsense"] {
            #expect(refusal(otlp.merging(["OTEL_TRACES_SAMPLER": sampler]) { $1 })?.contains("OTEL_TRACES_SAMPLER must be one of") == true)
        }
        #expect(refusal(otlp.merging(["OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"]) { $1 })?.contains("OTEL_TRACES_SAMPLER_ARG") == true)
        for (key, value) in [("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0"), ("OTEL_BSP_SCHEDULE_DELAY", "0"), ("OTEL_BSP_MAX_QUEUE_SIZE", "9223372036854775807"),
                             ("OTEL_BSP_EXPORT_TIMEOUT", "-1"), ("OTEL_EXPORTER_OTLP_TIMEOUT", "99999999999"), ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096")] {
            #expect(refusal(otlp.merging([key: value]) { $1 })?.contains("\(key) must be a whole number") == true, "\(key)=\(value)")
        }
        #expect(refusal(otlp.merging(["OTEL_SERVICE_NAME": "a\u{1B}[31m"]) { $1 })?.contains("OTEL_SERVICE_NAME") == true)
        #expect(refusal(otlp.merging(["OTEL_EXPORTER_OTLP_CERTIFICATE": "/etc/ca.pem"]) { $1 })?.contains("OTEL_EXPORTER_OTLP_CERTIFICATE is not supported") == true)
        #expect(refusal(otlp.merging(["OTEL_RESOURCE_ATTRIBUTES": "k=v\tx,bad"]) { $1 })?.contains("OTEL_RESOURCE_ATTRIBUTES") == true)
    }

    @Test("trace context: only a well-formed traceparent reaches the propagator; tracestate and baggage are ignored; with tracing off a result carries the request's well-formed traceparent and nothing else")
    func requestContext() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let extractor = RequestTrace.Extractor()
        #expect(extractor.extract(key: "traceparent", from: [KafkaHeader("traceparent", good)]) == good)
        #expect(extractor.extract(key: "traceparent", from: [KafkaHeader("traceparent", good), KafkaHeader("traceparent", "hunter2")]) == nil)
        #expect(extractor.extract(key: "traceparent", from: [KafkaHeader("traceparent", "00-ZZ-hunter2-01")]) == nil)
        #expect(extractor.extract(key: "traceparent", from: [KafkaHeader(name: "traceparent", value: nil)]) == nil)
        #expect(extractor.extract(key: "traceparent", from: [KafkaHeader("traceparent", String(repeating: "0", count: 600_000))]) == nil)
        #expect(extractor.extract(key: "tracestate", from: [KafkaHeader("tracestate", "vendor=secret")]) == nil)
        #expect(extractor.extract(key: "baggage", from: [KafkaHeader("baggage", "user=jane")]) == nil)

        var carrier = [KafkaHeader("traceparent", "old")]
        let injector = RequestTrace.Injector()
        injector.inject(good, forKey: "traceparent", into: &carrier)
        #expect(carrier == [KafkaHeader("traceparent", good)])
        injector.inject("vendor=x", forKey: "tracestate", into: &carrier)
        injector.inject("not-a-traceparent", forKey: "traceparent", into: &carrier)
        #expect(carrier == [KafkaHeader("traceparent", good)])

        // No tracer is bootstrapped in the test process: the no-op instrument injects nothing.
        #expect(RequestTrace.resultTraceparent(request: [KafkaHeader("traceparent", good)]) == good)
        #expect(RequestTrace.resultTraceparent(request: [KafkaHeader("traceparent", "hunter2")]) == nil)
        #expect(RequestTrace.resultTraceparent(request: []) == nil)
    }

    @Test("the relay hands the exporter a Retry-After of whole seconds up to 60, nothing else (swift-otel 1.6.0 trapped on a huge one)")
    func relayRetryAfter() {
        #expect(OTLPRelay.retryAfter("5") == "5")
        #expect(OTLPRelay.retryAfter("0") == "0")
        #expect(OTLPRelay.retryAfter("61") == "60")
        #expect(OTLPRelay.retryAfter("9999999999") == "60")
        for hostile in [nil, "", "9223372036854775807", "99999999999", "-1", "+5", " 5", "5.0", "Wed, 21 Oct 2026 07:28:00 GMT", "٣"] {
            #expect(OTLPRelay.retryAfter(hostile) == nil, "\(hostile ?? "nil")")
        }
    }

    @Test("the worker's diagnostic logger withholds the values swift-otel logs for environment variables")
    func withheldDiagnostics() {
        var h = JSONLogHandler(label: "exocheck.otel")
        h.withheldMetadata = TraceExportSettings.diagnosticMetadataWithheld
        let line = h.line(
            level: .info, message: "Configuration updated from environment",
            metadata: ["environment_key": "OTEL_EXPORTER_OTLP_HEADERS", "environment_value": "authorization=Bearer s3cret", "new_value": "s3cret"],
            error: nil, time: Date())
        #expect(line.contains("OTEL_EXPORTER_OTLP_HEADERS") && line.contains("<withheld>") && !line.contains("s3cret"), "\(line)")
    }

    // MARK: - End to end

    @Test("a worker exports consume, fetch, token, parse, evaluate and publish spans to a loopback OTLP endpoint: a request's traceparent is continued and its result carries the publish span; a malformed one starts a new trace and is never echoed; refused requests are error spans; OTLP headers reach the collector but never the log")
    func endToEnd() async throws {
        let receiver = try await OTLPReceiver.start()
        let fleet = try await WorkerFleet(tenants: 1, users: 5)
        do {
            try await fleet.use {
                let credential = "Bearer otlp-s3cret-7f"
                let w = try fleet.startWorker(
                    "w",
                    environment: [
                        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.baseURL, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
                        "OTEL_SERVICE_NAME": "exocheck-tracing-test", "OTEL_BSP_SCHEDULE_DELAY": "100",
                        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=\(credential)", "OTEL_LOG_LEVEL": "debug",
                        // The OpenTelemetry Operator's default: swift-otel stops the process on
                        // baggage or b3; the worker does not pass it on.
                        "OTEL_PROPAGATORS": "tracecontext,baggage,b3",
                    ])
                #expect(await fleet.waitForAssignments(1))
                let sink = ResultSink()
                // One request first, so that it is the one that downloads the report (and asks
                // for the token): the others find the report in the cache.
                let traced = traceparent(for: "r-traced")
                try await fleet.submit([CheckRequest(id: "r-traced", tenant: "t0", mode: .mailboxUsage)])
                #expect(try await fleet.collect(into: sink, timeout: .seconds(60)) { await $0.ids.contains("r-traced") })
                let malformed = "00-ZZZZ3577b34da6a3ce929d0e0e4736-hunter2aa0ba902-01"
                try await fleet.submit(
                    [
                        CheckRequest(id: "r-malformed", tenant: "t0", mode: .mailboxUsage),
                        CheckRequest(id: "r-none", tenant: "t0", mode: .mailboxUsage),
                        CheckRequest(id: "r-invalid", tenant: "t0", mode: .mailboxUsage, arguments: ["--no-such-option"]),
                        CheckRequest(id: "jane.doe@t0.example-daily", tenant: "t0", mode: .emailActivity),
                        CheckRequest(id: "r-zero", tenant: "t0", mode: .mailboxUsage),
                    ],
                    headers: { r in
                        switch r.id {
                        case "r-malformed": [KafkaHeader("traceparent", malformed), KafkaHeader("tracestate", "vendor=hunter2")]
                        case "r-none": []
                        // W3C-shaped but invalid (an all-zero trace id): swift-otel's propagator
                        // would refuse it and log every header of the record.
                        case "r-zero": [KafkaHeader("traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01")]
                        default: [KafkaHeader("traceparent", traceparent(for: r.id))]
                        }
                    })
                let ids: Set<String> = ["r-traced", "r-malformed", "r-none", "r-invalid", "<user>@t0.example-daily", "r-zero"]
                #expect(try await fleet.collect(into: sink, timeout: .seconds(60)) { ids.subtracting(["<user>@t0.example-daily"]).union(["jane.doe@t0.example-daily"]).isSubset(of: await $0.ids) })
                let exported = await eventually(timeout: .seconds(30)) {
                    let consumed = await receiver.spans().filter { $0.name == "consume" }.compactMap { $0.attributes["exocheck.request.id"] }
                    return ids.isSubset(of: Set(consumed))
                }
                let spans = await receiver.spans()
                #expect(exported, "\(spans.map { "\($0.name) \($0.attributes)" })\n\(w.log.suffix(3000))")
                func consume(_ id: String) throws -> ReceivedSpan {
                    try #require(spans.first { $0.name == "consume" && $0.attributes["exocheck.request.id"] == id })
                }

                // The request's trace continues: consume is the child of its traceparent.
                let tracedParts = traced.split(separator: "-").map(String.init)
                let root = try consume("r-traced")
                #expect(root.traceId == tracedParts[1] && root.parentSpanId == tracedParts[2])
                #expect(root.kind == 5 && root.attributes["messaging.system"] == "kafka" && root.attributes["exocheck.status"] == "OK")
                #expect(root.attributes["exocheck.tenant"] == "t0" && root.attributes["exocheck.mode"] == "mailbox-usage")
                let trace = spans.filter { $0.traceId == root.traceId }
                func child(_ name: String, of parent: ReceivedSpan) -> ReceivedSpan? {
                    trace.first { $0.name == name && $0.parentSpanId == parent.spanId }
                }
                let fetch = try #require(child("fetch", of: root), "\(trace.map { "\($0.name) \($0.spanId) ← \($0.parentSpanId)" })")
                #expect(fetch.attributes["exocheck.report"] == "getMailboxUsageDetail" && fetch.attributes["exocheck.report.origin"] == "miss")
                let token = try #require(child("token", of: fetch))
                #expect(token.attributes["exocheck.token.requests"] == "1")
                #expect(child("parse", of: fetch) != nil)
                #expect(child("evaluate", of: root) != nil)
                let publish = try #require(child("publish", of: root))
                #expect(publish.kind == 4)
                // The result carries the worker's publish span, in the request's trace.
                #expect(await sink.traceparents["r-traced"] == "00-\(root.traceId)-\(publish.spanId)-01")

                // A malformed traceparent: a new trace; the value is echoed nowhere.
                let fresh = try consume("r-malformed")
                #expect(fresh.parentSpanId.isEmpty && fresh.traceId.count == 32 && !fresh.traceId.hasPrefix("zzzz"))
                let freshResult = try #require(await sink.traceparents["r-malformed"])
                #expect(freshResult.hasPrefix("00-\(fresh.traceId)-") && !freshResult.contains("hunter2"))
                let cached = try #require(spans.first { $0.name == "fetch" && $0.traceId == fresh.traceId })
                #expect(cached.attributes["exocheck.report.origin"] == "hit")
                #expect(!spans.contains { $0.traceId == fresh.traceId && $0.name == "token" }, "a report cache hit needs no token")
                let none = try consume("r-none")
                #expect(none.parentSpanId.isEmpty && none.traceId != fresh.traceId)
                #expect(await sink.traceparents["r-none"]?.hasPrefix("00-\(none.traceId)-") == true)

                let zero = try consume("r-zero")
                #expect(zero.parentSpanId.isEmpty && zero.traceId != String(repeating: "0", count: 32))
                #expect(!w.log.contains("carrier") && !w.log.contains("00f067aa0ba902b7"), "\(w.log.suffix(3000))")

                // Only the worker's own spans: no HTTP client spans (they would record the
                // pre-authenticated download URL), nothing else.
                #expect(Set(spans.map(\.name)).isSubset(of: ["consume", "fetch", "token", "parse", "evaluate", "publish"]), "\(Set(spans.map(\.name)))")

                // A refused request: an error span with its kind, never its message.
                let refused = try consume("r-invalid")
                #expect(refused.attributes["exocheck.error.kind"] == "invalid-request" && refused.statusCode == 2)
                #expect(refused.traceId == traceparent(for: "r-invalid").split(separator: "-").map(String.init)[1])

                // Nothing hostile or personal in any span; the resource names the service.
                let everything = spans.flatMap { Array($0.attributes.values) + [$0.name] }.joined(separator: " ")
                // A user name in a request id is redacted, as in logs.
                #expect(!everything.contains("hunter2") && !everything.contains("jane") && !everything.contains("no-such-option"), "\(everything)")
                #expect(spans.allSatisfy { $0.resource["service.name"] == "exocheck-tracing-test" && $0.resource["service.instance.id"] != nil })
                // The OTLP headers reach the collector; the log never shows them.
                let posts = await receiver.authorizations()
                #expect(!posts.isEmpty && posts.allSatisfy { $0 == credential })
                #expect(w.log.contains("exporting traces over OTLP/HTTP") && !w.log.contains("otlp-s3cret"), "\(w.log.suffix(3000))")
            }
        } catch {
            await receiver.stop()
            throw error
        }
        await receiver.stop()
    }

    @Test(
        "a collector that is unreachable, or throttles with an absurd Retry-After, holds no check back: results are published, and SIGTERM still ends the worker cleanly",
        arguments: ["unreachable", "throttling"])
    func badCollector(_ kind: String) async throws {
        let receiver = try await OTLPReceiver.start(status: .tooManyRequests, retryAfter: "9223372036854775807")
        // A port that was free a moment ago refuses connections.
        if kind == "unreachable" { await receiver.stop() }
        let fleet = try await WorkerFleet(tenants: 1, users: 5)
        do {
            try await fleet.use {
                let w = try fleet.startWorker(
                    "w",
                    environment: [
                        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.baseURL, "OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_EXPORTER_OTLP_TIMEOUT": "1000",
                        // An export (retries included) and the flush at exit end within 2 s.
                        "OTEL_BSP_EXPORT_TIMEOUT": "2000",
                    ])
                #expect(await fleet.waitForAssignments(1))
                let ids = (0..<20).map { "r-\($0)" }
                try await fleet.submit(ids.map { CheckRequest(id: $0, tenant: "t0", mode: .emailActivity) })
                let sink = ResultSink()
                #expect(try await fleet.collect(into: sink, timeout: .seconds(60)) { Set(ids).isSubset(of: await $0.ids) })
                #expect(await sink.results.allSatisfy { $0.error == nil })
                if kind == "throttling" { #expect(await eventually(timeout: .seconds(20)) { await !receiver.authorizations().isEmpty }) }
                w.signal(SIGTERM)
                #expect(await w.wait(timeout: .seconds(90)) == 0, "\(w.log.suffix(3000))")
            }
        } catch {
            await receiver.stop()
            throw error
        }
        await receiver.stop()
    }

    @Test("a trace setting this build cannot honour stops the worker's start with exit 2 and the variable's name; the value is never printed")
    func refusedAtStart() async throws {
        let dir = NSTemporaryDirectory() + "exocheck-otel-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = dir + "/worker.yaml"
        try "kafka: {requests: r}\ntenants:\n  a: {tenantId: a, clientId: c, clientSecretEnv: EXOCHECK_OTEL_TEST_SECRET}\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        var base = ProcessInfo.processInfo.environment
        base["EXOCHECK_OTEL_TEST_SECRET"] = "x"
        let cases: [([String: String], String)] = [
            (["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"], "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported"),
            (["OTEL_TRACES_EXPORTER": "zipkin"], "OTEL_TRACES_EXPORTER must be otlp or none"),
            (["OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://user:pw-s3cret@collector"], "OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL"),
        ]
        for (env, expected) in cases {
            let out = try await runProcess(
                WorkerFleet.exocheck, ["worker", "--config", config, "--check-config"], environment: base.merging(env) { $1 }, timeout: 60)
            #expect(out.exitCode == 2 && out.stderr.contains(expected) && !(out.stdout + out.stderr).contains("s3cret"), "\(out)")
        }
        let fine = try await runProcess(
            WorkerFleet.exocheck, ["worker", "--config", config, "--check-config"],
            environment: base.merging(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"]) { $1 }, timeout: 60)
        #expect(fine.exitCode == 0, "\(fine)")
    }
}

/// One span as a loopback OTLP/HTTP receiver got it (JSON encoding), ids as lower-case hex.
struct ReceivedSpan: Sendable {
    var name: String
    var traceId: String
    var spanId: String
    var parentSpanId: String
    var kind: Int
    var statusCode: Int
    var attributes: [String: String]
    var resource: [String: String]
}

/// A loopback OTLP/HTTP collector stand-in: keeps every POST to /v1/traces.
final class OTLPReceiver: Sendable {
    actor Store {
        var bodies: [[UInt8]] = []
        var authorizations: [String] = []
        func add(_ body: [UInt8], authorization: String?) {
            bodies.append(body)
            authorizations.append(authorization ?? "")
        }
    }

    let store: Store
    let port: Int
    let task: Task<Void, any Error>
    var baseURL: String { "http://127.0.0.1:\(port)" }

    private init(store: Store, port: Int, task: Task<Void, any Error>) {
        self.store = store
        self.port = port
        self.task = task
    }

    /// A receiver answering every POST with `status` (and `Retry-After: retryAfter` when given).
    static func start(status: HTTPResponse.Status = .ok, retryAfter: String? = nil) async throws -> OTLPReceiver {
        let store = Store()
        let router = Router()
        router.post("/v1/traces") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 32 << 20)
            await store.add(Array(buffer: body), authorization: request.headers[.authorization])
            var headers: HTTPFields = [.contentType: "application/json"]
            if let retryAfter { headers[.retryAfter] = retryAfter }
            return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: "{}")))
        }
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        var quiet = Logger(label: "otlp-receiver")
        quiet.logLevel = .critical
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            }, logger: quiet)
        let task = Task { try await app.run() }
        var port = 0
        for await p in ports {
            port = p
            break
        }
        guard port > 0 else {
            task.cancel()
            throw CancellationError()
        }
        return OTLPReceiver(store: store, port: port, task: task)
    }

    func stop() async {
        task.cancel()
        _ = try? await task.value
    }

    func authorizations() async -> [String] { await store.authorizations }

    /// Every span received so far.
    func spans() async -> [ReceivedSpan] {
        await store.bodies.flatMap(Self.spans(in:))
    }

    static func spans(in body: [UInt8]) -> [ReceivedSpan] {
        guard let root = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else { return [] }
        var out: [ReceivedSpan] = []
        for resourceSpans in root["resourceSpans"] as? [[String: Any]] ?? [] {
            let resource = attributes((resourceSpans["resource"] as? [String: Any])?["attributes"])
            for scope in resourceSpans["scopeSpans"] as? [[String: Any]] ?? [] {
                for span in scope["spans"] as? [[String: Any]] ?? [] {
                    out.append(
                        ReceivedSpan(
                            name: span["name"] as? String ?? "", traceId: hex(span["traceId"]), spanId: hex(span["spanId"]),
                            parentSpanId: hex(span["parentSpanId"]), kind: integer(span["kind"]),
                            statusCode: integer((span["status"] as? [String: Any])?["code"]),
                            attributes: attributes(span["attributes"]), resource: resource))
                }
            }
        }
        return out
    }

    static func integer(_ value: Any?) -> Int {
        if let n = value as? Int { return n }
        if let s = value as? String { return Int(s) ?? 0 }
        return 0
    }

    /// OTLP/JSON asks for hex ids; protobuf's canonical JSON mapping writes bytes as base64.
    /// Either is accepted.
    static func hex(_ value: Any?) -> String {
        guard let s = value as? String, !s.isEmpty else { return "" }
        if (s.count == 32 || s.count == 16), s.allSatisfy(\.isHexDigit) { return s.lowercased() }
        guard let data = Data(base64Encoded: s) else { return s }
        return data.map { String(format: "%02x", $0) }.joined()
    }

    static func attributes(_ value: Any?) -> [String: String] {
        var out: [String: String] = [:]
        for a in value as? [[String: Any]] ?? [] {
            guard let key = a["key"] as? String, let v = a["value"] as? [String: Any], let first = v.values.first else { continue }
            out[key] = "\(first)"
        }
        return out
    }
}

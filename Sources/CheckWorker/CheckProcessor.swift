import ExchangeChecks
import Foundation
import GraphReports
import Kafka
import Logging

/// Turns one request record into its result (and, for bad input, a dead-letter reason).
/// The same check core as `exocheck run`: the result's `output` is what `run` prints.
public struct CheckProcessor: Sendable {
    let configuration: WorkerConfiguration
    let transport: HTTPTransport
    let tokens: TokenCache
    let reports: ReportCache
    let metrics: WorkerMetrics
    let logger: Logger
    /// Where parsing, evaluation and rendering run (never the cooperative pool in a worker).
    public let pool: EvaluationPool
    /// How a result is cut to fit one record (from the producer's `message.max.bytes`).
    let resultPolicy: ResultSizePolicy
    /// The tenants and credentials, replaced by a configuration reload (SIGHUP).
    public let tenants: TenantDirectory
    /// Parsed options by request shape (a pure function of mode and arguments).
    let specs = CheckSpecMemo()

    /// A processor for the worker's checks. The result size limit comes from
    /// `configuration.kafka.properties` (`message.max.bytes`); without `pool`, a new EvaluationPool with
    /// `worker.evaluationThreads` threads and `worker.evaluationGraceSeconds` of grace is made.
    public init(
        configuration: WorkerConfiguration, transport: HTTPTransport, tokens: TokenCache, reports: ReportCache,
        metrics: WorkerMetrics, logger: Logger, pool: EvaluationPool? = nil
    ) {
        self.pool =
            pool
            ?? EvaluationPool(
                threads: configuration.worker.evaluationThreads,
                grace: configuration.worker.evaluationGrace)
        self.configuration = configuration
        self.resultPolicy = ResultSizePolicy(kafkaProperties: configuration.kafka.properties)
        self.transport = transport
        self.tokens = tokens
        self.reports = reports
        self.metrics = metrics
        self.logger = logger
        self.tenants = TenantDirectory(configuration)
        announceCredentials(tenants.current, replacing: nil)
    }

    /// Applies a configuration read again (SIGHUP): its tenants and credential warning window
    /// replace the running ones; `plan` says what changed (other sections need a restart). The
    /// report cache lets go of the data of tenants removed or re-pointed.
    public func apply(_ loaded: WorkerConfiguration) async {
        let old = tenants.current
        let new = TenantDirectory.Snapshot(tenants: loaded.tenants, warningDays: loaded.graph.credentialExpiryWarningDays)
        tenants.replace(new)
        announceCredentials(new, replacing: old)
        await reports.keepOnly(tenants: Set(new.tenants.values.map(\.reportCacheName)))
    }

    /// Exports each tenant's credential expiry (dropping the series of tenants no longer there)
    /// and logs a warning for each one within the warning window.
    func announceCredentials(_ snapshot: TenantDirectory.Snapshot, replacing old: TenantDirectory.Snapshot?) {
        // Only the series that disappear (a scrape must not find a tenant's series missing).
        for tenant in (old?.tenants.values).map(Array.init) ?? [] {
            guard let expiry = tenant.credentialExpiry else { continue }
            if snapshot.tenants[tenant.name]?.credentialExpiry?.source == expiry.source { continue }
            metrics.removeCredentialExpiry(tenant: tenant.name, source: expiry.source)
        }
        let now = Date()
        for tenant in snapshot.tenants.values.sorted(by: { $0.name < $1.name }) {
            guard let expiry = tenant.credentialExpiry else { continue }
            metrics.credentialExpiry(tenant: tenant.name, source: expiry.source, timestamp: expiry.timestamp)
            if let warning = expiry.warning(now: now, warningDays: snapshot.warningDays, tenant: tenant.name) {
                logger.warning("\(warning)", metadata: ["tenant": "\(tenant.name)", "credential.expires": "\(RFC3339.string(expiry.notAfter))"])
            }
        }
    }

    /// What to publish for one request record.
    public struct Outcome: Sendable {
        /// The result to publish; for a refused request an UNKNOWN with `error` set.
        public private(set) var result: CheckResultMessage
        /// Topic of the result (`results`, or an allowed `replyTo`).
        public var topic: String
        /// Kafka key of the result: the tenant.
        public var key: String?
        /// Set for bad input: a copy of the request goes to the dead-letter topic with this reason.
        public var deadLetterReason: String?
        /// `result.encoded()` when it was computed already (by `ResultSizePolicy.fitEncoded`);
        /// nil means encode `result`. Only `process` sets it, together with `result`.
        var encoded: [UInt8]? = nil

        /// The record's value: the result as JSON.
        var value: [UInt8] { encoded ?? result.encoded() }
    }

    /// Bytes of all headers of one request record; a record with more is refused.
    public static let maxHeaderBytes = 16384

    /// A request value of at most this many bytes in the common JSON form (`CommonJSON`: nesting
    /// at most 32 deep) is decoded where the check runs: that takes microseconds, less than the
    /// hop to the evaluation pool. Anything else (larger, or needing `JSONDecoder`, which
    /// recurses up to 512 levels) is decoded on the pool's large stacks under the time limit.
    public static let smallRequestBytes = 4_096

    /// Decodes one request record and runs its check (decoding, parsing and rendering on `pool`).
    /// Bad input (a value over `worker.maxRequestBytes`, headers over `maxHeaderBytes`, an invalid
    /// request or options, a `replyTo` not allowed, an unknown tenant) is answered UNKNOWN with a
    /// dead-letter reason; a request past its deadline is answered UNKNOWN `expired` without one.
    /// `attempt` is written in the result.
    public func process(_ value: [UInt8], key: String?, headers: [KafkaHeader] = [], attempt: Int) async -> Outcome {
        let started = ContinuousClock.now
        let checkedAt = Date()
        let headerId = Self.headerId(headers)
        let headerBytes = headers.reduce(0) { $0 + $1.name.utf8.count + ($1.value?.count ?? 0) }
        let safeKey = Self.safeKey(key)
        // Decoding and parsing are CPU work on hostile input: on the evaluation pool too.
        let maxBytes = configuration.worker.maxRequestBytes
        var decoded: Result<CheckRequest, RequestRejection>
        do {
            if value.count <= Self.smallRequestBytes, let common = CheckRequestDecoder.decodeCommon(value, maxBytes: maxBytes, headerId: headerId) {
                decoded = common
            } else {
                decoded = try await pool.evaluate(deadline: refusalDeadline) {
                    CheckRequestDecoder.decode(value, maxBytes: maxBytes, headerId: headerId)
                }
            }
        } catch {
            decoded = .failure(
                RequestRejection(
                    id: headerId.flatMap { CheckRequestDecoder.isSafeText($0, maxBytes: CheckRequestDecoder.maxIdBytes) ? $0 : nil },
                    labels: [:], reason: "the request could not be read within the time limit"))
        }
        if headerBytes > Self.maxHeaderBytes, case .success(let request) = decoded {
            decoded = .failure(
                RequestRejection(
                    id: request.id, tenant: request.tenant, mode: request.mode.rawValue, labels: request.labels,
                    reason: "the record's headers hold \(headerBytes) bytes, more than the limit of \(Self.maxHeaderBytes)"))
        }
        switch decoded {
        case .failure(let rejection):
            let result = errorResult(
                id: rejection.id, tenant: rejection.tenant ?? safeKey, mode: rejection.mode, labels: rejection.labels,
                kind: .invalidRequest, message: "Invalid check request: \(rejection.reason)\(rejection.reason.hasSuffix(".") ? "" : ".")",
                started: started, checkedAt: checkedAt, attempt: attempt)
            var log = logger
            if let id = rejection.id { log[metadataKey: "request.id"] = "\(id)" }
            log.notice("check refused", metadata: ["error.kind": "\(CheckErrorKind.invalidRequest.rawValue)", "error.message": "\(rejection.reason)"])
            return Outcome(
                result: result, topic: configuration.kafka.results, key: rejection.tenant ?? safeKey,
                deadLetterReason: rejection.reason)
        case .success(let request):
            return await process(request, started: started, checkedAt: checkedAt, attempt: attempt)
        }
    }

    /// The answer to a record that was in progress during two worker deaths: it is neither
    /// decoded nor run again (either could be what killed the workers), only identified.
    public func poisoned(_ value: [UInt8], key: String?, headers: [KafkaHeader], attempt: Int) -> Outcome {
        let id = CheckRequestDecoder.identify(value, headerId: Self.headerId(headers))
        let safeKey = Self.safeKey(key)
        let reason = Self.poisonReason
        let result = errorResult(
            id: id, tenant: safeKey, mode: nil, labels: [:], kind: .poison,
            message:
                "This request was in progress when two workers stopped unexpectedly (the second time running alone), so it was not run again; it was copied to the dead-letter topic for inspection.",
            started: .now, checkedAt: Date(), attempt: attempt)
        var log = logger
        if let id { log[metadataKey: "request.id"] = "\(id)" }
        log.error("poison request dead-lettered without running", metadata: ["error.kind": "\(CheckErrorKind.poison.rawValue)"])
        return Outcome(result: result, topic: configuration.kafka.results, key: safeKey, deadLetterReason: reason)
    }

    /// The record's `exocheck-id` header, as text (not yet validated).
    static func headerId(_ headers: [KafkaHeader]) -> String? {
        headers.last(where: { $0.name == "exocheck-id" }).flatMap { $0.value.map { String(decoding: $0, as: UTF8.self) } }
    }

    /// The record's key when it can be echoed as a tenant name.
    static func safeKey(_ key: String?) -> String? {
        key.flatMap { CheckRequestDecoder.isSafeText($0, maxBytes: CheckRequestDecoder.maxTenantBytes) ? $0 : nil }
    }

    /// The dead-letter reason of a poison record (see `poisoned`).
    public static let poisonReason = "in progress during two worker deaths, the second time alone in the quarantine slot; not run again"

    func process(_ request: CheckRequest, started: ContinuousClock.Instant, checkedAt: Date, attempt: Int) async -> Outcome {
        var topic = configuration.kafka.results
        var log = logger
        log[metadataKey: "request.id"] = "\(request.id)"
        log[metadataKey: "tenant"] = "\(request.tenant)"
        // A refusal is a plain UNKNOWN: the request's own output options (--opt-exit,
        // --change-exit, --change-short-output) never apply to it, so a request that names an
        // unconfigured tenant cannot dress its refusal up as any status and text it likes.
        func refuse(_ kind: CheckErrorKind, _ message: String, deadLetter: Bool) async -> Outcome {
            let result = errorResult(
                id: request.id, tenant: request.tenant, mode: request.mode.rawValue, labels: request.labels,
                kind: kind, message: message, started: started, checkedAt: checkedAt, attempt: attempt)
            log.notice("check refused", metadata: ["error.kind": "\(kind.rawValue)", "error.message": "\(message)"])
            return Outcome(result: result, topic: topic, key: request.tenant, deadLetterReason: deadLetter ? message : nil)
        }
        if let replyTo = request.replyTo {
            guard configuration.kafka.allowedReplyTopics.contains(replyTo) else {
                return await refuse(
                    .invalidRequest, "Invalid check request: the replyTo topic is not allowed by this worker (kafka.allowedReplyTopics).", deadLetter: true)
            }
            topic = replyTo
        }
        // The request's check (CheckSpec: its mode field and its options, parsed as `exocheck run`
        // parses a command line), on the evaluation pool: parsing compiles the request's regular
        // expressions.
        // A shape parsed before comes from the memo (CheckSpecMemo), without the pool.
        let (mode, arguments) = (request.mode, request.arguments)
        let memoKey = specs.key(mode: mode, arguments: arguments)
        let generation = RegexCache.generation
        let parsedOutcome: CheckSpecMemo.Parsed
        if let memoKey, let known = specs.lookup(memoKey, generation: generation) {
            parsedOutcome = known
        } else {
            do {
                parsedOutcome = try await pool.evaluate(deadline: refusalDeadline) {
                    do throws(ArgumentError) {
                        let spec = try CheckSpec(mode: mode, options: CentreonArguments(arguments))
                        return .check(spec.configuration, shape: spec.shape)
                    } catch {
                        return .refused(error.redacted)
                    }
                }
                if let memoKey { specs.store(memoKey, parsedOutcome, generation: generation) }
            } catch {
                parsedOutcome = .refused("its options could not be read within the time limit.")
            }
        }
        let config: CheckConfiguration
        let shape: String
        switch parsedOutcome {
        case .check(let c, let s): (config, shape) = (c, s)
        case .refused(let reason): return await refuse(.invalidRequest, "Invalid check request: \(reason)", deadLetter: true)
        }
        let directory = tenants.current
        guard let tenant = directory.tenants[request.tenant] else {
            return await refuse(
                .unknownTenant, "Tenant '\(request.tenant)' is not configured on this worker (add it under 'tenants' in the worker configuration).",
                deadLetter: true)
        }
        let now = Date()
        if let deadline = request.deadline, deadline <= now {
            return await refuse(
                .expired,
                "The check expired before it could run: its deadline (\(RFC3339.string(deadline))) passed \(Lateness.describe(seconds: now.timeIntervalSince(deadline))) before this worker got to it; no Graph call was made. Workers are behind: see the consumer lag.",
                deadLetter: false)
        }
        var budget = configuration.worker.checkTimeout
        if let deadline = request.deadline { budget = min(budget, Duration(clampedSeconds: deadline.timeIntervalSince(now))) }
        let deadline = ContinuousClock.now.advanced(by: budget)

        var session = GraphSession(
            app: AppIdentity(tenant: tenant.tenantId, clientId: tenant.clientId, credential: tenant.credential, endpoints: tenant.endpoints),
            transport: transport, tokenCache: tokens, requestTimeout: configuration.graph.timeout,
            warn: { [log] in log.warning("\($0)") })
        session.redirectPolicy.allowedHosts = configuration.graph.allowedDownloadHosts
        session.tokenRetry = .graph
        let metrics = self.metrics
        session.observer = { report, status in metrics.graphCall(report: report, status: status) }
        let provider = CachedReports(
            cache: reports, tenant: tenant.reportCacheName, session: session, parser: TracedExecutor(base: pool, name: TraceSpan.parse))
        let evaluator = TracedExecutor(base: pool, name: TraceSpan.evaluate)
        // The check's own budget (shortened by its deadline) for every regex from here on, so that
        // a regex stops no later than the point where the watchdog would count its thread as stuck.
        let (outcome, rendered) = await RegexBudget.$current.withValue(RegexBudget(deadline: deadline)) {
            await ExchangeCheckRunner.runRendered(config, reports: provider, deadline: deadline, executor: evaluator, shape: shape)
        }
        let fetch = outcome.stats
        // A token is a hit only when one was needed and no request was made for it; a check
        // whose reports all came from the report cache needed none.
        let tokenUse = fetch.tokenLookups == 0 ? "none" : fetch.tokenRequests == 0 ? "hit" : "miss"
        if fetch.tokenLookups > 0 { metrics.tokenCache(hit: fetch.tokenRequests == 0) }
        if let o = outcome.origin { metrics.reportCache(o) }
        if fetch.throttled > 0 { metrics.throttled(fetch.throttled) }
        let duration = started.duration(to: .now)
        metrics.check(mode: request.mode.rawValue, status: rendered.status.rawValue, duration: duration)
        var computed = CheckResultMessage(
            id: request.id, tenant: request.tenant, mode: request.mode.rawValue, labels: request.labels,
            status: rendered.status.rawValue, exitCode: Int(rendered.exitCode), output: rendered.text,
            summary: Self.summary(rendered.shortOutput), perfdata: CheckResultMessage.metrics(rendered.perfdata),
            reportDate: outcome.result.reportDate, checkedAt: RFC3339.string(checkedAt), durationMs: Self.milliseconds(duration),
            worker: configuration.worker.name, attempt: attempt,
            cache: .init(token: tokenUse, report: outcome.origin?.rawValue ?? "none"),
            error: outcome.error.map { .init(kind: $0.kind, message: $0.message) }
                ?? rendered.optionFailure.map { .init(kind: $0, message: Self.withoutStatusLabel(Self.summary(rendered.shortOutput))) })
        computed.reportAgeSeconds = outcome.reportAge.map { max(0, Int($0.components.seconds)) }
        // Not in `output`, which stays the plugin's: a field of its own.
        if let warning = tenant.credentialExpiry?.warning(now: Date(), warningDays: directory.warningDays, tenant: tenant.name) {
            computed.warnings = [warning]
        }
        let whole = computed
        // Cut to fit one record (ResultSizePolicy): encoding megabytes is CPU work, so on the pool;
        // a small result (most) is encoded here, which costs less than the hop to the pool.
        let policy = resultPolicy
        let (result, encoded): (CheckResultMessage, [UInt8])
        if ResultSizePolicy.isSmall(rendered.text) {
            (result, encoded) = policy.fitEncoded(whole, shortOutput: rendered.shortOutput, perfdata: rendered.perfdata, text: rendered.text)
        } else {
            do {
                (result, encoded) = try await pool.evaluate(deadline: refusalDeadline) {
                    policy.fitEncoded(whole, shortOutput: rendered.shortOutput, perfdata: rendered.perfdata, text: rendered.text)
                }
            } catch {
                (result, encoded) = policy.fitEncoded(whole, shortOutput: rendered.shortOutput, perfdata: [], text: rendered.shortOutput)
            }
        }
        if result.truncated == true {
            log.notice("result cut to fit one record", metadata: ["limit.bytes": "\(policy.maxValueBytes)"])
        }
        log.info(
            "check done",
            metadata: [
                "status": "\(rendered.status.rawValue)", "duration.ms": "\(result.durationMs)",
                "cache.report": "\(result.cache.report)",
            ])
        return Outcome(result: result, topic: topic, key: request.tenant, deadLetterReason: nil, encoded: encoded)
    }

    var refusalDeadline: ContinuousClock.Instant {
        .now.advanced(by: configuration.worker.checkTimeout)
    }

    func errorResult(
        id: String?, tenant: String?, mode: String?, labels: [String: String], kind: CheckErrorKind, message: String,
        started: ContinuousClock.Instant, checkedAt: Date, attempt: Int
    ) -> CheckResultMessage {
        // A refusal is rendered plain (no output options, so no user regex): no pool needed.
        let rendered = OutputRenderer.render(CheckResult.error(message), options: OutputOptions(), isError: true)
        let duration = started.duration(to: .now)
        // Metric labels come from closed sets only: a mode the decoder did not recognise is "invalid".
        metrics.check(mode: mode.flatMap(CheckMode.init(rawValue:))?.rawValue ?? "invalid", status: rendered.status.rawValue, duration: duration)
        return CheckResultMessage(
            id: id, tenant: tenant, mode: mode, labels: labels, status: rendered.status.rawValue, exitCode: Int(rendered.exitCode),
            output: rendered.text, summary: Self.summary(rendered.shortOutput), perfdata: [], reportDate: "",
            checkedAt: RFC3339.string(checkedAt), durationMs: Self.milliseconds(duration), worker: configuration.worker.name,
            attempt: attempt, cache: .init(token: "none", report: "none"), error: .init(kind: kind, message: message))
    }

    /// `UNKNOWN: text` → `text` (an error message carries no status label).
    static func withoutStatusLabel(_ text: String) -> String {
        for status in CheckStatus.allCases where text.hasPrefix(status.rawValue + ": ") {
            return String(text.dropFirst(status.rawValue.count + 2))
        }
        return text
    }

    static func summary(_ short: String) -> String {
        // Without a grapheme walk (it was 2 % of a busy worker's CPU): trailing spaces after an
        // ASCII byte (or nothing) are Characters of their own, since only a Prepend scalar
        // (never ASCII) joins a following space into its Character. Otherwise, by Characters.
        let utf8 = short.utf8
        var end = utf8.endIndex
        while end > utf8.startIndex, utf8[utf8.index(before: end)] == UInt8(ascii: " ") { end = utf8.index(before: end) }
        if end == utf8.endIndex { return short }
        if end == utf8.startIndex || utf8[utf8.index(before: end)] < 0x80 { return String(short[..<end]) }
        var s = Substring(short)
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }

    static func milliseconds(_ d: Duration) -> Double {
        (Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15).rounded()
    }
}

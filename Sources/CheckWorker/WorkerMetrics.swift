import ExchangeChecks
import GraphReports
import Prometheus
import Synchronization

/// The worker's metrics, registered with the Prometheus registry that /metrics exports, each with
/// its help text (swift-metrics has none, and promtool requires them). Names and help texts are
/// declared once, in `WorkerMetrics.Family`; label values come from closed sets only (modes,
/// statuses, error kinds, cache outcomes, report names, HTTP statuses).
public struct WorkerMetrics: Sendable {
    /// A metric family: its Prometheus name and help text.
    public struct Family: Sendable, Hashable {
        /// The metric name as exported (`exocheck_…`, counters ending in `_total`, units in the name).
        public let name: String
        /// The `# HELP` text.
        public let help: String

        static let checks = Family(
            name: "exocheck_checks_total",
            help:
                "Checks answered, by mode and status (OK, WARNING, CRITICAL, UNKNOWN; refusals are UNKNOWN with mode 'invalid' when the mode was not readable)."
        )
        static let checkDuration = Family(name: "exocheck_check_duration_seconds", help: "Time from a request's arrival at the check to its result, by mode.")
        static let tokenCache = Family(name: "exocheck_token_cache_total", help: "Checks by token use: hit (no token request was made for the check) or miss.")
        static let reportCache = Family(
            name: "exocheck_report_cache_total", help: "Checks by how their report data was obtained: hit, stale, revalidated (304) or miss (downloaded).")
        static let graphCalls = Family(
            name: "exocheck_graph_calls_total",
            help: "HTTP requests to Microsoft Graph, by report (with ' download' for the redirected download) and HTTP status (transport-error when none came)."
        )
        static let graphThrottled = Family(name: "exocheck_graph_throttled_total", help: "Graph answers 429 or 503 (throttled) met by checks.")
        static let deadLettered = Family(name: "exocheck_dead_lettered_total", help: "Requests copied to the dead-letter topic, by error kind.")
        static let inFlight = Family(name: "exocheck_checks_in_flight", help: "Checks running now.")
        static let consumerLag = Family(
            name: "exocheck_consumer_lag", help: "Requests in the worker's assigned partitions not yet consumed (high watermark minus position).")
        static let uncommitted = Family(
            name: "exocheck_uncommitted_requests", help: "Requests received whose offsets are not committable yet (in flight or waiting).")
        static let stuckThreads = Family(name: "exocheck_stuck_evaluation_threads", help: "Evaluation threads running past their check's budget plus grace.")
        static let quarantined = Family(
            name: "exocheck_quarantined_checks_total", help: "Suspect requests of a worker that died, run alone in the quarantine slot.")
        static let quarantineEnabled = Family(
            name: "exocheck_quarantine_enabled", help: "1 while the poison-record quarantine works (its state topic is usable), else 0.")
        static let quarantineWaiting = Family(name: "exocheck_quarantine_waiting", help: "Suspect requests waiting for the quarantine slot.")
        static let resultsProduced = Family(name: "exocheck_results_produced_total", help: "Results the broker acknowledged.")
        static let oldestUncommitted = Family(
            name: "exocheck_oldest_uncommitted_age_seconds", help: "Age of the oldest request not yet committable (0 when none).")
        static let partitionsPaused = Family(
            name: "exocheck_partitions_paused", help: "1 while the worker has paused its partitions (too much work in hand), else 0.")
        static let produceRetries = Family(
            name: "exocheck_produce_retries_total", help: "Sends of results or dead-letter copies retried after a retriable Kafka error.")

        static let credentialExpiry = Family(
            name: "exocheck_credential_expiry_timestamp_seconds",
            help:
                "When each configured tenant's credential expires (Unix time): a certificate's notAfter or a secret's configured secretExpires; absent when unknown."
        )

        static let configReloads = Family(
            name: "exocheck_config_reloads_total",
            help: "Configuration reloads (SIGHUP) by result: applied, or refused because the new file is not valid (the running configuration stays).")
        static let configReloadSuccessful = Family(
            name: "exocheck_config_last_reload_successful", help: "1 when the last configuration reload was applied (or none was asked), 0 when it was refused."
        )

        /// Every family the worker exports.
        public static let all: [Family] = [
            checks, checkDuration, tokenCache, reportCache, graphCalls, graphThrottled, deadLettered, inFlight, consumerLag,
            uncommitted, stuckThreads, quarantined, quarantineEnabled, quarantineWaiting, resultsProduced, oldestUncommitted,
            partitionsPaused, produceRetries, credentialExpiry, configReloads, configReloadSuccessful,
        ]
    }

    /// Buckets of `exocheck_check_duration_seconds` (those swift-prometheus gives timers).
    static let durationBuckets: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    let registry: PrometheusCollectorRegistry
    let series = Series()

    /// Metrics in `registry` (the one /metrics exports). The series without labels, and those of
    /// the closed label sets that dashboards and alerts read, exist from the start at 0, so that a
    /// query finds them before the first event.
    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        for family in [Family.graphThrottled, .quarantined, .resultsProduced, .produceRetries] { counter(family).increment(by: Int64(0)) }
        for family in [
            Family.inFlight, .consumerLag, .uncommitted, .stuckThreads, .quarantineEnabled, .quarantineWaiting, .oldestUncommitted, .partitionsPaused,
        ] {
            gauge(family).set(Int64(0))
        }
        for result in ["hit", "miss"] { counter(.tokenCache, [("result", result)]).increment(by: Int64(0)) }
        for result in ["applied", "refused"] { counter(.configReloads, [("result", result)]).increment(by: Int64(0)) }
        gauge(.configReloadSuccessful).set(Int64(1))
        for origin in ReportOrigin.allCases { counter(.reportCache, [("result", origin.rawValue)]).increment(by: Int64(0)) }
        for kind in CheckErrorKind.allCases { counter(.deadLettered, [("kind", kind.rawValue)]).increment(by: Int64(0)) }
    }

    func counter(_ family: Family, _ labels: [(String, String)] = []) -> Counter {
        series.counter(family, labels) { registry.makeCounter(name: family.name, labels: labels, help: family.help) }
    }

    func gauge(_ family: Family) -> Gauge {
        series.gauge(family) { registry.makeGauge(name: family.name, labels: [], help: family.help) }
    }

    /// The series already made, by family and labels: the registry checks names and labels on
    /// every `make…` (a few percent of a warm worker's CPU when done per check). Holds only series
    /// the registry holds for good anyway (closed label sets; the credential expiry gauges, which
    /// are removed on reload, do not go through it), so it grows no further than /metrics.
    final class Series: Sendable {
        private let counters = Mutex<[String: Counter]>([:])
        private let gauges = Mutex<[String: Gauge]>([:])
        private let histograms = Mutex<[String: DurationHistogram]>([:])

        static func key(_ family: Family, _ labels: [(String, String)]) -> String {
            var key = family.name
            for (name, value) in labels {
                key += "\u{0}" + name + "\u{0}" + value
            }
            return key
        }

        func counter(_ family: Family, _ labels: [(String, String)], make: () -> Counter) -> Counter {
            Self.cached(counters, Self.key(family, labels), make)
        }

        func gauge(_ family: Family, make: () -> Gauge) -> Gauge {
            Self.cached(gauges, family.name, make)
        }

        func histogram(_ family: Family, _ labels: [(String, String)], make: () -> DurationHistogram) -> DurationHistogram {
            Self.cached(histograms, Self.key(family, labels), make)
        }

        /// The series kept under `key` in `store`, made and kept on first use.
        private static func cached<T: Sendable>(_ store: borrowing Mutex<[String: T]>, _ key: String, _ make: () -> T) -> T {
            if let known = store.withLock({ $0[key] }) { return known }
            let made = make()
            store.withLock { $0[key] = made }
            return made
        }
    }

    /// A configured tenant's credential expiry, `exocheck_credential_expiry_timestamp_seconds` by
    /// tenant (configured names only: a bounded set) and kind (`certificate`, `secret`).
    public func credentialExpiry(tenant: String, source: CredentialExpiry.Source, timestamp: Double) {
        registry.makeGauge(name: Family.credentialExpiry.name, labels: [("tenant", tenant), ("kind", source.rawValue)], help: Family.credentialExpiry.help)
            .set(timestamp)
    }

    /// Removes a tenant's expiry series (the tenant or its credential is gone after a reload).
    public func removeCredentialExpiry(tenant: String, source: CredentialExpiry.Source) {
        registry.unregisterGauge(
            registry.makeGauge(name: Family.credentialExpiry.name, labels: [("tenant", tenant), ("kind", source.rawValue)], help: Family.credentialExpiry.help))
    }

    /// A configuration reload (SIGHUP): `exocheck_config_reloads_total` by result (`applied`,
    /// `refused`), and `exocheck_config_last_reload_successful` (1 or 0).
    public func configReload(applied: Bool) {
        counter(.configReloads, [("result", applied ? "applied" : "refused")]).increment()
        gauge(.configReloadSuccessful).set(Int64(applied ? 1 : 0))
    }

    /// One finished check: `exocheck_checks_total` by mode and status, and its duration in
    /// `exocheck_check_duration_seconds` by mode.
    public func check(mode: String, status: String, duration: Duration) {
        counter(.checks, [("mode", mode), ("status", status)]).increment()
        series.histogram(.checkDuration, [("mode", mode)]) {
            registry.makeDurationHistogram(
                name: Family.checkDuration.name, labels: [("mode", mode)], buckets: Self.durationBuckets,
                help: Family.checkDuration.help)
        }.record(duration)
    }

    /// One check's token use: `exocheck_token_cache_total` with result `hit` (the check made no
    /// token request) or `miss`.
    public func tokenCache(hit: Bool) {
        counter(.tokenCache, [("result", hit ? "hit" : "miss")]).increment()
    }

    /// How one check's report was obtained: `exocheck_report_cache_total` by `result`.
    public func reportCache(_ origin: ReportOrigin) {
        counter(.reportCache, [("result", origin.rawValue)]).increment()
    }

    /// One Graph call: `exocheck_graph_calls_total` by report (`<report> download` for the redirected
    /// download) and HTTP status; status 0 is counted as `transport-error`.
    public func graphCall(report: String, status: Int) {
        counter(.graphCalls, [("report", report), ("status", status == 0 ? "transport-error" : String(status))]).increment()
    }

    /// Adds `n` throttled Graph answers (429 or 503) to `exocheck_graph_throttled_total`.
    public func throttled(_ n: Int) {
        counter(.graphThrottled).increment(by: Int64(n))
    }

    /// One more dead-letter copy; the `kind` label takes only the closed set of error kinds.
    public func deadLettered(kind: CheckErrorKind) {
        counter(.deadLettered, [("kind", kind.rawValue)]).increment()
    }

    /// Sets `exocheck_checks_in_flight`: the checks running now.
    public func inFlight(_ n: Int) {
        gauge(.inFlight).set(Int64(n))
    }

    /// Sets `exocheck_consumer_lag`: requests in the assigned partitions not yet consumed.
    public func consumerLag(_ n: Int64) {
        gauge(.consumerLag).set(n)
    }

    /// Requests received whose offsets are not committable yet (in flight or waiting).
    public func uncommitted(_ n: Int) {
        gauge(.uncommitted).set(Int64(n))
    }

    /// Evaluation threads running past their check's budget plus grace.
    public func stuckThreads(_ n: Int) {
        gauge(.stuckThreads).set(Int64(n))
    }

    /// Suspects of a dead worker run alone in the quarantine slot.
    public func quarantined() {
        counter(.quarantined).increment()
    }

    /// 1 while the poison-record quarantine works (its state topic is usable).
    public func quarantineEnabled(_ on: Bool) {
        gauge(.quarantineEnabled).set(Int64(on ? 1 : 0))
    }

    /// Suspects waiting for the quarantine slot.
    public func quarantineWaiting(_ n: Int) {
        gauge(.quarantineWaiting).set(Int64(n))
    }

    /// One result the broker acknowledged: `exocheck_results_produced_total`.
    public func resultProduced() {
        counter(.resultsProduced).increment()
    }

    /// Seconds since the oldest record not yet committable arrived (0 when none).
    public func oldestUncommittedAge(_ age: Duration) {
        gauge(.oldestUncommitted).set(age.inSeconds)
    }

    /// Sets `exocheck_partitions_paused`: 1 while the worker has paused its partitions, else 0.
    public func paused(_ on: Bool) {
        gauge(.partitionsPaused).set(Int64(on ? 1 : 0))
    }

    /// One retried send of a result or dead-letter copy: `exocheck_produce_retries_total`.
    public func produceRetry() {
        counter(.produceRetries).increment()
    }
}

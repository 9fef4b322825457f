import ExchangeChecks
import Metrics

/// The worker's metrics (swift-metrics; exported in Prometheus text format on /metrics).
public struct WorkerMetrics: Sendable {
    /// Metrics recorded through the process's swift-metrics backend (bootstrapped by the caller).
    public init() {}

    /// One finished check: `exocheck_checks_total` by mode and status, and its duration in
    /// `exocheck_check_duration_seconds` by mode.
    public func check(mode: String, status: String, duration: Duration) {
        Counter(label: "exocheck_checks_total", dimensions: [("mode", mode), ("status", status)]).increment()
        Timer(label: "exocheck_check_duration_seconds", dimensions: [("mode", mode)]).recordNanoseconds(
            duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    /// One check's token use: `exocheck_token_cache_total` with result `hit` (the check made no
    /// token request) or `miss`.
    public func tokenCache(hit: Bool) {
        Counter(label: "exocheck_token_cache_total", dimensions: [("result", hit ? "hit" : "miss")]).increment()
    }

    /// How one check's report was obtained (`hit`, `stale`, `revalidated` or `miss`):
    /// `exocheck_report_cache_total` by `result`.
    public func reportCache(_ result: String) {
        Counter(label: "exocheck_report_cache_total", dimensions: [("result", result)]).increment()
    }

    /// One Graph call: `exocheck_graph_calls_total` by report (`<report> download` for the redirected
    /// download) and HTTP status; status 0 is counted as `transport-error`.
    public func graphCall(report: String, status: Int) {
        Counter(label: "exocheck_graph_calls_total", dimensions: [("report", report), ("status", status == 0 ? "transport-error" : String(status))]).increment()
    }

    /// Adds `n` throttling answers (HTTP 429 or 503) one check got from Graph to
    /// `exocheck_graph_throttled_total`.
    public func throttled(_ n: Int) {
        Counter(label: "exocheck_graph_throttled_total").increment(by: n)
    }

    /// One more dead-letter copy; the `kind` label takes only the closed set of error kinds.
    public func deadLettered(kind: CheckErrorKind) {
        Counter(label: "exocheck_dead_lettered_total", dimensions: [("kind", kind.rawValue)]).increment()
    }

    /// Checks running now (`exocheck_checks_in_flight` gauge).
    public func inFlight(_ n: Int) {
        Gauge(label: "exocheck_checks_in_flight").record(n)
    }

    /// Records not yet consumed on this worker's assigned partitions, summed (`exocheck_consumer_lag`
    /// gauge; the worker samples it every 5 s).
    public func consumerLag(_ n: Int64) {
        Gauge(label: "exocheck_consumer_lag").record(n)
    }

    /// Requests received whose offsets are not committable yet (in flight or waiting).
    public func uncommitted(_ n: Int) {
        Gauge(label: "exocheck_uncommitted_requests").record(n)
    }

    /// Evaluation threads running past their check's budget plus grace.
    public func stuckThreads(_ n: Int) {
        Gauge(label: "exocheck_stuck_evaluation_threads").record(n)
    }

    /// Suspects of a dead worker run alone in the quarantine slot.
    public func quarantined() {
        Counter(label: "exocheck_quarantined_checks_total").increment()
    }

    /// 1 while the poison-record quarantine works (its state topic is usable).
    public func quarantineEnabled(_ on: Bool) {
        Gauge(label: "exocheck_quarantine_enabled").record(on ? 1 : 0)
    }

    /// Suspects waiting for the quarantine slot.
    public func quarantineWaiting(_ n: Int) {
        Gauge(label: "exocheck_quarantine_waiting").record(n)
    }

    /// One result record (or its short fallback) acknowledged by the broker
    /// (`exocheck_results_produced_total`).
    public func resultProduced() {
        Counter(label: "exocheck_results_produced_total").increment()
    }

    /// Seconds since the oldest record not yet committable arrived (0 when none).
    public func oldestUncommittedAge(_ age: Duration) {
        Gauge(label: "exocheck_oldest_uncommitted_age_seconds").record(Double(age.components.seconds) + Double(age.components.attoseconds) / 1e18)
    }

    /// Whether the worker paused all its partitions for back-pressure (`exocheck_partitions_paused`,
    /// 1 or 0).
    public func paused(_ on: Bool) {
        Gauge(label: "exocheck_partitions_paused").record(on ? 1 : 0)
    }

    /// One failed send of a record that PublishPolicy retries (`exocheck_produce_retries_total`).
    public func produceRetry() {
        Counter(label: "exocheck_produce_retries_total").increment()
    }
}

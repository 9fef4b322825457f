import ExchangeChecks
import Metrics

/// The worker's metrics (swift-metrics; exported in Prometheus text format on /metrics).
public struct WorkerMetrics: Sendable {
    public init() {}

    public func check(mode: String, status: String, duration: Duration) {
        Counter(label: "exocheck_checks_total", dimensions: [("mode", mode), ("status", status)]).increment()
        Timer(label: "exocheck_check_duration_seconds", dimensions: [("mode", mode)]).recordNanoseconds(
            duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    public func tokenCache(hit: Bool) {
        Counter(label: "exocheck_token_cache_total", dimensions: [("result", hit ? "hit" : "miss")]).increment()
    }

    public func reportCache(_ result: String) {
        Counter(label: "exocheck_report_cache_total", dimensions: [("result", result)]).increment()
    }

    public func graphCall(report: String, status: Int) {
        Counter(label: "exocheck_graph_calls_total", dimensions: [("report", report), ("status", status == 0 ? "transport-error" : String(status))]).increment()
    }

    public func throttled(_ n: Int) {
        Counter(label: "exocheck_graph_throttled_total").increment(by: n)
    }

    /// One more dead-letter copy; the `kind` label takes only the closed set of error kinds.
    public func deadLettered(kind: CheckErrorKind) {
        Counter(label: "exocheck_dead_lettered_total", dimensions: [("kind", kind.rawValue)]).increment()
    }

    public func inFlight(_ n: Int) {
        Gauge(label: "exocheck_checks_in_flight").record(n)
    }

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

    public func resultProduced() {
        Counter(label: "exocheck_results_produced_total").increment()
    }

    /// Seconds since the oldest record not yet committable arrived (0 when none).
    public func oldestUncommittedAge(_ age: Duration) {
        Gauge(label: "exocheck_oldest_uncommitted_age_seconds").record(Double(age.components.seconds) + Double(age.components.attoseconds) / 1e18)
    }

    public func paused(_ on: Bool) {
        Gauge(label: "exocheck_partitions_paused").record(on ? 1 : 0)
    }

    public func produceRetry() {
        Counter(label: "exocheck_produce_retries_total").increment()
    }
}

import Synchronization

/// When a graceful shutdown must be over: `worker.shutdownGraceSeconds` after SIGTERM. The
/// in-flight checks get the grace period minus `closeReserve`; flushing, committing and leaving
/// the group get the rest (CheckWorkerService.finish).
final class ShutdownDeadline: Sendable {
    let grace: Duration
    private let started = Mutex<ContinuousClock.Instant?>(nil)

    init(grace: Duration) { self.grace = grace }

    /// What closing keeps of the grace period: a quarter, at most 5 s.
    static func closeReserve(_ grace: Duration) -> Duration { min(grace / 4, .seconds(5)) }

    /// SIGTERM (or SIGINT) arrived; later calls keep the first time.
    func begin() {
        started.withLock { if $0 == nil { $0 = .now } }
    }

    /// Closing always gets at least this long from the end of the loop, whatever the grace
    /// (0 included): enough to commit and leave the group with a reachable broker.
    static let minimumClose: Duration = .seconds(2)

    /// The end of the grace period, or, when the loop ended without a stop request, the close
    /// reserve from now; never less than `minimumClose` from now.
    var deadline: ContinuousClock.Instant {
        let now = ContinuousClock.now
        let end = started.withLock { $0 }.map { $0 + grace } ?? now + Self.closeReserve(grace)
        return max(end, now + Self.minimumClose)
    }
}

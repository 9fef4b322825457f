import Dispatch
import ExchangeChecks
import Foundation
import Synchronization

/// A bounded pool of dedicated threads for evaluation, so that CPU-heavy checks never run on
/// Swift's cooperative pool (two threads on two cores: two runaway checks would freeze every
/// task of the worker, its Kafka loop and health endpoints included).
///
/// The watchdog: a caller waits at most until its deadline plus `grace`, then gets a `timeout`
/// error (an UNKNOWN result) and goes on. The thread itself cannot be stopped: it is counted as
/// stuck from then on, until its work returns. `stuckThreads` feeds /healthz; a worker whose
/// threads are all stuck exits so that it is restarted.
public final class EvaluationPool: EvaluationExecutor, Sendable {
    /// Number of dedicated evaluation threads (at least 1), all started by `init`.
    public let threadCount: Int
    /// How long past its deadline a caller waits for its work before giving up with `timeout`;
    /// default 5 s.
    public let grace: Duration

    private struct State {
        var queue: [Job] = []
        /// Jobs running now: when each becomes stuck.
        var running: [Int: ContinuousClock.Instant] = [:]
        var nextId = 0
        var shuttingDown = false
    }

    private struct Job: Sendable {
        let id: Int
        let stuckAt: ContinuousClock.Instant
        let abandoned: @Sendable () -> Bool
        let run: @Sendable () -> Void
    }

    private let state = Mutex(State())
    private let available = DispatchSemaphore(value: 0)

    /// Default threads: the number of cores, at least 2.
    public init(threads: Int = max(2, ProcessInfo.processInfo.activeProcessorCount), grace: Duration = .seconds(5)) {
        self.threadCount = max(1, threads)
        self.grace = grace
        for i in 0..<threadCount {
            let thread = Thread { [self] in self.workerLoop() }
            thread.name = "exocheck-eval-\(i)"
            // Deep enough for any bounded expression or regex; the limits keep recursion shallow.
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// Threads whose current work has run past its deadline plus the grace period.
    public var stuckThreads: Int {
        let now = ContinuousClock.now
        return state.withLock { s in s.running.values.filter { now >= $0 }.count }
    }

    /// Lets the threads end once the queue is empty (work already running finishes first).
    public func shutdown() {
        state.withLock { $0.shuttingDown = true }
        for _ in 0..<threadCount { available.signal() }
    }

    private func workerLoop() {
        while true {
            available.wait()
            let next: Job? = state.withLock { s in
                guard !s.queue.isEmpty else { return nil }
                let job = s.queue.removeFirst()
                s.running[job.id] = job.stuckAt
                return job
            }
            guard let job = next else {
                if state.withLock({ $0.shuttingDown }) { return }
                continue
            }
            // Work whose caller already gave up is skipped rather than run for nobody.
            if !job.abandoned() { job.run() }
            _ = state.withLock { $0.running.removeValue(forKey: job.id) }
        }
    }

    /// Runs `work` on a pool thread (under the caller's regex budget) and returns its value.
    /// Throws `timeout` when it has not finished by `deadline` plus `grace` (its thread then counts
    /// as stuck, and work not started yet is skipped), or at once when the pool is shutting down.
    public func evaluate<T: Sendable>(deadline: ContinuousClock.Instant, _ work: @escaping @Sendable () -> T) async throws(GraphError) -> T {
        let budget = RegexBudget.current
        let box = JobBox<T>()
        let stuckAt = deadline.advanced(by: grace)
        let accepted: Bool = state.withLock { s in
            guard !s.shuttingDown else { return false }
            s.nextId &+= 1
            s.queue.append(
                Job(
                    id: s.nextId, stuckAt: stuckAt, abandoned: { box.isAbandoned },
                    run: {
                        // The task-local regex budget does not cross threads by itself.
                        let value = RegexBudget.$current.withValue(budget) { work() }
                        box.finish(value)
                    }))
            return true
        }
        guard accepted else { throw GraphError(.timeout, "The worker is shutting down; the check was not evaluated.") }
        available.signal()
        let value: T? = await withTaskGroup(of: T?.self) { group in
            group.addTask { await box.wait() }
            group.addTask {
                try? await Task.sleep(until: stuckAt, clock: .continuous)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let value else {
            box.abandon()
            throw GraphError(
                .timeout,
                "The check's evaluation did not finish within its time budget plus the \(grace.components.seconds) s grace period; the worker gave up waiting for it (simplify its filters and expressions)."
            )
        }
        return value
    }
}

/// The hand-over of one job's value from a pool thread to the waiting task.
private final class JobBox<T: Sendable>: Sendable {
    private struct State {
        var value: T?
        var waiter: CheckedContinuation<T?, Never>?
        var abandoned = false
    }
    private let state = Mutex(State())

    var isAbandoned: Bool { state.withLock { $0.abandoned } }

    func finish(_ value: T) {
        let waiter: CheckedContinuation<T?, Never>? = state.withLock { s in
            s.value = value
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: value)
    }

    func abandon() {
        let waiter: CheckedContinuation<T?, Never>? = state.withLock { s in
            s.abandoned = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: nil)
    }

    func wait() async -> T? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<T?, Never>) in
                let immediate: T?? = state.withLock { s in
                    if let v = s.value { return .some(v) }
                    if s.abandoned { return .some(nil) }
                    s.waiter = c
                    return nil
                }
                if let immediate { c.resume(returning: immediate) }
            }
        } onCancel: {
            abandon()
        }
    }
}

import Foundation
import GraphReports

/// Graph allows about 14 CSV report calls per 10 minutes per report, tenant and app, and report
/// data changes about once a day. This cache sits in front of `GraphSession` for the worker:
///
/// * one entry per (tenant, report, parameters), fresh for `ttl`;
/// * at most one download in flight per key (other checks wait for it);
/// * an expired entry with an ETag is revalidated with `If-None-Match` (304 keeps the body);
/// * a per-tenant, per-report call budget; when it is spent, a stale copy is served, or the
///   check waits for budget if its deadline allows, else it fails as `throttled`.
public actor ReportCache {
    public struct Key: Hashable, Sendable {
        public var tenant: String
        public var request: ReportRequest
    }

    struct Entry {
        var body: [UInt8]
        var etag: String?
        var fetchedAt: ContinuousClock.Instant
    }

    /// How a report was obtained, for result metadata and metrics.
    public enum Outcome: String, Sendable {
        case hit, miss, revalidated, stale
    }

    public let ttl: Duration
    public let budget: Int
    public let window: Duration
    private var entries: [Key: Entry] = [:]
    private var inFlight: [Key: Task<(Entry, Outcome), any Error>] = [:]
    /// Call times per (tenant, report name): the sliding window of the budget.
    private var calls: [String: [ContinuousClock.Instant]] = [:]
    private let clock = ContinuousClock()

    public init(ttl: Duration = .seconds(900), budget: Int = 14, window: Duration = .seconds(600)) {
        self.ttl = ttl
        self.budget = budget
        self.window = window
    }

    /// The report body for `request`, and how it was obtained.
    public func report(_ request: ReportRequest, tenant: String, session: GraphSession, deadline: ContinuousClock.Instant,
                       stats: FetchStatsBox) async throws(GraphError) -> ([UInt8], Outcome) {
        let key = Key(tenant: tenant, request: request)
        let now = clock.now
        if let e = entries[key], e.fetchedAt.duration(to: now) < ttl { return (e.body, .hit) }
        if let running = inFlight[key] {
            do {
                let (entry, _) = try await running.value
                return (entry.body, .hit)
            } catch {
                throw (error as? GraphError) ?? GraphError(.graph, "\(error)")
            }
        }
        let stale = entries[key]
        // Budget: wait for a slot if the deadline allows, else serve the stale copy or fail.
        let budgetKey = "\(tenant)|\(request.report)"
        while true {
            let t = clock.now
            var times = (calls[budgetKey] ?? []).filter { $0.duration(to: t) < window }
            calls[budgetKey] = times
            if times.count < budget {
                times.append(t)
                calls[budgetKey] = times
                break
            }
            if let stale { return (stale.body, .stale) }
            let freeAt = times[0].advanced(by: window)
            if freeAt > deadline {
                let wait = t.duration(to: freeAt)
                throw GraphError(.throttled, "The report call budget for \(request.report) of this tenant is spent (\(budget) calls per \(window.components.seconds / 60) minutes, Graph's limit); the next call is possible in \(wait.components.seconds + 1) s, after this check's deadline. Lower the check frequency or raise the report cache TTL.", retryAfterSeconds: Double(wait.components.seconds + 1))
            }
            do { try await Task.sleep(until: freeAt, clock: clock) } catch {
                throw GraphError(.timeout, "The check was cancelled while waiting for report budget.")
            }
            if let e = entries[key], e.fetchedAt.duration(to: clock.now) < ttl { return (e.body, .hit) }
        }
        let task = Task<(Entry, Outcome), any Error> {
            var local = FetchStats()
            defer { stats.add(local) }
            switch try await session.fetch(request, deadline: deadline, etag: stale?.etag, stats: &local) {
            case .body(let bytes, let etag):
                return (Entry(body: bytes, etag: etag, fetchedAt: ContinuousClock.now), .miss)
            case .notModified:
                guard let stale else { throw GraphError(.graph, "Graph answered 304 for \(request) without a cached copy.") }
                return (Entry(body: stale.body, etag: stale.etag, fetchedAt: ContinuousClock.now), .revalidated)
            }
        }
        inFlight[key] = task
        defer { inFlight[key] = nil }
        do {
            let (entry, outcome) = try await task.value
            entries[key] = entry
            return (entry.body, outcome)
        } catch {
            throw (error as? GraphError) ?? GraphError(.graph, "\(error)")
        }
    }

}

/// Fetch statistics gathered across tasks (the download may run in another task).
public final class FetchStatsBox: Sendable {
    private let stats = Mutex(FetchStats())
    public init() {}
    public func add(_ s: FetchStats) {
        stats.withLock {
            $0.tokenRequests += s.tokenRequests
            $0.graphCalls += s.graphCalls
            $0.throttled += s.throttled
        }
    }
    public var value: FetchStats { stats.withLock { $0 } }
}

/// The `ReportProvider` a worker check uses: the shared cache in front of the tenant's session.
public struct CachedReports: ReportProvider {
    let cache: ReportCache
    let tenant: String
    let session: GraphSession
    let stats: FetchStatsBox
    let outcomes: OutcomeBox

    public func report(_ request: ReportRequest, deadline: ContinuousClock.Instant, stats _: inout FetchStats) async throws(GraphError) -> [UInt8] {
        let (body, outcome) = try await cache.report(request, tenant: tenant, session: session, deadline: deadline, stats: stats)
        outcomes.record(outcome)
        return body
    }
}

/// The worst cache outcome across the reports of one check (miss > revalidated > stale > hit).
public final class OutcomeBox: Sendable {
    private let value = Mutex<ReportCache.Outcome?>(nil)
    public init() {}
    func record(_ o: ReportCache.Outcome) {
        let rank: [ReportCache.Outcome: Int] = [.hit: 0, .stale: 1, .revalidated: 2, .miss: 3]
        value.withLock { current in
            guard let c = current else {
                current = o
                return
            }
            if (rank[o] ?? 0) > (rank[c] ?? 0) { current = o }
        }
    }
    public var outcome: ReportCache.Outcome? { value.withLock { $0 } }
}

import Synchronization

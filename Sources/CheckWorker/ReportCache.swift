#if canImport(Glibc)
    import Glibc
#endif
import ExchangeChecks
import Foundation
import GraphReports
import Tracing

/// Graph allows about 14 CSV report calls per 10 minutes per report, tenant and app, and report
/// data changes about once a day. This cache sits in front of `GraphSession` for the worker:
///
/// * one entry per (tenant, report, parameters), fresh for `ttl`; or, with a `refresh` schedule
///   (the worker's default), fresh until its `RefreshSchedule` says the data may have changed:
///   a period report is revalidated around the time of day its data changed before, a dated
///   report (a past day's data, which does not change) after one `refresh.period`;
/// * at most one download in flight per key: other checks join it, each waiting no longer than
///   its own deadline (a joiner whose deadline passes fails as `timeout`, the download goes on);
/// * an expired entry with an ETag is revalidated with `If-None-Match` (304 keeps the body);
/// * a per-tenant, per-report call budget, spent only when a Graph call is actually made (a
///   check that failed before calling, e.g. on its token, gives its slot back); when it is spent,
///   a copy at most `maxStale` past its TTL is served, or the check waits for budget if its
///   deadline allows (and then joins a download another check started meanwhile), else it fails
///   as `throttled`;
/// * reports are kept parsed, as `ReportSnapshot`s (parsed once, by the check that downloaded
///   them, on the evaluation pool), and values derived from a snapshot are memoised per snapshot
///   (`memoised`/`remember`: a filter's aggregate, a whole check's result and rendering) until the
///   snapshot is replaced or evicted;
/// * a byte budget: snapshots and memoised values count their size; past the budget, memoised
///   values go first (least recently used; they cost no Graph call to compute again), then
///   entries for past dates, then the least recently used entries. A snapshot larger than the
///   whole budget is served, not kept; a memoised value larger than a quarter of it is not kept.
public actor ReportCache {
    /// Identifies a cache entry and its download in flight: one report request of one tenant.
    public struct Key: Hashable, Sendable {
        /// The tenant's data as the worker names it (`Tenant.reportCacheName`: its configured
        /// name, Microsoft tenant, app and Graph endpoint); any string in tests.
        public var tenant: String
        /// The report and its parameter (period or date).
        public var request: ReportRequest
    }

    struct Entry {
        var snapshot: ReportSnapshot
        var etag: String?
        /// When Graph last confirmed this copy (download or 304).
        var fetchedAt: ContinuousClock.Instant
        /// When the copy is due for revalidation.
        var dueAt: ContinuousClock.Instant
        var lastUsed: ContinuousClock.Instant
    }

    /// How a report was obtained, for result metadata and metrics.
    public typealias Outcome = ReportOrigin

    /// How long a downloaded report is served without a Graph call (`graph.reportCacheSeconds`).
    public let ttl: Duration
    /// Graph report calls allowed per tenant and report within `window`
    /// (`graph.reportCallsPer10Minutes`).
    public let budget: Int
    /// The sliding window the call budget counts over (10 minutes by default).
    public let window: Duration
    /// How long past its TTL a copy may still be served when the budget is spent (a copy up to
    /// `maxStale` past its due time; older ones are not served: the check fails as throttled).
    public let maxStale: Duration
    /// Bytes of report bodies kept at most.
    public let maxBytes: Int
    /// The least time a downloaded report gets to be parsed (10 s; a 100,000-row report takes
    /// about 0.1 s): past the downloading check's deadline if need be.
    public static let parseBudget: Duration = .seconds(10)
    /// The default `maxStale`: one hour.
    public static let defaultMaxStale: Duration = .seconds(3_600)
    /// The default `maxBytes` (and `graph.reportCacheMaxBytes`): 256 MiB.
    public static let defaultMaxBytes = 256 << 20

    private var entries: [Key: Entry] = [:]
    /// Downloads in flight: each ends with its entry (or why not) and what it cost.
    private var inFlight: [Key: Task<(Result<(Entry, Outcome), GraphError>, FetchStats), Never>] = [:]
    /// Checks waiting for a download another check started, by key and waiter number.
    private var joiners: [Key: [Int: CheckedContinuation<Result<ReportSnapshot, GraphError>?, Never>]] = [:]
    /// Values derived from snapshots, and which keys each snapshot has.
    private var memos: [MemoKey: Memo] = [:]
    private var memosBySnapshot: [UInt64: Set<MemoKey>] = [:]
    /// The refresh-aware schedule's settings (nil: every entry is fresh for `ttl`).
    public let refresh: RefreshSchedule.Configuration?
    /// What each period report's changes taught (refresh-aware only).
    private var schedules: [Key: RefreshSchedule] = [:]
    /// Memoised values served, since start.
    public private(set) var memoHits = 0
    private var nextJoiner = 0
    /// Joiners whose deadline passed before they registered (the timer ran first).
    private var expiredJoiners: Set<Int> = []
    /// Call times per (tenant, report name): the sliding window of the budget.
    private var calls: [String: [ContinuousClock.Instant]] = [:]
    /// Bytes held by `entries` and `memos`.
    public private(set) var bytes = 0
    /// Entries dropped to stay under `maxBytes`, since start.
    public private(set) var evictions = 0
    private let clock = ContinuousClock()

    /// An empty cache with these limits (defaults: fresh for 900 s, 14 calls per 10 minutes,
    /// `defaultMaxStale`, `defaultMaxBytes`).
    public init(
        ttl: Duration = .seconds(900), budget: Int = 14, window: Duration = .seconds(600),
        maxStale: Duration = ReportCache.defaultMaxStale, maxBytes: Int = ReportCache.defaultMaxBytes,
        refresh: RefreshSchedule.Configuration? = nil
    ) {
        self.refresh = refresh
        self.ttl = ttl
        self.budget = budget
        self.window = window
        self.maxStale = maxStale
        self.maxBytes = maxBytes
    }

    /// Number of cached entries.
    public var count: Int { entries.count }
    /// Number of memoised values.
    public var memoCount: Int { memos.count }

    struct Memo {
        var value: MemoValue
        var bytes: Int
        var lastUsed: ContinuousClock.Instant
    }

    /// The value memoised for `key`, if still kept.
    public func memoised(_ key: MemoKey) -> MemoValue? {
        guard var m = memos[key] else { return nil }
        m.lastUsed = clock.now
        memos[key] = m
        memoHits += 1
        return m.value
    }

    /// Keeps `value` for `key` while every snapshot it names is cached (a value for a snapshot
    /// that is gone already, or larger than a quarter of the byte budget, is dropped).
    public func remember(_ key: MemoKey, _ value: MemoValue) {
        let size = value.bytes
        guard size <= maxBytes / 4 else { return }
        let live = Set(entries.values.map(\.snapshot.id))
        guard key.snapshots.allSatisfy(live.contains) else { return }
        if let old = memos.removeValue(forKey: key) { bytes -= old.bytes }
        memos[key] = Memo(value: value, bytes: size, lastUsed: clock.now)
        for id in key.snapshots { memosBySnapshot[id, default: []].insert(key) }
        bytes += size
        evict(keeping: nil)
    }

    /// Drops every entry, memoised value and learnt schedule of a tenant name not in `tenants`
    /// (`Tenant.reportCacheName`): after a configuration reload, the data of a removed or
    /// re-pointed tenant (another Microsoft tenant, app or Graph endpoint) is not kept until
    /// evicted. Downloads in flight finish as they are. Returns the entries dropped.
    @discardableResult
    public func keepOnly(tenants: Set<String>) -> Int {
        let gone = entries.keys.filter { !tenants.contains($0.tenant) }
        for key in gone {
            guard let e = entries.removeValue(forKey: key) else { continue }
            bytes -= e.snapshot.bytes
            forgetMemos(of: e.snapshot.id)
        }
        for key in schedules.keys where !tenants.contains(key.tenant) { schedules[key] = nil }
        return gone.count
    }

    /// Drops the memoised values derived from snapshot `id`.
    private func forgetMemos(of id: UInt64) {
        guard let keys = memosBySnapshot.removeValue(forKey: id) else { return }
        for key in keys {
            guard let m = memos.removeValue(forKey: key) else { continue }
            bytes -= m.bytes
            for other in key.snapshots where other != id {
                memosBySnapshot[other]?.remove(key)
                if memosBySnapshot[other]?.isEmpty == true { memosBySnapshot[other] = nil }
            }
        }
    }

    /// The report body for `request`, how it was obtained and what this check spent on it
    /// (calls it made itself; joining another check's download costs nothing). The cost is
    /// counted also when the answer is an error.
    /// A download is parsed on `parser` (the worker's evaluation pool), once, by the check that
    /// made it.
    public func answer(
        _ request: ReportRequest, tenant: String, session: GraphSession, deadline: ContinuousClock.Instant,
        parser: any EvaluationExecutor = InlineExecutor()
    ) async -> ReportAnswer {
        var cost = FetchStats()
        do throws(GraphError) {
            let (snapshot, origin) = try await obtain(request, tenant: tenant, session: session, deadline: deadline, parser: parser, cost: &cost)
            // When Graph last confirmed the copy served (a copy too large to keep: now).
            let kept = entries[Key(tenant: tenant, request: request)]
            let confirmed = kept.flatMap { $0.snapshot === snapshot ? $0.fetchedAt : nil } ?? clock.now
            return .data(snapshot, origin, cost: cost, confirmedAt: confirmed)
        } catch {
            return .failure(error, cost: cost)
        }
    }

    /// `answer` without its cost, as a throwing call.
    public func report(
        _ request: ReportRequest, tenant: String, session: GraphSession,
        deadline: ContinuousClock.Instant
    ) async throws(GraphError) -> (ReportSnapshot, Outcome) {
        let a = await answer(request, tenant: tenant, session: session, deadline: deadline)
        let body = try a.body.get()
        return (body, a.origin ?? .miss)
    }

    private func obtain(
        _ request: ReportRequest, tenant: String, session: GraphSession, deadline: ContinuousClock.Instant,
        parser: any EvaluationExecutor, cost: inout FetchStats
    ) async throws(GraphError) -> (ReportSnapshot, Outcome) {
        let key = Key(tenant: tenant, request: request)
        if let body = freshBody(key) { return (body, .hit) }
        if inFlight[key] != nil, let joined = try await join(key, deadline: deadline) { return (joined, .hit) }
        // The download this check meant to join may have just ended: its copy is fresh.
        if let body = freshBody(key) { return (body, .hit) }
        // Budget: wait for a slot if the deadline allows, else serve the stale copy or fail.
        let budgetKey = "\(tenant)|\(request.report)"
        var slot: ContinuousClock.Instant
        while true {
            let t = clock.now
            var times = (calls[budgetKey] ?? []).filter { $0.duration(to: t) < window }
            if times.count < budget {
                slot = t
                times.append(t)
                calls[budgetKey] = times
                break
            }
            calls[budgetKey] = times
            if var stale = entries[key], t <= stale.dueAt.advanced(by: maxStale) {
                stale.lastUsed = t
                entries[key] = stale
                return (stale.snapshot, .stale)
            }
            let freeAt = times[0].advanced(by: window)
            if freeAt > deadline {
                let wait = t.duration(to: freeAt)
                throw GraphError(
                    .throttled,
                    "The report call budget for \(request.report) of this tenant is spent (\(budget) calls per \(window.components.seconds / 60) minutes, Graph's limit)\(entries[key] != nil ? " and the cached copy is older than the maximum stale age" : ""); the next call is possible in \(wait.components.seconds + 1) s, after this check's deadline. Lower the check frequency or raise the report cache TTL.",
                    retryAfterSeconds: Double(wait.components.seconds + 1))
            }
            do { try await Task.sleep(until: freeAt, clock: clock) } catch {
                throw GraphError(.timeout, "The check was cancelled while waiting for report budget.")
            }
            // While this check waited, another may have fetched the report or started to.
            if let body = freshBody(key) { return (body, .hit) }
            if inFlight[key] != nil, let joined = try await join(key, deadline: deadline) { return (joined, .hit) }
        }
        let stale = entries[key]
        let task = Task<(Result<(Entry, Outcome), GraphError>, FetchStats), Never> {
            var local = FetchStats()
            let now = ContinuousClock.now
            do throws(GraphError) {
                switch try await session.fetch(request, deadline: deadline, etag: stale?.etag, stats: &local) {
                case .body(let bytes, let etag):
                    // Parsed once, here, for every check that reads it; the parse has at least
                    // `parseBudget` even when the download used most of this check's time (a parse
                    // given up would throw the download, and a call of the budget, away).
                    let parseDeadline = max(deadline, ContinuousClock.now.advanced(by: ReportCache.parseBudget))
                    let snapshot = try await parser.evaluate(deadline: parseDeadline) {
                        let parsed = ReportSnapshot.parse(bytes, request: request)
                        MemoryRelease.afterParse()
                        return parsed
                    }
                    return (.success((Entry(snapshot: snapshot, etag: etag, fetchedAt: now, dueAt: now, lastUsed: now), .miss)), local)
                case .notModified:
                    guard let stale else { return (.failure(GraphError(.graph, "Graph answered 304 for \(request) without a cached copy.")), local) }
                    return (.success((Entry(snapshot: stale.snapshot, etag: stale.etag, fetchedAt: now, dueAt: now, lastUsed: now), .revalidated)), local)
                }
            } catch {
                return (.failure(error), local)
            }
        }
        inFlight[key] = task
        let (result, spent) = await task.value
        cost = cost + spent
        inFlight[key] = nil
        // No Graph call made (e.g. the token request failed): the budget slot is given back.
        if spent.graphCalls == 0, var times = calls[budgetKey], let i = times.firstIndex(of: slot) {
            times.remove(at: i)
            calls[budgetKey] = times.isEmpty ? nil : times
        }
        let waiting = joiners.removeValue(forKey: key) ?? [:]
        switch result {
        case .success(let (fetched, outcome)):
            var entry = fetched
            entry.dueAt = due(key, entry, changed: stale.map { Self.changed(from: $0, to: entry, outcome) } ?? false)
            store(key, entry)
            for (_, c) in waiting { c.resume(returning: .success(entry.snapshot)) }
            return (entry.snapshot, outcome)
        case .failure(let error):
            for (_, c) in waiting { c.resume(returning: .failure(error)) }
            throw error
        }
    }

    /// A download that replaced `old` with different, usable data: a new ETag when both have one,
    /// else a new Report Refresh Date (what Graph's daily refresh changes). A body that could not
    /// be parsed or holds no rows is never a change: it must not teach the schedule a refresh time.
    static func changed(from old: Entry, to new: Entry, _ outcome: Outcome) -> Bool {
        guard outcome == .miss, new.snapshot.reportDate != "" else { return false }
        if let a = old.etag, let b = new.etag { return a != b }
        return old.snapshot.reportDate != new.snapshot.reportDate
    }

    /// When `entry` is due again; `changed` when it replaced different data. A copy that could not
    /// be parsed or holds no rows is asked again after `ttl` (at most the schedule's first
    /// interval): it may be a transient failure of Graph's.
    private func due(_ key: Key, _ entry: Entry, changed: Bool) -> ContinuousClock.Instant {
        let fetchedAt = entry.fetchedAt
        guard let refresh else { return fetchedAt.advanced(by: ttl) }
        guard entry.snapshot.reportDate != "" else { return fetchedAt.advanced(by: min(ttl, refresh.initialInterval)) }
        // A past day's report does not change once published.
        guard case .period = key.request.parameter else { return fetchedAt.advanced(by: max(ttl, refresh.period)) }
        var schedule = schedules[key] ?? RefreshSchedule(configuration: refresh)
        schedule.observe(at: fetchedAt, changed: changed)
        schedules[key] = schedule
        return schedule.due(after: fetchedAt)
    }

    private func freshBody(_ key: Key) -> ReportSnapshot? {
        let now = clock.now
        guard var e = entries[key], now < e.dueAt else { return nil }
        e.lastUsed = now
        entries[key] = e
        return e.snapshot
    }

    /// Waits for the download in flight for `key`, no longer than `deadline`. Nil when that
    /// download ended before this check could join it (the caller looks again).
    private func join(_ key: Key, deadline: ContinuousClock.Instant) async throws(GraphError) -> ReportSnapshot? {
        let id = nextJoiner
        nextJoiner += 1
        let outcome: Result<ReportSnapshot, GraphError>? = await withTaskGroup(of: Result<ReportSnapshot, GraphError>??.self) { group in
            group.addTask { .some(await self.wait(key, id)) }
            group.addTask {
                // At the deadline, or when the check is cancelled, the waiter above is resumed
                // with an error (then this ends). Also reached when the waiter got its value and
                // cancelled this timer: `expire` then finds nothing to resume.
                try? await Task.sleep(until: deadline, clock: .continuous)
                await self.expire(key, id, cancelled: Task.isCancelled)
                return .none
            }
            var value: Result<ReportSnapshot, GraphError>?? = nil
            while let next = await group.next() {
                if case .some(let v) = next {
                    value = .some(v)
                    group.cancelAll()
                }
            }
            return value ?? nil
        }
        forgetExpiry(id)
        guard let outcome else { return nil }
        return try outcome.get()
    }

    private func wait(_ key: Key, _ id: Int) async -> Result<ReportSnapshot, GraphError>? {
        // The timer may have fired before this waiter got here: then it has already timed out.
        if expiredJoiners.remove(id) != nil { return .failure(Self.joinTimeout(key)) }
        guard inFlight[key] != nil else { return nil }
        return await withCheckedContinuation { c in joiners[key, default: [:]][id] = c }
    }

    private func expire(_ key: Key, _ id: Int, cancelled: Bool) {
        guard let c = joiners[key]?.removeValue(forKey: id) else {
            expiredJoiners.insert(id)
            return
        }
        if joiners[key]?.isEmpty == true { joiners[key] = nil }
        c.resume(
            returning: .failure(
                cancelled
                    ? GraphError(.timeout, "The check was cancelled while waiting for a download of \(key.request) that another check started.")
                    : Self.joinTimeout(key)))
    }

    private func forgetExpiry(_ id: Int) {
        expiredJoiners.remove(id)
    }

    static func joinTimeout(_ key: Key) -> GraphError {
        GraphError(.timeout, "The check reached its deadline while waiting for a download of \(key.request) that another check started.")
    }

    /// Keeps `entry`, then evicts until everything fits `maxBytes`. Replacing a snapshot by
    /// another (a new download) drops the values memoised from the old one; a revalidated copy
    /// keeps its snapshot and its memos.
    private func store(_ key: Key, _ entry: Entry) {
        if let old = entries.removeValue(forKey: key) {
            bytes -= old.snapshot.bytes
            if old.snapshot.id != entry.snapshot.id { forgetMemos(of: old.snapshot.id) }
        }
        guard entry.snapshot.bytes <= maxBytes else { return }
        entries[key] = entry
        bytes += entry.snapshot.bytes
        evict(keeping: key)
    }

    /// While over `maxBytes`: memoised values first (least recently used; recomputing one costs no
    /// Graph call), then entries for a past date (a newer date is what checks ask for), then the
    /// least recently used entries, never `keeping`.
    private func evict(keeping: Key?) {
        guard bytes > maxBytes else { return }
        for (k, m) in memos.sorted(by: { $0.value.lastUsed < $1.value.lastUsed }) where bytes > maxBytes {
            memos[k] = nil
            bytes -= m.bytes
            for id in k.snapshots {
                memosBySnapshot[id]?.remove(k)
                if memosBySnapshot[id]?.isEmpty == true { memosBySnapshot[id] = nil }
            }
        }
        guard bytes > maxBytes else { return }
        var latestDate: [String: String] = [:]  // (tenant, report) → newest date cached
        for k in entries.keys {
            if case .date(let d) = k.request.parameter {
                let group = "\(k.tenant)|\(k.request.report)"
                if d > latestDate[group] ?? "" { latestDate[group] = d }
            }
        }
        func isPastDate(_ k: Key) -> Bool {
            guard case .date(let d) = k.request.parameter else { return false }
            return d < latestDate["\(k.tenant)|\(k.request.report)"] ?? ""
        }
        let order = entries.filter { $0.key != keeping }.sorted { a, b in
            let (pa, pb) = (isPastDate(a.key), isPastDate(b.key))
            if pa != pb { return pa }
            return a.value.lastUsed < b.value.lastUsed
        }
        for (k, e) in order where bytes > maxBytes {
            entries[k] = nil
            bytes -= e.snapshot.bytes
            forgetMemos(of: e.snapshot.id)
            evictions += 1
        }
    }
}

/// Parsing a large report allocates per field (the CSV reader's strings) and then keeps only the
/// compact snapshot; glibc's allocator keeps the freed arenas mapped. Handing them back after
/// each parse keeps the worker's resident memory near what its caches hold (bench warm, step 5).
enum MemoryRelease {
    /// glibc's `malloc_trim` (declared in malloc.h, which Swift's Glibc module does not import),
    /// looked up once; nil on other C libraries (then nothing is done).
    #if canImport(Glibc)
        private static let trim: (@convention(c) (Int) -> Int32)? = {
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
            return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
        }()
    #endif

    static func afterParse() {
        #if canImport(Glibc)
            _ = trim?(0)
        #endif
    }
}

/// The `ReportSource` a worker check uses: the shared cache in front of the tenant's session.
public struct CachedReports: ReportSource {
    let cache: ReportCache
    let tenant: String
    let session: GraphSession
    let parser: any EvaluationExecutor

    /// The report source of one check: `cache`, shared by the worker's checks, in front of the
    /// tenant's `session`; a report this check downloads is parsed on `parser`.
    public init(cache: ReportCache, tenant: String, session: GraphSession, parser: any EvaluationExecutor = InlineExecutor()) {
        self.cache = cache
        self.tenant = tenant
        self.session = session
        self.parser = parser
    }

    /// The report from the cache, or downloaded through the session, for this tenant, no later
    /// than `deadline`; a failure comes back in the answer.
    public func report(_ request: ReportRequest, deadline: ContinuousClock.Instant) async -> ReportAnswer {
        await withSpan(TraceSpan.fetch) { span in
            if span.isRecording { span.attributes[TraceSpan.Attribute.report] = request.report }
            let answer = await cache.answer(request, tenant: tenant, session: session, deadline: deadline, parser: parser)
            if let origin = answer.origin, span.isRecording { span.attributes[TraceSpan.Attribute.reportOrigin] = origin.rawValue }
            if case .failure(let error) = answer.body { TraceSpan.fail(span, kind: error.kind) }
            return answer
        }
    }

    /// The cache's memoised value for `key` (keys name snapshot ids, which are unique in the
    /// process, so tenants cannot see each other's values).
    public func memoised(_ key: MemoKey) async -> MemoValue? {
        await cache.memoised(key)
    }

    /// Offers `value` to the cache.
    public func remember(_ key: MemoKey, _ value: MemoValue) async {
        await cache.remember(key, value)
    }
}

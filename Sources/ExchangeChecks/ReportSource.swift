// Where a check gets its report data, and the vocabulary of that exchange. The check runner
// (`ExchangeCheckRunner`) lives in the core and sees reports only through `ReportSource`:
// `GraphSession` (GraphReports) fetches from Graph for `exocheck run`; the worker's
// `CachedReports` (CheckWorker) puts the shared report cache in front of a session. Neither the
// runner nor its tests know about HTTP.

/// Why a check could not get or read its report data. `kind` is the `error.kind` of a check
/// result; `message` is the first output line after `UNKNOWN: ` and tells the operator what to
/// do; `details` are extra lines shown with `--verbose`/`--debug` (never secrets).
public struct CheckError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kinds are the check's error kinds (a Graph client uses auth, permission, throttled,
    /// graph, timeout, parse and unknown-tenant).
    public typealias Kind = CheckErrorKind

    /// What went wrong, reported as the result's `error.kind`.
    public var kind: Kind
    /// The first output line after `UNKNOWN: `: what happened and what the operator should do.
    public var message: String
    /// Extra lines, shown as long output with `--verbose` or `--debug` (never secrets); may be empty.
    public var details: [String]
    /// For throttling: seconds the server asked us to wait.
    public var retryAfterSeconds: Double?
    /// The server failed or could not be reached (5xx, 429, connection refused): trying again
    /// may succeed. Only what a retry policy looks at; never shown.
    public var transient = false

    /// Builds an error; `transient` starts false (set it when a retry may succeed).
    public init(_ kind: Kind, _ message: String, details: [String] = [], retryAfterSeconds: Double? = nil) {
        self.kind = kind
        self.message = message
        self.details = details
        self.retryAfterSeconds = retryAfterSeconds
    }

    /// The message alone (kind and details left out).
    public var description: String { message }

    /// What the error says; `transient` (a hint for retry policies) is not part of it.
    public static func == (a: CheckError, b: CheckError) -> Bool {
        a.kind == b.kind && a.message == b.message && a.details == b.details && a.retryAfterSeconds == b.retryAfterSeconds
    }
}

/// One Graph usage report request: `getMailboxUsageDetail(period='D7')`,
/// `getEmailActivityUserDetail(date=2025-06-28)`.
public struct ReportRequest: Sendable, Hashable, CustomStringConvertible {
    /// The report's one parameter: a period (`D7`) or a date (`2025-06-28`).
    public enum Parameter: Sendable, Hashable {
        /// A period such as `D7`, printed `period='D7'`.
        case period(String)
        /// One day as `YYYY-MM-DD`, printed `date=2025-06-28`.
        case date(String)
    }

    /// The Graph function name, e.g. `getMailboxUsageDetail`.
    public var report: String
    /// The period or day the report is asked for.
    public var parameter: Parameter

    /// Builds a request; `report` is the Graph function name (`CheckMode.reportName`).
    public init(report: String, parameter: Parameter) {
        self.report = report
        self.parameter = parameter
    }

    /// `period='D7'` / `date=2025-06-28`.
    public var parameterText: String {
        switch parameter {
        case .period(let p): return "period='\(p)'"
        case .date(let d): return "date=\(d)"
        }
    }

    /// The request written as Graph's function call, e.g. `getMailboxUsageDetail(period='D7')`.
    public var description: String { "\(report)(\(parameterText))" }
}

/// What getting report data cost, for result metadata and metrics. Counted also when the
/// check fails: a check that spent three calls and then timed out still spent them.
public struct FetchStats: Sendable, Equatable {
    /// Times a token was needed (a Graph call was about to be made); 0 when every report came
    /// from a cache.
    public var tokenLookups = 0
    /// Token requests sent to the identity platform (0 with lookups: the token came from a cache).
    public var tokenRequests = 0
    /// HTTP requests to Graph (report requests and downloads, retries included).
    public var graphCalls = 0
    /// Graph answers 429 (throttled) among them.
    public var throttled = 0

    /// Builds a cost; every count defaults to 0 (nothing spent).
    public init(tokenLookups: Int = 0, tokenRequests: Int = 0, graphCalls: Int = 0, throttled: Int = 0) {
        self.tokenLookups = tokenLookups
        self.tokenRequests = tokenRequests
        self.graphCalls = graphCalls
        self.throttled = throttled
    }

    /// The sum of two costs.
    public static func + (a: FetchStats, b: FetchStats) -> FetchStats {
        FetchStats(
            tokenLookups: a.tokenLookups + b.tokenLookups, tokenRequests: a.tokenRequests + b.tokenRequests,
            graphCalls: a.graphCalls + b.graphCalls, throttled: a.throttled + b.throttled)
    }
}

/// How a report's data was obtained (the `cache.report` of a result). Ordered from cheapest to
/// dearest: a check that reads two reports reports the dearer one.
public enum ReportOrigin: String, Sendable, CaseIterable, Comparable {
    /// A fresh copy from the cache, or a download another check made.
    case hit
    /// A copy older than the cache's TTL, served because the call budget is spent.
    case stale
    /// Graph confirmed the cached copy (304 to `If-None-Match`).
    case revalidated
    /// Downloaded from Graph for this check.
    case miss

    var rank: Int {
        switch self {
        case .hit: 0
        case .stale: 1
        case .revalidated: 2
        case .miss: 3
        }
    }

    /// Cheaper first: hit < stale < revalidated < miss.
    public static func < (a: ReportOrigin, b: ReportOrigin) -> Bool { a.rank < b.rank }
}

/// A report source's answer: the parsed report or why not, how it was obtained and what it cost.
public struct ReportAnswer: Sendable {
    /// The report, parsed once (its `content` may be a parse error), or why it could not be had.
    public var body: Result<ReportSnapshot, CheckError>
    /// nil when no data came (the request failed).
    public var origin: ReportOrigin?
    /// What getting it cost (token requests, Graph calls, throttled answers), also on failure.
    public var cost: FetchStats
    /// When Graph last confirmed this copy (its download or a 304); nil when no data came. A
    /// result's `reportAgeSeconds` is measured from it.
    public var confirmedAt: ContinuousClock.Instant?

    /// Builds an answer from its parts; `data(_:_:cost:confirmedAt:)` and `failure(_:cost:)` are
    /// shorter.
    public init(body: Result<ReportSnapshot, CheckError>, origin: ReportOrigin?, cost: FetchStats, confirmedAt: ContinuousClock.Instant? = nil) {
        self.body = body
        self.origin = origin
        self.cost = cost
        self.confirmedAt = confirmedAt
    }

    /// Data obtained this way, confirmed by Graph at `confirmedAt` (default: now).
    public static func data(
        _ snapshot: ReportSnapshot, _ origin: ReportOrigin, cost: FetchStats = FetchStats(), confirmedAt: ContinuousClock.Instant = .now
    ) -> ReportAnswer {
        ReportAnswer(body: .success(snapshot), origin: origin, cost: cost, confirmedAt: confirmedAt)
    }

    /// No data: `error` says why; `cost` is what was spent trying.
    public static func failure(_ error: CheckError, cost: FetchStats = FetchStats()) -> ReportAnswer {
        ReportAnswer(body: .failure(error), origin: nil, cost: cost)
    }
}

/// What a memoised value was derived from and how: the snapshots read (by `ReportSnapshot.id`)
/// and a text naming the derivation (a filter, or a normalised check shape). A value stays valid
/// as long as its snapshots live: a new download is a new snapshot with a new id.
public struct MemoKey: Hashable, Sendable {
    /// The ids of the snapshots the value was computed from.
    public var snapshots: [UInt64]
    /// What was computed: `filter:` and the pattern, or `check:` and the normalised check.
    public var derivation: String

    /// Builds a key.
    public init(snapshots: [UInt64], derivation: String) {
        self.snapshots = snapshots
        self.derivation = derivation
    }

    /// Equal by the derivation's UTF-8 bytes, not by `String` equality (canonical equivalence:
    /// `é` and `e` + U+0301 are equal Strings, yet as patterns they match different names).
    public static func == (a: MemoKey, b: MemoKey) -> Bool {
        a.snapshots == b.snapshots && UTF8Key(a.derivation) == UTF8Key(b.derivation)
    }

    /// Hashes the snapshots and the derivation's UTF-8 bytes (as `==` compares them).
    public func hash(into hasher: inout Hasher) {
        hasher.combine(snapshots)
        hasher.combine(UTF8Key(derivation))
    }
}

/// A value derived from snapshots that a report source may keep (`ReportSource.remember`).
public enum MemoValue: Sendable {
    /// The rows email-activity selected for one filter, and their sums.
    case emailActivity(EmailActivityAggregate)
    /// The rows mailbox-usage selected for one filter, and their sums.
    case mailboxUsage(MailboxUsageAggregate)
    /// A whole check's result and its rendering.
    case check(MemoisedCheck)

    /// Bytes held, roughly: what the value counts in a cache's byte budget.
    public var bytes: Int {
        switch self {
        case .emailActivity(let a): return a.bytes
        case .mailboxUsage(let a): return a.bytes
        case .check(let c): return c.bytes
        }
    }
}

/// A check evaluated once and kept for its next repetition: the result and how it printed.
public struct MemoisedCheck: Sendable {
    /// The evaluated result.
    public var result: CheckResult
    /// The result rendered with the check's output options.
    public var rendered: RenderedOutput

    /// A result and its rendering.
    public init(result: CheckResult, rendered: RenderedOutput) {
        self.result = result
        self.rendered = rendered
    }

    /// Bytes held, roughly: the printed text twice (result and rendering) and the metrics.
    public var bytes: Int {
        256 + rendered.text.utf8.count * 2 + (rendered.perfdata.count + result.perfdata.count) * 96
            + result.longOutput.reduce(0) { $0 + $1.utf8.count + 16 }
    }
}

/// Something that hands out parsed reports: Graph itself, or a cache in front of it.
public protocol ReportSource: Sendable {
    /// The snapshot of `request`, no later than `deadline`, with how it was obtained and its cost
    /// (also when it failed).
    func report(_ request: ReportRequest, deadline: ContinuousClock.Instant) async -> ReportAnswer
    /// A value remembered for `key`, if the source keeps one (the default keeps nothing).
    func memoised(_ key: MemoKey) async -> MemoValue?
    /// Offers `value` for `key`; a source without a cache ignores it (the default).
    func remember(_ key: MemoKey, _ value: MemoValue) async
}

extension ReportSource {
    /// Keeps nothing: every check derives its values again (`exocheck run`, one check per process).
    public func memoised(_ key: MemoKey) async -> MemoValue? { nil }
    /// Keeps nothing.
    public func remember(_ key: MemoKey, _ value: MemoValue) async {}
}

/// Where the CPU-bound part of a check runs: CSV parsing, evaluation and rendering.
public protocol EvaluationExecutor: Sendable {
    /// Runs `work`; throws `timeout` when it has not finished by `deadline` plus the executor's
    /// grace period (the work may go on in the background, but nobody waits for it).
    func evaluate<T: Sendable>(deadline: ContinuousClock.Instant, _ work: @escaping @Sendable () -> T) async throws(CheckError) -> T
}

/// Runs the work on the calling task (`exocheck run`: one check, one process, its own time limit).
public struct InlineExecutor: EvaluationExecutor {
    /// The inline executor; it has no state.
    public init() {}
    /// Runs `work` at once on the calling task and returns its value: `deadline` is not enforced
    /// and nothing is thrown.
    public func evaluate<T: Sendable>(deadline: ContinuousClock.Instant, _ work: @escaping @Sendable () -> T) async throws(CheckError) -> T {
        work()
    }
}

import Foundation

/// The outcome of one check: what to print, and why it failed when it did.
public struct CheckOutcome: Sendable {
    /// What the check prints: its messages, long output and perfdata, or the error message when it
    /// failed.
    public var result: CheckResult
    /// Why the check failed; nil when it ran to the end.
    public var error: CheckError?
    /// What the check's report requests cost, also when it failed.
    public var stats: FetchStats
    /// How its report data was obtained (the dearest of its reports); nil when none came.
    public var origin: ReportOrigin?
    /// How long ago Graph last confirmed the oldest of its reports (a download or a 304); nil
    /// when no report data came.
    public var reportAge: Duration?

    /// Builds an outcome; `origin` defaults to nil (no report data came).
    public init(result: CheckResult, error: CheckError?, stats: FetchStats, origin: ReportOrigin? = nil) {
        self.result = result
        self.error = error
        self.stats = stats
        self.origin = origin
    }

    /// Prints like `exocheck run`.
    public func rendered(_ options: OutputOptions) -> RenderedOutput {
        OutputRenderer.render(result, options: options, isError: error != nil)
    }
}

/// Fetch → parse → evaluate, the one code path behind `exocheck run`, the worker and the demo.
public enum ExchangeCheckRunner {
    /// Runs one check: fetches the mode's reports through `reports` (email-activity: the D7 report,
    /// then, unless it is empty, the daily report of its refresh date; mailbox-usage: the D7
    /// report), and evaluates them on `executor`. Every user regular expression stops at
    /// `deadline` (a `RegexBudget` already bound takes precedence); if one ran out of time, the
    /// outcome is a `timeout` failure. Failures are returned, never thrown. `timeZone` places the
    /// `perfdate` metric (noon on the report date).
    public static func run(
        _ config: CheckConfiguration, reports: some ReportSource, deadline: ContinuousClock.Instant,
        timeZone: TimeZone = .current, executor: some EvaluationExecutor = InlineExecutor()
    ) async -> CheckOutcome {
        let budget = RegexBudget.current ?? RegexBudget(deadline: deadline)
        return await RegexBudget.$current.withValue(budget) {
            let step = await evaluate(config, reports: reports, deadline: deadline, timeZone: timeZone, executor: executor, shape: nil)
            return withinBudget(step.outcome, budget: budget, options: config.output)
        }
    }

    /// `run`, then renders the outcome with the check's output options on `executor` (if that
    /// does not finish by `deadline`, the time limit's error is rendered plain, with
    /// `optionFailure` `timeout`). With a `shape` (the check's normalised options, the same text
    /// for the same check) and a source that memoises, a check repeated on the same snapshots is
    /// answered from the source's memo: a lookup, no evaluation, no rendering. Only successful
    /// evaluations whose regular expressions all finished are memoised.
    public static func runRendered(
        _ config: CheckConfiguration, reports: some ReportSource, deadline: ContinuousClock.Instant,
        timeZone: TimeZone = .current, executor: some EvaluationExecutor = InlineExecutor(), shape: String? = nil
    ) async -> (CheckOutcome, RenderedOutput) {
        let budget = RegexBudget.current ?? RegexBudget(deadline: deadline)
        return await RegexBudget.$current.withValue(budget) {
            let step = await evaluate(config, reports: reports, deadline: deadline, timeZone: timeZone, executor: executor, shape: shape)
            if let hit = step.memoised { return (step.outcome, hit.rendered) }
            let outcome = withinBudget(step.outcome, budget: budget, options: config.output)
            let rendered = await render(outcome.result, options: config.output, isError: outcome.error != nil, deadline: deadline, executor: executor)
            if let key = step.memoKey, outcome.error == nil, rendered.optionFailure == nil, budget.exceededOption == nil {
                await reports.remember(key, .check(MemoisedCheck(result: outcome.result, rendered: rendered)))
            }
            return (outcome, rendered)
        }
    }

    /// Renders on `executor` (output options run user regexes); if that does not finish in time,
    /// the error of the time limit is rendered without the output options.
    public static func render(
        _ result: CheckResult, options: OutputOptions, isError: Bool, deadline: ContinuousClock.Instant,
        executor: some EvaluationExecutor
    ) async -> RenderedOutput {
        do {
            return try await executor.evaluate(deadline: deadline) { OutputRenderer.render(result, options: options, isError: isError) }
        } catch {
            var plain = OutputOptions()
            plain.errorStatus = options.errorStatus
            var timedOut = OutputRenderer.render(CheckResult.error(error.message, status: options.errorStatus), options: plain, isError: true)
            timedOut.optionFailure = .timeout
            return timedOut
        }
    }

    /// `outcome`, or a `timeout` failure when a regular expression ran out of time meanwhile.
    static func withinBudget(_ outcome: CheckOutcome, budget: RegexBudget, options: OutputOptions) -> CheckOutcome {
        guard let message = budget.exceededMessage else { return outcome }
        return failure(CheckError(.timeout, message), options: options, stats: outcome.stats, origin: outcome.origin)
    }

    /// What `evaluate` found: the outcome, a memoised check when the source had one, and the key
    /// to memoise this check under (nil without a shape).
    struct Step {
        var outcome: CheckOutcome
        var memoised: MemoisedCheck? = nil
        var memoKey: MemoKey? = nil
    }

    /// The parsed reports of one check, by mode.
    enum ModeTables: Sendable {
        case email(EmailActivityTable, EmailActivityTable)
        case mailbox(MailboxUsageTable)
    }

    /// The memo text of a check's instance filter: which rows an aggregate read.
    static func filterDerivation(_ filter: FilterRegex?) -> String {
        guard let filter else { return "filter:" }
        return (filter.regex.options.contains(.caseInsensitive) ? "filter:i/" : "filter:/") + filter.pattern
    }

    static func evaluate(
        _ config: CheckConfiguration, reports: some ReportSource, deadline: ContinuousClock.Instant,
        timeZone: TimeZone, executor: some EvaluationExecutor, shape: String?
    ) async -> Step {
        var stats = FetchStats()
        var origin: ReportOrigin? = nil
        var confirmed: ContinuousClock.Instant? = nil
        // One report through the source: its cost and origin are kept whatever happens next.
        func fetch(_ request: ReportRequest) async throws(CheckError) -> ReportSnapshot {
            let answer = await reports.report(request, deadline: deadline)
            stats = stats + answer.cost
            if let o = answer.origin { origin = max(origin ?? o, o) }
            if let c = answer.confirmedAt { confirmed = min(confirmed ?? c, c) }
            return try answer.body.get()
        }
        func outcome(_ result: CheckResult) -> CheckOutcome {
            var o = CheckOutcome(result: result, error: nil, stats: stats, origin: origin)
            o.reportAge = confirmed.map { $0.duration(to: .now) }
            return o
        }
        do throws(CheckError) {
            // The reports, as snapshots; `ids` name them in memo keys.
            let tables: ModeTables
            var ids: [UInt64]
            switch config.mode {
            case .emailActivity:
                let periodRequest = ReportRequest(report: CheckMode.emailActivity.reportName, parameter: .period("D7"))
                let periodSnapshot = try await fetch(periodRequest)
                let period = try periodSnapshot.emailActivity()
                ids = [periodSnapshot.id]
                var daily = EmailActivityTable(rows: [])
                let reportDate = period.reportDate
                if !period.isEmpty {
                    guard isISODate(reportDate) else {
                        throw CheckError(
                            .parse,
                            "Report \(periodRequest) is malformed: its first row has no valid 'Report Refresh Date' ('\(reportDate.prefix(40))'), so the daily report cannot be requested."
                        )
                    }
                    let dailySnapshot = try await fetch(ReportRequest(report: CheckMode.emailActivity.reportName, parameter: .date(reportDate)))
                    daily = try dailySnapshot.emailActivity()
                    ids.append(dailySnapshot.id)
                }
                tables = .email(period, daily)
            case .mailboxUsage:
                let snapshot = try await fetch(ReportRequest(report: CheckMode.mailboxUsage.reportName, parameter: .period("D7")))
                tables = .mailbox(try snapshot.mailboxUsage())
                ids = [snapshot.id]
            }
            // The same check on the same snapshots: its memoised result.
            let checkKey = shape.map { MemoKey(snapshots: ids, derivation: "check:\(timeZone.identifier)\u{0}\($0)") }
            if let checkKey, case .check(let hit)? = await reports.memoised(checkKey) {
                return Step(outcome: outcome(hit.result), memoised: hit)
            }
            // Another check with the same filter read the rows already: its aggregate.
            let filterKey = MemoKey(snapshots: ids, derivation: filterDerivation(config.instanceFilter))
            let known = await reports.memoised(filterKey)
            let filter = config.instanceFilter
            let (result, computed): (CheckResult, MemoValue?) = try await executor.evaluate(deadline: deadline) {
                switch tables {
                case .email(let period, let daily):
                    if case .emailActivity(let a)? = known {
                        return (EmailActivityCheck.evaluate(a, period: period, daily: daily, config: config, timeZone: timeZone), nil)
                    }
                    let a = EmailActivityCheck.aggregate(period: period, daily: daily, filter: filter)
                    return (EmailActivityCheck.evaluate(a, period: period, daily: daily, config: config, timeZone: timeZone), .emailActivity(a))
                case .mailbox(let period):
                    if case .mailboxUsage(let a)? = known {
                        return (MailboxUsageCheck.evaluate(a, period: period, config: config, timeZone: timeZone), nil)
                    }
                    let a = MailboxUsageCheck.aggregate(period: period, filter: filter)
                    return (MailboxUsageCheck.evaluate(a, period: period, config: config, timeZone: timeZone), .mailboxUsage(a))
                }
            }
            // An aggregate whose filter ran out of time is incomplete: never kept.
            if let computed, RegexBudget.current?.exceededOption == nil { await reports.remember(filterKey, computed) }
            return Step(outcome: outcome(result), memoKey: checkKey)
        } catch {
            return Step(outcome: failure(error, options: config.output, stats: stats, origin: origin))
        }
    }

    /// An UNKNOWN (or `--opt-exit`) result for `error`.
    public static func failure(
        _ error: CheckError, options: OutputOptions, stats: FetchStats = FetchStats(),
        origin: ReportOrigin? = nil
    ) -> CheckOutcome {
        var result = CheckResult.error(error.message, status: options.errorStatus)
        result.longOutput = error.details
        return CheckOutcome(result: result, error: error, stats: stats, origin: origin)
    }

    static func isISODate(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard b.count == 10, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-") else { return false }
        return b.enumerated().allSatisfy { i, c in i == 4 || i == 7 || (c >= 48 && c <= 57) }
    }
}

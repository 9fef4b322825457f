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
    /// report), and parses and evaluates them on `executor`. Every user regular expression stops at
    /// `deadline` (a `RegexBudget` already bound takes precedence); if one ran out of time, the
    /// outcome is a `timeout` failure. Failures are returned, never thrown. `timeZone` places the
    /// `perfdate` metric (noon on the report date).
    public static func run(
        _ config: CheckConfiguration, reports: some ReportSource, deadline: ContinuousClock.Instant,
        timeZone: TimeZone = .current, executor: some EvaluationExecutor = InlineExecutor()
    ) async -> CheckOutcome {
        // Every user regex of the evaluation stops at the check's deadline (an enclosing budget,
        // e.g. the worker's for the whole request, takes precedence).
        let budget = RegexBudget.current ?? RegexBudget(deadline: deadline)
        var outcome = await RegexBudget.$current.withValue(budget) {
            await evaluate(config, reports: reports, deadline: deadline, timeZone: timeZone, executor: executor)
        }
        if let message = budget.exceededMessage {
            outcome = failure(CheckError(.timeout, message), options: config.output, stats: outcome.stats, origin: outcome.origin)
        }
        return outcome
    }

    static func evaluate(
        _ config: CheckConfiguration, reports: some ReportSource, deadline: ContinuousClock.Instant,
        timeZone: TimeZone, executor: some EvaluationExecutor
    ) async -> CheckOutcome {
        var stats = FetchStats()
        var origin: ReportOrigin? = nil
        // One report through the source: its cost and origin are kept whatever happens next.
        func fetch(_ request: ReportRequest) async throws(CheckError) -> [UInt8] {
            let answer = await reports.report(request, deadline: deadline)
            stats = stats + answer.cost
            if let o = answer.origin { origin = max(origin ?? o, o) }
            return try answer.body.get()
        }
        do throws(CheckError) {
            let result: CheckResult
            switch config.mode {
            case .emailActivity:
                let periodRequest = ReportRequest(report: CheckMode.emailActivity.reportName, parameter: .period("D7"))
                let periodBody = try await fetch(periodRequest)
                let period = try await executor.evaluate(deadline: deadline) {
                    Result { () throws(CheckError) in try parse(periodBody, request: periodRequest, parser: ReportParser.emailActivity) }
                }.get()
                var daily: [EmailActivityRow] = []
                let reportDate = EmailActivityCheck.reportDate(of: period)
                if !period.isEmpty {
                    guard isISODate(reportDate) else {
                        throw CheckError(
                            .parse,
                            "Report \(periodRequest) is malformed: its first row has no valid 'Report Refresh Date' ('\(reportDate.prefix(40))'), so the daily report cannot be requested."
                        )
                    }
                    let dailyRequest = ReportRequest(report: CheckMode.emailActivity.reportName, parameter: .date(reportDate))
                    let dailyBody = try await fetch(dailyRequest)
                    daily = try await executor.evaluate(deadline: deadline) {
                        Result { () throws(CheckError) in try parse(dailyBody, request: dailyRequest, parser: ReportParser.emailActivity) }
                    }.get()
                }
                let dailyRows = daily
                result = try await executor.evaluate(deadline: deadline) {
                    EmailActivityCheck.evaluate(period: period, daily: dailyRows, config: config, timeZone: timeZone)
                }
            case .mailboxUsage:
                let request = ReportRequest(report: CheckMode.mailboxUsage.reportName, parameter: .period("D7"))
                let body = try await fetch(request)
                result = try await executor.evaluate(deadline: deadline) {
                    let rows: [MailboxUsageRow]
                    do throws(CheckError) { rows = try parse(body, request: request, parser: ReportParser.mailboxUsage) } catch {
                        return Result<CheckResult, CheckError>.failure(error)
                    }
                    return .success(MailboxUsageCheck.evaluate(period: rows, config: config, timeZone: timeZone))
                }.get()
            }
            return CheckOutcome(result: result, error: nil, stats: stats, origin: origin)
        } catch {
            return failure(error, options: config.output, stats: stats, origin: origin)
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

    static func parse<Row>(
        _ body: [UInt8], request: ReportRequest,
        parser: ([UInt8]) throws(ReportError) -> [Row]
    ) throws(CheckError) -> [Row] {
        do {
            return try parser(body)
        } catch {
            throw CheckError(
                .parse,
                "Report \(request) is malformed: \(error.description). No numbers were computed from it; retry later, and if it persists check what --graph-endpoint serves."
            )
        }
    }

    static func isISODate(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard b.count == 10, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-") else { return false }
        return b.enumerated().allSatisfy { i, c in i == 4 || i == 7 || (c >= 48 && c <= 57) }
    }
}

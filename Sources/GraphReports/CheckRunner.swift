import ExchangeChecks
import Foundation

/// Something that hands out report bodies: a `GraphSession` directly, or a cache in front of it.
public protocol ReportProvider: Sendable {
    func report(_ request: ReportRequest, deadline: ContinuousClock.Instant, stats: inout FetchStats) async throws(GraphError) -> [UInt8]
}

extension GraphSession: ReportProvider {
    public func report(_ request: ReportRequest, deadline: ContinuousClock.Instant, stats: inout FetchStats) async throws(GraphError) -> [UInt8] {
        switch try await fetch(request, deadline: deadline, stats: &stats) {
        case .body(let bytes, _): return bytes
        case .notModified: throw GraphError(.graph, "Graph answered 304 Not Modified to \(request) without a cached copy.")
        }
    }
}

/// The outcome of one check: what to print, and why it failed when it did.
public struct CheckOutcome: Sendable {
    public var result: CheckResult
    public var error: GraphError?
    public var stats: FetchStats

    public init(result: CheckResult, error: GraphError?, stats: FetchStats) {
        self.result = result
        self.error = error
        self.stats = stats
    }

    /// Prints like `exocheck run`.
    public func rendered(_ options: OutputOptions) -> RenderedOutput {
        OutputRenderer.render(result, options: options, isError: error != nil)
    }
}

/// Fetch → parse → evaluate, the one code path behind `exocheck run`, the worker and the demo.
public enum ExchangeCheckRunner {
    public static func run(_ config: CheckConfiguration, reports: some ReportProvider, deadline: ContinuousClock.Instant,
                           timeZone: TimeZone = .current, executor: some EvaluationExecutor = InlineExecutor()) async -> CheckOutcome {
        // Every user regex of the evaluation stops at the check's deadline (an enclosing budget,
        // e.g. the worker's for the whole request, takes precedence).
        let budget = RegexBudget.current ?? RegexBudget(deadline: deadline)
        var outcome = await RegexBudget.$current.withValue(budget) {
            await evaluate(config, reports: reports, deadline: deadline, timeZone: timeZone, executor: executor)
        }
        if let message = budget.exceededMessage {
            outcome = failure(GraphError(.timeout, message), options: config.output, stats: outcome.stats)
        }
        return outcome
    }

    static func evaluate(_ config: CheckConfiguration, reports: some ReportProvider, deadline: ContinuousClock.Instant,
                         timeZone: TimeZone, executor: some EvaluationExecutor) async -> CheckOutcome {
        var stats = FetchStats()
        do throws(GraphError) {
            let result: CheckResult
            switch config.mode {
            case .emailActivity:
                let periodRequest = ReportRequest(report: CheckMode.emailActivity.reportName, parameter: .period("D7"))
                let periodBody = try await reports.report(periodRequest, deadline: deadline, stats: &stats)
                let period = try await executor.evaluate(deadline: deadline) {
                    Result { () throws(GraphError) in try parse(periodBody, request: periodRequest, parser: ReportParser.emailActivity) }
                }.get()
                var daily: [EmailActivityRow] = []
                let reportDate = EmailActivityCheck.reportDate(of: period)
                if !period.isEmpty {
                    guard isISODate(reportDate) else {
                        throw GraphError(.parse, "Report \(periodRequest) is malformed: its first row has no valid 'Report Refresh Date' ('\(reportDate.prefix(40))'), so the daily report cannot be requested.")
                    }
                    let dailyRequest = ReportRequest(report: CheckMode.emailActivity.reportName, parameter: .date(reportDate))
                    let dailyBody = try await reports.report(dailyRequest, deadline: deadline, stats: &stats)
                    daily = try await executor.evaluate(deadline: deadline) {
                        Result { () throws(GraphError) in try parse(dailyBody, request: dailyRequest, parser: ReportParser.emailActivity) }
                    }.get()
                }
                let dailyRows = daily
                result = try await executor.evaluate(deadline: deadline) {
                    EmailActivityCheck.evaluate(period: period, daily: dailyRows, config: config, timeZone: timeZone)
                }
            case .mailboxUsage:
                let request = ReportRequest(report: CheckMode.mailboxUsage.reportName, parameter: .period("D7"))
                let body = try await reports.report(request, deadline: deadline, stats: &stats)
                result = try await executor.evaluate(deadline: deadline) {
                    let rows: [MailboxUsageRow]
                    do throws(GraphError) { rows = try parse(body, request: request, parser: ReportParser.mailboxUsage) } catch {
                        return Result<CheckResult, GraphError>.failure(error)
                    }
                    return .success(MailboxUsageCheck.evaluate(period: rows, config: config, timeZone: timeZone))
                }.get()
            }
            return CheckOutcome(result: result, error: nil, stats: stats)
        } catch {
            return failure(error, options: config.output, stats: stats)
        }
    }

    /// An UNKNOWN (or `--opt-exit`) result for `error`.
    public static func failure(_ error: GraphError, options: OutputOptions, stats: FetchStats = FetchStats()) -> CheckOutcome {
        var result = CheckResult.error(error.message, status: options.errorStatus)
        result.longOutput = error.details
        return CheckOutcome(result: result, error: error, stats: stats)
    }

    static func parse<Row>(_ body: [UInt8], request: ReportRequest,
                           parser: ([UInt8]) throws(ReportError) -> [Row]) throws(GraphError) -> [Row] {
        do {
            return try parser(body)
        } catch {
            throw GraphError(.parse, "Report \(request) is malformed: \(error.description). No numbers were computed from it; retry later, and if it persists check what --graph-endpoint serves.")
        }
    }

    static func isISODate(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard b.count == 10, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-") else { return false }
        return b.enumerated().allSatisfy { i, c in i == 4 || i == 7 || (c >= 48 && c <= 57) }
    }
}

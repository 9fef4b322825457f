import ExchangeChecks
import Foundation
import Synchronization
import Testing

/// A report source from memory: answers by request, records what was asked.
final class ScriptedReports: ReportSource {
    let answers: @Sendable (ReportRequest) -> ReportAnswer
    let asked = Mutex<[ReportRequest]>([])
    init(_ answers: @escaping @Sendable (ReportRequest) -> ReportAnswer) { self.answers = answers }
    func report(_ request: ReportRequest, deadline: ContinuousClock.Instant) async -> ReportAnswer {
        asked.withLock { $0.append(request) }
        return answers(request)
    }
}

extension ReportAnswer {
    /// A body for `request`, parsed as a source parses what it downloads.
    static func csv(_ body: [UInt8], _ request: ReportRequest, _ origin: ReportOrigin, cost: FetchStats = FetchStats()) -> ReportAnswer {
        .data(ReportSnapshot.parse(body, request: request), origin, cost: cost)
    }
}

/// The check runner (core): which reports a mode reads, and what a result says about how its data
/// was obtained. Pure: the reports come from memory (`ScriptedReports`).
@Suite("Check runner: reports asked, cost and origin kept")
struct CheckRunnerTests {
    static let period = ReportRequest(report: CheckMode.emailActivity.reportName, parameter: .period("D7"))
    static let daily = ReportRequest(report: CheckMode.emailActivity.reportName, parameter: .date("2025-06-28"))
    static let mailbox = ReportRequest(report: CheckMode.mailboxUsage.reportName, parameter: .period("D7"))
    static var deadline: ContinuousClock.Instant { .now.advanced(by: .seconds(30)) }

    static func config(_ mode: CheckMode, _ args: [String] = []) throws -> CheckConfiguration {
        guard case .check(let c, _) = Invocation.parse(try CentreonArguments(["--mode=\(mode.rawValue)"] + args), requireConnection: false) else {
            throw ArgumentError("not a check")
        }
        return c
    }

    @Test("email-activity reads the D7 period, then the day of its Report Refresh Date; the result equals the evaluation of those rows")
    func emailActivityReports() async throws {
        let source = ScriptedReports { r in
            r == Self.period ? .csv(FixtureCSV.served(FixtureCSV.smallEmailPeriod), r, .miss, cost: FetchStats(graphCalls: 2))
                : .csv(FixtureCSV.served(FixtureCSV.smallEmailDaily), r, .hit)
        }
        let config = try Self.config(.emailActivity)
        let outcome = await ExchangeCheckRunner.run(config, reports: source, deadline: Self.deadline, timeZone: Harness.utc)
        #expect(source.asked.withLock { $0 } == [Self.period, Self.daily])
        let expected = EmailActivityCheck.evaluate(period: try ReportParser.emailActivity(FixtureCSV.served(FixtureCSV.smallEmailPeriod)),
                                                   daily: try ReportParser.emailActivity(FixtureCSV.served(FixtureCSV.smallEmailDaily)),
                                                   config: config, timeZone: Harness.utc)
        #expect(outcome.error == nil)
        #expect(outcome.rendered(config.output).text == OutputRenderer.render(expected, options: config.output, isError: false).text)
        // The dearer of the two origins, the sum of the costs.
        #expect(outcome.origin == .miss)
        #expect(outcome.stats == FetchStats(graphCalls: 2))
    }

    @Test("an empty period report asks for no daily report")
    func emptyPeriod() async throws {
        let source = ScriptedReports { r in .csv(FixtureCSV.served(FixtureCSV.emptyEmailPeriod), r, .hit) }
        let outcome = await ExchangeCheckRunner.run(try Self.config(.emailActivity), reports: source, deadline: Self.deadline)
        #expect(source.asked.withLock { $0 } == [Self.period])
        #expect(outcome.error == nil)
        #expect(outcome.origin == .hit)
    }

    @Test("mailbox-usage reads the D7 mailbox report once")
    func mailboxReport() async throws {
        let source = ScriptedReports { r in .csv(FixtureCSV.served(FixtureCSV.smallMailbox), r, .revalidated, cost: FetchStats(tokenRequests: 1, graphCalls: 1)) }
        let outcome = await ExchangeCheckRunner.run(try Self.config(.mailboxUsage), reports: source, deadline: Self.deadline)
        #expect(source.asked.withLock { $0 } == [Self.mailbox])
        #expect(outcome.origin == .revalidated)
        #expect(outcome.stats == FetchStats(tokenRequests: 1, graphCalls: 1))
    }

    @Test("cost and origin survive an error: a daily report that fails after a throttled retry keeps both reports' calls (was: side boxes around the cache)")
    func costSurvivesErrors() async throws {
        let throttled = CheckError(.throttled, "Graph throttled the report.", retryAfterSeconds: 30)
        let source = ScriptedReports { r in
            r == Self.period ? .csv(FixtureCSV.served(FixtureCSV.smallEmailPeriod), r, .hit, cost: FetchStats(tokenRequests: 1))
                : .failure(throttled, cost: FetchStats(graphCalls: 3, throttled: 2))
        }
        let outcome = await ExchangeCheckRunner.run(try Self.config(.emailActivity), reports: source, deadline: Self.deadline)
        #expect(outcome.error == throttled)
        #expect(outcome.result.status == .unknown)
        #expect(outcome.stats == FetchStats(tokenRequests: 1, graphCalls: 3, throttled: 2))
        #expect(outcome.origin == .hit)
    }

    @Test("a malformed report is a parse error naming the report; its cost is kept")
    func malformed() async throws {
        let source = ScriptedReports { r in .csv(Array("not,a\nreport".utf8), r, .miss, cost: FetchStats(graphCalls: 2)) }
        let outcome = await ExchangeCheckRunner.run(try Self.config(.mailboxUsage), reports: source, deadline: Self.deadline)
        #expect(outcome.error?.kind == .parse)
        #expect(outcome.error?.message.contains("getMailboxUsageDetail(period='D7')") == true)
        #expect(outcome.stats.graphCalls == 2)
    }

    @Test("origins are ordered hit < stale < revalidated < miss")
    func originOrder() {
        #expect(ReportOrigin.allCases.sorted() == [.hit, .stale, .revalidated, .miss])
        #expect(Set(ReportOrigin.allCases.map(\.rawValue)) == ["hit", "stale", "revalidated", "miss"])
    }
}

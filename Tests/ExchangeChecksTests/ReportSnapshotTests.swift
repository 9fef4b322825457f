@testable import ExchangeChecks
import Foundation
import Synchronization
import Testing

/// A report source that keeps what a cache would keep: one snapshot per request (parsed once) and
/// every memoised value; it counts memo hits and remembered values.
final class MemoisingReports: ReportSource {
    let bodies: @Sendable (ReportRequest) -> [UInt8]?
    private let state = Mutex<(snapshots: [ReportRequest: ReportSnapshot], memos: [MemoKey: MemoValue], hits: [String], remembered: [String])>(
        ([:], [:], [], []))

    init(_ bodies: @escaping @Sendable (ReportRequest) -> [UInt8]?) { self.bodies = bodies }

    func report(_ request: ReportRequest, deadline: ContinuousClock.Instant) async -> ReportAnswer {
        if let s = state.withLock({ $0.snapshots[request] }) { return .data(s, .hit) }
        guard let body = bodies(request) else { return .failure(CheckError(.graph, "no such report: \(request)")) }
        let s = ReportSnapshot.parse(body, request: request)
        state.withLock { $0.snapshots[request] = s }
        return .data(s, .miss)
    }

    func memoised(_ key: MemoKey) async -> MemoValue? {
        state.withLock { st in
            guard let v = st.memos[key] else { return nil }
            st.hits.append(key.derivation)
            return v
        }
    }

    func remember(_ key: MemoKey, _ value: MemoValue) async {
        state.withLock {
            $0.memos[key] = value
            $0.remembered.append(key.derivation)
        }
    }

    var hits: [String] { state.withLock { $0.hits } }
    var remembered: [String] { state.withLock { $0.remembered } }
}

/// Counts the evaluations an executor ran (parse, aggregate, evaluate, render).
final class CountingExecutor: EvaluationExecutor {
    let runs = Mutex(0)
    func evaluate<T: Sendable>(deadline: ContinuousClock.Instant, _ work: @escaping @Sendable () -> T) async throws(CheckError) -> T {
        runs.withLock { $0 += 1 }
        return work()
    }
    var count: Int { runs.withLock { $0 } }
}

/// Parse once, evaluate many (issue 11): snapshots hold what the row parser reads; a memoising
/// source answers a repeated check without evaluating it; memoised output equals a fresh one.
@Suite("Report snapshots and memoised checks")
struct ReportSnapshotTests {
    static let period = ReportRequest(report: CheckMode.emailActivity.reportName, parameter: .period("D7"))
    static let daily = ReportRequest(report: CheckMode.emailActivity.reportName, parameter: .date("2025-06-28"))
    static let mailbox = ReportRequest(report: CheckMode.mailboxUsage.reportName, parameter: .period("D7"))
    static var deadline: ContinuousClock.Instant { .now.advanced(by: .seconds(30)) }

    static func body(_ r: ReportRequest) -> [UInt8]? {
        switch r {
        case period: return FixtureCSV.served(FixtureCSV.smallEmailPeriod)
        case daily: return FixtureCSV.served(FixtureCSV.smallEmailDaily)
        case mailbox: return FixtureCSV.served(FixtureCSV.smallMailbox)
        default: return nil
        }
    }

    static func config(_ mode: CheckMode, _ args: [String] = []) throws -> CheckConfiguration {
        guard case .check(let c, _) = Invocation.parse(try CentreonArguments(["--mode=\(mode.rawValue)"] + args), requireConnection: false) else {
            throw ArgumentError("not a check")
        }
        return c
    }

    @Test("a snapshot holds, row by row, what the row parser reads (packed names, interned dates and quotas, numbers)")
    func snapshotRows() throws {
        for csv in [FixtureCSV.smallEmailPeriod, FixtureCSV.smallEmailDaily] {
            let rows = try ReportParser.emailActivity(FixtureCSV.served(csv))
            let table = try EmailActivityTable.parse(FixtureCSV.served(csv))
            #expect(table.count == rows.count)
            #expect((0..<table.count).map(table.row) == rows)
            #expect(table == EmailActivityTable(rows: rows))
            #expect(table.refreshDate.values.count == 1, "one report date, stored once")
        }
        for csv in [FixtureCSV.smallMailbox, FixtureCSV.overquotaMailbox, FixtureCSV.emptyMailbox] {
            let rows = try ReportParser.mailboxUsage(FixtureCSV.served(csv))
            let table = try MailboxUsageTable.parse(FixtureCSV.served(csv))
            #expect((0..<table.count).map(table.row) == rows)
            #expect(table.storageUsedValue == rows.map(\.storageUsedValue))
        }
        // Storage Used is kept as written where it is not a number's plain form.
        for text in ["007", "", "-0", "12", "9007199254740992"] {
            let row = MailboxUsageRow(
                reportRefreshDate: "2025-06-28", userPrincipalName: "a@b", lastActivityDate: "", itemCount: 0, storageUsed: text,
                issueWarningQuota: "", prohibitSendQuota: "", prohibitSendReceiveQuota: "")
            #expect(MailboxUsageTable(rows: [row]).row(0) == row, "\(text)")
        }
        // A user name without '@', and one with two.
        for name in ["no-at-sign", "a@b@c.example", "@", ""] {
            let row = EmailActivityRow(
                reportRefreshDate: "d", userPrincipalName: name, lastActivityDate: "", sendCount: 1, receiveCount: 2, readCount: 3, reportPeriod: "7")
            #expect(EmailActivityTable(rows: [row]).row(0) == row, "\(name)")
        }
    }

    @Test("interned values keep their bytes: canonically equal but different texts (é and e + U+0301) are two values (was: interned by String equality, so a later row read back the first row's form, and a filter matched the wrong name)")
    func internedByBytes() throws {
        let composed = "a@contos\u{E9}.example"
        let decomposed = "b@contose\u{301}.example"
        let rows = [composed, decomposed].map {
            EmailActivityRow(
                reportRefreshDate: "2025-06-28", userPrincipalName: $0, lastActivityDate: "2025-06-2\u{37}", sendCount: 1, receiveCount: 2,
                readCount: 3, reportPeriod: "7")
        }
        let table = EmailActivityTable(rows: rows)
        #expect(table.user.count == 2)
        for i in 0..<2 {
            #expect(Array(table.user[i].utf8) == Array(rows[i].userPrincipalName.utf8), "row \(i)")
        }
        #expect(try FilterRegex("e\u{301}").matchMask(table.user) == [false, true])
        var column = InternedColumn.Builder()
        for text in ["\u{E9}", "e\u{301}", "\u{E9}", "e\u{301}", "e\u{301}"] { column.append(text) }
        let finished = column.finish()
        #expect(finished.values.map { Array($0.utf8) } == [Array("\u{E9}".utf8), Array("e\u{301}".utf8)])
        #expect((0..<5).map { finished.code($0) } == [0, 1, 0, 1, 1])
    }

    @Test("a body that is not a report is a snapshot of its parse error, naming the report, as the row parser words it")
    func snapshotOfParseError() throws {
        let body = Array("Report Refresh Date,User Principal Name\n2025-06-28,a\n".utf8)
        let snapshot = ReportSnapshot.parse(body, request: Self.mailbox)
        let error = try #require(snapshot.content.failure)
        #expect(error.kind == .parse)
        #expect(error.message.hasPrefix("Report getMailboxUsageDetail(period='D7') is malformed: "))
        do {
            _ = try ReportParser.mailboxUsage(body)
        } catch {
            #expect(snapshot.content.failure?.message.contains(error.description) == true)
        }
    }

    @Test("a repeated check shape is answered from the memo: the same output, no evaluation and no rendering (was: parsed and evaluated again every time)")
    func repeatedShape() async throws {
        let source = MemoisingReports(Self.body)
        let config = try Self.config(.mailboxUsage, ["--filter-counters=", "--warning-items=100", "--verbose"])
        let first = CountingExecutor()
        let (o1, r1) = await ExchangeCheckRunner.runRendered(config, reports: source, deadline: Self.deadline, timeZone: Harness.utc, executor: first, shape: "s1")
        #expect(o1.error == nil)
        #expect(first.count == 2, "one evaluation, one rendering")
        let again = CountingExecutor()
        let (o2, r2) = await ExchangeCheckRunner.runRendered(config, reports: source, deadline: Self.deadline, timeZone: Harness.utc, executor: again, shape: "s1")
        #expect(again.count == 0)
        #expect(r2 == r1)
        #expect(o2.result == o1.result)
        #expect(source.hits.contains { $0.hasPrefix("check:") })
        // Without a shape (exocheck run) nothing of the check is memoised.
        let plain = MemoisingReports(Self.body)
        _ = await ExchangeCheckRunner.runRendered(config, reports: plain, deadline: Self.deadline, timeZone: Harness.utc)
        #expect(!plain.remembered.contains { $0.hasPrefix("check:") })
    }

    @Test("another shape with the same filter reuses the filter's aggregate and prints what a fresh evaluation prints")
    func sameFilterOtherShape() async throws {
        let source = MemoisingReports(Self.body)
        let a = try Self.config(.emailActivity, ["--filter-user=contoso"])
        let b = try Self.config(.emailActivity, ["--filter-user=contoso", "--filter-counters=", "--critical-send-count=10"])
        _ = await ExchangeCheckRunner.runRendered(a, reports: source, deadline: Self.deadline, timeZone: Harness.utc, shape: "a")
        #expect(source.remembered.filter { $0 == "filter:/contoso" }.count == 1)
        let (_, memo) = await ExchangeCheckRunner.runRendered(b, reports: source, deadline: Self.deadline, timeZone: Harness.utc, shape: "b")
        #expect(source.hits.contains("filter:/contoso"))
        let (_, fresh) = await ExchangeCheckRunner.runRendered(b, reports: MemoisingReports(Self.body), deadline: Self.deadline, timeZone: Harness.utc)
        #expect(memo == fresh)
        #expect(memo.status == .critical)
        // A case-insensitive filter is another aggregate.
        let ci = try Self.config(.mailboxUsage, ["--filter-mailbox=(?i)ADELE"])
        _ = await ExchangeCheckRunner.runRendered(ci, reports: source, deadline: Self.deadline, timeZone: Harness.utc, shape: "c")
        #expect(source.remembered.contains("filter:/(?i)ADELE"))
    }

    @Test("a filter whose regex ran out of time memoises nothing: neither its aggregate nor the check")
    func timedOutFilterNotMemoised() async throws {
        let source = MemoisingReports(Self.body)
        let config = try Self.config(.mailboxUsage, ["--filter-mailbox=(a|aa)+$"])
        let budget = RegexBudget(deadline: .now.advanced(by: .seconds(-1)))
        let (outcome, _) = await RegexBudget.$current.withValue(budget) {
            await ExchangeCheckRunner.runRendered(config, reports: source, deadline: Self.deadline, timeZone: Harness.utc, shape: "t")
        }
        #expect(outcome.error?.kind == .timeout)
        #expect(source.remembered.isEmpty)
    }

    @Test("a failed check is not memoised: the next one tries again")
    func failureNotMemoised() async throws {
        let source = MemoisingReports { _ in Array("not a report".utf8) }
        let config = try Self.config(.mailboxUsage)
        let (o1, _) = await ExchangeCheckRunner.runRendered(config, reports: source, deadline: Self.deadline, timeZone: Harness.utc, shape: "f")
        #expect(o1.error?.kind == .parse)
        #expect(source.remembered.isEmpty)
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}

/// Every Centreon compatibility case (Tests/IntegrationTests/Resources/centreon-cases.jsonl), on
/// fixture data: the check run twice through one memoising source shared by all cases (so
/// aggregates of one case's filter serve later cases with other shapes) prints exactly what a
/// fresh evaluation prints.
@Suite("Memoised checks on the Centreon cases")
struct MemoisedCentreonCaseTests {
    static let cases: [[String]] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("IntegrationTests/Resources/centreon-cases.jsonl")
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["args"] as? [String]
        }
    }()

    /// The fixture a case's tenant stands for (the simulator's mapping; `large` reads `small`).
    static func bodies(tenant: String) -> @Sendable (ReportRequest) -> [UInt8]? {
        let empty = tenant.hasPrefix("empty")
        let overquota = tenant.hasPrefix("overquota") || tenant.hasPrefix("tailspin")
        return { r in
            switch r {
            case ReportSnapshotTests.period:
                return FixtureCSV.served(empty ? FixtureCSV.emptyEmailPeriod : FixtureCSV.smallEmailPeriod)
            case ReportSnapshotTests.daily: return FixtureCSV.served(FixtureCSV.smallEmailDaily)
            case ReportSnapshotTests.mailbox:
                return FixtureCSV.served(empty ? FixtureCSV.emptyMailbox : overquota ? FixtureCSV.overquotaMailbox : FixtureCSV.smallMailbox)
            default: return nil
            }
        }
    }

    @Test("a memoised check prints what a fresh evaluation prints, on every case")
    func memoisedEqualsFresh() async throws {
        #expect(Self.cases.count >= 60)
        var sources: [String: MemoisingReports] = [:]
        var checked = 0
        for args in Self.cases {
            guard let parsed = try? CentreonArguments(args), case .check(let config, _) = Invocation.parse(parsed, requireConnection: false) else {
                continue
            }
            let tenant = parsed.last("tenant") ?? "small"
            let shared = sources[tenant] ?? MemoisingReports(Self.bodies(tenant: tenant))
            sources[tenant] = shared
            let shape = args.joined(separator: "\u{0}")
            let deadline = ContinuousClock.now.advanced(by: .seconds(30))
            let (_, fresh) = await ExchangeCheckRunner.runRendered(
                config, reports: MemoisingReports(Self.bodies(tenant: tenant)), deadline: deadline, timeZone: Harness.utc)
            let (_, first) = await ExchangeCheckRunner.runRendered(config, reports: shared, deadline: deadline, timeZone: Harness.utc, shape: shape)
            let (_, second) = await ExchangeCheckRunner.runRendered(config, reports: shared, deadline: deadline, timeZone: Harness.utc, shape: shape)
            #expect(first == fresh, "\(args)")
            #expect(second == fresh, "\(args)")
            checked += 1
        }
        #expect(checked >= 40)
        #expect(sources.values.contains { $0.hits.contains { $0.hasPrefix("check:") } })
        #expect(sources.values.contains { $0.hits.contains { $0.hasPrefix("filter:") } })
    }
}

@Suite("UTF8Bytes: memcmp comparisons equal the generic ones")
struct UTF8BytesTests {
    static let pieces = ["", "a", "b", "ab", "é", "e\u{301}", "\u{0}", "\u{7F}", "\u{80}", "\u{FF}", "\u{1F600}", "z", "@", "Z", "\u{FFFF}", String(repeating: "x", count: 40)]

    @Test("equal, precedes and UTF8Key equality and hashing against UTF8View's elementsEqual and lexicographicallyPrecedes, on small and large, ASCII and not")
    func againstGeneric() {
        var generator = SystemRandomNumberGenerator()
        func text() -> String { (0..<Int.random(in: 0...5, using: &generator)).map { _ in Self.pieces.randomElement(using: &generator) ?? "" }.joined() }
        for _ in 0..<20_000 {
            let a = text()
            let b = Bool.random(using: &generator) ? a : text()
            #expect(UTF8Bytes.equal(a, b) == a.utf8.elementsEqual(b.utf8), "\(Array(a.utf8)) \(Array(b.utf8))")
            #expect(UTF8Bytes.precedes(a, b) == a.utf8.lexicographicallyPrecedes(b.utf8), "\(Array(a.utf8)) \(Array(b.utf8))")
            #expect(CounterFormatting.byteOrder(a, b) == a.utf8.lexicographicallyPrecedes(b.utf8))
            #expect((UTF8Key(a) == UTF8Key(b)) == a.utf8.elementsEqual(b.utf8))
            if a.utf8.elementsEqual(b.utf8) { #expect(UTF8Key(a).hashValue == UTF8Key(b).hashValue) }
            let bytes = Array(b.utf8)
            bytes.withUnsafeBytes { #expect(UTF8Bytes.equal(a, $0) == a.utf8.elementsEqual(b.utf8)) }
        }
        // Canonically equal, different bytes: never equal here.
        #expect(!UTF8Bytes.equal("é", "e\u{301}"))
        #expect(UTF8Key("é") != UTF8Key("e\u{301}"))
        #expect(UTF8Bytes.precedes("", "a") && !UTF8Bytes.precedes("a", "") && !UTF8Bytes.precedes("", ""))
        #expect(UTF8Bytes.precedes("a", "\u{80}"), "bytes compare unsigned")
    }
}

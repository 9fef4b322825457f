import Synchronization

// Parse once, evaluate many (issue 11). A report body is parsed once into an immutable, compact
// snapshot: only the columns the modes read, numbers as numbers, user names packed into one
// buffer, and the few distinct values of date, period and quota columns interned. Every check of
// the tenant reads the same snapshot; the worker's cache keeps snapshots (not CSV bytes) and
// memoises per snapshot what checks derive from them (`MemoKey`).

/// Strings stored back to back in one byte buffer, found by their end offsets: one allocation
/// for 100,000 user names instead of 100,000.
public struct PackedStrings: Sendable, Equatable {
    private var bytes: [UInt8] = []
    private var ends: [UInt32] = []

    /// No strings.
    public init() {}

    /// Number of strings.
    public var count: Int { ends.count }

    /// Appends `s`; false (and nothing appended) when the buffer would pass 4 GiB.
    @discardableResult
    mutating func append(_ s: String) -> Bool {
        let utf8 = s.utf8
        guard let end = UInt32(exactly: bytes.count + utf8.count) else { return false }
        bytes.append(contentsOf: utf8)
        ends.append(end)
        return true
    }

    /// The `i`th string (0-based; `i` must be below `count`).
    public subscript(i: Int) -> String {
        let start = i == 0 ? 0 : Int(ends[i - 1])
        let end = Int(ends[i])
        return bytes.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[start..<end]), as: UTF8.self) }
    }

    /// Bytes held (buffer and offsets).
    public var storageBytes: Int { bytes.capacity + ends.capacity * 4 }
}

/// A column with few distinct values (dates, the report period, quotas): each value once, and a
/// 4-byte code per row.
public struct InternedColumn: Sendable, Equatable {
    /// The distinct values, in order of first appearance.
    public private(set) var values: [String] = []
    /// Per row, the index of its value in `values`.
    public private(set) var codes: [UInt32] = []

    /// An empty column.
    public init() {}

    /// The value of row `i`.
    public subscript(i: Int) -> String { values[Int(codes[i])] }

    /// Bytes held, roughly (codes and the distinct values).
    public var storageBytes: Int { codes.capacity * 4 + values.reduce(values.capacity * 16) { $0 + ($1.utf8.count > 15 ? $1.utf8.count + 32 : 0) } }

    /// Builds a column, remembering which code each value got.
    struct Builder {
        var column = InternedColumn()
        var lookup: [String: UInt32] = [:]

        mutating func append(_ s: String) {
            if let code = lookup[s] {
                column.codes.append(code)
                return
            }
            // At most one code per row: a report has far fewer than 2^32 rows.
            let code = UInt32(truncatingIfNeeded: column.values.count)
            lookup[s] = code
            column.values.append(s)
            column.codes.append(code)
        }
    }
}

/// The parsed `getEmailActivityUserDetail` report (period or daily), column by column.
public struct EmailActivityTable: Sendable, Equatable {
    /// `Report Refresh Date` per row.
    public private(set) var refreshDate = InternedColumn()
    /// `User Principal Name` per row.
    public private(set) var user = PackedStrings()
    /// `Last Activity Date` per row.
    public private(set) var lastActivity = InternedColumn()
    /// `Send Count`, `Receive Count`, `Read Count` per row (empty = 0).
    public private(set) var send: [Double] = []
    /// `Receive Count` per row.
    public private(set) var receive: [Double] = []
    /// `Read Count` per row.
    public private(set) var read: [Double] = []
    /// `Report Period` per row, as written.
    public private(set) var period = InternedColumn()
    /// Per distinct `period` value: does it count as an active-user row (numerically 1)?
    var periodIsOne: [Bool] = []

    /// Number of rows.
    public var count: Int { send.count }
    /// True when the report has no data rows.
    public var isEmpty: Bool { send.isEmpty }
    /// The report date: the first row's Report Refresh Date ('' for an empty report).
    public var reportDate: String { isEmpty ? "" : refreshDate[0] }

    /// Packs `rows` (tests and the row-based entry points build snapshots this way).
    public init(rows: [EmailActivityRow]) {
        var b = Builder()
        for r in rows {
            b.append(
                refreshDate: r.reportRefreshDate, user: r.userPrincipalName, lastActivity: r.lastActivityDate,
                send: r.sendCount, receive: r.receiveCount, read: r.readCount, period: r.reportPeriod)
        }
        self = b.finish()
    }

    init() {}

    /// Row `i` as a row value (for the instances a check shows).
    public func row(_ i: Int) -> EmailActivityRow {
        EmailActivityRow(
            reportRefreshDate: refreshDate[i], userPrincipalName: user[i], lastActivityDate: lastActivity[i],
            sendCount: send[i], receiveCount: receive[i], readCount: read[i], reportPeriod: period[i])
    }

    /// Is row `i` an active-user row (`Report Period` numerically 1)?
    func isActive(_ i: Int) -> Bool { periodIsOne[Int(period.codes[i])] }

    /// Parses a body strictly (`ReportParser.emailActivityColumns`; numbers as `ReportParser`
    /// checks them).
    public static func parse(_ body: [UInt8]) throws(ReportError) -> EmailActivityTable {
        let columns = ReportParser.emailActivityColumns
        let table: CSVTable
        do { table = try CSVTable.parse(body, columns: columns) } catch { throw .csv(error) }
        var b = Builder()
        b.reserve(table.rows.count)
        for (i, f) in table.rows.enumerated() {
            b.append(
                refreshDate: f[0], user: f[1], lastActivity: f[2],
                send: try ReportParser.count(f[3], columns[3], i), receive: try ReportParser.count(f[4], columns[4], i),
                read: try ReportParser.count(f[5], columns[5], i), period: f[6])
        }
        return b.finish()
    }

    /// Bytes held, roughly.
    public var storageBytes: Int {
        refreshDate.storageBytes + user.storageBytes + lastActivity.storageBytes + period.storageBytes
            + (send.capacity + receive.capacity + read.capacity) * 8 + periodIsOne.capacity
    }

    struct Builder {
        var table = EmailActivityTable()
        var refreshDate = InternedColumn.Builder()
        var lastActivity = InternedColumn.Builder()
        var period = InternedColumn.Builder()

        mutating func reserve(_ n: Int) {
            table.send.reserveCapacity(n)
            table.receive.reserveCapacity(n)
            table.read.reserveCapacity(n)
        }

        mutating func append(
            refreshDate d: String, user: String, lastActivity: String, send: Double, receive: Double, read: Double, period p: String
        ) {
            refreshDate.append(d)
            table.user.append(user)
            self.lastActivity.append(lastActivity)
            table.send.append(send)
            table.receive.append(receive)
            table.read.append(read)
            period.append(p)
        }

        func finish() -> EmailActivityTable {
            var t = table
            t.refreshDate = refreshDate.column
            t.lastActivity = lastActivity.column
            t.period = period.column
            t.periodIsOne = period.column.values.map { PerlNumber.numify($0) == 1 }
            return t
        }
    }
}

/// The parsed `getMailboxUsageDetail` report, column by column.
public struct MailboxUsageTable: Sendable, Equatable {
    /// `Report Refresh Date` per row.
    public private(set) var refreshDate = InternedColumn()
    /// `User Principal Name` per row.
    public private(set) var user = PackedStrings()
    /// `Last Activity Date` per row.
    public private(set) var lastActivity = InternedColumn()
    /// `Item Count` per row (empty = 0).
    public private(set) var itemCount: [Double] = []
    /// `Storage Used (Byte)` per row, as written ('' when empty).
    public private(set) var storageUsed = PackedStrings()
    /// `Storage Used (Byte)` per row as a number (empty = 0).
    public private(set) var storageUsedValue: [Double] = []
    /// `Issue Warning Quota (Byte)` per row, as written.
    public private(set) var issueWarningQuota = InternedColumn()
    /// `Prohibit Send Quota (Byte)` per row, as written.
    public private(set) var prohibitSendQuota = InternedColumn()
    /// `Prohibit Send/Receive Quota (Byte)` per row, as written.
    public private(set) var prohibitSendReceiveQuota = InternedColumn()

    /// Number of rows.
    public var count: Int { itemCount.count }
    /// True when the report has no data rows.
    public var isEmpty: Bool { itemCount.isEmpty }
    /// The report date: the first row's Report Refresh Date ('' for an empty report).
    public var reportDate: String { isEmpty ? "" : refreshDate[0] }

    /// Packs `rows`.
    public init(rows: [MailboxUsageRow]) {
        var b = Builder()
        for r in rows { b.append(r) }
        self = b.finish()
    }

    init() {}

    /// Row `i` as a row value (for the instances a check shows).
    public func row(_ i: Int) -> MailboxUsageRow {
        MailboxUsageRow(
            reportRefreshDate: refreshDate[i], userPrincipalName: user[i], lastActivityDate: lastActivity[i], itemCount: itemCount[i],
            storageUsed: storageUsed[i], issueWarningQuota: issueWarningQuota[i], prohibitSendQuota: prohibitSendQuota[i],
            prohibitSendReceiveQuota: prohibitSendReceiveQuota[i])
    }

    /// Parses a body strictly (`ReportParser.mailboxUsageColumns`; the byte columns are checked
    /// like counts and kept as written).
    public static func parse(_ body: [UInt8]) throws(ReportError) -> MailboxUsageTable {
        let columns = ReportParser.mailboxUsageColumns
        let table: CSVTable
        do { table = try CSVTable.parse(body, columns: columns) } catch { throw .csv(error) }
        var b = Builder()
        b.reserve(table.rows.count)
        for (i, f) in table.rows.enumerated() {
            // Checked in the order the row parser checks them: the byte columns, then the count.
            let used = try ReportParser.count(f[4], columns[4], i)
            for c in 5...7 where !f[c].isEmpty { _ = try ReportParser.count(f[c], columns[c], i) }
            b.append(
                MailboxUsageRow(
                    reportRefreshDate: f[0], userPrincipalName: f[1], lastActivityDate: f[2],
                    itemCount: try ReportParser.count(f[3], columns[3], i), storageUsed: f[4], issueWarningQuota: f[5],
                    prohibitSendQuota: f[6], prohibitSendReceiveQuota: f[7]),
                usedValue: used)
        }
        return b.finish()
    }

    /// Bytes held, roughly.
    public var storageBytes: Int {
        refreshDate.storageBytes + user.storageBytes + lastActivity.storageBytes + storageUsed.storageBytes
            + issueWarningQuota.storageBytes + prohibitSendQuota.storageBytes + prohibitSendReceiveQuota.storageBytes
            + (itemCount.capacity + storageUsedValue.capacity) * 8
    }

    struct Builder {
        var table = MailboxUsageTable()
        var refreshDate = InternedColumn.Builder()
        var lastActivity = InternedColumn.Builder()
        var warning = InternedColumn.Builder()
        var send = InternedColumn.Builder()
        var sendReceive = InternedColumn.Builder()

        mutating func reserve(_ n: Int) {
            table.itemCount.reserveCapacity(n)
            table.storageUsedValue.reserveCapacity(n)
        }

        mutating func append(_ r: MailboxUsageRow, usedValue: Double? = nil) {
            refreshDate.append(r.reportRefreshDate)
            table.user.append(r.userPrincipalName)
            lastActivity.append(r.lastActivityDate)
            table.itemCount.append(r.itemCount)
            table.storageUsed.append(r.storageUsed)
            table.storageUsedValue.append(usedValue ?? r.storageUsedValue)
            warning.append(r.issueWarningQuota)
            send.append(r.prohibitSendQuota)
            sendReceive.append(r.prohibitSendReceiveQuota)
        }

        func finish() -> MailboxUsageTable {
            var t = table
            t.refreshDate = refreshDate.column
            t.lastActivity = lastActivity.column
            t.issueWarningQuota = warning.column
            t.prohibitSendQuota = send.column
            t.prohibitSendReceiveQuota = sendReceive.column
            return t
        }
    }
}

/// One report of one tenant, parsed once and never changed: what the cache keeps and every check
/// of the tenant reads. A report that could not be parsed is a snapshot too (its `content` is
/// the parse error), so that a malformed report is not parsed again by every check.
public final class ReportSnapshot: Sendable {
    /// The parsed table, by report kind.
    public enum Table: Sendable {
        /// `getEmailActivityUserDetail`.
        case emailActivity(EmailActivityTable)
        /// `getMailboxUsageDetail`.
        case mailboxUsage(MailboxUsageTable)
    }

    /// Unique in the process: what memoised values are keyed by (a new download is a new id; a
    /// revalidated copy keeps its id).
    public let id: UInt64
    /// The report request it answers.
    public let request: ReportRequest
    /// The table, or why the body could not be read (a `parse` error naming the report).
    public let content: Result<Table, CheckError>
    /// Bytes it holds, roughly: what it counts in a cache's byte budget.
    public let bytes: Int

    private static let nextID = Atomic<UInt64>(1)

    /// A snapshot of `content` for `request`.
    public init(request: ReportRequest, content: Result<Table, CheckError>) {
        self.id = Self.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        self.request = request
        self.content = content
        switch content {
        case .success(.emailActivity(let t)): bytes = 128 + t.storageBytes
        case .success(.mailboxUsage(let t)): bytes = 128 + t.storageBytes
        case .failure(let e): bytes = 128 + e.message.utf8.count
        }
    }

    /// Parses `body` as the report `request` names (`CheckMode.reportName`); a body that is not a
    /// well-formed report gives a snapshot whose content is a `parse` error naming the report.
    public static func parse(_ body: [UInt8], request: ReportRequest) -> ReportSnapshot {
        do throws(ReportError) {
            if request.report == CheckMode.mailboxUsage.reportName {
                return ReportSnapshot(request: request, content: .success(.mailboxUsage(try MailboxUsageTable.parse(body))))
            }
            return ReportSnapshot(request: request, content: .success(.emailActivity(try EmailActivityTable.parse(body))))
        } catch {
            return ReportSnapshot(
                request: request,
                content: .failure(
                    CheckError(
                        .parse,
                        "Report \(request) is malformed: \(error.description). No numbers were computed from it; retry later, and if it persists check what --graph-endpoint serves."
                    )))
        }
    }

    /// The report date (first row's Report Refresh Date); '' for an empty or unreadable report.
    public var reportDate: String {
        switch content {
        case .success(.emailActivity(let t)): return t.reportDate
        case .success(.mailboxUsage(let t)): return t.reportDate
        case .failure: return ""
        }
    }

    /// The email activity table, or the snapshot's error.
    public func emailActivity() throws(CheckError) -> EmailActivityTable {
        switch content {
        case .success(.emailActivity(let t)): return t
        case .success(.mailboxUsage): throw CheckError(.graph, "Report \(request) holds mailbox usage data where email activity was expected.")
        case .failure(let e): throw e
        }
    }

    /// The mailbox usage table, or the snapshot's error.
    public func mailboxUsage() throws(CheckError) -> MailboxUsageTable {
        switch content {
        case .success(.mailboxUsage(let t)): return t
        case .success(.emailActivity): throw CheckError(.graph, "Report \(request) holds email activity data where mailbox usage was expected.")
        case .failure(let e): throw e
        }
    }
}

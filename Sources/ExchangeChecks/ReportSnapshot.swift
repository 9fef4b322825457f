import Synchronization

// Parse once, evaluate many (issue 11). A report body is parsed once into an immutable, compact
// snapshot: only the columns the modes read, numbers as numbers, user names packed into one
// buffer, and the few distinct values of date, period and quota columns interned. Every check of
// the tenant reads the same snapshot; the worker's cache keeps snapshots (not CSV bytes) and
// memoises per snapshot what checks derive from them (`MemoKey`).

/// `values` in a buffer of their count: a builder's reserve (estimated from the body's size) is
/// not kept in the cache, where it would count in the byte budget.
func exactCapacity<T>(_ values: [T]) -> [T] {
    values.capacity == values.count ? values : values.withUnsafeBufferPointer { Array($0) }
}

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
        var s = s
        return s.withUTF8 { append(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// The `i`th string (0-based; `i` must be below `count`).
    public subscript(i: Int) -> String {
        let start = i == 0 ? 0 : Int(ends[i - 1])
        let end = Int(ends[i])
        return bytes.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[start..<end]), as: UTF8.self) }
    }

    /// Appends a string given by its (valid) UTF-8 bytes; false (and nothing appended) when the
    /// buffer would pass 4 GiB.
    @discardableResult
    mutating func append(bytes raw: UnsafeRawBufferPointer) -> Bool {
        guard let end = UInt32(exactly: bytes.count + raw.count) else { return false }
        bytes.append(contentsOf: raw)
        ends.append(end)
        return true
    }

    /// Calls `body` with the `i`th string's UTF-8 bytes (0-based; `i` must be below `count`).
    func withUTF8<R>(_ i: Int, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        let start = i == 0 ? 0 : Int(ends[i - 1])
        let end = Int(ends[i])
        return bytes.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[start..<end])) }
    }

    /// Bytes held (buffer and offsets).
    public var storageBytes: Int { bytes.capacity + ends.capacity * 4 }
}

/// A column with few distinct values (dates, the report period, quotas, mail domains): each value
/// once, and per row a code of 1, 2 or 4 bytes (the smallest that numbers the values).
public struct InternedColumn: Sendable, Equatable {
    /// Per-row codes, as narrow as the number of values allows.
    enum Codes: Sendable, Equatable {
        case narrow([UInt8])
        case medium([UInt16])
        case wide([UInt32])

        var capacityBytes: Int {
            switch self {
            case .narrow(let c): return c.capacity
            case .medium(let c): return c.capacity * 2
            case .wide(let c): return c.capacity * 4
            }
        }
    }

    /// The distinct values, in order of first appearance.
    public private(set) var values: [String] = []
    var codes: Codes = .narrow([])

    /// An empty column.
    public init() {}

    /// The index in `values` of row `i`'s value.
    @inline(__always)
    public func code(_ i: Int) -> Int {
        switch codes {
        case .narrow(let c): return Int(c[i])
        case .medium(let c): return Int(c[i])
        case .wide(let c): return Int(c[i])
        }
    }

    /// The value of row `i`.
    public subscript(i: Int) -> String { values[code(i)] }

    /// Bytes held, roughly (codes and the distinct values).
    public var storageBytes: Int { codes.capacityBytes + values.reduce(values.capacity * 16) { $0 + ($1.utf8.count > 15 ? $1.utf8.count + 32 : 0) } }

    /// Builds a column, remembering which code each value got; `finish` narrows the codes.
    /// Values are told apart by their bytes (`UTF8Key`), so each row reads back as written.
    struct Builder {
        var values: [String] = []
        var codes: [UInt32] = []
        /// Codes by the hash of their value's UTF-8 bytes (values are told apart by bytes, and
        /// found without making a String of the field).
        var byHash: [Int: [UInt32]] = [:]

        mutating func append(_ s: String) {
            var s = s
            s.withUTF8 { append(field: UnsafeRawBufferPointer($0)) }
        }

        /// Appends the field `bytes` as `CSVTable.parse` would read it (`String(decoding:)`).
        /// Most rows repeat the previous row's value (one report date, a few quotas and domains):
        /// that is checked first, then the values with the same hash; a String is made only for
        /// a new value.
        mutating func append(field bytes: UnsafeRawBufferPointer) {
            if let last = codes.last, Self.equal(values[Int(last)], bytes) {
                codes.append(last)
                return
            }
            if let code = find(bytes) {
                codes.append(code)
                return
            }
            var s = String(decoding: bytes, as: UTF8.self)
            // Invalid UTF-8 is repaired: the value is the repaired text, found by its own bytes.
            if s.utf8.count != bytes.count || !Self.equal(s, bytes) {
                if let code = s.withUTF8({ find(UnsafeRawBufferPointer($0)) }) {
                    codes.append(code)
                    return
                }
            }
            // At most one code per row: a report has far fewer than 2^32 rows.
            let code = UInt32(truncatingIfNeeded: values.count)
            byHash[s.withUTF8 { Self.hash(UnsafeRawBufferPointer($0)) }, default: []].append(code)
            values.append(s)
            codes.append(code)
        }

        private func find(_ bytes: UnsafeRawBufferPointer) -> UInt32? {
            byHash[Self.hash(bytes)]?.first { Self.equal(values[Int($0)], bytes) }
        }

        private static func hash(_ bytes: UnsafeRawBufferPointer) -> Int {
            var hasher = Hasher()
            hasher.combine(bytes: bytes)
            return hasher.finalize()
        }

        /// Whether `value`'s UTF-8 bytes are `bytes`.
        private static func equal(_ value: String, _ bytes: UnsafeRawBufferPointer) -> Bool {
            UTF8Bytes.equal(value, bytes)
        }

        func finish() -> InternedColumn {
            var c = InternedColumn()
            c.values = values
            if values.count <= 1 << 8 {
                c.codes = .narrow(codes.map { UInt8(truncatingIfNeeded: $0) })
            } else if values.count <= 1 << 16 {
                c.codes = .medium(codes.map { UInt16(truncatingIfNeeded: $0) })
            } else {
                c.codes = .wide(codes)
            }
            return c
        }
    }
}

/// User principal names: the part before the last `@` packed, the `@domain` part interned (a
/// tenant has a few domains and many users).
public struct UserNames: Sendable, Equatable {
    var locals = PackedStrings()
    var domains = InternedColumn()

    /// Number of names.
    public var count: Int { locals.count }

    /// The `i`th name.
    public subscript(i: Int) -> String { locals[i] + domains[i] }

    /// Bytes held, roughly.
    public var storageBytes: Int { locals.storageBytes + domains.storageBytes }

    struct Builder {
        var locals = PackedStrings()
        var domains = InternedColumn.Builder()

        mutating func append(_ name: String) {
            var name = name
            name.withUTF8 { split(UnsafeRawBufferPointer($0)) }
        }

        /// Appends the field `bytes` as `CSVTable.parse` would read it: ASCII names from the
        /// bytes, others through their `String` (which repairs invalid UTF-8).
        mutating func append(field bytes: UnsafeRawBufferPointer) {
            if bytes.allSatisfy({ $0 < 0x80 }) { split(bytes) } else { append(String(decoding: bytes, as: UTF8.self)) }
        }

        /// Packs the part before the last `@` and interns the rest (`@domain`, or "" without
        /// `@`); `bytes` is valid UTF-8.
        private mutating func split(_ bytes: UnsafeRawBufferPointer) {
            let at = bytes.lastIndex(of: UInt8(ascii: "@")) ?? bytes.count
            locals.append(bytes: UnsafeRawBufferPointer(rebasing: bytes[..<at]))
            domains.append(field: UnsafeRawBufferPointer(rebasing: bytes[at...]))
        }

        func finish() -> UserNames { UserNames(locals: locals, domains: domains.finish()) }
    }
}

/// A count column: whole numbers from 0 to 2^32 − 1 in 4 bytes each (what Graph reports), any
/// other value in 8.
public struct CountColumn: Sendable, Equatable {
    enum Storage: Sendable, Equatable {
        case small([UInt32])
        case any([Double])
    }

    var storage: Storage = .small([])

    /// The value of row `i`.
    @inline(__always)
    public subscript(i: Int) -> Double {
        switch storage {
        case .small(let v): return Double(v[i])
        case .any(let v): return v[i]
        }
    }

    /// Number of values.
    public var count: Int {
        switch storage {
        case .small(let v): return v.count
        case .any(let v): return v.count
        }
    }

    /// Bytes held.
    public var storageBytes: Int {
        switch storage {
        case .small(let v): return v.capacity * 4
        case .any(let v): return v.capacity * 8
        }
    }

    /// The values, narrowed when every one fits.
    init(_ values: [Double]) {
        if values.allSatisfy({ $0 >= 0 && $0 <= Double(UInt32.max) && $0 == $0.rounded(.towardZero) }) {
            storage = .small(values.map { UInt32($0) })
        } else {
            storage = .any(exactCapacity(values))
        }
    }

    init() {}

    /// All values, in order.
    public var values: [Double] { (0..<count).map { self[$0] } }
}

/// The parsed `getEmailActivityUserDetail` report (period or daily), column by column.
public struct EmailActivityTable: Sendable, Equatable {
    /// `Report Refresh Date` per row.
    public private(set) var refreshDate = InternedColumn()
    /// `User Principal Name` per row.
    public private(set) var user = UserNames()
    /// `Last Activity Date` per row.
    public private(set) var lastActivity = InternedColumn()
    /// `Send Count` per row (empty = 0).
    public private(set) var send = CountColumn()
    /// `Receive Count` per row.
    public private(set) var receive = CountColumn()
    /// `Read Count` per row.
    public private(set) var read = CountColumn()
    /// `Report Period` per row, as written.
    public private(set) var period = InternedColumn()
    /// Per distinct `period` value: does it count as an active-user row (numerically 1)?
    var periodIsOne: [Bool] = []

    /// Number of rows.
    public var count: Int { send.count }
    /// True when the report has no data rows.
    public var isEmpty: Bool { send.count == 0 }
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
    func isActive(_ i: Int) -> Bool { periodIsOne[period.code(i)] }

    /// Parses a body strictly (`ReportParser.emailActivityColumns`; numbers as `ReportParser`
    /// checks them).
    public static func parse(_ body: [UInt8]) throws(ReportError) -> EmailActivityTable {
        let columns = ReportParser.emailActivityColumns
        var b = Builder()
        b.reserve(body.count / 120)
        do {
            // From the fields' bytes (no String per field), with `ReportParser`'s checks and errors.
            try CSVTable.scanRows(body, columns: columns) { (f, i) throws(ReportError) in
                let send = try ReportParser.count(field: f, 3, columns[3], i)
                let receive = try ReportParser.count(field: f, 4, columns[4], i)
                let read = try ReportParser.count(field: f, 5, columns[5], i)
                b.refreshDate.append(field: f.bytes(0))
                b.user.append(field: f.bytes(1))
                b.lastActivity.append(field: f.bytes(2))
                b.send.append(send)
                b.receive.append(receive)
                b.read.append(read)
                b.period.append(field: f.bytes(6))
            }
        } catch {
            switch error {
            case .csv(let e): throw .csv(e)
            case .row(let e): throw e
            }
        }
        return b.finish()
    }

    /// Bytes held, roughly.
    public var storageBytes: Int {
        refreshDate.storageBytes + user.storageBytes + lastActivity.storageBytes + period.storageBytes
            + send.storageBytes + receive.storageBytes + read.storageBytes + periodIsOne.capacity
    }

    struct Builder {
        var refreshDate = InternedColumn.Builder()
        var user = UserNames.Builder()
        var lastActivity = InternedColumn.Builder()
        var send: [Double] = []
        var receive: [Double] = []
        var read: [Double] = []
        var period = InternedColumn.Builder()

        mutating func reserve(_ n: Int) {
            send.reserveCapacity(n)
            receive.reserveCapacity(n)
            read.reserveCapacity(n)
        }

        mutating func append(
            refreshDate d: String, user name: String, lastActivity: String, send: Double, receive: Double, read: Double, period p: String
        ) {
            refreshDate.append(d)
            user.append(name)
            self.lastActivity.append(lastActivity)
            self.send.append(send)
            self.receive.append(receive)
            self.read.append(read)
            period.append(p)
        }

        func finish() -> EmailActivityTable {
            var t = EmailActivityTable()
            t.refreshDate = refreshDate.finish()
            t.user = user.finish()
            t.lastActivity = lastActivity.finish()
            t.send = CountColumn(send)
            t.receive = CountColumn(receive)
            t.read = CountColumn(read)
            t.period = period.finish()
            t.periodIsOne = t.period.values.map { PerlNumber.numify($0) == 1 }
            return t
        }
    }
}

/// The parsed `getMailboxUsageDetail` report, column by column.
public struct MailboxUsageTable: Sendable, Equatable {
    /// `Report Refresh Date` per row.
    public private(set) var refreshDate = InternedColumn()
    /// `User Principal Name` per row.
    public private(set) var user = UserNames()
    /// `Last Activity Date` per row.
    public private(set) var lastActivity = InternedColumn()
    /// `Item Count` per row (empty = 0).
    public private(set) var itemCount = CountColumn()
    /// `Storage Used (Byte)` per row, as written ('' when empty).
    /// Where `Storage Used (Byte)` is not written as its number's plain decimal form (empty,
    /// leading zeros …): the text as written, by row. Elsewhere the text is rebuilt from the
    /// number, so the column costs 8 bytes per row, not a string.
    private(set) var storageUsedTexts: [Int: String] = [:]
    /// `Storage Used (Byte)` per row as a number (empty = 0).
    public private(set) var storageUsedValue: [Double] = []
    /// `Issue Warning Quota (Byte)` per row, as written.
    public private(set) var issueWarningQuota = InternedColumn()
    /// `Prohibit Send Quota (Byte)` per row, as written.
    public private(set) var prohibitSendQuota = InternedColumn()
    /// `Prohibit Send/Receive Quota (Byte)` per row, as written.
    public private(set) var prohibitSendReceiveQuota = InternedColumn()

    /// Number of rows.
    public var count: Int { storageUsedValue.count }
    /// True when the report has no data rows.
    public var isEmpty: Bool { storageUsedValue.isEmpty }
    /// The report date: the first row's Report Refresh Date ('' for an empty report).
    public var reportDate: String { isEmpty ? "" : refreshDate[0] }

    /// Packs `rows`.
    public init(rows: [MailboxUsageRow]) {
        var b = Builder()
        for r in rows { b.append(r) }
        self = b.finish()
    }

    init() {}

    /// `Storage Used (Byte)` of row `i` as written.
    public func storageUsed(_ i: Int) -> String {
        storageUsedTexts[i] ?? Self.plainText(storageUsedValue[i])
    }

    /// A whole number's plain decimal form ("" for what has none: never equal to a text then).
    static func plainText(_ value: Double) -> String {
        guard value == value.rounded(.towardZero), abs(value) <= ReportParser.maxExactInteger, let whole = Int64(exactly: value) else {
            return "\u{0}"
        }
        return String(whole)
    }

    /// Row `i` as a row value (for the instances a check shows).
    public func row(_ i: Int) -> MailboxUsageRow {
        MailboxUsageRow(
            reportRefreshDate: refreshDate[i], userPrincipalName: user[i], lastActivityDate: lastActivity[i], itemCount: itemCount[i],
            storageUsed: storageUsed(i), issueWarningQuota: issueWarningQuota[i], prohibitSendQuota: prohibitSendQuota[i],
            prohibitSendReceiveQuota: prohibitSendReceiveQuota[i])
    }

    /// Parses a body strictly (`ReportParser.mailboxUsageColumns`; the byte columns are checked
    /// like counts and kept as written).
    public static func parse(_ body: [UInt8]) throws(ReportError) -> MailboxUsageTable {
        let columns = ReportParser.mailboxUsageColumns
        var b = Builder()
        b.reserve(body.count / 170)
        do {
            // From the fields' bytes (no String per field), with `ReportParser`'s checks and errors.
            try CSVTable.scanRows(body, columns: columns) { (f, i) throws(ReportError) in
                // Checked in the order the row parser checks them: the byte columns, then the count.
                let used = try ReportParser.count(field: f, 4, columns[4], i)
                for c in 5...7 where f.bytes(c).count > 0 { _ = try ReportParser.count(field: f, c, columns[c], i) }
                let items = try ReportParser.count(field: f, 3, columns[3], i)
                b.refreshDate.append(field: f.bytes(0))
                b.user.append(field: f.bytes(1))
                b.lastActivity.append(field: f.bytes(2))
                b.itemCount.append(items)
                let usedBytes = f.bytes(4)
                if !ReportParser.isPlainForm(usedBytes) {
                    let text = f.string(4)
                    if text != MailboxUsageTable.plainText(used) { b.table.storageUsedTexts[b.table.storageUsedValue.count] = text }
                }
                b.table.storageUsedValue.append(used)
                b.warning.append(field: f.bytes(5))
                b.send.append(field: f.bytes(6))
                b.sendReceive.append(field: f.bytes(7))
            }
        } catch {
            switch error {
            case .csv(let e): throw .csv(e)
            case .row(let e): throw e
            }
        }
        return b.finish()
    }

    /// Bytes held, roughly.
    public var storageBytes: Int {
        refreshDate.storageBytes + user.storageBytes + lastActivity.storageBytes + storageUsedTexts.count * 64
            + issueWarningQuota.storageBytes + prohibitSendQuota.storageBytes + prohibitSendReceiveQuota.storageBytes
            + itemCount.storageBytes + storageUsedValue.capacity * 8
    }

    struct Builder {
        var table = MailboxUsageTable()
        var refreshDate = InternedColumn.Builder()
        var user = UserNames.Builder()
        var lastActivity = InternedColumn.Builder()
        var itemCount: [Double] = []
        var warning = InternedColumn.Builder()
        var send = InternedColumn.Builder()
        var sendReceive = InternedColumn.Builder()

        mutating func reserve(_ n: Int) {
            itemCount.reserveCapacity(n)
            table.storageUsedValue.reserveCapacity(n)
        }

        mutating func append(_ r: MailboxUsageRow, usedValue: Double? = nil) {
            refreshDate.append(r.reportRefreshDate)
            user.append(r.userPrincipalName)
            lastActivity.append(r.lastActivityDate)
            itemCount.append(r.itemCount)
            let value = usedValue ?? r.storageUsedValue
            if r.storageUsed != MailboxUsageTable.plainText(value) { table.storageUsedTexts[table.storageUsedValue.count] = r.storageUsed }
            table.storageUsedValue.append(value)
            warning.append(r.issueWarningQuota)
            send.append(r.prohibitSendQuota)
            sendReceive.append(r.prohibitSendReceiveQuota)
        }

        func finish() -> MailboxUsageTable {
            var t = table
            t.refreshDate = refreshDate.finish()
            t.user = user.finish()
            t.lastActivity = lastActivity.finish()
            t.itemCount = CountColumn(itemCount)
            t.storageUsedValue = exactCapacity(t.storageUsedValue)
            t.issueWarningQuota = warning.finish()
            t.prohibitSendQuota = send.finish()
            t.prohibitSendReceiveQuota = sendReceive.finish()
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

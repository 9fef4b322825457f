/// One row of `getEmailActivityUserDetail` (the fields the check reads).
public struct EmailActivityRow: Sendable, Equatable {
    /// `Report Refresh Date` as written: the date the report describes (`YYYY-MM-DD` expected).
    public var reportRefreshDate: String
    /// `User Principal Name`: the user (a 32-digit hash when the tenant conceals names).
    public var userPrincipalName: String
    /// `Last Activity Date` as written.
    public var lastActivityDate: String
    /// `Send Count`: emails sent, a whole number (0 when the field is empty).
    public var sendCount: Double
    /// `Receive Count`: emails received, a whole number (0 when the field is empty).
    public var receiveCount: Double
    /// `Read Count`: emails read, a whole number (0 when the field is empty).
    public var readCount: Double
    /// `7` in the period report, `1` in the daily (`date=`) report.
    public var reportPeriod: String

    /// Builds a row from parsed fields (`ReportParser.emailActivity` builds them from a report).
    public init(
        reportRefreshDate: String, userPrincipalName: String, lastActivityDate: String,
        sendCount: Double, receiveCount: Double, readCount: Double, reportPeriod: String
    ) {
        self.reportRefreshDate = reportRefreshDate
        self.userPrincipalName = userPrincipalName
        self.lastActivityDate = lastActivityDate
        self.sendCount = sendCount
        self.receiveCount = receiveCount
        self.readCount = readCount
        self.reportPeriod = reportPeriod
    }
}

/// One row of `getMailboxUsageDetail` (the fields the check reads).
public struct MailboxUsageRow: Sendable, Equatable {
    /// `Report Refresh Date` as written: the date the report describes (`YYYY-MM-DD` expected).
    public var reportRefreshDate: String
    /// `User Principal Name`: the mailbox's user, its instance id (a 32-digit hash when the tenant
    /// conceals names).
    public var userPrincipalName: String
    /// `Last Activity Date` as written: the mailbox is active when it equals the report date.
    public var lastActivityDate: String
    /// `Item Count`: items in the mailbox, a whole number (0 when the field is empty).
    public var itemCount: Double
    /// `Storage Used (Byte)` as written in the report ('' when empty).
    public var storageUsed: String
    /// `Issue Warning Quota (Byte)` as written (a whole number of bytes, or ''): the
    /// `issue_warning_quota` status variable.
    public var issueWarningQuota: String
    /// `Prohibit Send Quota (Byte)` as written (a whole number of bytes, or ''): the
    /// `prohibit_send_quota` status variable.
    public var prohibitSendQuota: String
    /// `Prohibit Send/Receive Quota (Byte)` as written (a whole number of bytes, or ''): the
    /// `prohibit_send_receive_quota` status variable.
    public var prohibitSendReceiveQuota: String

    /// Builds a row from parsed fields (`ReportParser.mailboxUsage` builds them from a report).
    public init(
        reportRefreshDate: String, userPrincipalName: String, lastActivityDate: String, itemCount: Double,
        storageUsed: String, issueWarningQuota: String, prohibitSendQuota: String, prohibitSendReceiveQuota: String
    ) {
        self.reportRefreshDate = reportRefreshDate
        self.userPrincipalName = userPrincipalName
        self.lastActivityDate = lastActivityDate
        self.itemCount = itemCount
        self.storageUsed = storageUsed
        self.issueWarningQuota = issueWarningQuota
        self.prohibitSendQuota = prohibitSendQuota
        self.prohibitSendReceiveQuota = prohibitSendReceiveQuota
    }

    /// Storage used in bytes (empty = 0).
    public var storageUsedValue: Double { storageUsed.isEmpty ? 0 : PerlNumber.numify(storageUsed) }
}

/// Why a downloaded report could not be used.
public enum ReportError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The body is not a well-formed CSV report with the needed columns.
    case csv(CSVError)
    /// A count or byte field is not a plain decimal number (`row`: 1-based data row; `value`: at
    /// most 40 characters of it).
    case badNumber(column: String, row: Int, value: String)
    /// A count or byte size with a fractional part (Graph reports whole numbers there).
    case fraction(column: String, row: Int, value: String)
    /// A number beyond 2^53, where a double stops holding every integer exactly.
    case outOfRange(column: String, row: Int, value: String)

    /// A one-line explanation naming the column, the data row (1-based) and the value.
    public var description: String {
        switch self {
        case .csv(let e): return e.description
        case .badNumber(let column, let row, let value):
            return "column '\(column)' of data row \(row) holds '\(value)', not a number"
        case .fraction(let column, let row, let value):
            return "column '\(column)' of data row \(row) holds '\(value)', a fraction where a whole number is expected"
        case .outOfRange(let column, let row, let value):
            return "column '\(column)' of data row \(row) holds '\(value)', beyond 2^53 (the largest whole number this check computes exactly)"
        }
    }
}

/// Turns report bodies into rows, strictly: a well-formed CSV with the needed columns, and in
/// every count or byte column a plain whole number of at most 2^53 (or an empty field).
public enum ReportParser {
    /// The columns read from `getEmailActivityUserDetail`, by header name, in the order used.
    public static let emailActivityColumns = [
        "Report Refresh Date", "User Principal Name", "Last Activity Date",
        "Send Count", "Receive Count", "Read Count", "Report Period",
    ]
    /// The columns read from `getMailboxUsageDetail`, by header name, in the order used.
    public static let mailboxUsageColumns = [
        "Report Refresh Date", "User Principal Name", "Last Activity Date", "Item Count",
        "Storage Used (Byte)", "Issue Warning Quota (Byte)", "Prohibit Send Quota (Byte)",
        "Prohibit Send/Receive Quota (Byte)",
    ]

    /// Parses a `getEmailActivityUserDetail` body (period or daily report).
    /// - Throws: `ReportError` for the first problem found.
    public static func emailActivity(_ body: [UInt8]) throws(ReportError) -> [EmailActivityRow] {
        let table: CSVTable
        do { table = try CSVTable.parse(body, columns: emailActivityColumns) } catch { throw .csv(error) }
        var rows: [EmailActivityRow] = []
        rows.reserveCapacity(table.rows.count)
        for (i, f) in table.rows.enumerated() {
            rows.append(
                EmailActivityRow(
                    reportRefreshDate: f[0], userPrincipalName: f[1], lastActivityDate: f[2],
                    sendCount: try count(f[3], emailActivityColumns[3], i),
                    receiveCount: try count(f[4], emailActivityColumns[4], i),
                    readCount: try count(f[5], emailActivityColumns[5], i),
                    reportPeriod: f[6]))
        }
        return rows
    }

    /// Parses a `getMailboxUsageDetail` body; the byte columns are checked like counts but kept as
    /// written.
    /// - Throws: `ReportError` for the first problem found.
    public static func mailboxUsage(_ body: [UInt8]) throws(ReportError) -> [MailboxUsageRow] {
        let table: CSVTable
        do { table = try CSVTable.parse(body, columns: mailboxUsageColumns) } catch { throw .csv(error) }
        var rows: [MailboxUsageRow] = []
        rows.reserveCapacity(table.rows.count)
        for (i, f) in table.rows.enumerated() {
            for c in 4...7 where !f[c].isEmpty { _ = try count(f[c], mailboxUsageColumns[c], i) }
            rows.append(
                MailboxUsageRow(
                    reportRefreshDate: f[0], userPrincipalName: f[1], lastActivityDate: f[2],
                    itemCount: try count(f[3], mailboxUsageColumns[3], i),
                    storageUsed: f[4], issueWarningQuota: f[5], prohibitSendQuota: f[6], prohibitSendReceiveQuota: f[7]))
        }
        return rows
    }

    /// Largest magnitude accepted in a count or byte column: 2^53.
    public static let maxExactInteger: Double = 9_007_199_254_740_992

    /// A count or byte column: empty = 0; otherwise a plain decimal whole number of at most
    /// 2^53 (a fraction, a non-finite or a larger value is an error naming column and row).
    static func count(_ text: String, _ column: String, _ index: Int) throws(ReportError) -> Double {
        if text.isEmpty { return 0 }
        // Fast path for what Graph writes: plain digits, read in one pass (the general path below
        // gives the same value and errors, at several times the cost).
        if let (whole, overflow) = digits(text.utf8) {
            guard !overflow, whole <= UInt64(maxExactInteger) else {
                throw .outOfRange(column: column, row: index + 1, value: String(text.prefix(40)) + (text.count > 40 ? "…" : ""))
            }
            return Double(whole)
        }
        // Built only for an error: on a valid field it is pure cost (a report has 500,000 of them).
        var shown: String { String(text.prefix(40)) + (text.count > 40 ? "…" : "") }
        guard isPlainNumber(text), let v = Double(text) else {
            throw .badNumber(column: column, row: index + 1, value: shown)
        }
        // Judged on the text where it is an integer: a double rounds 2^53 + 1 down to 2^53.
        let exact: Bool
        if !text.contains("."), let i = Int64(text) { exact = i.magnitude <= UInt64(maxExactInteger) } else { exact = v.isFinite && abs(v) < maxExactInteger }
        guard exact else { throw .outOfRange(column: column, row: index + 1, value: shown) }
        guard v == v.rounded(.towardZero) else { throw .fraction(column: column, row: index + 1, value: shown) }
        return v
    }

    /// The value of `utf8` when it is only digits (`overflow` when it passes 2^64), else nil.
    static func digits(_ utf8: some Sequence<UInt8>) -> (value: UInt64, overflow: Bool)? {
        var whole: UInt64 = 0
        var overflow = false
        for b in utf8 {
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
            let (times10, o1) = whole.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(b - UInt8(ascii: "0")))
            overflow = overflow || o1 || o2
            whole = sum
        }
        return (whole, overflow)
    }

    /// `count` of a field read as bytes (`CSVTable.scanRows`): plain digits in range directly,
    /// anything else through the field's `String` and `count`, so values and errors are the same.
    static func count(field f: CSVTable.RowBytes, _ slot: Int, _ column: String, _ index: Int) throws(ReportError) -> Double {
        let bytes = f.bytes(slot)
        if !bytes.isEmpty, let (whole, overflow) = digits(bytes), !overflow, whole <= UInt64(maxExactInteger) {
            return Double(whole)
        }
        return try count(f.string(slot), column, index)
    }

    /// Whether `bytes` is a whole number's plain decimal form, as `MailboxUsageTable.plainText`
    /// writes it: digits, no leading zero (except "0" itself), at most 15 of them.
    static func isPlainForm(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let first = bytes.first, bytes.count <= 15, first != UInt8(ascii: "0") || bytes.count == 1 else { return false }
        return bytes.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    static func isPlainNumber(_ text: String) -> Bool {
        var sawDigit = false
        var sawDot = false
        for (i, b) in text.utf8.enumerated() {
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): sawDigit = true
            case UInt8(ascii: "."): if sawDot { return false }; sawDot = true
            case UInt8(ascii: "-"): if i != 0 { return false }
            default: return false
            }
        }
        return sawDigit
    }
}

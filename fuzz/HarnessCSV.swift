// libFuzzer target "csv": the strict CSV reader (`CSVTable.parse`) and the two report parsers
// built on it (`ReportParser.emailActivity`, `ReportParser.mailboxUsage`), and the log redaction
// of user names (`PersonalData.redactUserNames`) on the same text. The input is one
// report body, BOM and all.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let body = fuzzBytes(data, size)
    if let rows = attempt({ try ReportParser.emailActivity(body) }) {
        for row in rows { _ = row.sendCount + row.receiveCount + row.readCount }
        #if FUZZ_SNAPSHOTS
        checkSnapshot(try? EmailActivityTable.parse(body), rows)
        #endif
    }
    if let rows = attempt({ try ReportParser.mailboxUsage(body) }) {
        for row in rows { _ = row.storageUsedValue }
        #if FUZZ_SNAPSHOTS
        checkSnapshot(try? MailboxUsageTable.parse(body), rows)
        #endif
    }
    #if FUZZ_SNAPSHOTS
    // A body the row parser refuses is refused by the snapshot builder with the same error.
    sameError({ () throws(ReportError) in _ = try ReportParser.emailActivity(body) }, { () throws(ReportError) in _ = try EmailActivityTable.parse(body) })
    sameError({ () throws(ReportError) in _ = try ReportParser.mailboxUsage(body) }, { () throws(ReportError) in _ = try MailboxUsageTable.parse(body) })
    #endif
    // Every row, no column kept; and the first header name kept (header-driven slots).
    if let table = attempt({ try CSVTable.parse(body, columns: []) }), let first = table.header.first {
        _ = attempt({ try CSVTable.parse(body, columns: [first, first]) })
    }
    // The log redaction (PersonalData) on the same text: report cells reach logs through errors.
    // An address it kept would have to come back unchanged, and the output never grows by more
    // than the placeholder per '@'.
    let text = String(decoding: body, as: UTF8.self)
    let redacted = PersonalData.redactUserNames(text)
    let ats = text.utf8.reduce(0) { $0 + ($1 == UInt8(ascii: "@") ? 1 : 0) }
    if redacted.unicodeScalars.count > text.unicodeScalars.count + ats * PersonalData.placeholder.unicodeScalars.count { fatalError("redaction grew the text") }
    return 0
}

#if FUZZ_SNAPSHOTS
// The snapshot tables the worker caches (scripts/fuzz.sh defines FUZZ_SNAPSHOTS when the sources
// have `FilterRegex.matchMask`): every row reads back byte for byte as the row parser read it,
// and filters over the packed names (ICU's C API, `ICUMatcher`) select what NSRegularExpression
// selects name by name.
let snapshotFilters: [FilterRegex] = ["^[a-m]", "e\u{301}|\u{E9}", "@[^.]+\\.com$", "\\p{Lu}", "(?<=\\.)x", "^$"].compactMap {
    try? FilterRegex($0, caseInsensitive: $0.hasPrefix("^"))
}

func sameBytes(_ a: [String], _ b: [String]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.utf8.elementsEqual($1.utf8) }
}

func checkSnapshot(_ table: EmailActivityTable?, _ rows: [EmailActivityRow]) {
    guard let table, table.count == rows.count else { fatalError("the email snapshot lost or gained rows, or failed where rows parsed") }
    for (i, r) in rows.enumerated() {
        let t = table.row(i)
        guard sameBytes([t.reportRefreshDate, t.userPrincipalName, t.lastActivityDate, t.reportPeriod],
                        [r.reportRefreshDate, r.userPrincipalName, r.lastActivityDate, r.reportPeriod]),
              t.sendCount == r.sendCount, t.receiveCount == r.receiveCount, t.readCount == r.readCount
        else { fatalError("email snapshot row \(i) reads back differently") }
    }
    checkFilters(table.user, rows.map(\.userPrincipalName))
}

func checkSnapshot(_ table: MailboxUsageTable?, _ rows: [MailboxUsageRow]) {
    guard let table, table.count == rows.count else { fatalError("the mailbox snapshot lost or gained rows, or failed where rows parsed") }
    for (i, r) in rows.enumerated() {
        let t = table.row(i)
        guard sameBytes([t.reportRefreshDate, t.userPrincipalName, t.lastActivityDate, t.storageUsed, t.issueWarningQuota,
                         t.prohibitSendQuota, t.prohibitSendReceiveQuota],
                        [r.reportRefreshDate, r.userPrincipalName, r.lastActivityDate, r.storageUsed, r.issueWarningQuota,
                         r.prohibitSendQuota, r.prohibitSendReceiveQuota]),
              t.itemCount == r.itemCount
        else { fatalError("mailbox snapshot row \(i) reads back differently") }
    }
    checkFilters(table.user, rows.map(\.userPrincipalName))
}

func sameError(_ rows: () throws(ReportError) -> Void, _ snapshot: () throws(ReportError) -> Void) {
    var a: ReportError? = nil
    var b: ReportError? = nil
    do { try rows() } catch { a = error }
    do { try snapshot() } catch { b = error }
    if a != b { fatalError("the row parser and the snapshot builder disagree on the error: \(String(describing: a)) / \(String(describing: b))") }
}

func checkFilters(_ packed: UserNames, _ names: [String]) {
    underRegexBudget {
        for filter in snapshotFilters {
            let mask = filter.matchMask(packed)
            let single = names.map { filter.matches($0) }
            // Past the budget the rest count as no match, on each side at its own row.
            if RegexBudget.current?.exceededOption != nil { return }
            for (i, _) in names.enumerated() where mask[i] != single[i] {
                fatalError("filter \(filter.pattern.debugDescription): one pass and NSRegularExpression differ on row \(i)")
            }
        }
    }
}
#endif

// libFuzzer target "csv": the strict CSV reader (`CSVTable.parse`) and the two report parsers
// built on it (`ReportParser.emailActivity`, `ReportParser.mailboxUsage`), and the log redaction
// of user names (`PersonalData.redactUserNames`) on the same text. The input is one
// report body, BOM and all.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let body = fuzzBytes(data, size)
    if let rows = attempt({ try ReportParser.emailActivity(body) }) {
        for row in rows { _ = row.sendCount + row.receiveCount + row.readCount }
    }
    if let rows = attempt({ try ReportParser.mailboxUsage(body) }) {
        for row in rows { _ = row.storageUsedValue }
    }
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

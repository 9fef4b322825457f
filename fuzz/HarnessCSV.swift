// libFuzzer target "csv": the strict CSV reader (`CSVTable.parse`) and the two report parsers
// built on it (`ReportParser.emailActivity`, `ReportParser.mailboxUsage`). The input is one
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
    return 0
}

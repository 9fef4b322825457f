@testable import ExchangeChecks
import Testing

/// The snapshot builders read fields as bytes (`CSVTable.scanRows`), the row parser as Strings
/// (`CSVTable.parse`): on every body both must read the same rows, byte for byte, or fail with
/// the same error.
@Suite struct SnapshotScanTests {
    static let mailboxHeader =
        "\u{FEFF}Report Refresh Date,User Principal Name,Display Name,Last Activity Date,Item Count,Storage Used (Byte),Issue Warning Quota (Byte),Prohibit Send Quota (Byte),Prohibit Send/Receive Quota (Byte),Report Period\r\n"
    static let emailHeader =
        "\u{FEFF}Report Refresh Date,User Principal Name,Display Name,Last Activity Date,Send Count,Receive Count,Read Count,Report Period\r\n"

    /// Mailbox rows (after the header), each a body of its own and all together.
    static let mailboxRows: [String] = [
        "2025-06-28,john@contoso.com,John,2025-06-28,12,1024,100,200,300,7\r\n",
        "2025-06-28,\"quoted\"\"name\"\"@contoso.com\",\"Doe, J\",2025-06-27,0,007,,,,7\r\n",
        "2025-06-28,\"multi\r\nline@x\",X,,,,100,200,300,7\r\n",
        "2025-06-28,jos\u{E9}@contos\u{E9}.com,J,2025-06-28,1,0,100,200,300,7\r\n",
        "2025-06-28,jose\u{301}@contose\u{301}.com,J,2025-06-28,1,-0,100,200,300,7\r\n",
        "2025-06-28,no-at-sign,N,2025-06-28,999999999999999,9007199254740992,100,200,300,7\r\n",
        "2025-06-28,@,N,2025-06-28,1000000000000000,12.0,100,200,300,7\r\n",
        "2025-06-28,a@b@c,N,,1,1,1e3,200,300,7\r\n",
        "\r\n",
        "2025-06-28,\"\",N,,1,1,100,200,300,7\r\n",
    ]
    static let mailboxBad: [String] = [
        "2025-06-28,x@y,N,,1,1.5,100,200,300,7\r\n",
        "2025-06-28,x@y,N,,abc,1,100,200,300,7\r\n",
        "2025-06-28,x@y,N,,1,1,100,200,300\r\n",
        "2025-06-28,x@y,N,,1,1,100,200,300,7",
        "2025-06-28,x\"y@z,N,,1,1,100,200,300,7\r\n",
        "2025-06-28,x@y,N,,1,99999999999999999999,100,200,300,7\r\n",
        "2025-06-28,x@y,N,,1,1,100,x,300,7\r\n",
    ]

    static func same(_ a: MailboxUsageRow, _ b: MailboxUsageRow) -> Bool {
        [a.reportRefreshDate, a.userPrincipalName, a.lastActivityDate, a.storageUsed, a.issueWarningQuota, a.prohibitSendQuota, a.prohibitSendReceiveQuota]
            .map { Array($0.utf8) }
            == [b.reportRefreshDate, b.userPrincipalName, b.lastActivityDate, b.storageUsed, b.issueWarningQuota, b.prohibitSendQuota, b.prohibitSendReceiveQuota]
            .map { Array($0.utf8) } && a.itemCount == b.itemCount && a.storageUsedValue == b.storageUsedValue
    }

    static func compareMailbox(_ body: [UInt8], _ label: String) {
        let rows = Result { () throws(ReportError) in try ReportParser.mailboxUsage(body) }
        let table = Result { () throws(ReportError) in try MailboxUsageTable.parse(body) }
        switch (rows, table) {
        case (.success(let rows), .success(let table)):
            #expect(table.count == rows.count, "\(label)")
            for (i, r) in rows.enumerated() where i < table.count && !same(table.row(i), r) {
                Issue.record("\(label): row \(i) reads back as \(table.row(i)), the row parser read \(r)")
            }
            #expect(table.storageUsedValue == rows.map(\.storageUsedValue), "\(label)")
        case (.failure(let a), .failure(let b)):
            #expect(a == b, "\(label): errors differ: \(a) / \(b)")
        default:
            Issue.record("\(label): one parser failed and the other did not: \(rows) / \(table)")
        }
    }

    @Test("mailbox usage: every row and body (quoting, line breaks in quotes, both normal forms, numbers at their limits, blank lines, invalid UTF-8) reads the same through bytes as through Strings; bad bodies fail with the same error")
    func mailboxSameAsRowParser() {
        for (i, row) in Self.mailboxRows.enumerated() {
            Self.compareMailbox(Array((Self.mailboxHeader + row).utf8), "row \(i)")
        }
        Self.compareMailbox(Array((Self.mailboxHeader + Self.mailboxRows.joined()).utf8), "all rows")
        for (i, row) in Self.mailboxBad.enumerated() {
            Self.compareMailbox(Array((Self.mailboxHeader + Self.mailboxRows[0] + row).utf8), "bad \(i)")
        }
        // Several problems: a CSV error after a bad number is the error (the row parser reads the
        // whole CSV first, then the numbers row by row); of two bad numbers, the first row's.
        Self.compareMailbox(Array((Self.mailboxHeader + Self.mailboxBad[0] + Self.mailboxRows[0] + Self.mailboxBad[2]).utf8), "number, then CSV")
        Self.compareMailbox(Array((Self.mailboxHeader + Self.mailboxBad[1] + Self.mailboxBad[0]).utf8), "two numbers")
        Self.compareMailbox(Array((Self.mailboxHeader + Self.mailboxBad[0] + Self.mailboxBad[3]).utf8), "number, then truncated")
        // Invalid UTF-8 in a name, a domain and a quota (repaired as String(decoding:) repairs it).
        var body = Array((Self.mailboxHeader + String(repeating: Self.mailboxRows[0], count: 20) + "2025-06-28,ab").utf8) + [0xC3] + Array("@x".utf8) + [0xFF, 0xFE]
        body += Array(",N,,1,1,".utf8) + [0xE2, 0x82] + Array(",200,300,7\r\n".utf8)
        Self.compareMailbox(body, "invalid UTF-8")
        Self.compareMailbox(Array("<html></html>".utf8), "not CSV")
        // Three spellings of one repaired date (two invalid bytes and U+FFFD itself) are one
        // interned value, as three rows of Strings would be.
        // (After the first KiB, which is checked for binary data.)
        var dates = Array((Self.mailboxHeader + String(repeating: Self.mailboxRows[0], count: 20)).utf8)
        for q in [[0xFF], [0xFE], [0xEF, 0xBF, 0xBD]] as [[UInt8]] {
            dates += Array("2025-06-28,x@y,N,".utf8) + q + Array(",1,1,100,200,300,7\r\n".utf8)
        }
        Self.compareMailbox(dates, "repaired dates")
        if let table = try? MailboxUsageTable.parse(dates), let rows = try? ReportParser.mailboxUsage(dates) {
            #expect(table.lastActivity.values.count == 2, "the date of the first KiB's rows and the repaired one")
            #expect(table == MailboxUsageTable(rows: rows))
        } else {
            Issue.record("the repaired dates did not parse")
        }
        Self.compareMailbox(Array("Report Refresh Date\r\n".utf8), "missing columns")
    }

    @Test("email activity: the same through bytes as through Strings, rows and errors")
    func emailSameAsRowParser() {
        let rows = [
            "2025-06-28,john@contoso.com,John,2025-06-28,1,2,3,7\r\n",
            "2025-06-28,\"x,\"\"y\"\"@z\",N,,0,,010,1\r\n",
            "2025-06-28,jose\u{301}@x,N,,1,2,3,01\r\n",
            "2025-06-28,x@y,N,,1.5,2,3,7\r\n",
        ]
        let bodies = rows.map { Self.emailHeader + $0 } + [
            Self.emailHeader + rows.joined(separator: ""),
            // A bad number, then a row cut short: the CSV error wins, as in the row parser.
            Self.emailHeader + rows[3] + rows[0] + "2025-06-28,x@y,N,,1,2,3",
            Self.emailHeader + rows[3] + "2025-06-28,x@y,N,,1,2\r\n",
        ]
        for (i, text) in bodies.enumerated() {
            let body = Array(text.utf8)
            let parsed = Result { () throws(ReportError) in try ReportParser.emailActivity(body) }
            let table = Result { () throws(ReportError) in try EmailActivityTable.parse(body) }
            switch (parsed, table) {
            case (.success(let rows), .success(let table)):
                #expect(table.count == rows.count)
                for (k, r) in rows.enumerated() {
                    let t = table.row(k)
                    #expect(
                        [t.reportRefreshDate, t.userPrincipalName, t.lastActivityDate, t.reportPeriod].map { Array($0.utf8) }
                            == [r.reportRefreshDate, r.userPrincipalName, r.lastActivityDate, r.reportPeriod].map { Array($0.utf8) }, "row \(i)")
                    #expect(t.sendCount == r.sendCount && t.receiveCount == r.receiveCount && t.readCount == r.readCount, "row \(i)")
                }
            case (.failure(let a), .failure(let b)):
                #expect(a == b, "row \(i)")
            default:
                Issue.record("row \(i): one parser failed and the other did not")
            }
        }
    }
}

@Suite("CSV scanner: the 16-bytes-per-step searches")
struct CSVSearchTests {
    @Test("nextSpecial and nextQuoteOrLineFeed equal a byte-by-byte search from every start, on buffers of every length up to 70 with special bytes anywhere (16-byte steps and tails)")
    func againstByteByByte() {
        var generator = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = [0x2C, 0x0A, 0x0D, 0x22, 0x41, 0x20, 0x00, 0xFF, 0x80, 0x2B, 0x2D, 0x09, 0x21, 0x23]
        for length in 0...70 {
            for _ in 0..<60 {
                // Mostly ordinary bytes, with a few special ones, so that whole 16-byte steps are skipped.
                let bytes: [UInt8] = (0..<length).map { _ in
                    Int.random(in: 0..<8, using: &generator) == 0 ? alphabet.randomElement(using: &generator) ?? 0 : UInt8(ascii: "a")
                }
                bytes.withUnsafeBytes { buffer in
                    for start in 0...length {
                        let special = (start..<length).first { [0x2C, 0x0A, 0x0D, 0x22].contains(bytes[$0]) } ?? length
                        let quoteOrLF = (start..<length).first { [0x22, 0x0A].contains(bytes[$0]) } ?? length
                        #expect(CSVTable.Scanner.nextSpecial(buffer, from: start) == special, "\(bytes) from \(start)")
                        #expect(CSVTable.Scanner.nextQuoteOrLineFeed(buffer, from: start) == quoteOrLF, "\(bytes) from \(start)")
                    }
                }
            }
        }
        // An empty buffer (no base address).
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        #expect(CSVTable.Scanner.nextSpecial(empty, from: 0) == 0)
        #expect(CSVTable.Scanner.nextQuoteOrLineFeed(empty, from: 0) == 0)
    }
}

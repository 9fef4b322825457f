import Testing

@testable import ExchangeChecks

@Suite("CSV reader")
struct CSVTableTests {
    func parse(_ text: String, _ columns: [String]) throws(CSVError) -> CSVTable {
        try CSVTable.parse(Array(text.utf8), columns: columns)
    }

    @Test("BOM, CRLF and columns found by header name in any order")
    func bomCRLFAndHeaderNames() throws {
        let body: [UInt8] = [0xEF, 0xBB, 0xBF] + Array("b,a,c\r\n2,1,3\r\n5,4,6\r\n".utf8)
        let t = try CSVTable.parse(body, columns: ["a", "c"])
        #expect(t.header == ["b", "a", "c"])
        #expect(t.rows == [["1", "3"], ["4", "6"]])
    }

    @Test("LF line ends work too")
    func lfLineEnds() throws {
        #expect(try parse("a,b\n1,2\n", ["b"]).rows == [["2"]])
    }

    @Test("quoted fields: commas, doubled quotes, embedded CRLF and LF")
    func quotedFields() throws {
        let t = try parse("name,x\r\n\"Wilber, Alex\",1\r\n\"Fernandez, Patti \"\"PF\"\"\",2\r\n\"two\r\nlines\",3\r\n\"lf\nonly\",4\r\n", ["name", "x"])
        #expect(t.rows.map { $0[0] } == ["Wilber, Alex", "Fernandez, Patti \"PF\"", "two\r\nlines", "lf\nonly"])
        #expect(t.rows.map { $0[1] } == ["1", "2", "3", "4"])
    }

    @Test("extra columns are ignored and not materialised")
    func extraColumnsIgnored() throws {
        let t = try parse("a,unused,b,new column\r\n1,xx,2,yy\r\n", ["b", "a"])
        #expect(t.rows == [["2", "1"]])
    }

    @Test("UTF-8 values survive")
    func utf8Values() throws {
        #expect(try parse("upn\r\njérôme.müller@contoso.com\r\n", ["upn"]).rows == [["jérôme.müller@contoso.com"]])
    }

    @Test("empty fields are empty strings")
    func emptyFields() throws {
        #expect(try parse("a,b,c\r\n,,\r\n", ["a", "b", "c"]).rows == [["", "", ""]])
    }

    @Test("header only, with or without a final line break, is an empty report")
    func headerOnly() throws {
        #expect(try parse("a,b\r\n", ["a"]).rows.isEmpty)
        #expect(try parse("\u{FEFF}a,b", ["a"]).rows.isEmpty)
    }

    @Test("a blank last line is tolerated")
    func blankLine() throws {
        #expect(try parse("a\r\n1\r\n\r\n", ["a"]).rows == [["1"]])
    }

    @Test("missing required column names the missing columns")
    func missingColumn() {
        #expect(throws: CSVError.missingColumns(["b"], found: ["a", "c"])) { try parse("a,c\r\n1,2\r\n", ["a", "b"]) }
    }

    @Test("unterminated quote is rejected with its line")
    func unterminatedQuote() {
        #expect(throws: CSVError.unterminatedQuote(line: 2)) { try parse("a,b\r\n1,\"open\r\n", ["a"]) }
        // A quote opened on line 3 that swallows the next lines until another quote.
        #expect(throws: CSVError.unterminatedQuote(line: 3)) {
            try parse("a,b,c\r\n1,2,3\r\nx,\"broken,y\r\n4,\"Wilber, Alex\",6\r\n", ["a"])
        }
    }

    @Test("a row with the wrong number of fields is rejected (short rows)")
    func wrongFieldCount() {
        #expect(throws: CSVError.wrongFieldCount(line: 3, found: 2, expected: 3)) {
            try parse("a,b,c\r\n1,2,3\r\n1,2\r\n", ["a"])
        }
    }

    @Test("a body cut in the middle of a row is rejected as truncated")
    func truncated() {
        #expect(throws: CSVError.wrongFieldCount(line: 3, found: 2, expected: 3)) { try parse("a,b,c\r\n1,2,3\r\n4,5", ["a"]) }
        #expect(throws: CSVError.truncated(line: 3)) { try parse("a,b,c\r\n1,2,3\r\n4,5,6", ["a"]) }
    }

    @Test("HTML, JSON, binary and empty bodies are recognised")
    func notCSV() {
        #expect(throws: CSVError.notCSV("an HTML or XML document")) { try parse("<!DOCTYPE html><html></html>", ["a"]) }
        #expect(throws: CSVError.notCSV("a JSON document")) { try parse("{\"value\":[]}", ["a"]) }
        #expect(throws: CSVError.empty) { try parse("", ["a"]) }
        #expect(throws: CSVError.empty) { try CSVTable.parse([0xEF, 0xBB, 0xBF], columns: ["a"]) }
        #expect(throws: CSVError.notCSV("binary data")) { try CSVTable.parse([0x80, 0x81, 0x00, 0x0A], columns: ["a"]) }
        #expect(throws: CSVError.notCSV("binary data (not UTF-8 text)")) { try CSVTable.parse(Array(0x80...0xFF), columns: ["a"]) }
    }

    @Test("a stray quote inside an unquoted field is rejected")
    func strayQuote() {
        #expect(throws: CSVError.quoteInUnquotedField(line: 2)) { try parse("a\r\nab\"c\r\n", ["a"]) }
    }

    @Test("a multi-byte character cut by the binary probe window is not mistaken for garbage")
    func probeWindowBoundary() throws {
        let filler = String(repeating: "x", count: 1022)
        let t = try parse("a\r\n\(filler)é\r\n", ["a"])
        #expect(t.rows.count == 1)
    }

    @Test("errors read well")
    func messages() {
        #expect(CSVError.truncated(line: 9).description.contains("line 9"))
        #expect(CSVError.missingColumns(["Send Count"], found: ["x"]).description.contains("'Send Count'"))
    }
}

@Suite("Report rows")
struct ReportParserTests {
    @Test("email activity rows: empty counts are 0, Report Period kept")
    func emailRows() throws {
        let rows = try ReportParser.emailActivity(FixtureCSV.served(FixtureCSV.smallEmailPeriod))
        #expect(rows.count == 12)
        let never = try #require(rows.first { $0.lastActivityDate.isEmpty })
        #expect(never.sendCount == 0 && never.readCount == 0)
        #expect(rows.allSatisfy { $0.reportPeriod == "7" })
    }

    @Test("mailbox rows keep quotas as written (empty stays empty)")
    func mailboxRows() throws {
        let rows = try ReportParser.mailboxUsage(FixtureCSV.served(FixtureCSV.smallMailbox))
        #expect(rows.count == 14)
        let patti = try #require(rows.first { $0.userPrincipalName.hasPrefix("patti") })
        #expect(patti.issueWarningQuota.isEmpty)
    }

    @Test("a count that is not a number is a parse error naming the column")
    func badNumber() {
        let body = Array("Report Refresh Date,User Principal Name,Last Activity Date,Send Count,Receive Count,Read Count,Report Period\r\n2025-06-28,a@b,2025-06-28,12x,1,1,1\r\n".utf8)
        #expect(throws: ReportError.badNumber(column: "Send Count", row: 1, value: "12x")) { try ReportParser.emailActivity(body) }
    }

    static let emailHeader = "Report Refresh Date,User Principal Name,Last Activity Date,Send Count,Receive Count,Read Count,Report Period\r\n"
    static let mailboxHeader = "Report Refresh Date,User Principal Name,Last Activity Date,Item Count,Storage Used (Byte),Issue Warning Quota (Byte),Prohibit Send Quota (Byte),Prohibit Send/Receive Quota (Byte)\r\n"

    @Test("numbers a report cannot hold: a fraction in a count, a value beyond 2^53, 400 digits — each a parse error naming column and row (was: +inf, 0-byte result)")
    func numbersOutOfRange() {
        func email(_ send: String) -> [UInt8] { Array((Self.emailHeader + "2025-06-28,a@b,2025-06-28,1,1,1,7\r\n2025-06-28,c@d,2025-06-28,\(send),1,1,7\r\n").utf8) }
        #expect(throws: ReportError.fraction(column: "Send Count", row: 2, value: "1.5")) { try ReportParser.emailActivity(email("1.5")) }
        #expect(throws: ReportError.outOfRange(column: "Send Count", row: 2, value: "9007199254740993")) { try ReportParser.emailActivity(email("9007199254740993")) }
        let digits = String(repeating: "9", count: 400)
        #expect(throws: ReportError.outOfRange(column: "Send Count", row: 2, value: String(digits.prefix(40)) + "…")) { try ReportParser.emailActivity(email(digits)) }
        // At the limits: 2^53 and a whole number written with a decimal point are accepted.
        #expect((try? ReportParser.emailActivity(email("9007199254740992")))?.last?.sendCount == 9_007_199_254_740_992)
        #expect((try? ReportParser.emailActivity(email("12.0")))?.last?.sendCount == 12)
        // The digits-only fast path reads what the general path reads: leading zeros, 0, and a value
        // past 2^64 (which overflows the accumulator) is out of range, not wrapped.
        #expect((try? ReportParser.emailActivity(email("007")))?.last?.sendCount == 7)
        #expect((try? ReportParser.emailActivity(email("0")))?.last?.sendCount == 0)
        #expect(throws: ReportError.outOfRange(column: "Send Count", row: 2, value: "18446744073709551617")) {
            try ReportParser.emailActivity(email("18446744073709551617"))
        }
        #expect((try? ReportParser.emailActivity(email("-0")))?.last?.sendCount == 0)
        #expect(throws: ReportError.badNumber(column: "Send Count", row: 2, value: "1e3")) { try ReportParser.emailActivity(email("1e3")) }
        func mailbox(_ used: String) -> [UInt8] { Array((Self.mailboxHeader + "2025-06-28,a@b,2025-06-28,10,\(used),100,200,300\r\n").utf8) }
        #expect(throws: ReportError.outOfRange(column: "Storage Used (Byte)", row: 1, value: "1" + String(repeating: "0", count: 39) + "…")) {
            try ReportParser.mailboxUsage(mailbox("1" + String(repeating: "0", count: 300)))
        }
        #expect(throws: ReportError.fraction(column: "Storage Used (Byte)", row: 1, value: "10.25")) { try ReportParser.mailboxUsage(mailbox("10.25")) }
        #expect(ReportError.fraction(column: "Item Count", row: 3, value: "0.5").description.contains("data row 3"))
    }
}

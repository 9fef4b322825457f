@testable import ExchangeChecks
import Foundation
import Testing

/// `FilterRegex.matchMask` (ICU's C API through `ICUMatcher`, one pass over a table's names)
/// against `FilterRegex.matches` (NSRegularExpression, one name at a time): the same answers
/// for every pattern and name, and the same time limit.
@Suite struct FilterRegexBulkTests {
    /// Patterns that differ in how ICU treats them: anchors, case, classes, Unicode properties
    /// and escapes, look-around, empty matches, canonical equivalence, surrogate pairs, flags
    /// inside the pattern, word boundaries, back references.
    static let patterns: [String] = [
        #"^(james|mary)\.[a-z]+[0-9]*7@"#, #"^john\."#, "JOHN", "(?i)john", "é", "e\u{301}", #"\p{L}+@"#,
        #"^\p{Lu}"#, #"[[:upper:]]"#, "^$", "@$", "^", "|", #"(?<=a)b"#, #"(?<!x)@"#, #"\bdoe\b"#, ".", "^.{3}@",
        #"\Q.\E"#, #"\d{2,}"#, #"(?m)^x"#, #"\u00e9"#, #"\N{LATIN SMALL LETTER E WITH ACUTE}"#, ".*", "😀", #"[\x{1F600}-\x{1F64F}]"#,
        #"^.@"#, #"(.)\1"#, #"\s"#, #"\R"#, "(?x) j o h n", #"[^\x00-\x7F]"#, #"\X@"#, "ß", "(?i)SS", "İ", "(?i)i",
        #"contoso\.com$"#, #"(?s)a.b"#, "a.b", #"\w+"#, #"[a-z&&[^aeiou]]{4}"#,
    ]

    /// Names from a report: plain, accented (both normal forms), non-BMP, no `@`, several `@`,
    /// empty parts, line breaks (a quoted CSV field may hold them), long.
    static let names: [String] = {
        var out = [
            "john.doe@contoso.com", "JOHN.DOE@CONTOSO.COM", "james.smith77@contoso.com", "mary.jones17@fabrikam.com",
            "josé@contoso.com", "jose\u{301}@contoso.com", "😀smile@contoso.com", "no-at-sign", "", "@contoso.com",
            "a@b@c.com", "x\ny@contoso.com", "line\u{2028}sep@contoso.com", "crlf\r\n@x.com", "straße@contoso.de",
            "STRASSE@contoso.de", "İstanbul@contoso.com.tr", "aab@x", "xb@y", "doe@x", "aa@x", "12345@x",
            "\u{0}nul@x", "tab\t@x", String(repeating: "long.name.", count: 60) + "@contoso.com",
            "a@\u{301}b", "nul@x\u{0}y", String(repeating: "é", count: 80) + "@contoso.com",
            String(repeating: "x", count: 10_000) + "@" + String(repeating: "ü", count: 70), "e\u{301}@x",
        ]
        for local in ["james.a", "mary.zz9", "john.", "Mary.Q7", "é.é"] {
            for domain in ["@contoso.com", "@fabrikam.com", "", "@😀.example"] { out.append(local + domain) }
        }
        return out
    }()

    static func userNames(_ names: [String]) -> UserNames {
        var builder = UserNames.Builder()
        for name in names { builder.append(name) }
        return builder.finish()
    }

    @Test("matchMask answers as matches does, name by name, for every pattern, with and without case-insensitivity")
    func sameAsNSRegularExpression() throws {
        let table = Self.userNames(Self.names)
        #expect((0..<table.count).map { Array(table[$0].utf8) } == Self.names.map { Array($0.utf8) }, "the names survive packing, byte for byte")
        var compared = 0
        for pattern in Self.patterns {
            for caseInsensitive in [false, true] {
                guard let filter = try? FilterRegex(pattern, caseInsensitive: caseInsensitive) else { continue }
                let budget = RegexBudget(limit: .seconds(30))
                let (bulk, single) = RegexBudget.$current.withValue(budget) {
                    (filter.matchMask(table), Self.names.map { filter.matches($0) })
                }
                for i in Self.names.indices where bulk[i] != single[i] {
                    Issue.record("pattern \(pattern.debugDescription) (caseInsensitive \(caseInsensitive)) on \(Self.names[i].debugDescription): bulk \(bulk[i]), one by one \(single[i])")
                }
                #expect(budget.exceededOption == nil)
                compared += 1
            }
        }
        #expect(compared >= 2 * Self.patterns.count - 4, "most patterns compile: \(compared)")
    }

    @Test("a table with every row matching and none matching, and an empty table")
    func edges() throws {
        let all = try FilterRegex("@")
        let table = Self.userNames(["a@x", "b@y", "c@z"])
        #expect(all.matchMask(table) == [true, true, true])
        #expect(try FilterRegex("^q").matchMask(table) == [false, false, false])
        #expect(all.matchMask(UserNames()) == [])
    }

    @Test("a catastrophic filter stops at the check's deadline and names the option; the rows after it count as no match")
    func timeLimit() throws {
        let filter = try FilterRegex(RegexTimeLimitTests.catastrophic, option: "filter-mailbox")
        let table = Self.userNames([String(repeating: "a", count: 40) + "@x", "Z@x", "Z@y"])
        let budget = RegexBudget(limit: .milliseconds(200))
        let started = ContinuousClock.now
        let mask = RegexBudget.$current.withValue(budget) { filter.matchMask(table) }
        #expect(mask == [false, false, false])
        #expect(budget.exceededOption == "filter-mailbox")
        // A hang guard, not a speed target: without the limit this takes hours.
        #expect(started.duration(to: .now) < .seconds(30))
    }

    @Test("many quick matches past the deadline stop too (the deadline is checked between rows, not only in ICU's callback)")
    func deadlineBetweenRows() throws {
        let filter = try FilterRegex("x", option: "filter-user")
        // A million one-step matches take far longer than 50 ms (about 0.25 µs each in a release
        // build), and none of them runs long enough for ICU to call back.
        let table = Self.userNames((0..<1_000_000).map { "x\($0)@y" })
        let budget = RegexBudget(limit: .milliseconds(50))
        let mask = RegexBudget.$current.withValue(budget) { filter.matchMask(table) }
        #expect(mask.first == true, "the first rows ran")
        #expect(mask.last == false, "the rows after the deadline count as no match")
        #expect(budget.exceededOption == "filter-user")

        let late = RegexBudget(deadline: .now.advanced(by: .seconds(-1)))
        #expect(!RegexBudget.$current.withValue(late) { filter.matchMask(table) }.contains(true))
        #expect(late.exceededOption == "filter-user")
    }

    @Test("another option already out of time: nothing matches and that option stays named")
    func earlierOptionExceeded() throws {
        let filter = try FilterRegex("x", option: "filter-user")
        let budget = RegexBudget(limit: .seconds(30))
        budget.markExceeded("warning-status")
        let mask = RegexBudget.$current.withValue(budget) { filter.matchMask(Self.userNames(["x@y"])) }
        #expect(mask == [false])
        #expect(budget.exceededOption == "warning-status")
    }

    @Test("without a bound budget each row gets its own fallback limit, as matches gives each name: a row that ran out of time does not stop the next")
    func noBudget() throws {
        let filter = try FilterRegex("^mary")
        #expect(filter.matchMask(Self.userNames(["mary@x", "john@x"])) == [true, false])
        // The catastrophic row stops at RegexBudget.fallbackLimit (2 s); the next still matches.
        let slow = try FilterRegex(RegexTimeLimitTests.catastrophic + "|^Z")
        #expect(slow.matchMask(Self.userNames([String(repeating: "a", count: 40) + "@x", "Z@x"])) == [false, true])
    }

    @Test("canonically equal but different names are two instances, as in the plugin's hash of names (was: one, keyed by String equality)")
    func canonicallyEqualNamesAreTwoInstances() throws {
        let names = ["jos\u{E9}@contoso.com", "jose\u{301}@contoso.com"]
        let mailboxes = MailboxUsageTable(rows: names.map {
            MailboxUsageRow(
                reportRefreshDate: "2025-06-28", userPrincipalName: $0, lastActivityDate: "2025-06-28", itemCount: 1, storageUsed: "10",
                issueWarningQuota: "100", prohibitSendQuota: "200", prohibitSendReceiveQuota: "300")
        })
        #expect(MailboxUsageCheck.aggregate(period: mailboxes, filter: nil).instances.count == 2)
        let users = EmailActivityTable(rows: names.map {
            EmailActivityRow(
                reportRefreshDate: "2025-06-28", userPrincipalName: $0, lastActivityDate: "2025-06-28", sendCount: 1, receiveCount: 1,
                readCount: 1, reportPeriod: "1")
        })
        #expect(EmailActivityCheck.aggregate(period: users, daily: EmailActivityTable(rows: []), filter: nil).instances.count == 2)
    }
}

import Foundation
import Testing

@testable import ExchangeChecks

/// Runs a check on fixture data, in memory, as `exocheck run` would print it.
enum Harness {
    static let utc = TimeZone(identifier: "UTC")!

    static func run(_ mode: CheckMode, _ args: [String], tenant: String = "small", timeZone: TimeZone = utc) throws -> (String, Int32) {
        let parsed = try CentreonArguments(["--mode=\(mode.rawValue)"] + args)
        switch Invocation.parse(parsed, requireConnection: false) {
        case .failure(let error, let options):
            let r = OutputRenderer.render(CheckResult.error(error.message, status: options.errorStatus), options: options, isError: true)
            return (r.text + "\n", r.exitCode)
        case .listCounters(let m, _):
            return ("counter list: " + m.counters.map(\.label).joined(separator: " ") + "  \n", 0)
        case .help:
            return ("help", 0)
        case .check(let config, _):
            let result: CheckResult
            switch mode {
            case .emailActivity:
                let period = try ReportParser.emailActivity(FixtureCSV.served(tenant == "empty" ? FixtureCSV.emptyEmailPeriod : FixtureCSV.smallEmailPeriod))
                let daily = period.isEmpty ? [] : try ReportParser.emailActivity(FixtureCSV.served(FixtureCSV.smallEmailDaily))
                result = EmailActivityCheck.evaluate(period: period, daily: daily, config: config, timeZone: timeZone)
            case .mailboxUsage:
                let csv = tenant == "empty" ? FixtureCSV.emptyMailbox : (tenant == "overquota" ? FixtureCSV.overquotaMailbox : FixtureCSV.smallMailbox)
                result = MailboxUsageCheck.evaluate(period: try ReportParser.mailboxUsage(FixtureCSV.served(csv)), config: config, timeZone: timeZone)
            }
            let r = OutputRenderer.render(result, options: config.output)
            return (r.text + "\n", r.exitCode)
        }
    }
}

/// The verbatim examples of centreon-output.md §13, and the rules they illustrate.
@Suite("Centreon output: verbatim examples")
struct VerbatimExampleTests {
    let eaTotals = "'perfdate'=1751112000;;;; 'active_users'=7users;;;0;12 'total_send_count'=52;;;0; 'total_receive_count'=277;;;0; 'total_read_count'=221;;;0;"

    @Test("email-activity defaults")
    func eaDefaults() throws {
        let (out, code) = try Harness.run(.emailActivity, [])
        #expect(out == "OK: Active users on 2025-06-28 : 7/12 (58.33%) - Total (active users) Send Count: 52, Receive Count: 277, Read Count: 221 | \(eaTotals)\n")
        #expect(code == 0)
    }

    @Test("mailbox-usage defaults")
    func muDefaults() throws {
        let (out, code) = try Harness.run(.mailboxUsage, [])
        #expect(out == "OK: Active mailboxes on 2025-06-28 : 8/14 (57.14%) - Total Usage (active mailboxes): 208.38 GB, Usage (inactive mailboxes): 806.97 MB | 'perfdate'=1751112000;;;; 'active_mailboxes'=8mailboxes;;;0;14 'total_usage_active'=223742893568B;;;0; 'total_usage_inactive'=846166680B;;;0;\n")
        #expect(code == 0)
    }

    @Test("percent thresholds on active users")
    func percentThresholds() throws {
        let (out, code) = try Harness.run(.emailActivity, ["--warning-active-users=90:", "--critical-active-users=50:"])
        #expect(out == "WARNING: Active users on 2025-06-28 : 7/12 (58.33%) | 'perfdate'=1751112000;;;; 'active_users'=7users;10:;6:;0;12 'total_send_count'=52;;;0; 'total_receive_count'=277;;;0; 'total_read_count'=221;;;0;\n")
        #expect(code == 1)
    }

    @Test("two statuses: CRITICAL section before WARNING, single space between")
    func twoStatuses() throws {
        let (out, code) = try Harness.run(.emailActivity, ["--warning-active-users=50", "--critical-total-send-count=20"])
        #expect(out == "CRITICAL: Total (active users) Send Count: 52 WARNING: Active users on 2025-06-28 : 7/12 (58.33%) | 'perfdate'=1751112000;;;; 'active_users'=7users;0:6;;0;12 'total_send_count'=52;;0:20;0; 'total_receive_count'=277;;;0; 'total_read_count'=221;;;0;\n")
        #expect(code == 2)
    }

    @Test("per-user thresholds with long output, instances in UTF-8 byte order")
    func perUserVerbose() throws {
        let (out, code) = try Harness.run(.emailActivity, ["--filter-counters=.*", "--warning-send-count=5", "--critical-send-count=20", "--verbose"])
        let lines = out.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[0].hasPrefix("CRITICAL: User 'megan.bowen@contoso.com' Send Count: 25 WARNING: User 'adele.vance@contoso.com' Send Count: 7 - User 'jérôme.müller@contoso.com' Send Count: 12 | \(eaTotals) 'send_count_adele.vance@contoso.com'=7;0:5;0:20;0; 'receive_count_adele.vance@contoso.com'=51;;;0; 'read_count_adele.vance@contoso.com'=44;;;0; "))
        #expect(Array(lines[1...]) == [
            "User 'adele.vance@contoso.com' Send Count: 7, Receive Count: 51, Read Count: 44",
            "User 'alex.wilber@contoso.com' Send Count: 3, Receive Count: 25, Read Count: 20",
            "User 'johanna.lorenz@contoso.com' Send Count: 4, Receive Count: 17, Read Count: 0",
            "User 'jérôme.müller@contoso.com' Send Count: 12, Receive Count: 40, Read Count: 38",
            "User 'lee.gu@contoso.com' Send Count: 0, Receive Count: 15, Read Count: 0",
            "User 'megan.bowen@contoso.com' Send Count: 25, Receive Count: 120, Read Count: 110",
            "User 'patti.fernandez@contoso.com' Send Count: 1, Receive Count: 9, Read Count: 9",
            "",
        ])
        #expect(code == 2)
    }

    @Test("single instance with the default filter keeps the bare prefix (quirk 2)")
    func singleInstanceDefaultFilter() throws {
        let (out, code) = try Harness.run(.emailActivity, ["--filter-user=^megan"])
        #expect(out == "OK: Active users on 2025-06-28 : 1/1 (100.00%) - Total (active users) Send Count: 25, Receive Count: 120, Read Count: 110 - User 'megan.bowen@contoso.com'  | 'perfdate'=1751112000;;;; 'active_users'=1users;;;0;1 'total_send_count'=25;;;0; 'total_receive_count'=120;;;0; 'total_read_count'=110;;;0;\n")
        #expect(code == 0)
    }

    @Test("single instance, all counters: no label suffix")
    func singleInstanceAllCounters() throws {
        let (out, code) = try Harness.run(.mailboxUsage, ["--filter-mailbox=^megan", "--filter-counters=.*"])
        #expect(out == "CRITICAL: Mailbox 'megan.bowen@contoso.com' Used: 100.00 GB Issue Warning Quota: 98.00 GB Prohibit Send Quota: 99.00 GB Prohibit Send/Receive Quota: 100.00 GB | 'perfdate'=1751112000;;;; 'active_mailboxes'=1mailboxes;;;0;1 'total_usage_active'=107374182401B;;;0; 'total_usage_inactive'=0B;;;0; 'used'=107374182401B;;;0; 'items'=250000;;;0;\n")
        #expect(code == 2)
    }

    @Test("new perfdata labels always carry the instance")
    func newPerfdata() throws {
        let (out, code) = try Harness.run(.mailboxUsage, ["--filter-mailbox=^megan", "--filter-counters=.*", "--use-new-perfdata"])
        #expect(out == "CRITICAL: Mailbox 'megan.bowen@contoso.com' Used: 100.00 GB Issue Warning Quota: 98.00 GB Prohibit Send Quota: 99.00 GB Prohibit Send/Receive Quota: 100.00 GB | 'perfdate'=1751112000;;;; 'exchange.mailboxes.active.count'=1mailboxes;;;0;1 'exchange.mailboxes.active.usage.total.bytes'=107374182401B;;;0; 'exchange.mailboxes.inactive.usage.total.bytes'=0B;;;0; 'megan.bowen@contoso.com#exchange.mailboxes.usage.bytes'=107374182401B;;;0; 'megan.bowen@contoso.com#exchange.mailboxes.items.count'=250000;;;0;\n")
        #expect(code == 2)
    }

    @Test("items thresholds with long output")
    func itemsVerbose() throws {
        let (out, code) = try Harness.run(.mailboxUsage, ["--filter-counters=items", "--warning-items=50000", "--critical-items=200000", "--verbose"])
        #expect(out.hasPrefix("CRITICAL: Mailbox 'jérôme.müller@contoso.com' Items: 301112 - Mailbox 'megan.bowen@contoso.com' Items: 250000 WARNING: Mailbox 'helpdesk@contoso.com' Items: 90211 | 'items_adele.vance@contoso.com'=15234;0:50000;0:200000;0; "))
        #expect(out.hasSuffix("\nMailbox 'megan.bowen@contoso.com' Items: 250000\nMailbox 'patti.fernandez@contoso.com' Items: 4410\n"))
        #expect(code == 2)
    }

    @Test("byte-suffixed thresholds")
    func byteThresholds() throws {
        let (out, code) = try Harness.run(.mailboxUsage, ["--warning-total-usage-active=200GB", "--critical-total-usage-active=300GB"])
        #expect(out == "WARNING: Total Usage (active mailboxes): 208.38 GB | 'perfdate'=1751112000;;;; 'active_mailboxes'=8mailboxes;;;0;14 'total_usage_active'=223742893568B;0:214748364800;0:322122547200;0; 'total_usage_inactive'=846166680B;;;0;\n")
        #expect(code == 1)
    }

    @Test("UNKNOWN from a status expression; empty expressions are skipped")
    func statusUnknown() throws {
        let (out, code) = try Harness.run(.mailboxUsage, ["--filter-counters=status", "--unknown-status=%{used} < 2000", "--warning-status=", "--critical-status="])
        #expect(out.hasPrefix("UNKNOWN: Mailbox 'johanna.lorenz@contoso.com' Used: 1023.00 B Issue Warning Quota: 98.00 GB Prohibit Send Quota: 99.00 GB Prohibit Send/Receive Quota: 100.00 GB - Mailbox 'lee.gu@contoso.com' Used: 1.00 KB "))
        #expect(out.contains("'used_patti.fernandez@contoso.com'=5000000000B;;;0;\n"))
        #expect(code == 3)
    }

    @Test("empty tenant with thresholds: no perfdate, 0: for a % bound on zero total")
    func emptyTenant() throws {
        let (out, code) = try Harness.run(.emailActivity, ["--critical-active-users=50:", "--warning-total-send-count=1:"], tenant: "empty")
        #expect(out == "CRITICAL: Active users on  : 0/0 (0.00%) WARNING: Total (active users) Send Count: 0 | 'active_users'=0users;;0:;0;0 'total_send_count'=0;1:;;0; 'total_receive_count'=0;;;0; 'total_read_count'=0;;;0;\n")
        #expect(code == 2)
    }

    @Test("--range-perfdata=1 drops a leading 0:")
    func rangePerfdata() throws {
        let (out, code) = try Harness.run(.emailActivity, ["--warning-total-send-count=0:50", "--critical-total-send-count=100", "--range-perfdata=1"])
        #expect(out == "WARNING: Total (active users) Send Count: 52 | 'perfdate'=1751112000;;;; 'active_users'=7users;;;0;12 'total_send_count'=52;50;100;0; 'total_receive_count'=277;;;0; 'total_read_count'=221;;;0;\n")
        #expect(code == 1)
    }

    @Test("--change-exit changes the exit code only")
    func changeExit() throws {
        let (out, code) = try Harness.run(.emailActivity, ["--warning-active-users=50", "--change-exit=warning=critical"])
        #expect(out.hasPrefix("WARNING: Active users on 2025-06-28 : 7/12 (58.33%) | "))
        #expect(code == 2)
    }
}

@Suite("Centreon output: rules")
struct OutputRuleTests {
    @Test("UNKNOWN outranks WARNING (quirk 14)")
    func unknownBeatsWarning() throws {
        let (out, code) = try Harness.run(.emailActivity, ["--warning-total-send-count=10", "--unknown-total-read-count=10"])
        #expect(out.hasPrefix("UNKNOWN: Total (active users) Send Count: 52, Read Count: 221 | "))
        #expect(code == 3)
    }

    @Test("a group lists its non-OK counters under the group's worst status")
    func groupWorst() throws {
        let (out, _) = try Harness.run(.emailActivity, ["--warning-total-send-count=10", "--critical-total-read-count=10"])
        #expect(out.hasPrefix("CRITICAL: Total (active users) Send Count: 52, Read Count: 221 | "))
    }

    @Test("--unknown-active-users is accepted and ignored (quirk 11)")
    func unknownActiveIgnored() throws {
        let (out, code) = try Harness.run(.emailActivity, ["--unknown-active-users=50"])
        #expect(out.hasPrefix("OK: Active users on 2025-06-28 : 7/12 (58.33%) - "))
        #expect(code == 0)
    }

    @Test("--units=count compares and prints the raw count; any other unit behaves as count")
    func unitsCount() throws {
        let (out, code) = try Harness.run(.emailActivity, ["--units=count", "--critical-active-users=~:5"])
        #expect(out.contains("'active_users'=7users;;~:5;0;12"))
        #expect(code == 2)
        let (other, _) = try Harness.run(.emailActivity, ["--units=users", "--critical-active-users=~:5"])
        #expect(other.contains("'active_users'=7users;;~:5;0;12"))
    }

    @Test("default filter hides per-user counters and their thresholds (quirk 1)")
    func defaultFilterHides() throws {
        let (out, code) = try Harness.run(.emailActivity, ["--warning-send-count=5", "--verbose"])
        #expect(!out.contains("User '"))
        #expect(code == 0)
    }

    @Test("empty --filter-counters shows everything and adds 'All ... ok'")
    func emptyFilter() throws {
        let (out, _) = try Harness.run(.emailActivity, ["--filter-counters="])
        #expect(out.contains(" - All email activity are ok | "))
    }

    @Test("--filter-counters=^total drops the active counter and perfdate")
    func totalOnly() throws {
        let (out, _) = try Harness.run(.emailActivity, ["--filter-counters=^total"])
        #expect(out == "OK: Total (active users) Send Count: 52, Receive Count: 277, Read Count: 221 | 'total_send_count'=52;;;0; 'total_receive_count'=277;;;0; 'total_read_count'=221;;;0;\n")
    }

    @Test("--filter-counters-block removes whole groups")
    func block() throws {
        let (out, _) = try Harness.run(.emailActivity, ["--filter-counters=.*", "--filter-counters-block=^global$"])
        #expect(!out.contains("Total (active users)"))
        #expect(out.contains("All email activity are ok"))
    }

    @Test("filters are case-sensitive and unanchored; '.' matches a character")
    func userFilters() throws {
        #expect(try Harness.run(.emailActivity, ["--filter-user=ADELE"]).0.contains(": 0/1 ") == false)
        #expect(try Harness.run(.emailActivity, ["--filter-user=ADELE"]).0.hasPrefix("OK: Active users on 2025-06-28 : 0/0 (0.00%)"))
        #expect(try Harness.run(.emailActivity, ["--filter-user=^j.r"]).0.hasPrefix("OK: Active users on 2025-06-28 : 1/1"))
        #expect(try Harness.run(.emailActivity, ["--filter-user=(?i)JÉRÔME"]).0.hasPrefix("OK: Active users on 2025-06-28 : 1/1"))
        #expect(try Harness.run(.emailActivity, ["--filter-user=vance"]).0.hasPrefix("OK: Active users on 2025-06-28 : 1/1"))
    }

    @Test("inactive mailboxes are never checked against their quotas (quirk 4)")
    func inactiveNotChecked() throws {
        let (out, code) = try Harness.run(.mailboxUsage, ["--filter-counters=.*", "--verbose"], tenant: "overquota")
        #expect(!out.contains("old.archive"))
        #expect(code == 2)
    }

    @Test("a ' in a label is doubled")
    func apostrophe() throws {
        let (out, _) = try Harness.run(.mailboxUsage, ["--filter-counters=.*"], tenant: "overquota")
        #expect(out.contains("'used_sean.o''neill@tailspin.example'="))
    }

    @Test("perfdate is 12:00 local time on the report date")
    func perfdateLocalTime() throws {
        let paris = try #require(TimeZone(identifier: "Europe/Paris"))
        let (out, _) = try Harness.run(.emailActivity, [], timeZone: paris)
        #expect(out.contains("'perfdate'=1751104800;;;;"))
    }

    @Test("--filter-perfdata, --filter-uom, --output-ignore-perfdata, --output-ignore-label")
    func outputFilters() throws {
        #expect(try Harness.run(.emailActivity, ["--filter-perfdata=^active"]).0.hasSuffix("| 'active_users'=7users;;;0;12\n"))
        #expect(try Harness.run(.emailActivity, ["--filter-uom=^$", "--filter-perfdata=active"]).0.hasSuffix("| 'active_users'=7;;;0;12\n"))
        #expect(try Harness.run(.emailActivity, ["--output-ignore-perfdata"]).0.hasSuffix("Read Count: 221 \n"))
        let (label, _) = try Harness.run(.emailActivity, ["--output-ignore-label", "--warning-active-users=50"])
        #expect(label.hasPrefix("Active users on 2025-06-28 : 7/12 (58.33%) | "))
    }

    @Test("--range-perfdata=2 blanks thresholds; other values are refused")
    func rangePerfdata2() throws {
        #expect(try Harness.run(.emailActivity, ["--warning-total-send-count=10", "--range-perfdata=2"]).0.contains("'total_send_count'=52;;;0;"))
        #expect(try Harness.run(.emailActivity, ["--range-perfdata=5"]) == ("UNKNOWN: Wrong range-perfdata option '5' \n", 3))
    }

    @Test("--change-short-output rewrites the short output, labels included, perfdata untouched")
    func changeShortOutput() throws {
        let (out, _) = try Harness.run(.emailActivity, ["--change-short-output=Active users~Users with activity", "--filter-perfdata=active"])
        #expect(out.hasPrefix("OK: Users with activity on 2025-06-28 : 7/12 (58.33%) - Total (active users) "))
        let (g, _) = try Harness.run(.mailboxUsage, ["--change-short-output=Usage~U~g"])
        #expect(g.contains("Total U (active mailboxes): 208.38 GB, U (inactive mailboxes)"))
        let (label, _) = try Harness.run(.emailActivity, ["--change-short-output=^OK:~FINE:"])
        #expect(label.hasPrefix("FINE: Active users"))
    }

    @Test("thresholds under new names with --use-new-perfdata; old names still work")
    func newNames() throws {
        let (out, code) = try Harness.run(.emailActivity, ["--use-new-perfdata", "--filter-counters=.*",
                                                           "--warning-exchange-users-emails-sent-total-count=10",
                                                           "--critical-instance-exchange-users-emails-received-count=100"])
        #expect(out.contains("'exchange.users.emails.sent.total.count'=52;0:10;;0;"))
        #expect(out.contains("'megan.bowen@contoso.com#exchange.users.emails.received.count'=120;;0:100;0;"))
        #expect(code == 2)
        let (old, _) = try Harness.run(.emailActivity, ["--use-new-perfdata", "--warning-total-send-count=10"])
        #expect(old.contains("'exchange.users.emails.sent.total.count'=52;0:10;;0;"))
    }

    @Test("new threshold names need --use-new-perfdata")
    func newNamesNeedFlag() throws {
        let (out, code) = try Harness.run(.emailActivity, ["--warning-exchange-users-emails-sent-total-count=10"])
        #expect(out.hasPrefix("UNKNOWN: Unknown option '--warning-exchange-users-emails-sent-total-count'"))
        #expect(code == 3)
    }

    @Test("status expression thresholds only act when the status counter is shown")
    func statusNeedsFilter() throws {
        let (hidden, hiddenCode) = try Harness.run(.mailboxUsage, [])
        #expect(hiddenCode == 0 && !hidden.contains("Mailbox '"))
        let (shown, shownCode) = try Harness.run(.mailboxUsage, ["--filter-counters=^status$"])
        #expect(shown.hasPrefix("CRITICAL: Mailbox 'jérôme.müller@contoso.com' Used: 49.55 GB"))
        #expect(shownCode == 2)
    }

    @Test("an empty quota prints 0.00 B and trips the default critical (quirk 3)")
    func emptyQuota() throws {
        let (out, _) = try Harness.run(.mailboxUsage, ["--filter-counters=status", "--filter-mailbox=patti"])
        #expect(out.hasPrefix("CRITICAL: Mailbox 'patti.fernandez@contoso.com' Used: 4.66 GB Issue Warning Quota: 0.00 B Prohibit Send Quota: 0.00 B Prohibit Send/Receive Quota: 0.00 B | "))
    }

    @Test("filter matching nothing keeps the date and perfdate")
    func filterNone() throws {
        let (out, _) = try Harness.run(.mailboxUsage, ["--filter-mailbox=^nobody$", "--filter-counters=.*", "--verbose"])
        #expect(out == "OK: Active mailboxes on 2025-06-28 : 0/0 (0.00%) - Total Usage (active mailboxes): 0.00 B, Usage (inactive mailboxes): 0.00 B | 'perfdate'=1751112000;;;; 'active_mailboxes'=0mailboxes;;;0;0 'total_usage_active'=0B;;;0; 'total_usage_inactive'=0B;;;0;\n")
    }

    @Test("--list-counters")
    func listCounters() throws {
        #expect(try Harness.run(.emailActivity, ["--list-counters"]) == ("counter list: active-users total-send-count total-receive-count total-read-count send-count receive-count read-count  \n", 0))
    }
}

@Suite("Concealed names")
struct ConcealedNameTests {
    @Test("long output says names are concealed when UPNs are hashes")
    func note() throws {
        let header = "Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Last Activity Date,Send Count,Receive Count,Read Count,Meeting Created Count,Meeting Interacted Count,Assigned Products,Report Period"
        let period = try ReportParser.emailActivity(Array("\(header)\n2025-06-28,0123456789ABCDEF0123456789ABCDEF,X,False,,2025-06-28,1,2,3,0,0,P,7\n".utf8))
        let daily = try ReportParser.emailActivity(Array("\(header)\n2025-06-28,0123456789ABCDEF0123456789ABCDEF,X,False,,2025-06-28,1,2,3,0,0,P,1\n".utf8))
        var config = try CheckConfiguration(mode: .emailActivity)
        config.filterCounters = nil
        config.output.verbose = true
        let r = EmailActivityCheck.evaluate(period: period, daily: daily, config: config, timeZone: Harness.utc)
        #expect(r.longOutput.last == CounterFormatting.concealedNote)
        #expect(CounterFormatting.looksConcealed("0123456789abcdef0123456789ABCDEF"))
        #expect(!CounterFormatting.looksConcealed("adele.vance@contoso.com"))
    }
}

/// The modes as tables (CounterTable): one row per counter of the mode, no more.
@Suite("Counter tables")
struct CounterTableTests {
    @Test("every totals and per-instance counter of each mode has exactly one row in its table, in the mode's order")
    func rowsMatchCounters() {
        let email = EmailActivityCheck.table
        let mailbox = MailboxUsageCheck.table
        for (mode, totals, instances) in [(CheckMode.emailActivity, email.totals.map(\.label), email.instances.map(\.label)),
                                          (.mailboxUsage, mailbox.totals.map(\.label), mailbox.instances.map(\.label))] {
            let groups = mode.groups
            #expect(groups.count == 3, "\(mode)")
            #expect(groups.map(\.kind) == [.global, .global, .instances], "\(mode)")
            #expect(groups[0].counters.count == 1, "\(mode): one active counter")
            #expect(totals == groups[1].counters.map(\.label), "\(mode)")
            #expect(instances == groups[2].counters.map(\.label), "\(mode)")
        }
        #expect(email.mode == .emailActivity)
        #expect(mailbox.mode == .mailboxUsage)
    }
}

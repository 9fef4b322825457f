import Foundation
import Testing

@testable import ExchangeChecks

/// Issue 8, "Bounded evaluation" and "The option table": every limit at, just under and just
/// over its value; inputs that crashed or froze a worker before.
@Suite("Hostile input: bounded evaluation")
struct BoundedEvaluationTests {
    func limitError(_ text: String) -> StatusExpressionError? {
        do { _ = try StatusExpression(text); return nil } catch { return error }
    }

    @Test("30,000 nested parentheses are refused with a depth error (was SIGSEGV)")
    func deepParentheses() {
        let text = String(repeating: "(", count: 30000) + "1" + String(repeating: ")", count: 30000)
        let error = limitError(text)
        #expect(error?.isLimit == true)
    }

    @Test("60,000 '!' then 1 is refused (was SIGSEGV)")
    func manyNots() {
        let error = limitError(String(repeating: "!", count: 60000) + "1")
        #expect(error?.isLimit == true)
        #expect(error?.message.contains("longer than the limit") == true)
    }

    @Test("nesting depth: at the limit parses, one more is refused")
    func depthBoundary() throws {
        let d = CheckLimits.maxExpressionDepth
        let at = String(repeating: "(", count: d) + "1" + String(repeating: ")", count: d)
        #expect(try StatusExpression(at).evaluate([:]))
        let under = String(repeating: "!", count: d - 1) + "0"
        _ = try StatusExpression(under)
        let over = String(repeating: "(", count: d + 1) + "1" + String(repeating: ")", count: d + 1)
        #expect(limitError(over)?.message.contains("nested more than \(d) levels") == true)
        #expect(limitError(String(repeating: "- ", count: d + 1) + "1")?.isLimit == true)
        #expect(limitError(String(repeating: "not ", count: d + 1) + "1")?.isLimit == true)
    }

    @Test("length: at the limit parses, one more character is refused")
    func lengthBoundary() throws {
        let n = CheckLimits.maxExpressionLength
        let at = "1" + String(repeating: " ", count: n - 1)
        #expect(at.count == n)
        _ = try StatusExpression(at)
        #expect(limitError(at + " ")?.isLimit == true)
    }

    @Test("tokens: at the limit parses, more are refused; a left-deep chain evaluates")
    func tokenBoundary() throws {
        let k = CheckLimits.maxExpressionTokens
        // "1+1+…+1" with (k+1)/2 ones is k tokens.
        let ones = (k + 1) / 2
        let at = Array(repeating: "1", count: ones).joined(separator: "+")
        let e = try StatusExpression(at)
        #expect(e.evaluate([:]))
        let over = Array(repeating: "1", count: ones + 1).joined(separator: "+")
        #expect(limitError(over)?.message.contains("tokens") == true)
    }

    @Test("% never traps and follows Perl: sign of the right operand, zero divisor undefined",
          arguments: [("-1e19 % -1 == 0", true), ("-9223372036854775808 % -1 == 0", true), ("1e300 % 7 >= 0", true),
                      ("-7 % 3 == 2", true), ("7 % -3 == -2", true), ("7 % 3 == 1", true), ("-7 % -3 == -1", true),
                      ("7.9 % 3.9 == 1", true), ("(5 % 0) eq ''", true)])
    func modulo(_ text: String, _ expected: Bool) throws {
        #expect(try StatusExpression(text).evaluate([:]) == expected, "\(text)")
    }

    @Test("mailbox-usage with --critical-status '-1e19 % -1' evaluates (was SIGILL)")
    func moduloInCheck() throws {
        let (out, code) = try Harness.run(.mailboxUsage, ["--filter-counters=status", "--critical-status=-1e19 % -1"])
        #expect(code == 0 || code == 1, "\(out)")
    }
}

@Suite("Hostile input: regular expressions under a time limit")
struct RegexTimeLimitTests {
    static let catastrophic = "(.|.|.|.|.)*Z"

    @Test("a catastrophic --filter-user stops at the deadline and names the option")
    func filterUserTimesOut() throws {
        let regex = try FilterRegex(Self.catastrophic, option: "filter-user")
        let budget = RegexBudget(limit: .milliseconds(200))
        let started = ContinuousClock.now
        let matched = RegexBudget.$current.withValue(budget) { regex.matches(String(repeating: "a", count: 40)) }
        #expect(!matched)
        #expect(budget.exceededOption == "filter-user")
        #expect(budget.exceededMessage?.contains("--filter-user") == true)
        // A hang guard, not a speed target: without the limit this takes hours.
        #expect(started.duration(to: .now) < .seconds(30))
    }

    @Test("a whole check with a catastrophic filter answers UNKNOWN-worthy state, not hours of CPU")
    func checkTimesOut() throws {
        let parsed = try CentreonArguments(["--mode=mailbox-usage", "--filter-mailbox=\(Self.catastrophic)"])
        guard case .check(let config, _) = Invocation.parse(parsed, requireConnection: false) else {
            Issue.record("not a check"); return
        }
        let rows = try ReportParser.mailboxUsage(FixtureCSV.served(FixtureCSV.smallMailbox))
        let budget = RegexBudget(limit: .milliseconds(200))
        _ = RegexBudget.$current.withValue(budget) {
            MailboxUsageCheck.evaluate(period: rows, config: config, timeZone: Harness.utc)
        }
        #expect(budget.exceededOption == "filter-mailbox")
    }

    @Test("a catastrophic =~ in a status expression names the status option")
    func expressionRegex() throws {
        let e = try StatusExpression("%{display} =~ /\(Self.catastrophic)/", option: "warning-status")
        let budget = RegexBudget(limit: .milliseconds(200))
        let result = RegexBudget.$current.withValue(budget) { e.evaluate(["display": String(repeating: "x", count: 40)]) }
        #expect(!result)
        #expect(budget.exceededOption == "warning-status")
    }

    @Test("a pattern taken from report data (dynamic =~) is limited too")
    func dynamicRegex() throws {
        let e = try StatusExpression("%{display} =~ %{pattern}", option: "critical-status")
        let budget = RegexBudget(limit: .milliseconds(200))
        _ = RegexBudget.$current.withValue(budget) {
            e.evaluate(["display": String(repeating: "x", count: 40), "pattern": Self.catastrophic])
        }
        #expect(budget.exceededOption == "critical-status")
    }

    @Test("a catastrophic --change-short-output renders UNKNOWN naming the option, without the rule")
    func changeShortOutputTimesOut() throws {
        let parsed = try CentreonArguments(["--mode=email-activity", "--change-short-output=\(Self.catastrophic)~x~g"])
        guard case .check(let config, _) = Invocation.parse(parsed, requireConnection: false) else {
            Issue.record("not a check"); return
        }
        var result = CheckResult()
        result.add(.ok, String(repeating: "a", count: 40))
        let rendered = RegexBudget.$current.withValue(RegexBudget(limit: .milliseconds(200))) {
            OutputRenderer.render(result, options: config.output)
        }
        #expect(rendered.status == .unknown)
        #expect(rendered.text.hasPrefix("UNKNOWN: The regular expression of --change-short-output did not finish"))
    }

    @Test("well-behaved patterns give the same results as before under a budget")
    func normalPatterns() throws {
        let (out, _) = try Harness.run(.emailActivity, ["--filter-user=^j.r", "--filter-counters=.*", "--verbose"])
        #expect(out.contains("jérôme"))
        let (short, _) = try Harness.run(.emailActivity, ["--change-short-output=Active~ACTIVE~g"])
        #expect(short.contains("ACTIVE"))
    }
}

@Suite("Hostile input: output rewrite caps")
struct OutputRewriteCapTests {
    func config(_ args: [String]) throws -> Invocation { Invocation.parse(try CentreonArguments(["--mode=email-activity"] + args), requireConnection: false) }

    @Test("eight '.~XXXXXXXXXX~g' rules stop at the output cap with an UNKNOWN naming the option (was: no answer in 50 s)")
    func tenfoldGrowth() throws {
        let rules = Array(repeating: "--change-short-output=.~XXXXXXXXXX~g", count: 8)
        guard case .check(let c, _) = try config(rules) else { Issue.record("refused"); return }
        var result = CheckResult()
        result.add(.ok, "Active users on 2025-06-28: 7")
        let rendered = OutputRenderer.render(result, options: c.output)
        #expect(rendered.status == .unknown)
        #expect(rendered.text.contains("--change-short-output rules make the output longer than \(CheckLimits.maxShortOutputBytes) bytes"))
        #expect(rendered.text.utf8.count < 1000)
    }

    @Test("the same rules on an error line (a refusal) are capped too")
    func capOnRefusal() throws {
        guard case .check(let c, _) = try config(Array(repeating: "--change-short-output=.~XXXXXXXXXX~g", count: 8)) else { return }
        let rendered = OutputRenderer.render(CheckResult.error("Tenant 'abcdefghijklmnopqrstuvwxyzabcdefgh' is not configured"), options: c.output, isError: true)
        #expect(rendered.text.utf8.count < 1000)
    }

    @Test("rule count: at the limit accepted, one more refused")
    func ruleCount() throws {
        let n = CheckLimits.maxShortOutputRules
        guard case .check = try config(Array(repeating: "--change-short-output=a~b", count: n)) else { Issue.record("refused at the limit"); return }
        guard case .failure(let e, _) = try config(Array(repeating: "--change-short-output=a~b", count: n + 1)) else {
            Issue.record("accepted over the limit"); return
        }
        #expect(e.message.contains("Too many --change-short-output rules"))
    }

    @Test("replacement size: at the limit accepted, one byte more refused")
    func replacementSize() throws {
        let at = String(repeating: "r", count: CheckLimits.maxReplacementBytes)
        guard case .check = try config(["--change-short-output=a~\(at)"]) else { Issue.record("refused at the limit"); return }
        guard case .failure(let e, _) = try config(["--change-short-output=a~\(at)r"]) else { Issue.record("accepted"); return }
        #expect(e.message.contains("longer than \(CheckLimits.maxReplacementBytes) bytes"))
    }

    @Test("output just under the cap is kept")
    func underCap() throws {
        let rep = String(repeating: "y", count: 1000)
        guard case .check(let c, _) = try config(["--change-short-output=^~\(rep)"]) else { return }
        var result = CheckResult()
        result.add(.ok, "fine")
        let rendered = OutputRenderer.render(result, options: c.output)
        #expect(rendered.text.hasPrefix(rep + "OK: fine"))
    }
}

@Suite("Hostile input: the option table and redacted errors")
struct OptionTableTests {
    @Test("each option has one use; requests may carry check options only", arguments: [
        ("client-secret", OptionUse.connection), ("client-id", .connection), ("login-endpoint", .connection),
        ("graph-endpoint", .connection), ("tenant", .connection), ("proxyurl", .connection), ("mode", .commandLineOnly),
        ("time-budget", .commandLineOnly), ("timeout", .commandLineOnly), ("statefile-dir", .commandLineOnly),
        ("help", .commandLineOnly), ("list-counters", .commandLineOnly), ("filter-counters", .check),
        ("warning-usage", .check), ("filter-user", .check), ("change-short-output", .check), ("verbose", .check),
    ])
    func uses(_ name: String, _ use: OptionUse) {
        #expect(OptionTable.use(of: name) == use)
        #expect((OptionTable.requestRefusal(name) == nil) == (use == .check))
    }

    @Test("names are unique in the table")
    func unique() {
        let names = OptionTable.entries.map(\.name)
        #expect(Set(names).count == names.count)
    }

    @Test("names that are not plausible option names are refused and not echoed")
    func implausible() {
        for name in ["mode=mailbox-usage", "client-secret=hunter2", "hunter2 hunter2", String(repeating: "a", count: 65), "", "-x", "A"] {
            let r = OptionTable.requestRefusal(name)
            #expect(r != nil, "\(name)")
            if !name.isEmpty { #expect(r?.contains(name) == false) }
        }
        #expect(OptionTable.requestRefusal("my-api-token") != nil)
    }

    @Test("redacted argument errors echo no value", arguments: [
        ["--mode=hunter2"], ["--mode=email-activity", "hunter2"], ["--mode=email-activity", "--warning-active-users=hunter2"],
        ["--mode=email-activity", "--filter-user=(hunter2"], ["--mode=email-activity", "--opt-exit=hunter2"],
        ["--mode=mailbox-usage", "--warning-status=hunter2 > 1"], ["--mode=email-activity", "--range-perfdata=hunter2"],
        ["--mode=email-activity", "--change-short-output=(hunter2~x"], ["--mode=email-activity", "--filter-uom=(hunter2"],
    ])
    func redacted(_ args: [String]) throws {
        let error: ArgumentError
        do {
            let parsed = try CentreonArguments(args)
            guard case .failure(let e, _) = Invocation.parse(parsed, requireConnection: false) else { Issue.record("accepted"); return }
            error = e
        } catch let e {
            error = e
        }
        #expect(!error.redacted.contains("hunter2"), "\(error.redacted)")
    }

    @Test("run keeps the plugin's wording: a bad threshold is quoted")
    func runWording() throws {
        let (out, code) = try Harness.run(.emailActivity, ["--warning-active-users=abc"])
        #expect(out == "UNKNOWN: Wrong warning-active-users threshold 'abc'. \n")
        #expect(code == 3)
    }
}

@Suite("Hostile input: regex length and compile cache")
struct RegexLengthTests {
    @Test("a pattern at the length limit compiles, one unit more is refused naming the option")
    func lengthBoundary() throws {
        let at = String(repeating: "a", count: CheckLimits.maxRegexLength)
        #expect(throws: Never.self) { _ = try FilterRegex(at, option: "filter-user") }
        guard case .failure(let e, _) = Invocation.parse(try CentreonArguments(["--mode=email-activity", "--filter-user=\(at)a"]),
                                                         requireConnection: false) else {
            Issue.record("accepted"); return
        }
        #expect(e.message == "The --filter-user regular expression is longer than \(CheckLimits.maxRegexLength) characters.")
        #expect(throws: StatusExpressionError.self) { _ = try StatusExpression("%{a} =~ /\(at)a/") }
    }

    @Test("the same pattern compiles once")
    func cached() throws {
        let pattern = String(repeating: "b", count: 200)
        let a = try FilterRegex(pattern, option: "filter-user")
        let b = try FilterRegex(pattern, option: "filter-mailbox")
        #expect(a.regex === b.regex)
    }
}

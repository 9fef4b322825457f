import Testing

@testable import ExchangeChecks

@Suite("Status expressions")
struct StatusExpressionTests {
    let megan = ["used": "107374182401", "issue_warning_quota": "105226698752", "prohibit_send_quota": "106300440576",
                 "prohibit_send_receive_quota": "107374182400", "display": "megan.bowen@contoso.com"]
    let patti = ["used": "5000000000", "issue_warning_quota": "", "prohibit_send_quota": "",
                 "prohibit_send_receive_quota": "", "display": "patti.fernandez@contoso.com"]

    func eval(_ e: String, _ vars: [String: String]) throws -> Bool { try StatusExpression(e).evaluate(vars) }

    @Test("default expressions compare numbers")
    func defaults() throws {
        #expect(try eval(CheckConfiguration.defaultWarningStatus, megan))
        #expect(try eval(CheckConfiguration.defaultCriticalStatus, megan))
        #expect(try eval("%{used} > %{prohibit_send_receive_quota}", megan))
    }

    @Test("an empty quota compares as 0 numerically (quirk 3) and eq '' detects it")
    func emptyQuota() throws {
        #expect(try eval(CheckConfiguration.defaultCriticalStatus, patti))
        #expect(try eval("%{issue_warning_quota} eq ''", patti))
        #expect(try eval("%{issue_warning_quota} eq \"\"", patti))
        #expect(!(try eval("%{issue_warning_quota} ne ''", patti)))
    }

    @Test("an unknown variable is undefined: 0 and ''")
    func unknownVariable() throws {
        #expect(!(try eval("%{nope} > 0", megan)))
        #expect(try eval("%{nope} == 0", megan))
        #expect(try eval("%{nope} eq ''", megan))
    }

    @Test("logic, precedence and parentheses", arguments: [
        ("1 < 2 and 2 < 3", true), ("1 < 2 && 3 < 2", false), ("1 > 2 || 2 > 1", true), ("not 1 > 2", true),
        ("!(1 > 2)", true), ("1 + 2 * 3 == 7", true), ("(1 + 2) * 3 == 9", true), ("10 / 4 == 2.5", true),
        ("1 or 0 and 0", true), ("'abc' lt 'abd'", true), ("'b' gt 'a'", true), ("'a' . 'b' eq 'ab'", true),
        ("2 <=> 1", true), ("'a' cmp 'a'", false), ("-1 < 0", true), ("0", false), ("'0'", false), ("''", false), ("'00'", true),
        ("5 % 3 == 2", true), ("1e3 == 1000", true), ("10 >= 10 and 10 <= 10", true), ("3 != 3", false),
    ])
    func logic(expression: String, expected: Bool) throws {
        #expect(try eval(expression, [:]) == expected)
    }

    @Test("regex matches with =~ and !~")
    func regex() throws {
        #expect(try eval("%{display} =~ /^megan/", megan))
        #expect(try eval("%{display} =~ /MEGAN/i", megan))
        #expect(try eval("%{display} !~ /^patti/", megan))
        #expect(try eval("%{display} =~ m{contoso\\.com$}", megan))
        #expect(try eval("%{display} =~ 'bowen'", megan))
    }

    @Test("syntax errors say where", arguments: [
        ("%{used} >", 10), ("%{used} > (3", 13), ("", 1), ("%{used} = 3", 9), ("system('rm -rf /')", 1),
        ("%{used", 1), ("'open", 1), ("1 2", 3), ("%{used} =~ /(/", 12),
    ])
    func syntaxErrors(expression: String, position: Int) {
        #expect(throws: StatusExpressionError.self) { try StatusExpression(expression) }
        do {
            _ = try StatusExpression(expression)
        } catch {
            #expect(error.position == position, "\(error)")
        }
    }

    @Test("variable names are reported")
    func variables() throws {
        #expect(try StatusExpression("%{used} > %{issue_warning_quota}").variableNames == ["used", "issue_warning_quota"])
    }
}

import Testing

@testable import ExchangeChecks

@Suite("Centreon argument list")
struct ArgumentTests {
    let connection = ["--tenant=t", "--client-id=c", "--client-secret=s"]

    func invocation(_ args: [String], requireConnection: Bool = true) throws -> Invocation {
        Invocation.parse(try CentreonArguments(args), requireConnection: requireConnection)
    }

    func failure(_ args: [String], requireConnection: Bool = true) throws -> String? {
        if case .failure(let e, _) = try invocation(args, requireConnection: requireConnection) { return e.message }
        return nil
    }

    @Test("--opt=value and --opt value; the last one wins")
    func forms() throws {
        let a = try CentreonArguments(["--tenant", "one", "--tenant=two", "--verbose", "--units", "count"])
        #expect(a.last("tenant") == "two")
        #expect(a.all("tenant") == ["one", "two"])
        #expect(a.has("verbose"))
        #expect(a.last("units") == "count")
    }

    @Test("normalized: one written form whatever the command line used, in order, without the excluded options")
    func normalized() throws {
        let spaced = try CentreonArguments(["--tenant", "contoso", "--mode", "mailbox-usage", "--warning-x", "5", "--verbose",
                                            "-critical-status", "%{used} > 0", "--filter-user="])
        #expect(spaced.normalized(excluding: ["tenant", "mode"]) == ["--warning-x=5", "--verbose", "--critical-status=%{used} > 0", "--filter-user="])
        let joined = try CentreonArguments(["--tenant=contoso", "--mode=mailbox-usage", "--warning-x=5", "--verbose",
                                            "--critical-status=%{used} > 0", "--filter-user="])
        #expect(joined.normalized(excluding: ["tenant", "mode"]) == spaced.normalized(excluding: ["tenant", "mode"]))
        // Re-parsing the normalized form gives the same options.
        let again = try CentreonArguments(spaced.normalized())
        #expect(again.entries.map(\.name) == spaced.entries.map(\.name) && again.entries.map(\.value) == spaced.entries.map(\.value))
    }

    @Test("a value option followed by another option gets an empty value (Getopt ':s')")
    func optionalValue() throws {
        let a = try CentreonArguments(["--warning-status", "--verbose"])
        #expect(a.last("warning-status") == "")
        #expect(a.has("verbose"))
    }

    @Test("single-dash long options are accepted like Getopt::Long")
    func singleDash() throws {
        #expect(try CentreonArguments(["-mode=email-activity"]).last("mode") == "email-activity")
    }

    @Test("a flag with a value and a bare word are refused")
    func refused() {
        #expect(throws: ArgumentError.self) { try CentreonArguments(["--verbose=1"]) }
        #expect(throws: ArgumentError.self) { try CentreonArguments(["stray"]) }
    }

    @Test("missing connection options, in the plugin's order", arguments: [
        ([String](), "Need to specify --tenant option."),
        (["--tenant=t"], "Need to specify --client-id option."),
        (["--tenant=t", "--client-id=c"], "Need to specify --client-secret option."),
        (["--tenant=", "--client-id=c", "--client-secret=s"], "Need to specify --tenant option."),
    ])
    func missingConnection(extra: [String], message: String) throws {
        #expect(try failure(["--mode=email-activity"] + extra) == message)
    }

    @Test("missing and unknown mode")
    func modes() throws {
        #expect(try failure(connection)?.hasPrefix("Need to specify --mode option") == true)
        #expect(try failure(["--mode=no-such-mode"] + connection)?.hasPrefix("mode 'no-such-mode' doesn't exist") == true)
    }

    @Test("unknown options are refused before any request")
    func unknownOption() throws {
        #expect(try failure(["--mode=email-activity", "--bogus=1"] + connection)?.hasPrefix("Unknown option '--bogus'") == true)
        // Mode-specific: --filter-mailbox is not an email-activity option.
        #expect(try failure(["--mode=email-activity", "--filter-mailbox=x"] + connection) != nil)
        #expect(try failure(["--mode=email-activity", "--warning-items=1"] + connection) != nil)
    }

    @Test("invalid thresholds name the option and value", arguments: [
        ("--warning-active-users=abc", "Wrong warning-active-users threshold 'abc'."),
        ("--critical-active-users=50%", "Wrong critical-active-users threshold '50%'."),
        ("--unknown-total-send-count=x:", "Wrong unknown-total-send-count threshold 'x:'."),
    ])
    func invalidThresholds(option: String, message: String) throws {
        #expect(try failure(["--mode=email-activity", option] + connection) == message)
    }

    @Test("invalid threshold under a new name prints the new name")
    func invalidNewName() throws {
        #expect(try failure(["--mode=email-activity", "--use-new-perfdata", "--warning-total-send-count=x"] + connection)
            == "Wrong warning-exchange-users-emails-sent-total-count threshold 'x'.")
    }

    @Test("connection errors come before mode option errors (the plugin's order)")
    func order() throws {
        #expect(try failure(["--mode=email-activity", "--warning-active-users=abc"]) == "Need to specify --tenant option.")
    }

    @Test("--opt-exit sets the status of errors; an invalid one is refused")
    func optExit() throws {
        guard case .failure(_, let options) = try invocation(["--mode=email-activity", "--opt-exit=critical"]) else {
            Issue.record("expected a failure")
            return
        }
        #expect(options.errorStatus == .critical)
        #expect(try failure(["--mode=email-activity", "--opt-exit=bad"] + connection) == "Unknown value 'bad' for --opt-exit.")
    }

    @Test("invalid regexes and expressions are refused with the option name")
    func invalidRegex() throws {
        #expect(try failure(["--mode=email-activity", "--filter-user=(("] + connection) == "Invalid --filter-user regular expression '(('.")
        #expect(try failure(["--mode=mailbox-usage", "--warning-status=%{used} >"] + connection)?
            .hasPrefix("Invalid --warning-status expression '%{used} >': expected a value after '>'") == true)
    }

    @Test("connection values: endpoints, timeout, statefile dir")
    func connectionValues() throws {
        guard case .check(_, let c?) = try invocation(["--mode=mailbox-usage", "--login-endpoint=http://x:1/", "--timeout=3.5", "--statefile-dir=/tmp/s"] + connection) else {
            Issue.record("expected a check")
            return
        }
        #expect(c.loginEndpoint == "http://x:1")
        #expect(c.graphEndpoint == "https://graph.microsoft.com")
        #expect(c.timeout == .milliseconds(3500))
        #expect(c.statefileDir == "/tmp/s")
        #expect(try failure(["--mode=mailbox-usage", "--timeout=0"] + connection)?.hasPrefix("Wrong --timeout value") == true)
        #expect(try failure(["--mode=mailbox-usage", "--graph-endpoint=graph.microsoft.com"] + connection)?.hasPrefix("Wrong --graph-endpoint value") == true)
    }

    @Test("options a Centreon command line may carry are accepted and ignored")
    func ignored() throws {
        guard case .check = try invocation(["--plugin=cloud::microsoft::office365::exchange::plugin", "--custommode=graphapi",
                                            "--mode=email-activity", "--display-ok-counters=send", "--http-backend=curl"] + connection)
        else {
            Issue.record("expected a check")
            return
        }
    }

    @Test("a request (no connection required) needs no credentials")
    func requestMode() throws {
        guard case .check(_, nil) = try invocation(["--mode=mailbox-usage"], requireConnection: false) else {
            Issue.record("expected a check without connection")
            return
        }
    }

    @Test("old and new names of one threshold: the later on the line wins")
    func laterAliasWins() throws {
        func warning(_ args: [String]) throws -> String? {
            guard case .check(let c, _) = try invocation(["--mode=email-activity", "--use-new-perfdata"] + args, requireConnection: false) else { return nil }
            return c.thresholds["total-send-count"]?.warning?.text
        }
        #expect(try warning(["--warning-total-send-count=1", "--warning-exchange-users-emails-sent-total-count=2"]) == "2")
        #expect(try warning(["--warning-exchange-users-emails-sent-total-count=2", "--warning-total-send-count=1"]) == "1")
        #expect(try warning(["--warning-total-send-count=1", "--warning-exchange-users-emails-sent-total-count=2", "--warning-total-send-count=3"]) == "3")
    }

    @Test("--time-budget: default 20 s, a wrong value is refused")
    func timeBudget() throws {
        guard case .check(_, let c?) = try invocation(["--mode=mailbox-usage"] + connection) else {
            Issue.record("expected a check")
            return
        }
        #expect(c.timeBudget == .seconds(20))
        #expect(try failure(["--mode=mailbox-usage", "--time-budget=soon"] + connection) == "Wrong --time-budget value 'soon': give a number of seconds greater than 0.")
    }

    @Test("--timeout and --time-budget past 10^9 seconds (about 31 years, the largest Duration exocheck makes) or not a number are refused, not clamped or trapped", arguments: ["timeout", "time-budget"])
    func timeLimitsInRange(option: String) throws {
        #expect(try failure(["--mode=mailbox-usage", "--\(option)=1e300"] + connection) == "Wrong --\(option) value '1e300': give at most 1000000000 seconds.")
        #expect(try failure(["--mode=mailbox-usage", "--\(option)=inf"] + connection) == "Wrong --\(option) value 'inf': give at most 1000000000 seconds.")
        #expect(try failure(["--mode=mailbox-usage", "--\(option)=nan"] + connection) == "Wrong --\(option) value 'nan': give a number of seconds greater than 0.")
        guard case .check(_, let c?) = try invocation(["--mode=mailbox-usage", "--\(option)=0.25"] + connection) else {
            Issue.record("expected a check")
            return
        }
        #expect((option == "timeout" ? c.timeout : c.timeBudget) == .milliseconds(250))
    }

    @Test("options map form")
    func optionsMap() {
        let a = CentreonArguments(options: [("filter-user", "^ad"), ("verbose", "1")])
        #expect(a.last("filter-user") == "^ad")
        #expect(a.has("verbose"))
    }
}

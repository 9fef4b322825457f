import ExchangeChecks
import Testing

/// `CheckSpec`: one initializer behind `submit`, the worker and `submit --file`.
@Suite("CheckSpec: one typed check from a command line or a request")
struct CheckSpecTests {
    static func commandLine(_ args: [String]) throws -> CheckSpec {
        try CheckSpec(commandLine: CentreonArguments(args))
    }

    @Test("values after a space, as pollers write them, become --name=value; tenant and mode become fields (was: 'contoso' left behind as an argument)")
    func spaceSeparated() throws {
        let spec = try Self.commandLine(["--tenant", "contoso", "--mode", "mailbox-usage", "--warning-active-mailboxes", "5", "--verbose",
                                         "--filter-mailbox=^a"])
        #expect(spec.mode == .mailboxUsage)
        #expect(spec.requestOptions == ["--warning-active-mailboxes=5", "--verbose", "--filter-mailbox=^a"])
        #expect(spec.configuration.output.verbose)
        #expect(spec.configuration.instanceFilter != nil)
    }

    @Test("the command line and the request it becomes give the same check")
    func sameBothWays() throws {
        let fromLine = try Self.commandLine(["--mode=email-activity", "--tenant=t", "--critical-total-send-count", "@0:10", "--units", "count"])
        let fromRequest = try CheckSpec(mode: .emailActivity, options: CentreonArguments(fromLine.requestOptions))
        #expect(fromRequest.requestOptions == fromLine.requestOptions)
        #expect(fromRequest.mode == fromLine.mode)
        #expect(fromRequest.configuration.unitsPercent == false)
        #expect(fromRequest.configuration.thresholds == fromLine.configuration.thresholds)
        #expect(!fromRequest.configuration.thresholds.isEmpty)
    }

    @Test("a request may not carry the mode, time limits, credentials or endpoints; the refusal never shows the value", arguments: [
        ("--mode=mailbox-usage", "the mode is the request's 'mode' field"),
        ("--timeout=5", "the time limit is the worker's"),
        ("--time-budget=5", "the time limit is the worker's"),
        ("--client-secret=hunter2-secret", "secrets belong to the worker's configuration"),
        ("--graph-endpoint=http://evil.example", "credentials, endpoints and the tenant come from the worker's configuration"),
        ("--list-counters", "for the command line only"),
    ])
    func refused(option: String, says: String) throws {
        do {
            _ = try CheckSpec(mode: .mailboxUsage, options: CentreonArguments([option]))
            Issue.record("\(option) was accepted")
        } catch {
            #expect(error.redacted.contains(says), "\(error.redacted)")
            #expect(!error.redacted.contains("hunter2") && !error.redacted.contains("evil.example"))
        }
    }

    @Test("a bad threshold is refused by the spec, naming the option, not the value, in the redacted form")
    func badThreshold() throws {
        #expect(throws: ArgumentError.self) { try CheckSpec(mode: .mailboxUsage, options: CentreonArguments(["--warning-active-mailboxes=abc"])) }
        do {
            _ = try CheckSpec(mode: .mailboxUsage, options: CentreonArguments(["--warning-active-mailboxes=s3cr3t"]))
            Issue.record("a bad threshold was accepted")
        } catch {
            #expect(error.redacted.contains("warning-active-mailboxes"))
            #expect(!error.redacted.contains("s3cr3t"))
        }
    }

    @Test("a command line without --mode, or with an unknown one, is refused")
    func missingMode() {
        #expect(throws: ArgumentError.self) { try Self.commandLine(["--tenant=t"]) }
        #expect(throws: ArgumentError.self) { try Self.commandLine(["--mode=nope"]) }
    }
}

@Suite("Lateness in words")
struct LatenessTests {
    @Test("seconds become the largest readable unit; negative and NaN are 0; no trap on huge values", arguments: [
        (0.84, "0.8 s"), (42.0, "42 s"), (725.0, "12 min"), (18_000.0, "5 h"), (205_632_000.0, "2380 days"),
        (-5.0, "0.0 s"), (Double.nan, "0.0 s"), (Double.infinity, "11574 days"),
    ])
    func words(seconds: Double, expected: String) {
        #expect(Lateness.describe(seconds: seconds) == expected)
    }
}

@Suite("CheckSpec shape")
struct CheckSpecShapeTests {
    @Test("the shape tells apart checks whose options differ, even when a value holds a NUL that would join two options (was: NUL-joined, so one request could plant a memoised result for another)")
    func shapeUnambiguous() throws {
        let a = try CheckSpec(mode: .emailActivity, options: CentreonArguments(["--filter-user=^a\u{0}--critical-active-users=0:0"]))
        let b = try CheckSpec(mode: .emailActivity, options: CentreonArguments(["--filter-user=^a", "--critical-active-users=0:0"]))
        #expect(a.shape != b.shape)
        let c = try CheckSpec(mode: .emailActivity, options: CentreonArguments(["--filter-user", "^a", "--critical-active-users", "0:0"]))
        #expect(b.shape == c.shape, "the same check written with spaces has the same shape")
    }
}


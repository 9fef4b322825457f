import CheckWorker
import ExchangeChecks
import Foundation
import GraphSimulator
import Kafka
import ExocheckTestSupport
import Testing

/// Runs the exocheck binary with arguments; returns (exit code, stdout, stderr).
/// Runs the `exocheck` binary under test: (exit code, stdout, stderr).
func exocheck(_ args: [String], stdin: String? = nil, timeout: Double = 120) async throws -> (Int32, String, String) {
    let r = try await runProcess(WorkerFleet.exocheck, args, stdin: stdin, timeout: timeout)
    return (r.exitCode, r.stdout, r.stderr)
}

@Suite("CLI: submit, results, demo", .serialized)
struct CLITests {
    @Test("orphaned checks: with no worker consuming the requests (no heartbeat), submit --wait answers within --orphan-timeout with --orphan-state, not after its full timeout; with a live worker it waits for the answer; after the worker is killed, orphaned again")
    func orphanAnswer() async throws {
        let fleet = try await WorkerFleet(tenants: 1, users: 4)
        try await fleet.use {
            let config = fleet.dir + "/worker.yaml"
            func submit(_ extra: [String]) async throws -> (Int32, String, Duration) {
                let start = ContinuousClock.now
                let (code, out, err) = try await exocheck(["submit", "--config", config, "--wait", "--timeout", "60", "--tenant=t0", "--mode=mailbox-usage"] + extra)
                return (code, out + err, start.duration(to: .now))
            }
            // No worker at all (was: UNKNOWN only after the full 60 s).
            let (code, out, took) = try await submit(["--orphan-timeout", "2"])
            #expect(code == 3 && out.hasPrefix("UNKNOWN: Check ") && out.contains("is orphaned: no worker of group '\(fleet.group)'"), "\(out)")
            #expect(took < .seconds(20), "answered after \(took)")
            let (critCode, critOut, _) = try await submit(["--orphan-timeout", "2", "--orphan-state", "critical"])
            #expect(critCode == 2 && critOut.hasPrefix("CRITICAL: Check "), "\(critOut)")
            // A live worker vouches for the topic: the answer is the check's.
            let worker = try fleet.startWorker("w")
            #expect(await fleet.waitForAssignments(1))
            // The default window (5 s) is more than twice the heartbeat interval (2 s).
            let (liveCode, liveOut, _) = try await submit([])
            let (refText, refCode) = try await runReference(fleet, tenant: "t0", mode: .mailboxUsage, args: [])
            #expect(liveCode == refCode && liveOut.hasPrefix(refText), "\(liveOut)")
            // Killed: once its heartbeats are older than the orphan timeout, orphaned again.
            worker.signal(SIGKILL)
            _ = await worker.wait(timeout: .seconds(10))
            try await Task.sleep(for: .seconds(3))
            let (deadCode, deadOut, deadTook) = try await submit(["--orphan-timeout", "2"])
            #expect(deadCode == 3 && deadOut.contains("is orphaned"), "\(deadOut)")
            #expect(deadTook < .seconds(20))
            // Bad values are refused at once.
            let (badCode, _, _) = try await submit(["--orphan-state", "purple"])
            #expect(badCode == 2)
        }
    }

    @Test("submit --wait prints and exits exactly like exocheck run; bad arguments fail at once; no worker means a clear timeout")
    func submitWait() async throws {
        let fleet = try await WorkerFleet(tenants: 3)
        try await fleet.use {
            _ = try fleet.startWorker("solo")
            #expect(await fleet.waitForAssignments(1))
            let config = fleet.dir + "/worker.yaml"
            for (mode, args) in [(CheckMode.mailboxUsage, ["--filter-counters=.*", "--verbose"]),
                                 (.emailActivity, ["--warning-active-users=90:"]),
                                 (.mailboxUsage, ["--filter-counters=^status$", "--critical-status=%{used} > 0"])] {
                let (code, out, err) = try await exocheck(["submit", "--config", config, "--wait", "--tenant=t1", "--mode=\(mode.rawValue)",
                                                           "--label", "host=h1", "--label", "service=svc-\(mode.rawValue)"] + args)
                let (refText, refCode) = try await runReference(fleet, tenant: "t1", mode: mode, args: args)
                #expect(out == refText + "\n", "\(err)")
                #expect(code == refCode)
            }
            // Values after a space, as pollers often write them (was: `t1` and `mailbox-usage` stayed
            // in the request's arguments and the worker dead-lettered it).
            let spaced = ["--filter-counters", "^status$", "--critical-status", "%{used} > 0"]
            let (spacedCode, spacedOut, spacedErr) = try await exocheck(["submit", "--config", config, "--wait", "--tenant", "t1",
                                                                         "--mode", "mailbox-usage", "--label", "host=h2"] + spaced)
            let (spacedRef, spacedRefCode) = try await runReference(fleet, tenant: "t1", mode: .mailboxUsage,
                                                                     args: ["--filter-counters=^status$", "--critical-status=%{used} > 0"])
            #expect(spacedOut == spacedRef + "\n" && spacedCode == spacedRefCode, "\(spacedOut) \(spacedErr)")
            // A bad threshold: UNKNOWN at once, nothing sent.
            let (badCode, badOut, _) = try await exocheck(["submit", "--config", config, "--wait", "--tenant=t1", "--mode=email-activity", "--warning-active-users=abc"])
            #expect(badCode == 3)
            #expect(badOut == "UNKNOWN: Wrong warning-active-users threshold 'abc'. \n")
            // Credentials are refused.
            let (secretCode, secretOut, _) = try await exocheck(["submit", "--config", config, "--tenant=t1", "--mode=email-activity", "--client-secret=x"])
            #expect(secretCode == 3 && secretOut.hasPrefix("UNKNOWN: --client-secret is not accepted"))
            // Without --wait: the request id.
            let (idCode, idOut, _) = try await exocheck(["submit", "--config", config, "--id", "my-id-1", "--tenant=t2", "--mode=mailbox-usage"])
            #expect(idCode == 0 && idOut == "my-id-1\n")
            // No worker consumes this topic: exit 3 with a clear message after --timeout.
            let lonely = fleet.dir + "/lonely.yaml"
            try "kafka: {requests: nobody-reads-\(UUID().uuidString.prefix(6)), results: \(fleet.results)}\n".write(toFile: lonely, atomically: true, encoding: .utf8)
            let start = ContinuousClock.now
            let (toCode, toOut, _) = try await exocheck(["submit", "--config", lonely, "--bootstrap-servers", fleet.cluster.bootstrapServers,
                                                         "--wait", "--timeout", "3", "--tenant=t1", "--mode=email-activity"])
            #expect(toCode == 3)
            #expect(toOut.hasPrefix("UNKNOWN: No result for check "))
            #expect(start.duration(to: .now) < .seconds(30))

            // results: formats and filters over what was produced above.
            let (jsonCode, json, _) = try await exocheck(["results", "--config", config, "--from", "beginning", "--tenant", "t1",
                                                         "--format", "json", "--count", "3", "--idle-timeout", "20"])
            #expect(jsonCode == 0)
            let docs = json.split(separator: "\n").compactMap { CheckResultMessage.decode(Array($0.utf8)) }
            #expect(docs.count == 3 && docs.allSatisfy { $0.tenant == "t1" })
            let (_, nagios, summary) = try await exocheck(["results", "--config", config, "--from", "beginning", "--status", "CRITICAL",
                                                          "--format", "nagios", "--idle-timeout", "5"])
            let lines = nagios.split(separator: "\n")
            #expect(!lines.isEmpty && lines.allSatisfy { $0.hasPrefix("CRITICAL: ") || !$0.contains(": ") })
            #expect(summary.contains("results: "))
            let cmdFile = fleet.dir + "/nagios.cmd"
            let (_, table, _) = try await exocheck(["results", "--config", config, "--from", "beginning", "--label", "host=h1",
                                                    "--format", "table", "--nagios-command-file", cmdFile, "--create-command-file", "--count", "3", "--idle-timeout", "20"])
            #expect(table.hasPrefix("TIME "))
            #expect(table.split(separator: "\n").count == 4)
            let commands = (try String(contentsOfFile: cmdFile, encoding: .utf8)).split(separator: "\n")
            #expect(commands.count == 3)
            #expect(commands.allSatisfy {
                $0.range(of: #"^\[\d+\] PROCESS_SERVICE_CHECK_RESULT;h1;svc-[a-z-]+;[0-3];(OK|WARNING|CRITICAL|UNKNOWN): "#, options: .regularExpression) != nil
                    && !$0.dropFirst(20).contains("\n")
            })
            // --from a time in the future shows nothing.
            let (_, none, _) = try await exocheck(["results", "--config", config, "--from", "2099-01-01T00:00:00Z", "--format", "json", "--idle-timeout", "3"])
            #expect(none.isEmpty)
        }
    }

    @Test("submit --file sends a batch of requests from JSON lines (stdin too) and each is answered")
    func submitBatch() async throws {
        let fleet = try await WorkerFleet(tenants: 2)
        try await fleet.use {
            _ = try fleet.startWorker("solo")
            #expect(await fleet.waitForAssignments(1))
            let lines = (0..<10).map { CheckRequest(id: "batch-\($0)", tenant: "t\($0 % 2)", mode: .mailboxUsage) }
                .map { String(decoding: $0.encoded(), as: UTF8.self) }.joined(separator: "\n")
            let (code, out, err) = try await exocheck(["submit", "--config", fleet.dir + "/worker.yaml", "--file", "-"], stdin: lines)
            #expect(code == 0, "\(err)")
            #expect(out.split(separator: "\n").count == 10)
            #expect(err.contains("10/10 sent"))
            let sink = ResultSink()
            #expect(try await fleet.collect(into: sink, timeout: .seconds(60)) { await $0.ids.count >= 10 })
            // A broken line is refused with its number.
            let (badCode, _, badErr) = try await exocheck(["submit", "--config", fleet.dir + "/worker.yaml", "--file", "-"], stdin: "{\"id\":1}\n")
            #expect(badCode == 2 && badErr.contains("line 1"))
        }
    }

    @Test("the demo runs to completion on its own and exits 0")
    func demo() async throws {
        let (code, out, err) = try await exocheck(["demo", "--checks-per-tenant", "8"], timeout: 240)
        #expect(code == 0, "\(out.suffix(2000)) \(err.suffix(2000))")
        #expect(out.contains("checks answered      88/88"))
        #expect(out.contains("Graph report calls"))
        #expect(out.contains("errors               auth 8"))
    }

    @Test("soak smoke: 1,500 checks through one worker in waves; every check answered; file descriptors and threads back at their baseline")
    func soakSmoke() async throws {
        let (code, out, err) = try await exocheck(["bench", "soak", "--checks", "1500", "--wave", "500", "--tenants", "5"], timeout: 240)
        #expect(code == 0, "\(out.suffix(2000)) \(err.suffix(2000))")
        #expect(out.contains("fds and threads back at their baseline"))
        #expect(!out.contains("LEAK"))
        #expect(out.contains("      1500 "), "the curve reaches the last wave")
    }
}

@Suite("exocheck run --proxyurl")
struct RunProxyURLTests {
    @Test("a proxy URL it cannot use: UNKNOWN (exit 3) saying why, without repeating the URL and its password (was: echoed whole); a socks5:// proxy is refused (was: used as an HTTP proxy)")
    func refusedProxy() async throws {
        let base = ["run", "--mode=mailbox-usage", "--tenant=x", "--client-id=y", "--client-secret=z", "--time-budget=1",
                    "--login-endpoint=http://127.0.0.1:9", "--statefile-dir=\(NSTemporaryDirectory())exocheck-proxy"]
        let (code, out, err) = try await exocheck(base + ["--proxyurl=http://monitor:Pr0xyS3cret@"])
        #expect(code == 3)
        #expect(out.hasPrefix("UNKNOWN: --proxyurl has no host"), "\(out)")
        #expect(!out.contains("Pr0xyS3cret") && !err.contains("Pr0xyS3cret"))
        let (socksCode, socksOut, _) = try await exocheck(base + ["--proxyurl=socks5://127.0.0.1:1080"])
        #expect(socksCode == 3)
        #expect(socksOut.contains("socks5:// proxies are not supported"), "\(socksOut)")
    }
}

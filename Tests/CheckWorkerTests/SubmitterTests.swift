import CheckWorker
import ExchangeChecks
import ExocheckTestSupport
import Foundation
import Testing

@Suite("Submitter protocol: frames read in any pieces, bounded before buffering")
struct SubmitterWireTests {
    func submissionFrame(_ payload: [UInt8], wait: Bool = true) -> [UInt8] {
        SubmitterWire.frame(SubmitterWire.Submission(wait: wait, timeoutSeconds: 30, orphanTimeoutSeconds: 5, bytes: payload.count), payload: payload)
    }

    @Test("a frame is read whole, in one piece or byte by byte; bytes after it are not part of it")
    func wholeFrames() {
        let payload = Array(#"{"id":"a","tenant":"t","mode":"email-activity"}"#.utf8)
        let bytes = submissionFrame(payload)
        var once = SubmitterFrameReader.submission()
        guard case .frame(let header, let body) = once.feed(bytes + Array("trailing".utf8)) else {
            Issue.record("no frame")
            return
        }
        #expect(header.bytes == payload.count && header.wait && body == payload)
        var pieces = SubmitterFrameReader.submission()
        var result: [UInt8]? = nil
        for (i, b) in bytes.enumerated() {
            switch pieces.feed([b]) {
            case .needMore: #expect(i < bytes.count - 1)
            case .frame(_, let body): result = body
            case .invalid(let reason): Issue.record("invalid: \(reason)")
            }
        }
        #expect(result == payload)
        // An empty payload is a whole frame at the header's newline.
        var empty = SubmitterFrameReader.reply()
        guard case .frame(let reply, let none) = empty.feed(SubmitterWire.reply(.sent)) else {
            Issue.record("no reply frame")
            return
        }
        #expect(reply.outcome == .sent && none.isEmpty)
    }

    @Test("hostile frames: a header without an end, a header that is not JSON, a payload above the limit or negative; each named")
    func hostileFrames() {
        var long = SubmitterFrameReader.submission()
        var step = long.feed([UInt8](repeating: UInt8(ascii: "{"), count: 600))
        if case .needMore = step {} else { Issue.record("600 bytes of header should wait for more") }
        step = long.feed([UInt8](repeating: UInt8(ascii: " "), count: 600))
        guard case .invalid(let reason) = step else {
            Issue.record("an endless header was accepted")
            return
        }
        #expect(reason.contains("longer than \(SubmitterWire.maxHeaderBytes)"))
        var garbage = SubmitterFrameReader.submission()
        guard case .invalid(let notJSON) = garbage.feed(Array("GET / HTTP/1.1\r\n".utf8)) else {
            Issue.record("HTTP was accepted")
            return
        }
        #expect(notJSON.contains("not a JSON object"))
        for size in [SubmitterWire.maxRequestBytes + 1, -1, Int.max] {
            var big = SubmitterFrameReader.submission()
            let header = #"{"v":1,"wait":true,"timeoutSeconds":1,"orphanTimeoutSeconds":0,"bytes":\#(size)}"# + "\n"
            guard case .invalid(let tooBig) = big.feed(Array(header.utf8)) else {
                Issue.record("a payload of \(size) bytes was accepted")
                continue
            }
            #expect(tooBig.contains("outside 0…\(SubmitterWire.maxRequestBytes)"))
        }
        // What the stream held when it ended early.
        var partial = SubmitterFrameReader.submission()
        _ = partial.feed(Array(submissionFrame(Array("0123456789".utf8)).dropLast(4)))
        #expect(partial.endedEarly == "the connection closed after 6 of 10 payload bytes")
        #expect(SubmitterFrameReader.submission().endedEarly == "the connection closed before any header")
    }

    @Test("a submission's bounds are submit's: timeouts, protocol version, request size")
    func submissionBounds() {
        #expect(SubmitterWire.Submission(wait: true, timeoutSeconds: 60, orphanTimeoutSeconds: 5, bytes: 100).problem == nil)
        for (timeout, orphan) in [(0.0, 5.0), (-1, 5), (.nan, 5), (.infinity, 5), (86_401, 5), (60, -1), (60, .nan), (60, 90_000)] {
            #expect(SubmitterWire.Submission(wait: true, timeoutSeconds: timeout, orphanTimeoutSeconds: orphan, bytes: 1).problem != nil)
        }
        var future = SubmitterWire.Submission(wait: true, timeoutSeconds: 60, orphanTimeoutSeconds: 5, bytes: 1)
        future.v = 2
        #expect(future.problem?.contains("protocol version 2") == true)
        // A reply too large for the protocol becomes a refusal, never an oversized frame.
        var reader = SubmitterFrameReader.reply()
        guard case .frame(let refusal, _) = reader.feed(SubmitterWire.reply(.result, payload: [UInt8](repeating: 0x20, count: SubmitterWire.maxReplyBytes + 1)))
        else {
            Issue.record("no frame")
            return
        }
        #expect(refusal.outcome == .refused)
    }
}

@Suite("Submitter: submit --socket through a long-lived exocheck submitter", .serialized)
struct SubmitterTests {
    /// Starts `exocheck submitter` for the fleet on `socket` (default `dir/submitter.sock`), as
    /// the user `uid` when given (through setpriv); waits until it listens.
    func startSubmitter(_ fleet: WorkerFleet, socket: String? = nil, uid: UInt32? = nil, extra: [String] = []) async throws
        -> (WorkerFleet.WorkerProcess, String)
    {
        let socket = socket ?? fleet.dir + "/submitter.sock"
        let command = [WorkerFleet.exocheck, "submitter", "--socket", socket, "--config", fleet.dir + "/worker.yaml"] + extra
        let p = Process()
        p.executableURL = URL(fileURLWithPath: uid == nil ? WorkerFleet.exocheck : "/usr/bin/setpriv")
        p.arguments = uid.map { ["--reuid=\($0)", "--regid=\($0)", "--clear-groups"] + command } ?? Array(command.dropFirst())
        let logPath = fleet.dir + "/submitter-\(UUID().uuidString.prefix(6)).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        p.standardError = FileHandle(forWritingAtPath: logPath)
        p.standardOutput = FileHandle(forWritingAtPath: logPath)
        try p.run()
        let process = WorkerFleet.WorkerProcess(process: p, logPath: logPath)
        fleet.workers.append(process)
        let up = await eventually(timeout: .seconds(30)) { process.log.contains("listening on") }
        #expect(up, "\(process.log)")
        return (process, socket)
    }

    @Test("submit --socket prints and exits exactly as submit alone and exocheck run; without --wait it prints the id; EXOCHECK_SUBMITTER_SOCKET works as --socket")
    func sameAnswers() async throws {
        let fleet = try await WorkerFleet(tenants: 2)
        try await fleet.use {
            _ = try fleet.startWorker("solo")
            #expect(await fleet.waitForAssignments(1))
            let (_, socket) = try await startSubmitter(fleet)
            let config = fleet.dir + "/worker.yaml"
            for (mode, args) in [(CheckMode.mailboxUsage, ["--filter-counters=.*", "--verbose"]), (.emailActivity, ["--warning-active-users=90:"])] {
                let base = ["submit", "--wait", "--tenant=t1", "--mode=\(mode.rawValue)"] + args
                let (viaCode, viaOut, viaErr) = try await exocheck(base + ["--socket", socket])
                let (aloneCode, aloneOut, _) = try await exocheck(base + ["--config", config])
                let (refText, refCode) = try await runReference(fleet, tenant: "t1", mode: mode, args: args)
                #expect(viaOut == refText + "\n" && viaCode == refCode, "\(viaOut) \(viaErr)")
                #expect(viaOut == aloneOut && viaCode == aloneCode)
                // Nothing was said on stderr: the submitter was used, no fallback.
                #expect(viaErr.isEmpty, "\(viaErr)")
            }
            let r = try await runProcess(
                WorkerFleet.exocheck, ["submit", "--wait", "--tenant=t0", "--mode=email-activity"],
                environment: ProcessInfo.processInfo.environment.merging(["EXOCHECK_SUBMITTER_SOCKET": socket]) { $1 }, timeout: 60)
            #expect(r.exitCode == 0 && r.stdout.hasPrefix("OK: ") && r.stderr.isEmpty, "\(r.stdout) \(r.stderr)")
            let (sentCode, sentOut, _) = try await exocheck(["submit", "--socket", socket, "--id", "fire-and-forget-1", "--tenant=t0", "--mode=email-activity"])
            #expect(sentCode == 0 && sentOut == "fire-and-forget-1\n")
        }
    }

    @Test("a result larger than the socket's buffer (a verbose 4,000-mailbox check, about 1 MB) arrives whole through the submitter (was: cut when the channel closed after the write)")
    func largeResult() async throws {
        let fleet = try await WorkerFleet(tenants: 1, users: 4_000)
        try await fleet.use {
            _ = try fleet.startWorker("solo")
            #expect(await fleet.waitForAssignments(1))
            let (_, socket) = try await startSubmitter(fleet)
            let args = ["--filter-counters=.*", "--verbose"]
            let base = ["submit", "--wait", "--tenant=t0", "--mode=mailbox-usage"] + args
            let (aloneCode, aloneOut, _) = try await exocheck(base + ["--config", fleet.dir + "/worker.yaml"])
            let (viaCode, viaOut, viaErr) = try await exocheck(base + ["--socket", socket])
            #expect(aloneOut.utf8.count > 300_000, "\(aloneOut.utf8.count) bytes: not larger than a socket buffer")
            #expect(viaOut == aloneOut && viaCode == aloneCode, "\(viaOut.utf8.count) vs \(aloneOut.utf8.count) bytes; \(viaErr)")
        }
    }

    @Test("orphans through the submitter: no worker heartbeat within --orphan-timeout answers at once with --orphan-state, as submit alone")
    func orphans() async throws {
        let fleet = try await WorkerFleet(tenants: 1, users: 4)
        try await fleet.use {
            let (_, socket) = try await startSubmitter(fleet)
            let start = ContinuousClock.now
            let (code, out, _) = try await exocheck(
                ["submit", "--socket", socket, "--wait", "--timeout", "60", "--orphan-timeout", "2", "--tenant=t0", "--mode=mailbox-usage"])
            #expect(code == 3 && out.hasPrefix("UNKNOWN: Check ") && out.contains("is orphaned: no worker of group '\(fleet.group)'"), "\(out)")
            #expect(start.duration(to: .now) < .seconds(20))
            let (critCode, critOut, _) = try await exocheck(
                ["submit", "--socket", socket, "--wait", "--orphan-timeout", "2", "--orphan-state", "critical", "--tenant=t0", "--mode=mailbox-usage"])
            #expect(critCode == 2 && critOut.hasPrefix("CRITICAL: Check "), "\(critOut)")
            // No heartbeat topic watch wanted: the timeout's answer, with submit's words.
            let (toCode, toOut, _) = try await exocheck(
                ["submit", "--socket", socket, "--wait", "--timeout", "2", "--orphan-timeout", "0", "--tenant=t0", "--mode=mailbox-usage"])
            #expect(toCode == 3 && toOut.hasPrefix("UNKNOWN: No result for check ") && toOut.contains("within 2 s"), "\(toOut)")
        }
    }

    @Test("hostile clients get a refusal and the submitter keeps serving: garbage, a huge payload claim, a bad request, a bad threshold, a duplicate waiting id, a silent client")
    func hostileClients() async throws {
        let fleet = try await WorkerFleet(tenants: 1, users: 4)
        try await fleet.use {
            let (submitter, socket) = try await startSubmitter(fleet)
            func refusal(_ bytes: [UInt8]) -> String? {
                guard case .success(let (reply, _)) = SubmitterClient.exchange(socket: socket, bytes: bytes, limit: .seconds(20)), reply.outcome == .refused
                else { return nil }
                return reply.message
            }
            func frame(_ request: String, wait: Bool = false, timeout: Double = 30) -> [UInt8] {
                let payload = Array(request.utf8)
                return SubmitterWire.frame(
                    SubmitterWire.Submission(wait: wait, timeoutSeconds: timeout, orphanTimeoutSeconds: 0, bytes: payload.count), payload: payload)
            }
            #expect(refusal(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))?.contains("bad request frame") == true)
            #expect(
                refusal(Array(#"{"v":1,"wait":true,"timeoutSeconds":1,"orphanTimeoutSeconds":0,"bytes":100000000}"#.utf8) + [10])?
                    .contains("outside") == true)
            #expect(refusal(frame("not json"))?.contains("the request is refused") == true)
            #expect(refusal(frame(#"{"id":"x1","tenant":"t0","mode":"email-activity","args":["--warning-active-users=abc"]}"#)) != nil)
            // A check waiting under an id: a second one with the same id is refused, not mixed up.
            let waiting = Task {
                SubmitterClient.exchange(
                    socket: socket, bytes: frame(#"{"id":"dup-1","tenant":"t0","mode":"email-activity"}"#, wait: true, timeout: 8), limit: .seconds(30))
            }
            try await Task.sleep(for: .seconds(1))
            #expect(refusal(frame(#"{"id":"dup-1","tenant":"t0","mode":"email-activity"}"#, wait: true))?.contains("already waiting") == true)
            if case .success(let (first, _)) = await waiting.value {
                #expect(first.outcome == .timedOut)
            } else {
                Issue.record("the first waiting check got no answer")
            }
            // A client that connects and says nothing is let go after the read timeout.
            #expect(refusal([])?.contains("no whole request within") == true)
            // Still serving, and still alive.
            let (code, out, _) = try await exocheck(["submit", "--socket", socket, "--id", "after-1", "--tenant=t0", "--mode=email-activity"])
            #expect(code == 0 && out == "after-1\n")
            #expect(submitter.process.isRunning)
        }
    }

    @Test("a missing socket, or a submitter running as another user (the peer's uid from the kernel), is not used: submit says so on stderr and sends the check itself; EXOCHECK_SUBMITTER_UID trusts that user")
    func fallback() async throws {
        let fleet = try await WorkerFleet(tenants: 1, users: 4)
        try await fleet.use {
            _ = try fleet.startWorker("solo")
            #expect(await fleet.waitForAssignments(1))
            let config = fleet.dir + "/worker.yaml"
            let missing = fleet.dir + "/nobody.sock"
            let (code, out, err) = try await exocheck(["submit", "--config", config, "--socket", missing, "--wait", "--tenant=t0", "--mode=email-activity"])
            #expect(code == 0 && out.hasPrefix("OK: ") && err.contains("no submitter socket at \(missing); sending the check directly"), "\(out) \(err)")
            // A submitter running as another user: not believed (the kernel says who answers),
            // unless EXOCHECK_SUBMITTER_UID names that user.
            guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { return }
            let shared = NSTemporaryDirectory() + "exocheck-shared-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
            defer { try? FileManager.default.removeItem(atPath: shared) }
            let (_, socket) = try await startSubmitter(fleet, socket: shared + "/submitter.sock", uid: 4_321, extra: ["--socket-mode", "0666"])
            let (oCode, oOut, oErr) = try await exocheck(["submit", "--config", config, "--socket", socket, "--wait", "--tenant=t0", "--mode=email-activity"])
            #expect(oCode == 0 && oOut.hasPrefix("OK: ") && oErr.contains("runs as another user (uid 4321)"), "\(oOut) \(oErr)")
            let trusted = try await runProcess(
                WorkerFleet.exocheck, ["submit", "--socket", socket, "--wait", "--tenant=t0", "--mode=email-activity"],
                environment: ProcessInfo.processInfo.environment.merging(["EXOCHECK_SUBMITTER_UID": "4321"]) { $1 }, timeout: 60)
            #expect(trusted.exitCode == 0 && trusted.stdout.hasPrefix("OK: ") && trusted.stderr.isEmpty, "\(trusted.stdout) \(trusted.stderr)")
        }
    }

    @Test("submit --fetch-wait-ms takes 1 to 60000 milliseconds; the submitter refuses a bad socket mode")
    func options() async throws {
        for bad in ["0", "60001", "abc", "-5"] {
            let (code, _, err) = try await exocheck(["submit", "--bootstrap-servers", "127.0.0.1:1", "--fetch-wait-ms", bad, "--tenant=t0", "--mode=email-activity"])
            #expect(code == 2 && err.contains("--fetch-wait-ms takes a number of milliseconds from 1 to 60000"))
        }
        let (code, _, err) = try await exocheck(["submitter", "--socket", "/tmp/x.sock", "--bootstrap-servers", "127.0.0.1:1", "--socket-mode", "999"])
        #expect(code == 2 && err.contains("--socket-mode takes octal permissions"))
    }
}

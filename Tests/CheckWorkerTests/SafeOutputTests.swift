import CheckWorker
import ExocheckTestSupport
import Foundation
import GraphSimulator
import Kafka
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("Safe writes and the Nagios command pipe", .serialized, .timeLimit(.minutes(3)))
struct SafeOutputTests {
    static let time = Date(timeIntervalSince1970: 1_700_000_000)

    static func command(host: String = "h1", service: String = "svc", code: Int = 0, output: String) throws(NagiosExternalCommand.Refusal) -> NagiosExternalCommand {
        try NagiosExternalCommand.processServiceCheckResult(host: host, service: service, returnCode: code, output: output, time: time)
    }

    // MARK: - Command formatting

    @Test("a host or service label with a newline, CR, tab, other control character or ';', or an empty one, is refused")
    func unsafeLabels() throws {
        let unsafe = ["web\n[1] RESTART_PROGRAM", "a;b", "a\rb", "a\tb", "", "nul\0", "esc\u{1B}[31m", "del\u{7F}", "nel\u{85}"]
        for label in unsafe {
            for (host, service) in [(label, "svc"), ("h1", label)] {
                do {
                    let accepted = try Self.command(host: host, service: service, output: "OK")
                    Issue.record("accepted \(label.debugDescription): \(accepted.line.debugDescription)")
                } catch {
                    guard case .unsafeLabel(let name, let reason) = error else { Issue.record("\(error)"); continue }
                    #expect(name == (host == label ? "host" : "service"))
                    #expect(!reason.isEmpty)
                }
            }
        }
        #expect(throws: NagiosExternalCommand.Refusal.unsafeLabel("service", reason: "contains the control character U+000A (newline)")) {
            try Self.command(service: "a\nb", output: "OK")
        }
        // Ordinary names, spaces and non-ASCII included, pass untouched.
        let ok = try Self.command(host: "mail-01.example.com", service: "Exchange mailbox usage (jérôme)", code: 2, output: "CRITICAL: x")
        #expect(ok.line == "[1700000000] PROCESS_SERVICE_CHECK_RESULT;mail-01.example.com;Exchange mailbox usage (jérôme);2;CRITICAL: x")
    }

    @Test("the output keeps ';' and '|', has newlines written as \\n, tabs as spaces and no other control character; one newline ends the command")
    func outputEscaping() throws {
        let c = try Self.command(code: 1, output: "WARNING: a; b | x=1\nline 2\r\nline\t3\r\u{1B}[0m\u{0}end\n")
        #expect(c.line == "[1700000000] PROCESS_SERVICE_CHECK_RESULT;h1;svc;1;WARNING: a; b | x=1\\nline 2\\nline 3[0mend\\n")
        #expect(c.bytes.last == 0x0A)
        #expect(c.bytes.filter { $0 == 0x0A || $0 == 0x0D }.count == 1)
        #expect(!c.truncated)
        // An exit code Nagios does not know is sent as UNKNOWN.
        #expect(try Self.command(code: 42, output: "x").line.contains(";svc;3;x"))
        #expect(try Self.command(code: -1, output: "x").line.contains(";svc;3;x"))
    }

    @Test("commands are capped at 8,192 bytes with the newline; the output is cut at a character boundary, never the prefix")
    func sizeCap() throws {
        let prefix = "[1700000000] PROCESS_SERVICE_CHECK_RESULT;h1;svc;0;"
        let room = NagiosExternalCommand.maximumBytes - 1 - prefix.utf8.count
        let a = { (n: Int) in String(repeating: "a", count: n) }
        // (output, expected output part, truncated)
        let cases: [(String, String, Bool)] = [
            (a(room), a(room), false),                       // exactly 8,192 bytes
            (a(room - 1), a(room - 1), false),               // just under
            (a(room + 1), a(room), true),                    // just over
            (a(room + 5000), a(room), true),                 // far over
            (a(room - 1) + "é", a(room - 1), true),          // 2-byte character across the limit
            (a(room - 2) + "€", a(room - 2), true),          // 3-byte
            (a(room - 3) + "😀", a(room - 3), true),         // 4-byte
            (a(room - 4) + "😀", a(room - 4) + "😀", false), // 4-byte ending exactly at the limit
            (a(room - 1) + "\n", a(room - 1), true),         // the \n escape is not split
            (a(room - 2) + "\n", a(room - 2) + "\\n", false),
        ]
        for (output, part, truncated) in cases {
            let c = try Self.command(output: output)
            #expect(c.line == prefix + part)
            #expect(c.truncated == truncated)
            #expect(c.bytes.count <= NagiosExternalCommand.maximumBytes)
            #expect(c.bytes.count == prefix.utf8.count + part.utf8.count + 1)
            #expect(String(validating: c.bytes, as: UTF8.self) != nil)
        }
        #expect(try Self.command(output: a(room)).bytes.count == 8192)
        // Names so long that no command fits are refused, not cut.
        #expect(throws: NagiosExternalCommand.Refusal.self) { try Self.command(host: a(9000), output: "OK") }
    }

    // MARK: - The command pipe

    @Test("a FIFO read by another process-like reader receives every command, including one of 8 KiB, without seeking")
    func writesToFIFO() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/nagios.cmd"
        #expect(mkfifo(path, 0o600) == 0)
        let reader = FIFOReader(path: path)
        defer { reader.stop() }
        let log = MessageLog()
        let pipe = NagiosCommandPipe(path: path, options: Self.options(log))
        var expected = ""
        for n in 0..<200 {
            let c = try Self.command(output: n == 100 ? String(repeating: "x", count: 9000) : "OK: \(n)")
            try await pipe.write(c)
            expected += c.line + "\n"
        }
        #expect(await eventually(timeout: .seconds(10)) { reader.text.utf8.count >= expected.utf8.count })
        #expect(reader.text == expected)
        #expect(pipe.statistics.written == 200 && pipe.statistics.reopened == 0)
        pipe.close()
        #expect(await eventually(timeout: .seconds(10)) { reader.sawEOF })
    }

    @Test("when the reader closes the FIFO the writer waits for a new reader, reopens (EPIPE) and goes on")
    func readerGoesAway() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/nagios.cmd"
        #expect(mkfifo(path, 0o600) == 0)
        let log = MessageLog()
        let pipe = NagiosCommandPipe(path: path, options: Self.options(log))
        let first = FIFOReader(path: path)
        defer { first.stop() }
        let commands = try (0..<6).map { try Self.command(output: "OK: \($0)") }
        for c in commands[0..<3] { try await pipe.write(c) }
        let firstText = commands[0..<3].map { $0.line + "\n" }.joined()
        #expect(await eventually(timeout: .seconds(10)) { first.text == firstText })
        first.stop()
        #expect(await eventually(timeout: .seconds(10)) { first.isFinished })
        // Nobody reads now: the next write gets EPIPE, and the writer waits for a reader.
        let second = Task {
            try? await Task.sleep(for: .milliseconds(500))
            return FIFOReader(path: path)
        }
        for c in commands[3...] { try await pipe.write(c) }
        let reader = await second.value
        defer { reader.stop() }
        let secondText = commands[3...].map { $0.line + "\n" }.joined()
        #expect(await eventually(timeout: .seconds(10)) { reader.text == secondText })
        #expect(first.text == firstText)
        #expect(pipe.statistics.written == 6)
        #expect(pipe.statistics.reopened == 1)
        #expect(log.all.contains { $0.contains("the reader went away") })
        #expect(log.all.contains { $0.contains("nobody reads the pipe") })
    }

    @Test("a FIFO replaced at the same path (Nagios restarted) gets the following commands")
    func pipeReplaced() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/nagios.cmd"
        #expect(mkfifo(path, 0o600) == 0)
        let log = MessageLog()
        let pipe = NagiosCommandPipe(path: path, options: Self.options(log))
        let old = FIFOReader(path: path)
        defer { old.stop() }
        let commands = try (0..<4).map { try Self.command(output: "OK: \($0)") }
        for c in commands[0..<2] { try await pipe.write(c) }
        let oldText = commands[0..<2].map { $0.line + "\n" }.joined()
        #expect(await eventually(timeout: .seconds(10)) { old.text == oldText })
        // The old reader stays open (as a dying Nagios might), the path now names a new FIFO.
        #expect(unlink(path) == 0)
        #expect(mkfifo(path, 0o600) == 0)
        let new = FIFOReader(path: path)
        defer { new.stop() }
        try await Task.sleep(for: .milliseconds(300))  // > recheckInterval
        for c in commands[2...] { try await pipe.write(c) }
        let newText = commands[2...].map { $0.line + "\n" }.joined()
        #expect(await eventually(timeout: .seconds(10)) { new.text == newText })
        #expect(await eventually(timeout: .seconds(10)) { old.sawEOF })
        #expect(old.text == oldText)
        #expect(pipe.statistics.reopened == 1)
        #expect(log.all.contains { $0.contains("was replaced or removed") })
    }

    @Test("a missing command file is waited for and nothing is created; it is used once Nagios creates it; stopping ends the wait")
    func missingPathIsWaitedFor() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/nagios.cmd"
        let log = MessageLog()
        let c = try Self.command(output: "OK: late")
        async let written = Self.writeAll([c], to: path, options: Self.options(log))
        try await Task.sleep(for: .milliseconds(600))
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(log.all.contains { $0.contains("does not exist yet") && $0.contains("--create-command-file") })
        #expect(mkfifo(path, 0o600) == 0)
        let reader = FIFOReader(path: path)
        defer { reader.stop() }
        #expect(try await written == 1)
        #expect(await eventually(timeout: .seconds(10)) { reader.text == c.line + "\n" })

        // Stopped while waiting: a clear error, still nothing created.
        let other = dir + "/never.cmd"
        let stopAt = ContinuousClock.now.advanced(by: .milliseconds(300))
        var options = Self.options(log)
        options.shouldStop = { ContinuousClock.now >= stopAt }
        await #expect(throws: NagiosCommandPipe.Failure.stopped(path: other)) { try await Self.writeAll([c], to: other, options: options) }
        #expect(!FileManager.default.fileExists(atPath: other))
    }

    @Test("with createIfMissing a regular file is created and appended to; an existing regular file is appended to")
    func regularFile() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/nagios.cmd"
        let log = MessageLog()
        let commands = try (0..<3).map { try Self.command(output: "OK: \($0)") }
        var create = Self.options(log)
        create.createIfMissing = true
        #expect(try await Self.writeAll([commands[0]], to: path, options: create) == 1)
        var info = stat()
        #expect(stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG)
        #expect(try await Self.writeAll(Array(commands[1...]), to: path, options: Self.options(log)) == 2)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == commands.map { $0.line + "\n" }.joined())
        // A directory is not a command file: an error saying so, at once.
        await #expect(throws: NagiosCommandPipe.Failure.notACommandFile(path: dir, kind: "a directory")) {
            try await Self.writeAll([commands[0]], to: dir, options: Self.options(log))
        }
    }

    // MARK: - The binary with a broken stdout or a closed stderr

    @Test("exocheck run/submit/--help whose stdout reader is gone exit with their own code, not a signal or a trap")
    func brokenStdout() async throws {
        let check = ["run", "--mode=mailbox-usage", "--tenant=x", "--client-id=y", "--client-secret=z", "--time-budget=1",
                     "--login-endpoint=http://127.0.0.1:9", "--statefile-dir=\(NSTemporaryDirectory())exocheck-safe-output"]
        for (arguments, code) in [(check, Int32(3)), (["run", "--help"], 0), (["submit", "--help"], 0), (["--help"], 0)] {
            let start = ContinuousClock.now
            let ended = try await ChildProcess.run(arguments, stdout: .brokenPipe, stderr: .devNull)
            #expect(ended == .exited(code), "exocheck \(arguments.joined(separator: " "))")
            #expect(start.duration(to: .now) < .seconds(20))
        }
        // Stdout not open at all (1>&-).
        #expect(try await ChildProcess.run(check, stdout: .closed, stderr: .devNull) == .exited(3))
    }

    @Test("exocheck with stderr closed (2>&-) exits with its normal code; a worker logging to a closed stderr keeps running")
    func closedStderr() async throws {
        let fleet = try await WorkerFleet(tenants: 1)
        try await fleet.use {
            // A refused secret: the first line on stdout, the explanation on stderr.
            let wrongSecret = ["run", "--mode=mailbox-usage", "--tenant=contoso.onmicrosoft.com", "--client-id=\(SimulatorConfiguration.defaultClientId)",
                               "--client-secret=wrong", "--login-endpoint=\(fleet.simulator.baseURL)", "--graph-endpoint=\(fleet.simulator.baseURL)",
                               "--statefile-dir=\(fleet.dir)/state"]
            let (code, out, err) = try await exocheck(wrongSecret)
            #expect(code == 3 && out.hasPrefix("UNKNOWN: ") && err.contains("AADSTS7000215"), "it does write to stderr")
            #expect(try await ChildProcess.run(wrongSecret, stdout: .devNull, stderr: .closed) == .exited(3))
            #expect(try await ChildProcess.run(wrongSecret, stdout: .brokenPipe, stderr: .closed) == .exited(3))
            // submit's usage errors go to stderr only.
            #expect(try await ChildProcess.run(["submit", "--bootstrap-servers", "127.0.0.1:9", "--file", "/nonexistent/requests.jsonl"],
                                               stdout: .devNull, stderr: .closed) == .exited(2))

            // A worker logs (JSONLogHandler) from the start; with stderr closed it must still come up and stop cleanly.
            let portFile = fleet.dir + "/closed-stderr.port"
            var environment = ProcessInfo.processInfo.environment
            environment["EXOCHECK_TEST_SECRET"] = WorkerFleet.secret
            let worker = try ChildProcess.spawn(["worker", "--config", fleet.dir + "/worker.yaml", "--bootstrap-servers", fleet.cluster.bootstrapServers,
                                                 "--port-file", portFile],
                                                environment: environment, stdout: .devNull, stderr: .closed)
            let cameUp = await eventually(timeout: .seconds(60)) {
                FileManager.default.fileExists(atPath: portFile) || worker.hasEnded
            }
            #expect(cameUp && FileManager.default.fileExists(atPath: portFile))
            worker.signal(SIGTERM)
            let ended = await worker.wait(timeout: .seconds(60))
            #expect(ended == .exited(0))
        }
    }

    @Test("exocheck results feeds a FIFO command pipe, skips unsafe and unlabelled results and counts them in its summary")
    func resultsFeedFIFO() async throws {
        let fleet = try await WorkerFleet(tenants: 1)
        try await fleet.use {
            _ = try fleet.startWorker("solo")
            #expect(await fleet.waitForAssignments(1))
            let config = fleet.dir + "/worker.yaml"
            for labels in [["host=h1", "service=svc-ok"], ["host=h1", "service=a;b"], []] {
                let (code, out, err) = try await exocheck(["submit", "--config", config, "--wait", "--tenant=t0", "--mode=mailbox-usage"]
                                                          + labels.flatMap { ["--label", $0] })
                #expect((0...3).contains(code) && !out.isEmpty, "\(err)")
            }
            // The workers refuse control characters in labels; a rogue producer on the results topic is not stopped by them.
            let (_, json, _) = try await exocheck(["results", "--config", config, "--from", "beginning", "--format", "json",
                                                   "--label", "service=svc-ok", "--count", "1", "--idle-timeout", "20"])
            var doc = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            doc["labels"] = ["host": "h1", "service": "x\n[1] PROCESS_HOST_CHECK_RESULT;h1;0;injected"]
            doc["id"] = "rogue-1"
            let producer = try KafkaProducer(configuration: KafkaConfiguration(["bootstrap.servers": fleet.cluster.bootstrapServers, "log_level": "3"]))
            _ = try await producer.send(OutgoingMessage(topic: fleet.results, key: nil, value: Array(try JSONSerialization.data(withJSONObject: doc))))
            await producer.close()

            let fifo = fleet.dir + "/nagios.cmd"
            #expect(mkfifo(fifo, 0o600) == 0)
            let reader = FIFOReader(path: fifo)
            defer { reader.stop() }
            let (code, out, err) = try await exocheck(["results", "--config", config, "--from", "beginning", "--format", "json",
                                                       "--nagios-command-file", fifo, "--count", "4", "--idle-timeout", "20"])
            #expect(code == 0, "\(err)")
            #expect(out.split(separator: "\n").count == 4)
            #expect(await eventually(timeout: .seconds(10)) { reader.sawEOF })
            let commands = reader.text.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(commands.count == 2 && commands.last == "", "\(reader.text)")
            #expect(commands.first?.range(of: #"^\[\d+\] PROCESS_SERVICE_CHECK_RESULT;h1;svc-ok;[0-3];"#, options: .regularExpression) != nil)
            #expect(!reader.text.contains("injected"))
            #expect(err.contains("1 command(s) written"), "\(err)")
            #expect(err.contains("skipped 2 with an unsafe host/service label, 1 without host/service labels"), "\(err)")
            #expect(err.contains("contains ';'") || err.contains("control character"), "the first skipped one is explained: \(err)")
        }
    }

    // MARK: - Helpers

    static func options(_ log: MessageLog) -> NagiosCommandPipe.Options {
        let giveUp = ContinuousClock.now.advanced(by: .seconds(60))
        return NagiosCommandPipe.Options(pollInterval: .milliseconds(20), progressInterval: .milliseconds(200),
                                         recheckInterval: .milliseconds(100), progress: { log.add($0) },
                                         shouldStop: { ContinuousClock.now >= giveUp })
    }

    /// Writes the commands with a pipe of its own (the pipe is not Sendable); returns how many were written.
    static func writeAll(_ commands: [NagiosExternalCommand], to path: String, options: NagiosCommandPipe.Options) async throws(NagiosCommandPipe.Failure) -> Int {
        let pipe = NagiosCommandPipe(path: path, options: options)
        defer { pipe.close() }
        for c in commands { try await pipe.write(c) }
        return pipe.statistics.written
    }
}

/// Progress messages collected from the pipe.
final class MessageLog: Sendable {
    private let messages = Mutex<[String]>([])
    func add(_ message: String) { messages.withLock { $0.append(message) } }
    var all: [String] { messages.withLock { $0 } }
}

func makeTemporaryDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "exocheck-pipe-" + UUID().uuidString.prefix(8).lowercased()
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Reads a FIFO on its own thread, as Nagios does: a blocking open (it returns when a writer
/// opens), then everything until EOF (all writers gone) or `stop()` (the reader goes away).
final class FIFOReader: Sendable {
    private struct State {
        var bytes: [UInt8] = []
        var opened = false
        var stopRequested = false
        var sawEOF = false
        var finished = false
    }

    let path: String
    private let state = Mutex(State())

    init(path: String) {
        self.path = path
        Thread { [self] in self.readUntilDone() }.start()
    }

    var text: String { state.withLock { String(decoding: $0.bytes, as: UTF8.self) } }
    var sawEOF: Bool { state.withLock { $0.sawEOF } }
    var isFinished: Bool { state.withLock { $0.finished } }

    /// Closes the read end. A thread still blocked in open(2) is released by opening the FIFO for
    /// writing once (it then sees the stop request and closes).
    func stop() {
        let opened = state.withLock { s in
            s.stopRequested = true
            return s.opened || s.finished
        }
        if !opened {
            let fd = open(path, O_WRONLY | O_NONBLOCK)
            if fd >= 0 { close(fd) }
        }
    }

    private func readUntilDone() {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            state.withLock { $0.finished = true }
            return
        }
        state.withLock { $0.opened = true }
        let size = 65_536
        var buffer = [UInt8](repeating: 0, count: size)
        while !state.withLock({ $0.stopRequested }) {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, 20)
            if ready == 0 { continue }
            if ready < 0 {
                if errno == EINTR { continue }
                break
            }
            let n = read(fd, &buffer, size)
            if n > 0 {
                let chunk = buffer[0..<n]
                state.withLock { $0.bytes += chunk }
            } else if n == 0 {
                state.withLock { $0.sawEOF = true }
                break
            } else if errno != EINTR {
                break
            }
        }
        close(fd)
        state.withLock { $0.finished = true }
    }
}

/// The exocheck binary spawned with posix_spawn: SIGPIPE reset to its default action in the child
/// (the test process may ignore it, and ignored signals are inherited), standard streams
/// redirected or closed.
final class ChildProcess: Sendable {
    enum Stream { case devNull, closed, brokenPipe }
    enum Ending: Equatable, Sendable { case exited(Int32), signaled(Int32), timedOut }

    let pid: pid_t
    /// How it ended, once reaped (waitpid can only report it once).
    private let ending = Mutex<Ending?>(nil)

    init(pid: pid_t) { self.pid = pid }

    static func run(_ arguments: [String], stdout: Stream, stderr: Stream, timeout: Duration = .seconds(60)) async throws -> Ending {
        let child = try spawn(arguments, environment: nil, stdout: stdout, stderr: stderr)
        return await child.wait(timeout: timeout)
    }

    static func spawn(_ arguments: [String], environment: [String: String]?, stdout: Stream, stderr: Stream) throws -> ChildProcess {
        let executable = WorkerFleet.exocheck
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var pipeEnds: [Int32] = [-1, -1]
        defer { pipeEnds.filter { $0 >= 0 }.forEach { close($0) } }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        for (fd, stream) in [(Int32(1), stdout), (Int32(2), stderr)] {
            switch stream {
            case .devNull: posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_WRONLY, 0)
            case .closed: posix_spawn_file_actions_addclose(&actions, fd)
            case .brokenPipe:
                // The read end is closed before the child starts: every write to it fails (EPIPE/SIGPIPE).
                var ends: [Int32] = [-1, -1]
                guard pipe(&ends) == 0 else { throw ChildError("pipe: \(errno)") }
                close(ends[0])
                _ = fcntl(ends[1], F_SETFD, FD_CLOEXEC)
                pipeEnds.append(ends[1])
                posix_spawn_file_actions_adddup2(&actions, ends[1], fd)
            }
        }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let env = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { env.forEach { free($0) } }
        var pid = pid_t()
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, env)
        guard rc == 0 else { throw ChildError("posix_spawn \(executable): \(rc)") }
        return ChildProcess(pid: pid)
    }

    var hasEnded: Bool { reap(blocking: false) != nil }

    func signal(_ s: Int32) {
        if !hasEnded { _ = kill(pid, s) }
    }

    func wait(timeout: Duration) async -> Ending {
        let end = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < end {
            if let ended = reap(blocking: false) { return ended }
            try? await Task.sleep(for: .milliseconds(20))
        }
        _ = kill(pid, SIGKILL)
        _ = reap(blocking: true)
        return .timedOut
    }

    private func reap(blocking: Bool) -> Ending? {
        ending.withLock { ending in
            if let ending { return ending }
            var status: Int32 = 0
            let r = waitpid(pid, &status, blocking ? 0 : WNOHANG)
            guard r == pid else { return r < 0 ? .timedOut : nil }
            let signal = status & 0x7f
            ending = signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
            return ending
        }
    }
}

struct ChildError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

import ExchangeChecks
import ExocheckTestSupport
import Foundation
import Testing

/// A real monitoring engine: Nagios Core 4 (Debian's `nagios4-core`) with its own configuration
/// in a temporary folder, next to a fleet (broker, simulator, worker). Active services run
/// `exocheck submit --wait`; a passive service is fed by `exocheck results
/// --nagios-command-file` through Nagios' real command pipe. Nagios' `status.dat` must show, for
/// each service, the state, plugin output, long output and perfdata that `exocheck run` prints for
/// the same arguments, after Nagios' own parsing (first line split at its first `|`, later lines
/// long output).
@Suite("Nagios Core 4 runs exocheck", .serialized)
struct NagiosEngineTests {
    static let nagios = "/usr/sbin/nagios4"

    /// One service: its arguments, and whether Nagios runs it (active) or is told its result
    /// by `exocheck results` (passive).
    struct Service {
        var name: String
        var tenant: String
        var mode: CheckMode
        var args: [String]
        var active: Bool
    }

    static let services = [
        // Long output (one line per mailbox) through an active check and through the pipe.
        Service(name: "mailbox-active", tenant: "t1", mode: .mailboxUsage, args: ["--filter-counters=items", "--verbose"], active: true),
        Service(name: "email-active", tenant: "t0", mode: .emailActivity, args: ["--warning-active-users=90:"], active: true),
        Service(name: "mailbox-passive", tenant: "t2", mode: .mailboxUsage, args: ["--filter-counters=items", "--verbose", "--warning-items=10"],
                active: false),
    ]

    @Test("active (submit --wait) and passive (results --nagios-command-file) services: status.dat holds what exocheck run prints",
          .enabled(if: FileManager.default.isExecutableFile(atPath: NagiosEngineTests.nagios)
                       || ProcessInfo.processInfo.environment["EXOCHECK_REQUIRE_INTEROP"] == "1",
                   "needs Debian's nagios4-core (scripts/install-deps.sh installs it)"))
    func statusMatchesRun() async throws {
        let fleet = try await WorkerFleet(tenants: 3, users: 8)
        try await fleet.use {
            _ = try fleet.startWorker("w")
            #expect(await fleet.waitForAssignments(1))
            let dir = fleet.dir + "/nagios"
            try Self.writeConfiguration(dir: dir, fleetConfig: fleet.dir + "/worker.yaml")
            let verify = try await runProcess(Self.nagios, ["-v", dir + "/nagios.cfg"])
            try #require(verify.exitCode == 0, "nagios -v: \(verify.stdout.suffix(2_000))")

            // The passive feed first, then Nagios, which creates its command pipe. The feed starts
            // at a time before any result of this test (not "now", which it resolves only once it
            // has looked up the offsets: a result published before that would be missed).
            let from = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-2))
            let feed = Self.unblocked(ExocheckBinary.path, ["results", "--config", fleet.dir + "/worker.yaml", "--from", from,
                                                            "--nagios-command-file", dir + "/nagios.cmd", "--format", "json"])
            feed.standardOutput = FileHandle.nullDevice
            let feedLog = dir + "/feed.log"
            _ = FileManager.default.createFile(atPath: feedLog, contents: nil)
            feed.standardError = FileHandle(forWritingAtPath: feedLog)
            try feed.run()
            let engine = Self.unblocked(Self.nagios, [dir + "/nagios.cfg"])
            engine.standardOutput = FileHandle.nullDevice
            engine.standardError = FileHandle.nullDevice
            do {
                try engine.run()
                try await Self.check(fleet: fleet, dir: dir, feedLog: feedLog)
            } catch {
                Issue.record(error)
            }
            for p in [engine, feed] where p.isRunning { p.terminate() }
            for p in [engine, feed] where !(await eventually(timeout: .seconds(10)) { !p.isRunning }) {
                kill(p.processIdentifier, SIGKILL)
            }
        }
    }

    /// A process started through a wrapper that unblocks every signal first: a child inherits
    /// the signal mask of the thread that spawns it, and the test's threads block SIGTERM, which
    /// the child would then never see.
    static func unblocked(_ path: String, _ arguments: [String]) -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["-c", "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv(sys.argv[1], sys.argv[1:])",
                       path] + arguments
        return p
    }

    /// Submits the passive request, waits for Nagios to have every service checked, and compares.
    static func check(fleet: WorkerFleet, dir: String, feedLog: String) async throws {
        do {
            #expect(await eventually(timeout: .seconds(30)) { FileManager.default.fileExists(atPath: dir + "/status.dat") })
            // The passive service's request, labelled with its Nagios host and service.
            for s in Self.services where !s.active {
                let (code, _, err) = try await exocheck(["submit", "--config", fleet.dir + "/worker.yaml", "--tenant=\(s.tenant)",
                                                         "--mode=\(s.mode.rawValue)", "--label", "host=exo-host", "--label", "service=\(s.name)"]
                                                        + s.args)
                #expect(code == 0, "submit: \(err)")
            }

            var expected: [String: (state: Int32, short: String, long: String, perf: String)] = [:]
            for s in Self.services {
                let (text, code) = try await runReference(fleet, tenant: s.tenant, mode: s.mode, args: s.args)
                let parsed = Self.nagiosParse(text)
                expected[s.name] = (code, parsed.short, parsed.long, parsed.perf)
            }
            // Wait until Nagios has a checked result for every service.
            var status: [String: [String: String]] = [:]
            let complete = await eventually(timeout: .seconds(90)) {
                status = Self.serviceStatus(dir + "/status.dat")
                return Self.services.allSatisfy { status[$0.name]?["has_been_checked"] == "1" && !(status[$0.name]?["plugin_output"] ?? "").isEmpty }
            }
            let feedText = (try? String(contentsOfFile: feedLog, encoding: .utf8)) ?? ""
            let nagiosLog = (try? String(contentsOfFile: dir + "/nagios.log", encoding: .utf8)) ?? ""
            #expect(complete, "not every service was checked: \(status.mapValues { $0["plugin_output"] ?? "" }); feed: \(feedText.suffix(1_000)); nagios: \(nagiosLog.suffix(2_000))")
            #expect(expected.values.filter { !$0.long.isEmpty }.count == 2, "the cases must include long output")
            #expect(Set(expected.values.map(\.state)).count >= 2, "the cases must include more than one state")
            for s in Self.services {
                guard let got = status[s.name], let want = expected[s.name] else { continue }
                #expect(got["current_state"] == String(want.state), "\(s.name): state")
                #expect(got["plugin_output"] == want.short, "\(s.name): plugin output")
                // status.dat keeps newlines of the long output as `\n` (and `\` as `\\`).
                let long = Self.unescape(got["long_plugin_output"] ?? "")
                #expect(long.trimmingCharacters(in: .whitespacesAndNewlines) == want.long.trimmingCharacters(in: .whitespacesAndNewlines),
                        "\(s.name): long output")
                #expect(got["performance_data"] == want.perf, "\(s.name): perfdata")
                #expect(got["check_type"] == (s.active ? "0" : "1"), "\(s.name): active/passive")
                // An active check is `submit --wait`: it must end as soon as it has printed.
                if s.active { #expect((Double(got["check_execution_time"] ?? "") ?? 99) < 30, "\(s.name): ran \(got["check_execution_time"] ?? "?") s") }
            }
        }
    }

    /// What Nagios 4 makes of a plugin's output (`parse_check_output`): the first line up to
    /// its first `|` is the plugin output, the rest of it perfdata; later lines are long output
    /// until a line with `|`, after which all is perfdata. Leading and trailing whitespace of the
    /// plugin output and perfdata is removed. (Passive results go through the command pipe, whose
    /// commands Nagios caps at 8,192 bytes: the cases stay under that.)
    static func nagiosParse(_ output: String) -> (short: String, long: String, perf: String) {
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        func strip(_ s: String) -> String { s.trimmingCharacters(in: .whitespaces) }
        var short = lines.first ?? ""
        var perf: [String] = []
        if let bar = short.firstIndex(of: "|") {
            perf.append(strip(String(short[short.index(after: bar)...])))
            short = String(short[..<bar])
        }
        var long: [String] = []
        var inPerf = false
        for line in lines.dropFirst() {
            if inPerf {
                perf.append(strip(line))
            } else if let bar = line.firstIndex(of: "|") {
                long.append(String(line[..<bar]))
                perf.append(strip(String(line[line.index(after: bar)...])))
                inPerf = true
            } else {
                long.append(line)
            }
        }
        return (strip(short), long.joined(separator: "\n"), perf.filter { !$0.isEmpty }.joined(separator: " "))
    }

    /// status.dat's escaping of long output undone.
    static func unescape(_ s: String) -> String {
        var out = ""
        var escaped = false
        for c in s {
            if escaped {
                out.append(c == "n" ? "\n" : c)
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else {
                out.append(c)
            }
        }
        return out
    }

    /// `servicestatus` blocks of status.dat by service description.
    static func serviceStatus(_ path: String) -> [String: [String: String]] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        var out: [String: [String: String]] = [:]
        var current: [String: String]? = nil
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line == "servicestatus {" {
                current = [:]
            } else if line == "}" {
                if let c = current, let name = c["service_description"] { out[name] = c }
                current = nil
            } else if current != nil, let eq = line.firstIndex(of: "=") {
                current?[String(line[..<eq])] = String(line[line.index(after: eq)...])
            }
        }
        return out
    }

    /// A Nagios configuration of its own in `dir`: seconds as the interval unit, root as the
    /// user, every check scheduled at once, no notifications.
    static func writeConfiguration(dir: String, fleetConfig: String) throws {
        try FileManager.default.createDirectory(atPath: dir + "/checkresults", withIntermediateDirectories: true)
        let main = """
        log_file=\(dir)/nagios.log
        cfg_file=\(dir)/objects.cfg
        object_cache_file=\(dir)/objects.cache
        precached_object_file=\(dir)/objects.precache
        status_file=\(dir)/status.dat
        status_update_interval=1
        nagios_user=root
        nagios_group=root
        check_external_commands=1
        command_file=\(dir)/nagios.cmd
        query_socket=\(dir)/nagios.qh
        lock_file=\(dir)/nagios.lock
        temp_file=\(dir)/nagios.tmp
        temp_path=\(dir)
        check_result_path=\(dir)/checkresults
        state_retention_file=\(dir)/retention.dat
        retain_state_information=0
        interval_length=1
        service_inter_check_delay_method=n
        host_inter_check_delay_method=n
        max_service_check_spread=1
        check_result_reaper_frequency=1
        service_check_timeout=90
        enable_notifications=0
        execute_host_checks=0
        accept_passive_service_checks=1
        log_rotation_method=n
        use_syslog=0
        enable_flap_detection=0
        check_for_updates=0
        illegal_macro_output_chars=`~$&|'"<>

        """
        var objects = """
        define timeperiod {
            timeperiod_name always
            alias always
            sunday 00:00-24:00
            monday 00:00-24:00
            tuesday 00:00-24:00
            wednesday 00:00-24:00
            thursday 00:00-24:00
            friday 00:00-24:00
            saturday 00:00-24:00
        }
        define command {
            command_name nothing
            command_line /bin/true
        }
        define command {
            command_name exocheck_submit
            command_line \(ExocheckBinary.path) submit --config \(fleetConfig) --wait --timeout 60 --tenant=$ARG1$ --mode=$ARG2$ $ARG3$
        }
        define contact {
            contact_name nobody
            service_notification_period always
            host_notification_period always
            service_notification_options n
            host_notification_options n
            service_notification_commands nothing
            host_notification_commands nothing
        }
        define host {
            host_name exo-host
            address 127.0.0.1
            max_check_attempts 1
            check_period always
            check_command nothing
            contacts nobody
            notification_period always
            notifications_enabled 0
        }

        """
        for s in services {
            objects += """
            define service {
                host_name exo-host
                service_description \(s.name)
                check_command \(s.active ? "exocheck_submit!\(s.tenant)!\(s.mode.rawValue)!\(s.args.joined(separator: " "))" : "nothing")
                active_checks_enabled \(s.active ? 1 : 0)
                passive_checks_enabled 1
                max_check_attempts 1
                check_interval 600
                retry_interval 600
                check_period always
                contacts nobody
                notification_period always
                notifications_enabled 0
            }

            """
        }
        try main.write(toFile: dir + "/nagios.cfg", atomically: true, encoding: .utf8)
        try objects.write(toFile: dir + "/objects.cfg", atomically: true, encoding: .utf8)
    }
}

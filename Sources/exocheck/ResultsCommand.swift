import ArgumentParser
import CheckWorker
import ExchangeChecks
import Foundation
import Kafka
import Synchronization

/// `exocheck results`: follow the results topic.
struct ResultsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "results",
        abstract: "Follow check results: filter, print as JSON lines, Nagios lines or a table, or feed Nagios.",
        discussion: """
            Reads the results topic without joining a consumer group (nothing is
            committed). Ctrl-C stops and prints a summary on stderr.

            With --nagios-command-file, each result is also written as an external
            command to the Nagios/Naemon/Icinga command file (command_file in
            nagios.cfg), normally a FIFO, with host and service from the result's
            labels:
              [time] PROCESS_SERVICE_CHECK_RESULT;<host>;<service>;<exit>;<output>
            - A missing path is waited for (Nagios creates its pipe when it starts);
              --create-command-file creates a regular file instead. An existing
              regular file is appended to.
            - While nobody reads the FIFO, exocheck waits (a message on stderr every
              5 s). After a Nagios restart (reader gone, pipe replaced) it reopens
              the pipe and writes the command again.
            - A command is at most 8,192 bytes with its newline (Nagios' limit): a
              longer plugin output is cut at a character boundary. Newlines in the
              output are written as \\n, tabs as spaces; other control characters
              are dropped.
            - Results without host/service labels are skipped, and so are results
              whose host or service label is empty or contains ';' or a control
              character (newline, CR, tab, ...): such a label could inject another
              command. The summary on stderr counts both.
            """
    )

    @Option(help: "Worker configuration file (its kafka section is used).") var config: String?
    @Option(help: "Kafka bootstrap servers.") var bootstrapServers: String?
    @Option(help: "Where to start: now, beginning, or an RFC 3339 time.") var from = "now"
    @Option(help: "Only this tenant.") var tenant: String?
    @Option(help: "Only these statuses (comma-separated: OK,WARNING,CRITICAL,UNKNOWN).") var status: String?
    @Option(help: "Only this mode.") var mode: String?
    @Option(help: "Only results with this label (key=value; repeatable).") var label: [String] = []
    @Option(help: "Only this request id.") var id: String?
    @Option(help: "Output: json (one object per line), nagios (the plugin line), or table.") var format: Format = .table
    @Option(
        help: ArgumentHelp(
            "Write Nagios external commands to this command file: the Nagios/Naemon/Icinga command pipe (a FIFO), or a regular file (appended to).",
            discussion:
                "Waits while the path is missing or nobody reads the pipe, reopens after a Nagios restart; commands are capped at 8,192 bytes; results with an unsafe host/service label (empty, ';' or a control character) are skipped and counted."
        ))
    var nagiosCommandFile: String?
    @Flag(help: "With --nagios-command-file: create a regular file when the path does not exist, instead of waiting for Nagios to create its pipe.")
    var createCommandFile = false
    @Option(
        help: ArgumentHelp(
            "Flag results whose report Graph last confirmed more than this many seconds before the check (reportAgeSeconds).",
            discussion: "The table marks them 'OLD REPORT'; the summary counts them. Graph refreshes its reports about daily.")
    ) var reportOlderThan: Int?
    @Flag(help: "With --report-older-than: show only the flagged results.") var onlyOldReports = false
    @Option(help: "Stop after this many matching results.") var count: Int?
    @Option(help: "Stop after this many seconds without a matching result.") var idleTimeout: Double?

    enum Format: String, ExpressibleByArgument, CaseIterable { case json, nagios, table }

    func validate() throws {
        if createCommandFile, nagiosCommandFile == nil { throw ValidationError("--create-command-file needs --nagios-command-file") }
        if let reportOlderThan, reportOlderThan < 0 { throw ValidationError("--report-older-than takes a number of seconds, 0 or more") }
        if onlyOldReports, reportOlderThan == nil { throw ValidationError("--only-old-reports needs --report-older-than") }
    }

    func run() async throws {
        let (kafka, topics): (KafkaConfiguration, WorkerConfiguration.KafkaSection)
        do { (kafka, topics) = try KafkaCLIOptions(configPath: config, bootstrapServers: bootstrapServers).load() } catch {
            throw ValidationError(error.description)
        }
        let position: KafkaMetadata.StartPosition
        switch from {
        case "now": position = .end
        case "beginning": position = .beginning
        default:
            guard let date = RFC3339.parse(from) else { throw ValidationError("--from takes now, beginning or an RFC 3339 time") }
            position = .time(date)
        }
        var filter = ResultFilter(tenant: tenant, mode: mode, id: id)
        if let status { filter.statuses = Set(status.uppercased().split(separator: ",").map(String.init)) }
        filter.reportOlderThan = reportOlderThan
        filter.onlyOldReports = onlyOldReports
        for l in label {
            guard let eq = l.firstIndex(of: "=") else { throw ValidationError("--label takes key=value") }
            filter.labels[String(l[..<eq])] = String(l[l.index(after: eq)...])
        }
        let start = try await KafkaMetadata.startOffsets(topic: topics.results, position: position, configuration: kafka)
        let consumer = try KafkaConsumer(configuration: kafka, assignment: start)
        let (stop, stopContinuation) = AsyncStream<Void>.makeStream()
        let stopRequested = StopFlag()
        let commands = nagiosCommandFile.map {
            NagiosCommandFeed(
                pipe: NagiosCommandPipe(
                    path: $0,
                    options: .init(
                        createIfMissing: createCommandFile, shouldStop: { stopRequested.isSet })))
        }
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let sources = [SIGINT, SIGTERM].map { sig -> DispatchSourceSignal in
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            // The flag also ends a wait for the command pipe, which does not read `stop`.
            s.setEventHandler {
                stopRequested.set(); stopContinuation.yield()
            }
            s.resume()
            return s
        }
        if format == .table { SafeOutput.print(ResultFormatter.tableHeader) }
        var summary: [String: Int] = [:]
        var matched = 0
        var oldReports = 0
        let merged = AsyncStream<KafkaConsumerEvent?> { continuation in
            let a = Task {
                for await e in consumer.events { continuation.yield(e) }; continuation.finish()
            }
            let b = Task { for await _ in stop { continuation.yield(nil) } }
            let c = Task {
                guard let idle = idleTimeout else { return }
                while !Task.isCancelled {
                    try? await Task.sleep(for: Duration(clampedSeconds: idle))
                    continuation.yield(.error(KafkaError(code: -1, message: "idle")))
                }
            }
            continuation.onTermination = { _ in
                a.cancel(); b.cancel(); c.cancel()
            }
        }
        var lastMatch = ContinuousClock.now
        loop: for await event in merged {
            switch event {
            case nil: break loop
            case .error(let e)? where e.message == "idle":
                if let idle = idleTimeout, lastMatch.duration(to: .now) >= Duration(clampedSeconds: idle) { break loop }
            case .message(let m)?:
                guard let r = CheckResultMessage.decode(m.value), filter.matches(r) else { continue }
                lastMatch = .now
                matched += 1
                summary[r.status, default: 0] += 1
                let old = filter.hasOldReport(r)
                if old { oldReports += 1 }
                let line: String
                switch format {
                case .json: line = String(decoding: m.value, as: UTF8.self)
                case .nagios: line = r.output
                case .table: line = ResultFormatter.tableRow(r, oldReport: old)
                }
                SafeOutput.print(line)
                if let commands, await !commands.send(r) { break loop }
                if let count, matched >= count { break loop }
            default: continue
            }
        }
        sources.forEach { $0.cancel() }
        commands?.pipe.close()
        await consumer.close()
        let parts = ["OK", "WARNING", "CRITICAL", "UNKNOWN"].map { "\($0) \(summary[$0] ?? 0)" }.joined(separator: ", ")
        let old = reportOlderThan.map { ", \(oldReports) with a report older than \($0) s" } ?? ""
        SafeOutput.standardError.write("results: \(matched) shown (\(parts))\(old)\n")
        if let commands {
            SafeOutput.printError("results: " + commands.summary)
            if let failure = commands.failure {
                SafeOutput.printError("exocheck results: \(failure)")
                throw ExitCode.failure
            }
        }
    }
}

/// Set from a signal handler, read while waiting for the Nagios command pipe.
final class StopFlag: Sendable {
    private let state = Mutex(false)
    func set() { state.withLock { $0 = true } }
    var isSet: Bool { state.withLock { $0 } }
}

/// Turns results into external commands on the Nagios command file and counts what was skipped.
/// Not Sendable (it owns the pipe); used by the results loop only.
final class NagiosCommandFeed {
    let pipe: NagiosCommandPipe
    private(set) var unlabelled = 0
    private(set) var unsafe = 0
    private(set) var truncated = 0
    private(set) var failure: NagiosCommandPipe.Failure?

    init(pipe: NagiosCommandPipe) { self.pipe = pipe }

    /// Writes the result's command (or counts why not). False when the command file cannot be
    /// used any more (stopped, or an error kept in `failure`): the results loop then ends.
    func send(_ result: CheckResultMessage) async -> Bool {
        let command: NagiosExternalCommand
        do {
            command = try NagiosExternalCommand.processServiceCheckResult(for: result)
        } catch {
            switch error {
            case .missingLabel: unlabelled += 1
            case .unsafeLabel:
                unsafe += 1
                if unsafe == 1 {
                    SafeOutput.printError(
                        "results: not written to \(pipe.path): result \(result.id ?? "without id"): \(error) "
                            + "(it could inject another external command); further ones are only counted")
                }
            }
            return true
        }
        do {
            try await pipe.write(command)
            if command.truncated { truncated += 1 }
            return true
        } catch {
            if case .stopped = error {} else { failure = error }
            return false
        }
    }

    var summary: String {
        "\(pipe.path): \(pipe.statistics.written) command(s) written (\(truncated) cut to 8,192 bytes, \(pipe.statistics.reopened) reopen(s)); "
            + "skipped \(unsafe) with an unsafe host/service label, \(unlabelled) without host/service labels"
    }
}

struct ResultFilter {
    var tenant: String?
    var mode: String?
    var id: String?
    var statuses: Set<String>? = nil
    var labels: [String: String] = [:]
    /// `--report-older-than`: seconds.
    var reportOlderThan: Int? = nil
    /// `--only-old-reports`.
    var onlyOldReports = false

    /// Whether the result read a report Graph last confirmed more than `reportOlderThan` seconds
    /// before the check. Results without `reportAgeSeconds` (errors, older workers) are not.
    func hasOldReport(_ r: CheckResultMessage) -> Bool {
        guard let reportOlderThan, let age = r.reportAgeSeconds else { return false }
        return age > reportOlderThan
    }

    func matches(_ r: CheckResultMessage) -> Bool {
        if onlyOldReports, !hasOldReport(r) { return false }
        if let tenant, r.tenant != tenant { return false }
        if let mode, r.mode != mode { return false }
        if let id, r.id != id { return false }
        if let statuses, !statuses.contains(r.status) { return false }
        return labels.allSatisfy { r.labels[$0.key] == $0.value }
    }
}

enum ResultFormatter {
    static let tableHeader = "TIME                      TENANT             MODE            STATUS    MS     SUMMARY"

    static func tableRow(_ r: CheckResultMessage, oldReport: Bool = false) -> String {
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? String(s.prefix(n - 1)) + " " : s + String(repeating: " ", count: n - s.count) }
        // `CheckResultMessage.decode` holds durationMs to 0…1 day: the conversion cannot trap.
        let ms = String(Int(r.durationMs))
        let age = oldReport ? "OLD REPORT (\(Lateness.describe(seconds: Double(r.reportAgeSeconds ?? 0)))) " : ""
        return pad(r.checkedAt, 26) + pad(r.tenant ?? "-", 19) + pad(r.mode ?? "-", 16) + pad(r.status, 10)
            + pad(ms, 7) + age + String(r.summary.prefix(120))
    }
}

import ArgumentParser
import CheckWorker
import Foundation
import Kafka

/// `exocheck results`: follow the results topic.
struct ResultsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "results",
        abstract: "Follow check results: filter, print as JSON lines, Nagios lines or a table, or feed Nagios.",
        discussion: """
        Reads the results topic without joining a consumer group (nothing is committed). Ctrl-C stops
        and prints a summary on stderr. With --nagios-command-file, each result is also written as an
        external command PROCESS_SERVICE_CHECK_RESULT;<labels.host>;<labels.service>;<exit>;<output>
        (results without host/service labels are skipped there).
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
    @Option(help: "Append Nagios external commands to this file (the Nagios/Naemon/Icinga command pipe).") var nagiosCommandFile: String?
    @Option(help: "Stop after this many matching results.") var count: Int?
    @Option(help: "Stop after this many seconds without a matching result.") var idleTimeout: Double?

    enum Format: String, ExpressibleByArgument, CaseIterable { case json, nagios, table }

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
        for l in label {
            guard let eq = l.firstIndex(of: "=") else { throw ValidationError("--label takes key=value") }
            filter.labels[String(l[..<eq])] = String(l[l.index(after: eq)...])
        }
        let start = try await KafkaMetadata.startOffsets(topic: topics.results, position: position, configuration: kafka)
        let consumer = try KafkaConsumer(configuration: kafka, assignment: start)
        var commandFile: FileHandle? = nil
        if let nagiosCommandFile {
            guard let h = FileHandle(forWritingAtPath: nagiosCommandFile) ?? {
                FileManager.default.createFile(atPath: nagiosCommandFile, contents: nil) ? FileHandle(forWritingAtPath: nagiosCommandFile) : nil
            }() else { throw ValidationError("cannot open \(nagiosCommandFile) for writing") }
            h.seekToEndOfFile()
            commandFile = h
        }
        let (stop, stopContinuation) = AsyncStream<Void>.makeStream()
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let sources = [SIGINT, SIGTERM].map { sig -> DispatchSourceSignal in
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { stopContinuation.yield() }
            s.resume()
            return s
        }
        if format == .table { FileHandle.standardOutput.write(Data((ResultFormatter.tableHeader + "\n").utf8)) }
        var summary: [String: Int] = [:]
        var matched = 0
        let merged = AsyncStream<KafkaConsumerEvent?> { continuation in
            let a = Task { for await e in consumer.events { continuation.yield(e) }; continuation.finish() }
            let b = Task { for await _ in stop { continuation.yield(nil) } }
            let c = Task {
                guard let idle = idleTimeout else { return }
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(Int64(idle * 1000)))
                    continuation.yield(.error(KafkaError(code: -1, message: "idle")))
                }
            }
            continuation.onTermination = { _ in a.cancel(); b.cancel(); c.cancel() }
        }
        var lastMatch = ContinuousClock.now
        loop: for await event in merged {
            switch event {
            case nil: break loop
            case .error(let e)? where e.message == "idle":
                if let idle = idleTimeout, lastMatch.duration(to: .now) >= .milliseconds(Int64(idle * 1000)) { break loop }
            case .message(let m)?:
                guard let r = CheckResultMessage.decode(m.value), filter.matches(r) else { continue }
                lastMatch = .now
                matched += 1
                summary[r.status, default: 0] += 1
                let line: String
                switch format {
                case .json: line = String(decoding: m.value, as: UTF8.self)
                case .nagios: line = r.output
                case .table: line = ResultFormatter.tableRow(r)
                }
                FileHandle.standardOutput.write(Data((line + "\n").utf8))
                if let commandFile, let cmd = ResultFormatter.nagiosCommand(r) { commandFile.write(Data((cmd + "\n").utf8)) }
                if let count, matched >= count { break loop }
            default: continue
            }
        }
        sources.forEach { $0.cancel() }
        try? commandFile?.close()
        await consumer.close()
        let parts = ["OK", "WARNING", "CRITICAL", "UNKNOWN"].map { "\($0) \(summary[$0] ?? 0)" }.joined(separator: ", ")
        FileHandle.standardError.write(Data("results: \(matched) shown (\(parts))\n".utf8))
    }
}

struct ResultFilter {
    var tenant: String?
    var mode: String?
    var id: String?
    var statuses: Set<String>? = nil
    var labels: [String: String] = [:]

    func matches(_ r: CheckResultMessage) -> Bool {
        if let tenant, r.tenant != tenant { return false }
        if let mode, r.mode != mode { return false }
        if let id, r.id != id { return false }
        if let statuses, !statuses.contains(r.status) { return false }
        return labels.allSatisfy { r.labels[$0.key] == $0.value }
    }
}

enum ResultFormatter {
    static let tableHeader = "TIME                      TENANT             MODE            STATUS    MS     SUMMARY"

    static func tableRow(_ r: CheckResultMessage) -> String {
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? String(s.prefix(n - 1)) + " " : s + String(repeating: " ", count: n - s.count) }
        return pad(r.checkedAt, 26) + pad(r.tenant ?? "-", 19) + pad(r.mode ?? "-", 16) + pad(r.status, 10)
            + pad(String(Int(r.durationMs)), 7) + String(r.summary.prefix(120))
    }

    /// `[epoch] PROCESS_SERVICE_CHECK_RESULT;host;service;code;output` (newlines escaped as \n).
    static func nagiosCommand(_ r: CheckResultMessage, now: Date = Date()) -> String? {
        guard let host = r.labels["host"], let service = r.labels["service"] else { return nil }
        let output = r.output.replacingOccurrences(of: "\n", with: "\\n")
        return "[\(Int(now.timeIntervalSince1970))] PROCESS_SERVICE_CHECK_RESULT;\(host);\(service);\(r.exitCode);\(output)"
    }
}

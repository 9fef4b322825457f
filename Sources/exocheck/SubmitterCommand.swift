import ArgumentParser
import CheckWorker
import Foundation
import Kafka
import Logging
import ServiceLifecycle

/// `exocheck submitter`: keep the Kafka clients of `submit` open for a busy poller.
struct SubmitterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submitter",
        abstract: "Serve 'exocheck submit --socket' on a Unix socket with long-lived Kafka clients.",
        discussion: """
            Each 'exocheck submit --wait' on its own creates its Kafka clients (offsets, producer,
            results reader, heartbeat reader) and meets the broker's fetch wait before its result.
            For a poller that submits checks every second, run one submitter beside it and give
            submit --socket PATH (or set EXOCHECK_SUBMITTER_SOCKET): the submitter sends each check
            with one producer and answers it from one reader of the results topic it follows from its
            start, with the same output, exit code, timeout and orphan answers as submit alone.
            If the submitter is not running, submit sends the check itself (and says so on stderr).

            The socket is created with --socket-mode (default 0600: only this user may submit; 0660
            and a shared group for a poller running as another user, which must then set
            EXOCHECK_SUBMITTER_UID to this user's uid: submit believes only a submitter running as
            itself, root or that uid, as the kernel reports it). Requests are checked as the workers
            check them. Limits: --max-connections submits at once (more send their checks
            themselves), a request of 64 KiB sent within 5 s. Results topic partitions added while
            it runs are not followed: restart it. SIGTERM/SIGINT: stop; waiting submits see the
            connection close and print UNKNOWN, and their checks stay queued for the workers.
            """
    )

    @Option(help: "The Unix socket to listen on (a stale socket file is replaced).") var socket: String
    @Option(help: "Worker configuration file (its kafka section: topics, group, properties).") var config: String?
    @Option(help: "Kafka bootstrap servers; overrides the configuration's.") var bootstrapServers: String?
    @Option(help: "Permissions of the socket file, octal.") var socketMode = "0600"
    @Option(help: "Submits served at once; beyond that, submits send their checks themselves.") var maxConnections = 256
    @Option(help: "fetch.wait.max.ms of its readers (default 50; see 'exocheck submit --help').") var fetchWaitMs: Int?

    func run() async throws {
        guard let mode = UInt16(socketMode, radix: 8), mode <= 0o777 else {
            SafeOutput.standardError.write("exocheck submitter: --socket-mode takes octal permissions such as 0600 or 0660\n")
            throw ExitCode(2)
        }
        guard (1...65_536).contains(maxConnections) else {
            SafeOutput.standardError.write("exocheck submitter: --max-connections takes 1 to 65536\n")
            throw ExitCode(2)
        }
        if let fetchWaitMs, !KafkaCLIOptions.fetchWaitRange.contains(fetchWaitMs) {
            SafeOutput.standardError.write("exocheck submitter: --fetch-wait-ms takes a number of milliseconds from 1 to 60000\n")
            throw ExitCode(2)
        }
        let kafka: KafkaConfiguration
        let topics: WorkerConfiguration.KafkaSection
        do {
            (kafka, topics) = try KafkaCLIOptions(configPath: config, bootstrapServers: bootstrapServers, fetchWaitMs: fetchWaitMs)
                .load(defaultFetchWaitMs: KafkaCLIOptions.submitFetchWaitMs)
        } catch {
            SafeOutput.standardError.write("exocheck submitter: \(error.description)\n")
            throw ExitCode(2)
        }
        var settings = SubmitterConfiguration(socketPath: socket)
        settings.socketMode = mode
        settings.maxConnections = maxConnections
        let path = socket
        let logger = Logger(label: "exocheck.submitter")
        let service = SubmitterService(configuration: settings, kafka: kafka, topics: topics) {
            SafeOutput.standardError.write("exocheck submitter: listening on \(path) (requests '\(topics.requests)', results '\(topics.results)')\n")
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch let error as SubmitterError {
            SafeOutput.standardError.write("exocheck submitter: \(error.description)\n")
            throw ExitCode(1)
        } catch {
            SafeOutput.standardError.write("exocheck submitter: \(error)\n")
            throw ExitCode(1)
        }
    }
}

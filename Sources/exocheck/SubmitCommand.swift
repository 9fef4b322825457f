import CheckWorker
import ExchangeChecks
import Foundation
import Kafka

/// Kafka connection options shared by `submit` and `results`: `--config FILE` (the worker's
/// format; only its kafka section is used) and `--bootstrap-servers LIST`.
struct KafkaCLIOptions {
    var configPath: String?
    var bootstrapServers: String?
    /// `--fetch-wait-ms`: librdkafka's `fetch.wait.max.ms` for the command's consumers.
    var fetchWaitMs: Int?

    /// What `submit` uses when neither `--fetch-wait-ms` nor the configuration's
    /// `kafka.properties` set `fetch.wait.max.ms`. A broker may hold an empty Fetch that long
    /// (librdkafka's mock broker always does; Apache Kafka answers as soon as data arrives), and
    /// `submit --wait` meets an empty Fetch before its result: librdkafka's 500 ms default made
    /// every submit last about a second. The cost of a shorter wait is idle requests: one Fetch
    /// per broker every `fetch.wait.max.ms` while nothing arrives (see docs/benchmarks.md).
    static let submitFetchWaitMs = 50
    /// Bounds of `--fetch-wait-ms`.
    static let fetchWaitRange = 1...60_000

    func load(defaultFetchWaitMs: Int? = nil) throws(ConfigurationError) -> (KafkaConfiguration, WorkerConfiguration.KafkaSection) {
        var section = WorkerConfiguration.KafkaSection()
        var kafka = KafkaConfiguration()
        if let configPath {
            let c = try WorkerConfiguration.load(path: configPath, kafkaOnly: true)
            section = c.kafka
            kafka = c.kafkaConfiguration()
        }
        if let bootstrapServers { kafka.bootstrapServers = bootstrapServers }
        guard kafka.bootstrapServers?.isEmpty == false else {
            throw ConfigurationError("give --bootstrap-servers or --config with kafka.properties.bootstrap.servers")
        }
        if kafka.properties["log_level"] == nil { kafka.properties["log_level"] = "3" }
        if let fetchWaitMs {
            kafka.properties["fetch.wait.max.ms"] = String(fetchWaitMs)
        } else if kafka.properties["fetch.wait.max.ms"] == nil, let defaultFetchWaitMs {
            kafka.properties["fetch.wait.max.ms"] = String(defaultFetchWaitMs)
        }
        return (kafka, section)
    }
}

/// `exocheck submit`: send check requests; with `--wait`, behave exactly like `exocheck run`.
///
/// Parsed by hand like `run`: submit's own options are mixed with the Centreon check arguments
/// (`--mode`, `--filter-*`, thresholds…), which go into the request's `args`.
enum SubmitCommand {
    static let usage = """
        USAGE: exocheck submit [--config FILE] [--bootstrap-servers LIST] [--wait [--timeout SECONDS]
                               [--orphan-timeout SECONDS] [--orphan-state STATE] [--fetch-wait-ms MS]]
                               [--socket PATH] [--id ID] [--label key=value]... [--deadline-seconds N]
                               --tenant=NAME --mode=MODE [Centreon check options...]
               exocheck submit [--config FILE] [--bootstrap-servers LIST] --file REQUESTS.jsonl|-

        Sends a check request to the requests topic (key = tenant) and prints its id. --tenant is a
        tenant name configured on the workers. With --wait, waits for the result (default 60 s) and then
        prints and exits exactly like 'exocheck run' (exit 3 with an UNKNOWN line on timeout), so a
        Nagios/Centreon/Icinga command can run checks on the worker fleet. Credentials and endpoints are
        not accepted: they belong to the workers' configuration.

        --orphan-timeout (default 5 s; 0 turns it off): with --wait, when no worker of the group has
        said within that time that it consumes the requests topic (worker heartbeats on
        kafka.heartbeatTopic), answer at once that the check is orphaned instead of waiting for the
        full --timeout, with the state of --orphan-state (unknown, the default; critical, warning or
        ok), as Mod-Gearman's orphan_return. Without a heartbeat topic, submit cannot tell and waits.

        --fetch-wait-ms (default 50, unless the --config file's kafka.properties set
        fetch.wait.max.ms): how long a broker may hold an empty read of the results topic. Every
        --wait meets one before its result arrives; Apache Kafka answers early when data comes, but
        some brokers (librdkafka's mock broker among them) hold it the full time, and librdkafka's
        own default of 500 ms then adds about a second to every check. Lower costs one more idle
        request per broker per interval while waiting, and nothing once submit exits.

        --socket PATH (or EXOCHECK_SUBMITTER_SOCKET): hand the check to a running 'exocheck
        submitter' on that Unix socket, which keeps its Kafka clients open, instead of creating
        them for this one check; the output and exit code are the same. A socket that is missing or
        refuses the connection, a submitter that did not send the check (too many connections,
        Kafka failing), or one running as another user than this one or root is not used: submit
        says so on stderr and sends the check itself. EXOCHECK_SUBMITTER_UID=<uid> trusts the
        submitter of that user too (a poller running as another user than the submitter).

        --file: many requests, one JSON object per line (the check-request schema); progress on stderr.
        """

    static func execute(_ arguments: [String]) async -> Int32 {
        var kafkaOptions = KafkaCLIOptions()
        var wait = false
        var timeout = 60.0
        var orphanTimeout = 5.0
        var orphanState = CheckStatus.unknown
        var id: String? = nil
        var labels: [String: String] = [:]
        var deadlineSeconds: Double? = nil
        var file: String? = nil
        var socket = ProcessInfo.processInfo.environment[SubmitCommand.socketEnvironment].flatMap { $0.isEmpty ? nil : $0 }
        var checkArgs: [String] = []
        var i = 0
        func value(_ name: String) -> String? {
            let a = arguments[i]
            if let eq = a.firstIndex(of: "="), a[..<eq] == name { return String(a[a.index(after: eq)...]) }
            if a == name, i + 1 < arguments.count { i += 1; return arguments[i] }
            return nil
        }
        while i < arguments.count {
            let a = arguments[i]
            let name = a.split(separator: "=", maxSplits: 1).first.map(String.init) ?? a
            switch name {
            case "--help", "-h":
                SafeOutput.print(usage)
                return 0
            case "--config": kafkaOptions.configPath = value("--config")
            case "--bootstrap-servers": kafkaOptions.bootstrapServers = value("--bootstrap-servers")
            case "--fetch-wait-ms":
                guard let v = value("--fetch-wait-ms").flatMap(Int.init), KafkaCLIOptions.fetchWaitRange.contains(v) else {
                    return fail("--fetch-wait-ms takes a number of milliseconds from 1 to 60000")
                }
                kafkaOptions.fetchWaitMs = v
            case "--wait": wait = true
            case "--timeout":
                guard let v = value("--timeout").flatMap(Double.init), v > 0, v <= 86400 else { return fail("--timeout takes a number of seconds") }
                timeout = v
            case "--orphan-timeout":
                guard let v = value("--orphan-timeout").flatMap(Double.init), v >= 0, v <= 86400 else {
                    return fail("--orphan-timeout takes a number of seconds (0 turns it off)")
                }
                orphanTimeout = v
            case "--orphan-state":
                guard let v = value("--orphan-state").flatMap(CheckStatus.init(name:)) else {
                    return fail("--orphan-state takes ok, warning, critical or unknown")
                }
                orphanState = v
            case "--id": id = value("--id")
            case "--label":
                guard let kv = value("--label"), let eq = kv.firstIndex(of: "=") else { return fail("--label takes key=value") }
                labels[String(kv[..<eq])] = String(kv[kv.index(after: eq)...])
            case "--deadline-seconds":
                guard let v = value("--deadline-seconds").flatMap(Double.init), v > 0, v <= 86400 else { return fail("--deadline-seconds takes a number") }
                deadlineSeconds = v
            case "--file": file = value("--file")
            case "--socket":
                guard let v = value("--socket") else { return fail("--socket takes the path of a submitter's socket") }
                socket = v.isEmpty ? nil : v
            default: checkArgs.append(a)
            }
            i += 1
        }
        if let file {
            do {
                let (kafka, topics) = try kafkaOptions.load(defaultFetchWaitMs: KafkaCLIOptions.submitFetchWaitMs)
                return await batch(file, kafka: kafka, topics: topics)
            } catch {
                return fail(error.description)
            }
        }

        // The check arguments, validated locally exactly as the worker will (no credentials).
        let parsedArgs: CentreonArguments
        do { parsedArgs = try CentreonArguments(checkArgs) } catch { return emitError(error.message, OutputOptions()) }
        let tenant = parsedArgs.last("tenant") ?? ""
        var options = OutputOptions()
        switch Invocation.parse(parsedArgs, requireConnection: false) {
        case .failure(let e, let o): return emitError(e.message, o)
        case .help: SafeOutput.print(usage); return 0
        case .listCounters(let mode, _):
            SafeOutput.print("counter list: " + mode.counters.map(\.label).joined(separator: " ") + "  ")
            return 0
        case .check(let c, _): options = c.output
        }
        guard !tenant.isEmpty else { return emitError("Need to specify --tenant option.", options) }
        // The option table decides what a request may carry (the tenant and mode become fields);
        // submit's own wording first, then CheckSpec, as the worker will build it.
        for name in parsedArgs.order where !CheckSpec.requestFields.contains(name) {
            guard OptionTable.requestRefusal(name) != nil else { continue }
            if OptionTable.use(of: name) == .connection {
                return emitError("--\(name) is not accepted by submit: credentials and endpoints belong to the workers' configuration.", options)
            }
            return emitError(
                "--\(name) is not accepted by submit: it is for 'exocheck run' only (the workers decide time limits; use --deadline-seconds to shorten one).",
                options)
        }
        // From the parsed options, so that `--tenant contoso` (value after a space, as pollers
        // often write it) does not leave `contoso` behind as an argument.
        let spec: CheckSpec
        do { spec = try CheckSpec(commandLine: parsedArgs) } catch { return emitError(error.message, options) }
        let request = CheckRequest(
            id: id ?? "exocheck-submit-\(UUID().uuidString.lowercased())", tenant: tenant, mode: spec.mode, arguments: spec.requestOptions,
            deadline: deadlineSeconds.map { Date().addingTimeInterval($0) } ?? (wait ? Date().addingTimeInterval(timeout) : nil),
            labels: labels)
        if let socket {
            switch viaSubmitter(socket, request: request, wait: wait, timeout: timeout, orphanTimeout: orphanTimeout, orphanState: orphanState, options) {
            case .answered(let code): return code
            case .unreachable(let reason):
                SafeOutput.standardError.write("exocheck submit: \(reason); sending the check directly\n")
            }
        }
        let kafka: KafkaConfiguration
        let topics: WorkerConfiguration.KafkaSection
        do { (kafka, topics) = try kafkaOptions.load(defaultFetchWaitMs: KafkaCLIOptions.submitFetchWaitMs) } catch {
            return fail(error.description)
        }
        do {
            // Start reading results before sending, so that a fast answer is not missed.
            var start: [TopicPartition: Int64] = [:]
            if wait { start = try await KafkaMetadata.startOffsets(topic: topics.results, position: .end, configuration: kafka) }
            // One record from a short-lived process: idempotence (the producer's default) would
            // first ask the broker for a producer id, which librdkafka retries after a second
            // when no broker connection is up yet, and a duplicate request only runs a check
            // twice. Still on when the configuration asks for it.
            var producerConfiguration = kafka
            if producerConfiguration.properties["enable.idempotence"] == nil { producerConfiguration.properties["enable.idempotence"] = "false" }
            let producer = try KafkaProducer(configuration: producerConfiguration)
            // Best effort: if the metadata is slow, the send waits for it as before.
            try? await producer.prepare(topic: topics.requests)
            // Heartbeats are looked for from one orphan timeout before the send on.
            let heartbeatsSince = Date().addingTimeInterval(-orphanTimeout)
            try await producer.send(
                OutgoingMessage(
                    topic: topics.requests, key: Array(tenant.utf8), value: request.encoded(),
                    headers: [KafkaHeader("exocheck-id", request.id), KafkaHeader("content-type", "application/json")]))
            await producer.close()
            guard wait else {
                SafeOutput.print(request.id)
                return 0
            }
            let watch = orphanTimeout > 0 && !topics.heartbeatTopic.isEmpty && orphanTimeout < timeout
            switch try await awaitResult(
                id: request.id, kafka: kafka, start: start, timeout: timeout,
                orphanWatch: watch ? OrphanWatch(topics: topics, within: orphanTimeout, since: heartbeatsSince) : nil)
            {
            case .result(let result):
                SafeOutput.print(result.output)
                for line in result.warningLines { SafeOutput.printError(line) }
                return Int32(result.exitCode)
            case .timedOut:
                return emitError(SubmitWording.timedOut(id: request.id, seconds: timeout, requests: topics.requests), options)
            case .orphaned:
                var orphan = options
                orphan.errorStatus = orphanState
                return emitError(
                    SubmitWording.orphaned(
                        id: request.id, seconds: orphanTimeout, group: topics.group, requests: topics.requests, heartbeats: topics.heartbeatTopic),
                    orphan)
            }
        } catch {
            return emitError("Kafka: \(error.message)", options)
        }
    }

    /// The environment variable that names a submitter's socket when `--socket` is not given.
    static let socketEnvironment = "EXOCHECK_SUBMITTER_SOCKET"
    /// The environment variable naming the uid of a submitter running as another user that
    /// submit may trust (besides its own user and root).
    static let trustedUIDEnvironment = "EXOCHECK_SUBMITTER_UID"

    enum SubmitterAnswer {
        /// Printed; the exit code.
        case answered(Int32)
        /// Nothing was sent: submit sends the check itself.
        case unreachable(String)
    }

    /// One check through a running `exocheck submitter`: printed exactly as the direct path prints.
    static func viaSubmitter(
        _ path: String, request: CheckRequest, wait: Bool, timeout: Double, orphanTimeout: Double, orphanState: CheckStatus,
        _ options: OutputOptions
    ) -> SubmitterAnswer {
        let submission = SubmitterWire.Submission(wait: wait, timeoutSeconds: timeout, orphanTimeoutSeconds: orphanTimeout, bytes: 0)
        let payload = request.encoded()
        var header = submission
        header.bytes = payload.count
        // The submitter answers a timeout itself at `timeout`; the margin covers producing.
        let trusted = ProcessInfo.processInfo.environment[Self.trustedUIDEnvironment].flatMap { UInt32($0) }
        switch SubmitterClient.exchange(
            socket: path, submission: header, request: payload, limit: Duration(clampedSeconds: timeout + 10), trustedUID: trusted)
        {
        case .failure(.unreachable(let reason)):
            return .unreachable(reason)
        case .failure(.broken(let reason)):
            return .answered(emitError("The submitter at \(path) did not answer check \(request.id) (\(reason)); the check may still run.", options))
        case .success(let (reply, body)):
            switch reply.outcome {
            case .sent:
                SafeOutput.print(request.id)
                return .answered(0)
            case .result:
                guard let result = CheckResultMessage.decode(body), result.id == request.id else {
                    return .answered(emitError("The submitter at \(path) answered check \(request.id) with another or an unreadable result.", options))
                }
                SafeOutput.print(result.output)
                for line in result.warningLines { SafeOutput.printError(line) }
                return .answered(Int32(result.exitCode))
            case .timedOut:
                return .answered(emitError(reply.message ?? "No result for check \(request.id) within \(Int(timeout)) s.", options))
            case .orphaned:
                var orphan = options
                orphan.errorStatus = orphanState
                return .answered(emitError(reply.message ?? "Check \(request.id) is orphaned.", orphan))
            case .notSent:
                return .unreachable("the submitter at \(path) did not send the check (\(reply.message ?? "no reason given"))")
            case .refused:
                return .answered(emitError("The submitter at \(path) refused check \(request.id): \(reply.message ?? "no reason given")", options))
            }
        }
    }

    /// How waiting for a result ended.
    enum WaitOutcome: Sendable {
        case result(CheckResultMessage)
        case timedOut
        /// No worker heartbeat for the requests topic and group within the orphan timeout.
        case orphaned
    }

    /// What `--orphan-timeout` watches: heartbeats for `topics.requests` and `topics.group` on
    /// `topics.heartbeatTopic` written since `since`, for `within` seconds.
    struct OrphanWatch: Sendable {
        let topics: WorkerConfiguration.KafkaSection
        let within: Double
        let since: Date
    }

    static func awaitResult(
        id: String, kafka: KafkaConfiguration, start: [TopicPartition: Int64], timeout: Double, orphanWatch: OrphanWatch? = nil
    ) async throws(KafkaError) -> WaitOutcome {
        let consumer = try KafkaConsumer(configuration: kafka, assignment: start)
        let found = await withTaskGroup(of: WaitOutcome?.self) { group in
            group.addTask {
                for await event in consumer.events {
                    // Results carry their id in a header: only the matching one is decoded.
                    if case .message(let m) = event, m.header("exocheck-id") == id,
                        let r = CheckResultMessage.decode(m.value), r.id == id
                    {
                        return .result(r)
                    }
                }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: Duration(clampedSeconds: timeout))
                return .timedOut
            }
            if let orphanWatch {
                group.addTask {
                    // A worker vouched for the topic: not an orphan, this task has nothing to say.
                    if await workerAlive(orphanWatch, kafka: kafka) != false { return nil }
                    return .orphaned
                }
            }
            var outcome: WaitOutcome = .timedOut
            while let next = await group.next() {
                if let next {
                    outcome = next
                    break
                }
            }
            group.cancelAll()
            await consumer.close()
            return outcome
        }
        return found
    }

    /// Reads heartbeats (WorkerHeartbeat) from `watch.since` on, for `watch.within` seconds:
    /// true as soon as one vouches for the requests topic and group, false when none did in
    /// time, nil when the heartbeat topic cannot be read (then nobody can tell).
    static func workerAlive(_ watch: OrphanWatch, kafka: KafkaConfiguration) async -> Bool? {
        var readerConfig = kafka
        readerConfig.groupId = nil
        // The tail of each partition (not offsets by time: not every broker, the development
        // broker among them, answers those), then everything new; `vouches` checks the time.
        guard
            let marks = try? await KafkaMetadata.watermarks(of: watch.topics.heartbeatTopic, configuration: readerConfig, timeout: .seconds(5)),
            let reader = try? KafkaConsumer(
                configuration: readerConfig, assignment: marks.mapValues { Swift.max($0.low, $0.high - WorkerHeartbeat.readBack) })
        else { return nil }
        let alive = await withTaskGroup(of: Bool?.self) { group in
            group.addTask {
                for await event in reader.events {
                    if case .message(let m) = event, let beat = WorkerHeartbeat.decode(m.value),
                        beat.vouches(for: watch.topics.requests, group: watch.topics.group, since: watch.since)
                    {
                        return true
                    }
                }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: Duration(clampedSeconds: watch.within))
                return false
            }
            var answer: Bool? = false
            while let next = await group.next() {
                if let next {
                    answer = next
                    break
                }
            }
            group.cancelAll()
            return answer
        }
        await reader.close()
        return alive
    }

    /// Many requests from a JSON-lines file (or stdin), progress on stderr.
    static func batch(_ path: String, kafka: KafkaConfiguration, topics: WorkerConfiguration.KafkaSection) async -> Int32 {
        let data: Data?
        if path == "-" { data = FileHandle.standardInput.readDataToEndOfFile() } else { data = FileManager.default.contents(atPath: path) }
        guard let data else { return fail("cannot read \(path)") }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        var requests: [CheckRequest] = []
        for (n, line) in lines.enumerated() {
            switch CheckRequestDecoder.decode(Array(line.utf8), maxBytes: 65_536) {
            case .success(let r):
                // The check itself, as the worker will build it: a bad threshold is found here,
                // not as an UNKNOWN result later.
                do { _ = try CheckSpec(mode: r.mode, options: CentreonArguments(r.arguments)) } catch {
                    return fail("line \(n + 1): \(error.message)")
                }
                requests.append(r)
            case .failure(let e): return fail("line \(n + 1): \(e.reason)")
            }
        }
        do {
            let producer = try KafkaProducer(configuration: kafka)
            var sent = 0
            try await withThrowingTaskGroup(of: Void.self) { group in
                for r in requests {
                    group.addTask {
                        try await producer.send(
                            OutgoingMessage(
                                topic: topics.requests, key: Array(r.tenant.utf8), value: r.encoded(),
                                headers: [KafkaHeader("exocheck-id", r.id), KafkaHeader("content-type", "application/json")]))
                    }
                }
                for try await _ in group {
                    sent += 1
                    if sent % 500 == 0 || sent == requests.count {
                        SafeOutput.standardError.write("submit: \(sent)/\(requests.count) sent\n")
                    }
                }
            }
            await producer.close()
            for r in requests { SafeOutput.print(r.id) }
            return 0
        } catch {
            return fail("Kafka: \(error)")
        }
    }

    static func fail(_ message: String) -> Int32 {
        SafeOutput.standardError.write("exocheck submit: \(message)\n")
        return 2
    }

    /// An error printed as `exocheck run` prints it.
    static func emitError(_ message: String, _ options: OutputOptions) -> Int32 {
        RunCommand.emit(CheckResult.error(message, status: options.errorStatus), options, isError: true)
    }
}

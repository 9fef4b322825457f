import ArgumentParser
import CheckWorker
import ExchangeChecks
import Foundation
import Kafka

/// `exocheck dlq list|show|replay`: the dead-letter topic for operators.
struct DLQCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "List, show and replay dead-lettered check requests (kafka.deadLetter).",
        discussion: """
            Workers copy a request they refuse (invalid request, unknown tenant, poison, ...)
            to the dead-letter topic with why (exocheck-dlt-reason) and the error kind
            (exocheck-error-kind). These commands read that topic from its start to its
            current end, outside any consumer group (nothing is committed).

              exocheck dlq list --config worker.yaml --kind unknown-tenant
              exocheck dlq show --config worker.yaml 0:42
              exocheck dlq replay --config worker.yaml --kind unknown-tenant --dry-run
              exocheck dlq replay --config worker.yaml --kind unknown-tenant

            A replay sends the original key, value and headers to the requests topic
            again (after adding the tenant, or upgrading workers), with
            exocheck-replay-of and exocheck-replay-count headers; the dead-letter record
            stays. Never replayed: stubs (only the start of a too-large request was kept),
            poison requests unless --allow-poison, and requests already replayed
            --max-replays times. A request whose deadline has passed is answered
            'expired' by the worker: the dry run says which.
            """,
        subcommands: [List.self, Show.self, Replay.self]
    )

    /// Where to read and which records: shared by the three subcommands.
    struct Selection: ParsableArguments {
        @Option(help: "Worker configuration file (its kafka section: properties, deadLetter, requests).") var config: String?
        @Option(help: "Kafka bootstrap servers (overrides the configuration's).") var bootstrapServers: String?
        @Option(help: "The dead-letter topic (default: the configuration's kafka.deadLetter).") var topic: String?
        @Option(help: "Only these error kinds (comma-separated or repeated), e.g. unknown-tenant,invalid-request.") var kind: [String] = []
        @Option(help: "Only requests of this tenant (the record key).") var tenant: String?
        @Option(help: "Only the request with this id.") var id: String?
        @Option(help: "Only records dead-lettered at or after this RFC 3339 time.") var since: String?
        @Option(help: "Give up reading after this many seconds.") var timeout: Double = 60

        func validate() throws {
            guard timeout > 0, timeout <= 3_600 else { throw ValidationError("--timeout takes 0 to 3600 seconds") }
            if let since, RFC3339.parse(since) == nil { throw ValidationError("--since takes an RFC 3339 time such as 2026-12-01T00:00:00Z") }
            let known = Set(CheckErrorKind.allCases.map(\.rawValue))
            for k in kinds where !known.contains(k) {
                throw ValidationError("--kind: unknown error kind (known: \(known.sorted().joined(separator: ", ")))")
            }
        }

        var kinds: [String] { kind.flatMap { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty } }

        var filter: DeadLetterFilter {
            var f = DeadLetterFilter()
            f.kinds = Set(kinds)
            f.tenant = tenant
            f.id = id
            f.since = since.flatMap(RFC3339.parse)
            return f
        }

        func load() throws -> (KafkaConfiguration, WorkerConfiguration.KafkaSection, String) {
            do {
                let (kafka, topics) = try KafkaCLIOptions(configPath: config, bootstrapServers: bootstrapServers).load()
                return (kafka, topics, topic ?? topics.deadLetter)
            } catch {
                throw ValidationError(error.description)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List dead-lettered requests: position (partition:offset), time, kind, tenant, id, reason.")
        @OptionGroup var selection: Selection
        @Option(help: "Output: table (one line each) or json (one object per line, with the value).") var format: Format = .table
        @Option(help: "Show at most this many (the oldest first).") var limit: Int = 1_000

        enum Format: String, ExpressibleByArgument, CaseIterable { case table, json }

        func validate() throws { guard limit > 0 else { throw ValidationError("--limit takes a positive number") } }

        func run() async throws {
            let (kafka, _, topic) = try selection.load()
            let filter = selection.filter
            var shown = 0
            var byKind: [String: Int] = [:]
            let outcome = try await DeadLetterReader.read(kafka: kafka, topic: topic, timeout: selection.timeout) { record in
                guard filter.matches(record) else { return true }
                byKind[record.kind, default: 0] += 1
                shown += 1
                guard shown <= limit else { return true }
                switch format {
                case .table: SafeOutput.print(record.listLine)
                case .json:
                    let data = (try? JSONSerialization.data(withJSONObject: record.json, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
                    SafeOutput.print(String(decoding: data, as: UTF8.self))
                }
                return true
            }
            let kinds = byKind.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            let more = shown > limit ? "; \(shown - limit) more not shown (--limit)" : ""
            SafeOutput.printError("dlq: \(shown) of \(outcome.read) record(s) in '\(topic)' match\(kinds.isEmpty ? "" : " (\(kinds))")\(more)")
            try DeadLetterReader.requireComplete(outcome, timeout: selection.timeout)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one dead-lettered request: its headers, why it was refused, and its value.")
        @OptionGroup var selection: Selection
        @Argument(help: "The record's position in the dead-letter topic, partition:offset (as `dlq list` prints it).") var position: String

        func validate() throws {
            guard DeadLetterFilter.position(position) != nil else { throw ValidationError("give the record as partition:offset, e.g. 0:42") }
        }

        func run() async throws {
            let (kafka, _, topic) = try selection.load()
            var filter = selection.filter
            filter.position = DeadLetterFilter.position(position)
            var found: DeadLetterRecord?
            let outcome = try await DeadLetterReader.read(kafka: kafka, topic: topic, timeout: selection.timeout, only: filter.position) { record in
                guard filter.matches(record) else { return true }
                found = record
                return false
            }
            if found == nil { try DeadLetterReader.requireComplete(outcome, timeout: selection.timeout) }
            guard let record = found else {
                SafeOutput.printError("dlq: no record \(position) in '\(topic)' (matching the filters)")
                throw ExitCode(1)
            }
            SafeOutput.print(DeadLetterReader.describe(record))
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send dead-lettered requests to the requests topic again (after fixing what refused them).",
            discussion: "Needs a filter (--kind, --tenant, --id, --since, --position) or --all. Try --dry-run first.")
        @OptionGroup var selection: Selection
        @Option(help: "Only this record, partition:offset.") var position: String?
        @Flag(help: "Replay every record of the topic (no filter).") var all = false
        @Flag(help: "Print what would be sent and what would be refused; send nothing.") var dryRun = false
        @Option(help: "The topic to send to (default: the configuration's kafka.requests).") var to: String?
        @Option(help: "Refuse requests already replayed this many times.") var maxReplays: Int = 3
        @Flag(help: "Also replay poison requests (workers died twice while they ran).") var allowPoison = false
        @Option(help: "Replay at most this many.") var limit: Int = 10_000

        func validate() throws {
            if let position, DeadLetterFilter.position(position) == nil { throw ValidationError("--position takes partition:offset, e.g. 0:42") }
            guard maxReplays >= 1, maxReplays <= 100 else { throw ValidationError("--max-replays takes 1 to 100") }
            guard limit > 0 else { throw ValidationError("--limit takes a positive number") }
            var filter = selection.filter
            filter.position = position.flatMap(DeadLetterFilter.position)
            if !filter.isRestrictive, !all {
                throw ValidationError("choose what to replay: --kind, --tenant, --id, --since or --position, or --all for every record")
            }
        }

        func run() async throws {
            let (kafka, topics, topic) = try selection.load()
            let target = to ?? topics.requests
            guard target != topic else { throw ValidationError("--to is the dead-letter topic itself") }
            var filter = selection.filter
            filter.position = position.flatMap(DeadLetterFilter.position)
            let producer = dryRun ? nil : try KafkaProducer(configuration: kafka)
            var sent = 0
            var refused = 0
            var failed = 0
            var expired = 0
            let now = Date()
            var last: String?
            let outcome = try await DeadLetterReader.read(kafka: kafka, topic: topic, timeout: selection.timeout, only: filter.position) { record in
                guard filter.matches(record) else { return true }
                if let why = record.replayRefusal(maxReplays: maxReplays, allowPoison: allowPoison) {
                    refused += 1
                    SafeOutput.print("refused \(record.partition):\(record.offset)  \(record.kind)  id=\(record.id.isEmpty ? "-" : record.id): \(why)")
                    return true
                }
                guard sent < limit else { return false }
                let late = record.deadline.map { $0 <= now } ?? false
                if late { expired += 1 }
                let note = late ? "  (its deadline has passed: the worker will answer 'expired')" : ""
                if let producer {
                    do {
                        _ = try await producer.send(record.replay(to: target))
                        sent += 1
                        last = "\(record.partition):\(record.offset)"
                        SafeOutput.print(
                            "replayed \(record.partition):\(record.offset)  \(record.kind)  id=\(record.id.isEmpty ? "-" : record.id) → \(target)\(note)")
                    } catch {
                        failed += 1
                        SafeOutput.printError("dlq: could not send \(record.partition):\(record.offset) to '\(target)': \(error)")
                        return false
                    }
                } else {
                    sent += 1
                    SafeOutput.print(
                        "would replay \(record.partition):\(record.offset)  \(record.kind)  id=\(record.id.isEmpty ? "-" : record.id) → \(target)\(note)")
                }
                return true
            }
            await producer?.close()
            let verb = dryRun ? "would replay" : "replayed"
            SafeOutput.printError(
                "dlq: \(verb) \(sent), refused \(refused)\(failed > 0 ? ", failed \(failed)" : "")\(expired > 0 ? ", \(expired) past their deadline" : "")\(sent >= limit ? " (--limit reached)" : "")"
            )
            if !outcome.complete, let last {
                SafeOutput.printError(
                    "dlq: the read stopped at --timeout; the last record replayed was \(last) (a replayed request carries exocheck-replay-of: run again with --since or --position to avoid sending it twice)"
                )
            }
            if failed > 0 { throw ExitCode(1) }
            try DeadLetterReader.requireComplete(outcome, timeout: selection.timeout)
        }
    }
}

/// Reads the dead-letter topic from its start to the end it has when the read begins.
enum DeadLetterReader {
    /// How a read ended.
    struct Outcome {
        /// Records read.
        var read = 0
        /// Records the topic held between its start and its end when the read began.
        var total: Int64 = 0
        /// False when `--timeout` ended the read before every partition was read to its end.
        var complete = true
    }

    /// Records handed to `each` and not yet done with, at most: the reader waits for `each`
    /// (a replay's delivery, a slow terminal) instead of buffering the topic in memory.
    static let handOffLimit = 256

    /// Calls `each` for every record, oldest first per partition, until it returns false or
    /// every partition was read to its end (the broker says so: the last offset may be a
    /// transaction marker or deleted). With `only`, reads just that record. `timeout` counts the
    /// reading only, not the time spent in `each`. Progress on stderr every 2 s when it takes
    /// longer.
    static func read(
        kafka: KafkaConfiguration, topic: String, timeout: Double, only: (partition: Int32, offset: Int64)? = nil,
        each: (DeadLetterRecord) async -> Bool
    ) async throws -> Outcome {
        let marks: [TopicPartition: KafkaMetadata.Watermarks]
        do { marks = try await KafkaMetadata.watermarks(of: topic, configuration: kafka) } catch {
            SafeOutput.printError("dlq: cannot read the dead-letter topic '\(topic)': \(error.description)")
            throw ExitCode(1)
        }
        var ends: [TopicPartition: Int64] = [:]
        var starts: [TopicPartition: Int64] = [:]
        for (tp, w) in marks where w.high > w.low {
            if let only {
                guard tp.partition == only.partition, only.offset >= w.low, only.offset < w.high else { continue }
                starts[tp] = only.offset
                ends[tp] = only.offset + 1
            } else {
                starts[tp] = w.low
                ends[tp] = w.high
            }
        }
        var outcome = Outcome()
        outcome.total = ends.reduce(Int64(0)) { $0 + $1.value - (starts[$1.key] ?? 0) }
        guard !ends.isEmpty else { return outcome }
        var config = kafka
        config.properties["enable.partition.eof"] = "true"
        let consumer = try KafkaConsumer(configuration: config, assignment: starts, handOffLimit: handOffLimit)
        let budget = Duration(clampedSeconds: timeout)
        let began = ContinuousClock.now
        var inCallbacks = Duration.zero
        var lastProgress = ContinuousClock.now
        var remaining = Set(ends.keys)
        // The consumer's events and a tick every 500 ms (so that the time limit is checked while
        // nothing arrives), in one sequence.
        let merged = AsyncStream<KafkaConsumerEvent?> { continuation in
            let a = Task {
                for await e in consumer.events { continuation.yield(e) }
                continuation.finish()
            }
            let b = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(500))
                    continuation.yield(nil)
                }
            }
            continuation.onTermination = { _ in
                a.cancel()
                b.cancel()
            }
        }
        loop: for await event in merged {
            if began.duration(to: .now) - inCallbacks >= budget {
                outcome.complete = false
                break loop
            }
            if lastProgress.duration(to: .now) >= .seconds(2) {
                lastProgress = .now
                SafeOutput.printError("dlq: read \(outcome.read) of \(outcome.total) record(s)…")
            }
            switch event {
            case .partitionEnd(let tp)?:
                remaining.remove(tp)
            case .message(let m)?:
                defer { consumer.handled() }
                let tp = m.topicPartition
                guard let end = ends[tp] else { continue }
                guard m.offset < end else {
                    remaining.remove(tp)  // written after the read began
                    continue
                }
                outcome.read += 1
                let called = ContinuousClock.now
                let goOn = await each(DeadLetterRecord(m))
                inCallbacks += called.duration(to: .now)
                if !goOn { break loop }
                if m.offset + 1 >= end { remaining.remove(tp) }
            default:
                continue
            }
            if remaining.isEmpty { break loop }
        }
        await consumer.close()
        return outcome
    }

    /// Exit 1 with a message when `--timeout` ended the read early.
    static func requireComplete(_ outcome: Outcome, timeout: Double) throws {
        guard !outcome.complete else { return }
        SafeOutput.printError("dlq: stopped after \(Int(timeout)) s of reading with \(outcome.read) of \(outcome.total) record(s) read (--timeout)")
        throw ExitCode(1)
    }

    /// `dlq show`: every field, the headers (printable, capped) and the value (JSON indented
    /// when it is JSON, else text or a hex dump of its start).
    static func describe(_ r: DeadLetterRecord) -> String {
        var lines = [
            "position:   \(r.topic) \(r.partition):\(r.offset)",
            "written:    \(r.time.map { RFC3339.string($0) } ?? "-")",
            "kind:       \(r.kind)",
            "reason:     \(r.reason)",
            "tenant:     \(r.tenant.isEmpty ? "-" : r.tenant)",
            "id:         \(r.id.isEmpty ? "-" : r.id)",
            "source:     \(r.source.isEmpty ? "-" : r.source)",
        ]
        if let d = r.deadline { lines.append("deadline:   \(RFC3339.string(d))\(d <= Date() ? " (passed: a replay is answered 'expired')" : "")") }
        if r.replayCount > 0 { lines.append("replayed:   \(r.replayCount) time(s) before") }
        if r.truncated {
            lines.append(
                "stub:       only the start of the request was kept (\(r.message.header(DeadLetterHeader.truncated).map { DeadLetterRecord.printable($0) } ?? ""))"
            )
        }
        if r.headersDropped { lines.append("headers:    the request's own headers were too large and were not copied") }
        lines.append("headers:")
        for h in r.message.headers.prefix(64) {
            lines.append("  \(DeadLetterRecord.printable(h.name, limit: 128)): \(DeadLetterRecord.printable(h.stringValue ?? "(null)", limit: 256))")
        }
        if r.message.headers.count > 64 { lines.append("  … \(r.message.headers.count - 64) more") }
        lines.append("value (\(r.message.value.count) bytes):")
        let shown = Array(r.message.value.prefix(65_536))
        if let object = try? JSONSerialization.jsonObject(with: Data(shown)),
            let pretty = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        {
            // JSONSerialization escapes control characters inside strings.
            lines.append(String(decoding: pretty, as: UTF8.self))
        } else if let text = String(validating: shown, as: UTF8.self) {
            lines.append(DeadLetterRecord.printable(text, limit: 65_536))
        } else {
            lines.append(
                contentsOf: stride(from: 0, to: min(shown.count, 4_096), by: 16).map { i in
                    shown[i..<min(i + 16, shown.count)].map { String(format: "%02x", $0) }.joined(separator: " ")
                })
        }
        if r.message.value.count > shown.count { lines.append("… \(r.message.value.count - shown.count) more bytes") }
        return lines.joined(separator: "\n")
    }
}

import ArgumentParser
import CheckWorker
import Foundation
import Kafka

/// `exocheck dev-broker`: librdkafka's mock cluster as a process, for multi-process tests and
/// local trials. Prints the bootstrap list, takes fault commands on a FIFO, stops on SIGTERM.
struct DevBrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-broker",
        abstract: "Run an in-process Kafka-protocol cluster (librdkafka's mock) for development and tests.",
        discussion: """
            The bootstrap list (127.0.0.1:p1,127.0.0.1:p2,…) is printed on stdout and written to
            --bootstrap-file. Fault commands, one per line, on --control-fifo:
              down <broker|-1>          take a broker (or all) down
              up <broker|-1>            bring it back
              rtt <broker> <ms>         add round-trip time
              err <apiKey> <code>...    fail the next requests of an API (0 Produce, 1 Fetch, 8 OffsetCommit, 12 Heartbeat)
              leader <topic> <partition> <broker>
              topic <name> <partitions>
              missing <topic>           metadata for the topic answers UNKNOWN_TOPIC_OR_PART (looks deleted)
              present <topic>           undoes 'missing'
            Not available in this broker: CreateTopics/DeleteTopics (create topics here or with --topic).
            """
    )

    @Option(help: "Number of brokers.") var brokers = 3
    @Option(name: .customLong("topic"), help: "A topic to create, name:partitions (repeatable).") var topics: [String] = []
    @Option(help: "Write the bootstrap list to this file (atomically).") var bootstrapFile: String?
    @Option(help: "Read fault commands from this FIFO (created if missing).") var controlFifo: String?

    func run() async throws {
        let cluster = try MockCluster(brokers: brokers)
        for spec in topics {
            let parts = spec.split(separator: ":")
            guard let name = parts.first, let count = parts.count > 1 ? Int(parts[1]) : 1 else {
                throw ValidationError("--topic takes name:partitions, got '\(spec)'")
            }
            try cluster.createTopic(String(name), partitions: count)
        }
        SafeOutput.print(cluster.bootstrapServers)
        if let bootstrapFile {
            let tmp = bootstrapFile + ".tmp-\(getpid())"
            try (cluster.bootstrapServers + "\n").write(toFile: tmp, atomically: false, encoding: .utf8)
            guard rename(tmp, bootstrapFile) == 0 else { throw ValidationError("cannot write \(bootstrapFile)") }
        }
        if let controlFifo { startControl(controlFifo, cluster: cluster) }
        await ProcessSignals.waitForTermination()
        cluster.close()
    }

    /// Reads commands from the FIFO on its own thread (opening a FIFO blocks until a writer comes).
    func startControl(_ path: String, cluster: MockCluster) {
        if !FileManager.default.fileExists(atPath: path) { mkfifo(path, 0o600) }
        Thread {
            while true {
                guard let handle = FileHandle(forReadingAtPath: path) else { return }
                let text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
                try? handle.close()
                for line in text.split(separator: "\n") {
                    let reply = DevBrokerControl.apply(String(line), to: cluster)
                    SafeOutput.standardError.write("dev-broker: \(line): \(reply)\n")
                }
            }
        }.start()
    }
}

enum DevBrokerControl {
    /// Applies one control command; returns "ok" or what went wrong.
    static func apply(_ line: String, to cluster: MockCluster) -> String {
        let w = line.split(separator: " ").map(String.init)
        do {
            switch w.first {
            case "down" where w.count == 2: try cluster.setBroker(Int32(w[1]) ?? -1, up: false)
            case "up" where w.count == 2: try cluster.setBroker(Int32(w[1]) ?? -1, up: true)
            case "rtt" where w.count == 3: try cluster.setRTT(broker: Int32(w[1]) ?? -1, milliseconds: Int(w[2]) ?? 0)
            case "err" where w.count >= 3: cluster.pushRequestErrors(apiKey: Int16(w[1]) ?? 0, w.dropFirst(2).compactMap { Int32($0) })
            case "leader" where w.count == 4: try cluster.setPartitionLeader(topic: w[1], partition: Int32(w[2]) ?? 0, broker: Int32(w[3]) ?? 1)
            case "topic" where w.count == 3: try cluster.createTopic(w[1], partitions: Int(w[2]) ?? 1)
            case "missing" where w.count == 2: cluster.setTopicError(w[1], code: 3)
            case "present" where w.count == 2: cluster.setTopicError(w[1], code: 0)
            default: return "unknown command (down N | up N | rtt N MS | err API CODE... | leader T P N | topic T N | missing T | present T)"
            }
            return "ok"
        } catch {
            return "failed: \(error)"
        }
    }
}

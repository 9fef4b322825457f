import Foundation
import Kafka
import Testing

/// Unique names so that tests never see each other's messages or groups.
func uniqueName(_ prefix: String) -> String { "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())" }

/// Consumer settings the mock cluster needs for quick rebalances (see test-broker.md).
func consumerConfiguration(_ bootstrap: String, group: String, strategy: String = "range",
                           extra: [String: String] = [:]) -> KafkaConfiguration {
    var p = [
        "bootstrap.servers": bootstrap, "group.id": group,
        "session.timeout.ms": "6000", "heartbeat.interval.ms": "500",
        "partition.assignment.strategy": strategy, "auto.offset.reset": "earliest",
        "enable.auto.commit": "false", "log_level": "2",
    ]
    for (k, v) in extra { p[k] = v }
    return KafkaConfiguration(p)
}

func producerConfiguration(_ bootstrap: String, extra: [String: String] = [:]) -> KafkaConfiguration {
    var p = ["bootstrap.servers": bootstrap, "linger.ms": "5", "log_level": "2"]
    for (k, v) in extra { p[k] = v }
    return KafkaConfiguration(p)
}

/// Collects events from a consumer in the background.
actor EventLog {
    private(set) var messages: [KafkaMessage] = []
    private(set) var assigned: Set<TopicPartition> = []
    private(set) var assignments: [[TopicPartition]] = []
    private(set) var revocations: [[TopicPartition]] = []
    private(set) var lost: [[TopicPartition]] = []
    private(set) var errors: [KafkaError] = []

    func record(_ event: KafkaConsumerEvent) {
        switch event {
        case .message(let m): messages.append(m)
        case .assigned(let p): assigned.formUnion(p); assignments.append(p)
        case .revoked(let p): assigned.subtract(p); revocations.append(p)
        case .lost(let p): assigned.subtract(p); lost.append(p)
        case .error(let e): errors.append(e)
        case .starts, .partitionEnd: break
        }
    }
}

/// Consumes `consumer.events` into an `EventLog` until the stream ends.
func collect(_ consumer: KafkaConsumer) -> (EventLog, Task<Void, Never>) {
    let log = EventLog()
    let task = Task {
        for await event in consumer.events { await log.record(event) }
    }
    return (log, task)
}

/// Threads of this process that belong to librdkafka ("rdk:…") or to the Swift layer's poll
/// loops ("kafka-…"), from /proc (Linux).
func threadCount() -> Int {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
    return tasks.filter { tid in
        let name = (try? String(contentsOfFile: "/proc/self/task/\(tid)/comm", encoding: .utf8)) ?? ""
        return name.hasPrefix("rdk:") || name.hasPrefix("kafka-")
    }.count
}

/// Runs a process to completion (on its own thread) and returns its output.
func runProcess(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> (Int32, String, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    process.environment = env
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    return await withCheckedContinuation { continuation in
        Thread {
            let o = out.fileHandleForReading.readDataToEndOfFile()
            let e = err.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            continuation.resume(returning: (process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self)))
        }.start()
    }
}

/// The python3 that has confluent-kafka, if any.
func pythonWithConfluentKafka() -> String? {
    for candidate in ["/usr/bin/env"] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: candidate)
        p.arguments = ["python3", "-c", "import confluent_kafka"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try? p.run()
        p.waitUntilExit()
        if p.terminationStatus == 0 { return "python3" }
    }
    return nil
}

/// Interop tests must run in CI (which installs the Python client and noida-db); locally they
/// are skipped only when the tools are missing and EXOCHECK_REQUIRE_INTEROP is not set.
var interopRequired: Bool { ProcessInfo.processInfo.environment["EXOCHECK_REQUIRE_INTEROP"] == "1" }

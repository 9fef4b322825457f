import ArgumentParser
import CheckWorker
import Foundation
import Kafka

/// `exocheck bench kafka`: produce and consume N messages through `dev-broker`, then the same
/// with kcat (a C client) on the same broker, as the reference.
struct BenchKafka: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka",
        abstract: "Produce and consume messages through dev-broker; compare with kcat."
    )

    @Option(help: "Messages each way.") var messages = 200_000
    @Option(help: "Message size in bytes.") var size = 512
    @Option(help: "Partitions of the benchmark topics (the mock broker keeps ~5 MB per partition).") var partitions = 48
    @Option(help: "Sends in flight at once.") var window = 20_000

    func run() async throws {
        let dir = NSTemporaryDirectory() + "exocheck-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bootstrapFile = dir + "/bootstrap"
        let broker = Process()
        broker.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        broker.arguments = [
            "dev-broker", "--brokers", "1", "--bootstrap-file", bootstrapFile,
            "--topic", "bench-swift:\(partitions)", "--topic", "bench-kcat:\(partitions)",
        ]
        broker.standardOutput = FileHandle.nullDevice
        try broker.run()
        defer { broker.terminate(); broker.waitUntilExit() }
        var bootstrap = ""
        for _ in 0..<100 where bootstrap.isEmpty {
            try await Task.sleep(for: .milliseconds(50))
            bootstrap = ((try? String(contentsOfFile: bootstrapFile, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard !bootstrap.isEmpty else { throw ValidationError("dev-broker did not start") }
        SafeOutput.print("exocheck bench kafka: \(messages) messages of \(size) B, \(partitions) partitions, dev-broker at \(bootstrap)")

        // Swift producer.
        let payload = [UInt8](repeating: UInt8(ascii: "x"), count: size)
        let producer = try KafkaProducer(
            configuration: KafkaConfiguration([
                "bootstrap.servers": bootstrap, "linger.ms": "5", "queue.buffering.max.messages": "1000000", "log_level": "3",
            ]))
        let total = messages
        let window = max(1, min(self.window, total))
        let produceStart = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<total {
                if i >= window { try await group.next() }
                group.addTask { try await producer.send(OutgoingMessage(topic: "bench-swift", key: Array("k\(i % 1000)".utf8), value: payload)) }
            }
            try await group.waitForAll()
        }
        let produceSeconds = seconds(since: produceStart)
        await producer.close()

        // Swift consumer.
        let consumer = try KafkaConsumer(
            configuration: KafkaConfiguration([
                "bootstrap.servers": bootstrap, "group.id": "bench-\(getpid())", "auto.offset.reset": "earliest",
                "session.timeout.ms": "6000", "heartbeat.interval.ms": "500", "enable.auto.commit": "false", "log_level": "3",
            ]), topics: ["bench-swift"])
        var consumed = 0
        var consumeStart: ContinuousClock.Instant? = nil
        for await event in consumer.events {
            guard case .message = event else { continue }
            if consumeStart == nil { consumeStart = .now }
            consumed += 1
            if consumed == total { break }
        }
        let consumeSeconds = seconds(since: consumeStart ?? .now)
        await consumer.close()

        // kcat on the same broker.
        var kcatProduce: Double? = nil
        var kcatConsume: Double? = nil
        if let kcat = Self.which("kcat") {
            let file = dir + "/messages.txt"
            let line = String(repeating: "x", count: max(1, size - 1)) + "\n"
            _ = FileManager.default.createFile(atPath: file, contents: Data(String(repeating: line, count: total).utf8))
            let t0 = ContinuousClock.now
            try Self.runQuietly(
                kcat, ["-P", "-b", bootstrap, "-t", "bench-kcat", "-l", file, "-X", "linger.ms=5", "-X", "queue.buffering.max.messages=1000000"])
            kcatProduce = seconds(since: t0)
            let t1 = ContinuousClock.now
            try Self.runQuietly(kcat, ["-C", "-b", bootstrap, "-t", "bench-kcat", "-o", "beginning", "-c", "\(total)", "-e", "-q", "-f", ""])
            kcatConsume = seconds(since: t1)
        }
        func rate(_ s: Double) -> String { String(format: "%8.0f msg/s  (%6.2f s)", Double(total) / s, s) }
        SafeOutput.print(
            "  produce  swift \(rate(produceSeconds))"
                + (kcatProduce.map { "   kcat \(rate($0))   swift/kcat \(String(format: "%.2f", $0 / produceSeconds))" } ?? "   kcat not found"))
        SafeOutput.print(
            "  consume  swift \(rate(consumeSeconds))"
                + (kcatConsume.map { "   kcat \(rate($0))   swift/kcat \(String(format: "%.2f", $0 / consumeSeconds))" } ?? ""))
        SafeOutput.print("  (kcat consume includes its connect and group-less assignment; swift consume starts at the first message)")
    }

    func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = start.duration(to: .now)
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    static func which(_ name: String) -> String? {
        (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":").map { "\($0)/\(name)" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func runQuietly(_ executable: String, _ arguments: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        if p.terminationStatus != 0 { throw ValidationError("\(executable) \(arguments.joined(separator: " ")) failed") }
    }
}

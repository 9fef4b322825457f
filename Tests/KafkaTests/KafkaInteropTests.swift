import Foundation
import Kafka
import Testing
import ExocheckTestSupport

/// A background process (dev-broker, noida-db, a Python member) killed at the end.
final class BackgroundProcess: Sendable {
    let process: Process
    let stdoutPath: String
    let stderrPath: String

    init(_ executable: String, _ arguments: [String], name: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        let dir = NSTemporaryDirectory()
        stdoutPath = dir + "\(uniqueName(name)).out"
        stderrPath = dir + "\(uniqueName(name)).err"
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        p.standardError = FileHandle(forWritingAtPath: stderrPath)
        try p.run()
        process = p
    }

    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    func kill(signal: Int32 = SIGTERM) {
        if process.isRunning { Foundation.kill(process.processIdentifier, signal) }
    }

    func wait() async {
        let p = process
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            Thread {
                p.waitUntilExit()
                c.resume()
            }.start()
        }
    }

    deinit {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(atPath: stdoutPath)
        try? FileManager.default.removeItem(atPath: stderrPath)
    }
}

enum Tools {
    static var exocheck: String { ExocheckBinary.path }

    static var interopScript: String {
        Bundle.module.url(forResource: "Resources/interop", withExtension: "py")?.path ?? ""
    }

    static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let p = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    static var python: String? { pythonWithConfluentKafka() != nil ? which("python3") : nil }

    static var noidaServer: String? {
        guard let python3 = which("python3") else { return nil }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python3)
        p.arguments = ["-c", "import noida_db, os; print(os.path.join(os.path.dirname(noida_db.__file__), 'noida-db'))"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        p.waitUntilExit()
        let path = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard p.terminationStatus == 0, FileManager.default.fileExists(atPath: path) else { return nil }
        chmod(path, 0o755)
        return path
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

/// Starts `exocheck dev-broker` and waits for its bootstrap file.
func startDevBroker(topics: [String], brokers: Int = 3) async throws -> (BackgroundProcess, String, String) {
    let dir = NSTemporaryDirectory() + uniqueName("devbroker")
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let file = dir + "/bootstrap"
    let fifo = dir + "/control"
    let broker = try BackgroundProcess(Tools.exocheck, ["dev-broker", "--brokers", "\(brokers)", "--bootstrap-file", file,
                                                        "--control-fifo", fifo] + topics.flatMap { ["--topic", $0] }, name: "devbroker")
    let ok = await eventually(timeout: .seconds(10)) { FileManager.default.fileExists(atPath: file) }
    guard ok, let bootstrap = try? String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) else {
        throw KafkaError(message: "dev-broker did not start: \(broker.stderr)")
    }
    return (broker, bootstrap, fifo)
}

@Suite("Kafka: dev-broker process and an independent client", .serialized)
struct KafkaInteropTests {
    @Test("dev-broker prints its bootstrap list, kcat lists its brokers, SIGTERM stops it")
    func devBroker() async throws {
        let topic = uniqueName("devb")
        let (broker, bootstrap, fifo) = try await startDevBroker(topics: ["\(topic):3"])
        #expect(bootstrap.split(separator: ",").count == 3)
        #expect(broker.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == bootstrap)
        if let kcat = Tools.which("kcat") {
            let (code, out, _) = try await runProcess(kcat, ["-b", bootstrap, "-L", "-m", "5"])
            #expect(code == 0)
            #expect(out.contains("3 brokers"))
            #expect(out.contains("topic \"\(topic)\" with 3 partitions"))
        } else {
            #expect(!interopRequired, "kcat is required")
        }
        // Fault commands through the FIFO.
        try "down 1\nup 1\nbogus\n".write(toFile: fifo, atomically: false, encoding: .utf8)
        #expect(await eventually(timeout: .seconds(5)) { broker.stderr.contains("up 1: ok") })
        #expect(broker.stderr.contains("down 1: ok"))
        #expect(broker.stderr.contains("bogus: unknown command"))
        broker.kill(signal: SIGTERM)
        await broker.wait()
        #expect(broker.process.terminationStatus == 0)
    }

    @Test("messages cross between the Swift layer and Python confluent-kafka through dev-broker")
    func pythonInterop() async throws {
        guard let python = Tools.python else {
            #expect(!interopRequired, "python3 with confluent-kafka is required")
            return
        }
        let topic = uniqueName("interop")
        let back = uniqueName("interop-back")
        let (broker, bootstrap, _) = try await startDevBroker(topics: ["\(topic):3", "\(back):2"])
        defer { broker.kill() }
        // Python → Swift
        let (code, out, err) = try await runProcess(python, [Tools.interopScript, "produce", bootstrap, topic, "50"])
        #expect(code == 0, "\(out) \(err)")
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(bootstrap, group: uniqueName("g")), topics: [topic])
        let (log, task) = collect(consumer)
        #expect(await eventually { await log.messages.count == 50 })
        let messages = await log.messages
        #expect(Set(messages.map { String(decoding: $0.value, as: UTF8.self) }) == Set((0..<50).map { "py-\($0)" }))
        #expect(messages.allSatisfy { $0.header("exocheck-id") == String(decoding: $0.value, as: UTF8.self) })
        await consumer.close()
        await task.value
        // Swift → Python
        let producer = try KafkaProducer(configuration: producerConfiguration(bootstrap))
        for i in 0..<20 {
            try await producer.send(OutgoingMessage(topic: back, key: "s\(i % 4)", value: "swift-\(i)", headers: [KafkaHeader("exocheck-id", "swift-\(i)")]))
        }
        await producer.close()
        let (code2, lines, err2) = try await runProcess(python, [Tools.interopScript, "consume", bootstrap, back, uniqueName("pyg"), "20"])
        #expect(code2 == 0, "\(err2)")
        let decoded = lines.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(decoded.count == 20)
        #expect(Set(decoded.compactMap { $0["value"] as? String }) == Set((0..<20).map { "swift-\($0)" }))
        #expect(decoded.allSatisfy { ($0["headers"] as? [String: String])?["exocheck-id"] == $0["value"] as? String })
    }

    @Test("after a member is killed with SIGKILL, the survivor owns every partition")
    func killedMember() async throws {
        guard let python = Tools.python else {
            #expect(!interopRequired, "python3 with confluent-kafka is required")
            return
        }
        let cluster = try MockCluster(brokers: 1)
        defer { cluster.close() }
        let topic = uniqueName("kill")
        try cluster.createTopic(topic, partitions: 4)
        let group = uniqueName("g")
        let member = try BackgroundProcess(python, [Tools.interopScript, "member", cluster.bootstrapServers, topic, group, "range"], name: "member")
        #expect(await eventually(timeout: .seconds(20)) { member.stdout.contains("assigned") })
        let survivor = try KafkaConsumer(configuration: consumerConfiguration(cluster.bootstrapServers, group: group), topics: [topic])
        let (log, task) = collect(survivor)
        #expect(await eventually(timeout: .seconds(40)) { let n = await log.assigned.count; return n > 0 && n < 4 })
        member.kill(signal: SIGKILL)
        await member.wait()
        #expect(await eventually(timeout: .seconds(60)) { await log.assigned.count == 4 })
        await survivor.close()
        await task.value
    }

    @Test("an independent broker implementation (noida-db): round trip, group, commit (eager assignor)")
    func noida() async throws {
        guard let server = Tools.noidaServer else {
            #expect(!interopRequired, "noida-db is required (pip install noida-db==0.2.3)")
            return
        }
        let port = Tools.freePort()
        let data = NSTemporaryDirectory() + uniqueName("noida")
        let broker = try BackgroundProcess(server, ["start", "--only", "kafka", "--kafka-port", "\(port)", "--data-dir", data], name: "noida")
        defer {
            broker.kill(signal: SIGKILL)
            try? FileManager.default.removeItem(atPath: data)
        }
        let bootstrap = "127.0.0.1:\(port)"
        let topic = uniqueName("noida")
        let producer = try KafkaProducer(configuration: producerConfiguration(bootstrap))
        var sent = 0
        for i in 0..<20 {
            // The first sends may race the server's start-up.
            for attempt in 0..<50 {
                do {
                    try await producer.send(OutgoingMessage(topic: topic, key: "k\(i)", value: "n-\(i)", headers: [KafkaHeader("exocheck-id", "n-\(i)")]))
                    sent += 1
                    break
                } catch {
                    if attempt == 49 { Issue.record("send failed: \(error)") }
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
        }
        await producer.close()
        #expect(sent == 20)
        let group = uniqueName("g")
        let first = try KafkaConsumer(configuration: consumerConfiguration(bootstrap, group: group), topics: [topic])
        var seen: [String] = []
        for await event in first.events {
            guard case .message(let m) = event else { continue }
            #expect(m.header("exocheck-id") == String(decoding: m.value, as: UTF8.self))
            seen.append(String(decoding: m.value, as: UTF8.self))
            try first.store(m.topicPartition, offset: m.offset + 1)
            if seen.count == 10 { break }
        }
        try await first.commit()
        await first.close()
        let second = try KafkaConsumer(configuration: consumerConfiguration(bootstrap, group: group), topics: [topic])
        for await event in second.events {
            guard case .message(let m) = event else { continue }
            seen.append(String(decoding: m.value, as: UTF8.self))
            if seen.count == 20 { break }
        }
        await second.close()
        #expect(seen == (0..<20).map { "n-\($0)" })
    }
}

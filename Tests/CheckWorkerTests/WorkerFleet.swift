import CheckWorker
import ExchangeChecks
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GraphSimulator
import Kafka
import Testing
import ExocheckTestSupport

/// A test fleet: an in-process mock Kafka cluster and Graph simulator (both reachable over
/// loopback by other processes), and `exocheck worker` processes.
final class WorkerFleet: @unchecked Sendable {
    // @unchecked: mutated only from the single test task that owns the fleet.
    let cluster: MockCluster
    let simulator: RunningGraphSimulator
    let dir: String
    let requests: String
    let results: String
    let deadLetter: String
    let stateTopic: String
    let heartbeatTopic: String
    let group: String
    let tenantNames: [String]
    var workers: [WorkerProcess] = []
    static let secret = SimulatorConfiguration.defaultClientSecret

    final class WorkerProcess: @unchecked Sendable {
        // @unchecked: the Process is only touched by the owning test task.
        let process: Process
        let logPath: String
        init(process: Process, logPath: String) {
            self.process = process
            self.logPath = logPath
        }
        var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
        func signal(_ s: Int32) { if process.isRunning { kill(process.processIdentifier, s) } }
        func wait(timeout: Duration = .seconds(60)) async -> Int32? {
            let p = process
            return await withCheckedContinuation { c in
                Thread {
                    let end = Date().addingTimeInterval(Double(timeout.components.seconds))
                    while p.isRunning, Date() < end { usleep(50_000) }
                    c.resume(returning: p.isRunning ? nil : p.terminationStatus)
                }.start()
            }
        }
    }

    static var exocheck: String { ExocheckBinary.path }

    /// `faults`: simulator fault rules by generated tenant name (`t0`, `t1`, …);
    /// `tenantSettings`: more keys of a tenant's configuration entry (YAML flow text, such as
    /// `secretExpires: 2027-06-30`), by tenant name.
    init(tenants: Int = 50, users: Int = 40, partitions: Int = 8,
         worker: String = #"{concurrency: 16, listen: "127.0.0.1:0", shutdownGraceSeconds: 20}"#,
         faults: [String: [FaultRule]] = [:], kafkaProperties: [String: String] = [:], replyTopics: [String] = [],
         brokers: Int = 1, tenantSettings: [String: String] = [:]) async throws {
        cluster = try MockCluster(brokers: brokers)
        let suffix = UUID().uuidString.prefix(8).lowercased()
        requests = "requests-\(suffix)"
        results = "results-\(suffix)"
        deadLetter = "requests-dlt-\(suffix)"
        stateTopic = "worker-state-\(suffix)"
        heartbeatTopic = "workers-alive-\(suffix)"
        group = "workers-\(suffix)"
        try cluster.createTopic(requests, partitions: partitions)
        try cluster.createTopic(results, partitions: partitions)
        try cluster.createTopic(deadLetter, partitions: 1)
        try cluster.createTopic(stateTopic, partitions: partitions)
        try cluster.createTopic(heartbeatTopic, partitions: 1)
        for topic in replyTopics { try cluster.createTopic(topic, partitions: 1) }
        tenantNames = (0..<tenants).map { "t\($0)" }
        let generated = tenantNames.enumerated().map { i, name in
            GeneratedTenantSpec(name: name, data: GeneratedData(users: users, seed: UInt64(1000 + i), domain: "\(name).example",
                                                               overQuotaRatio: i % 3 == 0 ? 0.2 : 0),
                              faults: faults[name])
        }
        simulator = try await GraphSimulator(configuration: .standard(generated: generated)).start()
        dir = NSTemporaryDirectory() + "exocheck-fleet-\(suffix)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // An older build (EXOCHECK_BIN) may not know the key.
        let stateLine = !ExocheckBinary.isOverridden ? "stateTopic: \(stateTopic)" : "# stateTopic: \(stateTopic)"
        let heartbeatLine = !ExocheckBinary.isOverridden ? "heartbeatTopic: \(heartbeatTopic)" : "# heartbeatTopic: \(heartbeatTopic)"
        var yaml = """
        kafka:
          properties:
            bootstrap.servers: "\(cluster.bootstrapServers)"
            session.timeout.ms: "6000"
            heartbeat.interval.ms: "500"
            log_level: "3"
        \(kafkaProperties.sorted { $0.key < $1.key }.map { "    \($0.key): \"\($0.value)\"\n" }.joined())  requests: \(requests)
          allowedReplyTopics: [\(replyTopics.joined(separator: ", "))]
          results: \(results)
          deadLetter: \(deadLetter)
          \(stateLine)
          \(heartbeatLine)
          group: \(group)
        worker: \(worker)
        graph: {loginEndpoint: "\(simulator.baseURL)", graphEndpoint: "\(simulator.baseURL)", timeoutSeconds: 10}
        log: {format: json, level: info}
        tenants:

        """
        for name in tenantNames + ["contoso"] {
            let more = tenantSettings[name].map { ", \($0)" } ?? ""
            yaml += "  \(name): {tenantId: \(name).onmicrosoft.com, clientId: \(SimulatorConfiguration.defaultClientId), clientSecretEnv: EXOCHECK_TEST_SECRET\(more)}\n"
        }
        try yaml.write(toFile: dir + "/worker.yaml", atomically: true, encoding: .utf8)
    }

    /// The worker configuration `init` wrote.
    func configuration() throws -> String { try String(contentsOfFile: dir + "/worker.yaml", encoding: .utf8) }

    /// `configuration` (as `init` writes it) without the entries of `tenants`: a test that adds
    /// a tenant later writes the whole text back, then reloads or restarts the worker.
    static func configuration(_ configuration: String, without tenants: Set<String>) -> String {
        configuration.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { line in !tenants.contains { line.hasPrefix("  \($0):") } }.joined(separator: "\n")
    }

    /// Starts `exocheck worker` named `name`; `environment` is added to the test's own.
    func startWorker(_ name: String, environment extra: [String: String] = [:]) throws -> WorkerProcess {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.exocheck)
        p.arguments = ["worker", "--config", dir + "/worker.yaml", "--bootstrap-servers", cluster.bootstrapServers,
                       "--port-file", dir + "/\(name).port"]
        var env = ProcessInfo.processInfo.environment
        env["EXOCHECK_TEST_SECRET"] = Self.secret
        env.merge(extra) { $1 }
        p.environment = env
        let logPath = dir + "/\(name).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        p.standardError = FileHandle(forWritingAtPath: logPath)
        p.standardOutput = FileHandle(forWritingAtPath: logPath)
        try p.run()
        let w = WorkerProcess(process: p, logPath: logPath)
        workers.append(w)
        return w
    }

    /// Waits until the group has settled with every worker holding partitions.
    func waitForAssignments(_ count: Int) async -> Bool {
        await eventually(timeout: .seconds(60)) {
            workers.filter { $0.process.isRunning }.filter { $0.log.contains("partitions assigned") }.count >= count
        }
    }

    func metrics(_ worker: String) async throws -> String {
        let port = (try String(contentsOfFile: dir + "/\(worker).port", encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)
        let (data, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/metrics")!)
        return String(decoding: data, as: UTF8.self)
    }

    /// The value of one series (`name{labels}` exactly as exported) in a /metrics text; nil when
    /// absent. Families exist at 0 from the start, so tests compare values, not presence.
    static func value(of series: String, in metrics: String) -> Double? {
        for line in metrics.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    /// Produces `requests` (each with the headers `headers` gives, by default a well-formed
    /// `traceparent(for:)` its id) and `rawRecords` (key, value; no headers).
    func submit(_ requests: [CheckRequest], rawRecords: [(String?, [UInt8])] = [],
                headers: @escaping @Sendable (CheckRequest) -> [KafkaHeader] = { [KafkaHeader("traceparent", traceparent(for: $0.id))] }) async throws {
        let producer = try KafkaProducer(configuration: KafkaConfiguration(["bootstrap.servers": cluster.bootstrapServers, "linger.ms": "5", "log_level": "3"]))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (i, r) in requests.enumerated() {
                if i % 500 == 499 { try await group.waitForAll() }
                group.addTask {
                    try await producer.send(OutgoingMessage(topic: self.requests, key: Array(r.tenant.utf8), value: r.encoded(),
                                                            headers: headers(r)))
                }
            }
            for (key, value) in rawRecords {
                group.addTask { try await producer.send(OutgoingMessage(topic: self.requests, key: key.map { Array($0.utf8) }, value: value)) }
            }
            try await group.waitForAll()
        }
        await producer.close()
    }

    /// Reads the results topic from the beginning into `sink` until `done` holds.
    func collect(into sink: ResultSink, from topic: String? = nil, timeout: Duration = .seconds(180),
                 until done: @escaping @Sendable (ResultSink) async -> Bool) async throws -> Bool {
        // Every partition assigned from its start, outside any group: a group reader stalls
        // while its coordinator is down and then re-reads from its last commit, and the test
        // broker keeps only about 5 MiB per partition, so under chaos a group reader could fall
        // behind the partition's start and skip results it never saw.
        let config = KafkaConfiguration(["bootstrap.servers": cluster.bootstrapServers, "auto.offset.reset": "earliest", "log_level": "3"])
        let starts = try await KafkaMetadata.startOffsets(topic: topic ?? results, position: .beginning, configuration: config)
        let consumer = try KafkaConsumer(configuration: config, assignment: starts)
        let task = Task {
            for await event in consumer.events {
                if case .message(let m) = event { await sink.add(m) }
            }
        }
        let ok = await eventually(timeout: timeout) { await done(sink) }
        await consumer.close()
        await task.value
        return ok
    }

    private var isShutDown = false

    /// Runs `body`, then shuts the fleet down and waits for that, also when `body` throws.
    func use<T>(_ body: () async throws -> T) async throws -> T {
        do {
            let value = try await body()
            await shutdown()
            return value
        } catch {
            await shutdown()
            throw error
        }
    }

    /// Stops the workers, the simulator and the cluster, and removes the fleet's folder; once.
    func shutdown() async {
        guard !isShutDown else { return }
        isShutDown = true
        for w in workers { w.signal(SIGKILL) }
        for w in workers { _ = await w.wait(timeout: .seconds(10)) }
        await simulator.stop()
        cluster.close()
        try? FileManager.default.removeItem(atPath: dir)
    }
}

actor ResultSink {
    private(set) var results: [CheckResultMessage] = []
    private(set) var raw: [String] = []
    private(set) var traceparents: [String: String] = [:]
    private(set) var keys: [String: String] = [:]

    func add(_ m: KafkaMessage) {
        raw.append(String(decoding: m.value, as: UTF8.self))
        guard let r = CheckResultMessage.decode(m.value) else { return }
        results.append(r)
        if let id = r.id {
            traceparents[id] = m.header("traceparent")
            keys[id] = m.keyString
        }
    }

    var ids: Set<String> { Set(results.compactMap(\.id)) }
    func byId() -> [String: [CheckResultMessage]] {
        Dictionary(grouping: results.compactMap { r in r.id.map { ($0, r) } }, by: \.0).mapValues { $0.map(\.1) }
    }
}

/// A W3C traceparent derived from a request id (the worker copies only well-formed ones).
func traceparent(for id: String) -> String {
    var h: UInt64 = 0xcbf29ce484222325
    for b in id.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
    let hex = String(h, radix: 16)
    let trace = String(repeating: "0", count: 16 - hex.count) + hex
    return "00-\(trace)\(trace)-\(trace)-01"
}

/// Runs `exocheck run` for a tenant of the fleet and returns (stdout without final newline, exit).
func runReference(_ fleet: WorkerFleet, tenant: String, mode: CheckMode, args: [String]) async throws -> (String, Int32) {
    let state = fleet.dir + "/state-run"
    let p = Process()
    p.executableURL = URL(fileURLWithPath: WorkerFleet.exocheck)
    p.arguments = ["run", "--mode=\(mode.rawValue)", "--tenant=\(tenant).onmicrosoft.com",
                   "--client-id=\(SimulatorConfiguration.defaultClientId)", "--client-secret=\(WorkerFleet.secret)",
                   "--login-endpoint=\(fleet.simulator.baseURL)", "--graph-endpoint=\(fleet.simulator.baseURL)",
                   "--statefile-dir=\(state)"] + args
    var env = ProcessInfo.processInfo.environment
    env["TZ"] = ProcessInfo.processInfo.environment["TZ"]
    p.environment = env
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    return await withCheckedContinuation { c in
        Thread {
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            var text = String(decoding: data, as: UTF8.self)
            if text.hasSuffix("\n") { text.removeLast() }
            c.resume(returning: (text, p.terminationStatus))
        }.start()
    }
}

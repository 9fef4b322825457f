import ArgumentParser
import Foundation
import GraphSimulator

/// What `bench worker` and `bench soak` stand on: an `exocheck dev-broker` process with the four
/// topics, the Graph simulator in process with generated tenants, and a worker configuration for
/// them in a temporary folder. `stop()` ends the children and removes the folder.
final class BenchSetup {
    let executable: String
    let dir: String
    let prefix: String
    let bootstrap: String
    let simulator: RunningGraphSimulator
    let tenantNames: [String]
    private(set) var children: [Process] = []

    var requests: String { "\(prefix).requests" }
    var results: String { "\(prefix).results" }
    static let secretEnv = "BENCH_SECRET"

    /// `prefix` names the topics, the group and the tenants (`<prefix>0`, …).
    /// `kafkaProperties` are added to the workers' `kafka.properties`; `extraTopics`
    /// (`name:partitions`) are created on the broker too.
    init(
        prefix: String, partitions: Int, tenants: Int, users: Int, concurrency: Int, kafkaProperties: [String: String] = [:],
        extraTopics: [String] = []
    ) async throws {
        executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
        dir = NSTemporaryDirectory() + "exocheck-bench-\(prefix)-\(getpid())"
        self.prefix = prefix
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let broker = try BenchProcess.spawn(
            executable,
            [
                "dev-broker", "--brokers", "1", "--bootstrap-file", dir + "/bootstrap",
                "--topic", "\(prefix).requests:\(partitions)", "--topic", "\(prefix).results:\(partitions)",
                "--topic", "\(prefix).dlt:1", "--topic", "\(prefix).state:\(partitions)", "--topic", "\(prefix).workers:1",
            ] + extraTopics.flatMap { ["--topic", $0] },
            log: dir + "/broker.log")
        children.append(broker)
        bootstrap = try await BenchProcess.waitForFile(dir + "/bootstrap")
        tenantNames = (0..<tenants).map { "\(prefix)\($0)" }
        simulator = try await GraphSimulator(
            configuration: .standard(
                generated: tenantNames.enumerated().map { i, n in
                    GeneratedTenantSpec(name: n, data: GeneratedData(users: users, seed: UInt64(i + 1), domain: "\(n).example"))
                })
        ).start()
        let extra = kafkaProperties.sorted { $0.key < $1.key }.map { ", \($0.key): \"\($0.value)\"" }.joined()
        var yaml = """
            kafka: {requests: \(prefix).requests, results: \(prefix).results, deadLetter: \(prefix).dlt, stateTopic: \(prefix).state, heartbeatTopic: \(prefix).workers,
                    group: \(prefix)-workers, properties: {session.timeout.ms: "6000", heartbeat.interval.ms: "500", log_level: "3"\(extra)}}
            worker: {concurrency: \(concurrency), listen: "127.0.0.1:0"}
            graph: {loginEndpoint: "\(simulator.baseURL)", graphEndpoint: "\(simulator.baseURL)"}
            log: {format: json, level: warning}
            tenants:

            """
        for n in tenantNames {
            yaml += "  \(n): {tenantId: \(n).onmicrosoft.com, clientId: \(SimulatorConfiguration.defaultClientId), clientSecretEnv: \(Self.secretEnv)}\n"
        }
        try yaml.write(toFile: dir + "/worker.yaml", atomically: true, encoding: .utf8)
    }

    /// Starts worker `index` (its log: `worker<index>.log` in the folder).
    @discardableResult
    func startWorker(_ index: Int) throws -> Process {
        let p = try BenchProcess.spawn(
            executable, ["worker", "--config", dir + "/worker.yaml", "--bootstrap-servers", bootstrap],
            log: dir + "/worker\(index).log", env: [Self.secretEnv: SimulatorConfiguration.defaultClientSecret])
        children.append(p)
        return p
    }

    deinit {
        // Also when a benchmark fails half-way: no broker or worker outlives it.
        for child in children where child.isRunning { child.terminate() }
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Terminates the children, newest first (workers before their broker, so that they can
    /// commit), waiting up to 10 s for each and killing what is left, then stops the simulator and
    /// removes the folder. (Was: SIGTERM without waiting, so a worker spent up to its shutdown
    /// grace retrying a broker already gone, using CPU during the next benchmark.)
    func stop() async {
        for child in children.reversed() where child.isRunning {
            child.terminate()
            let until = ContinuousClock.now.advanced(by: .seconds(10))
            while child.isRunning, ContinuousClock.now < until { try? await Task.sleep(for: .milliseconds(50)) }
            if child.isRunning { kill(child.processIdentifier, SIGKILL) }
        }
        await simulator.stop()
        try? FileManager.default.removeItem(atPath: dir)
    }
}

import ArgumentParser
import CheckWorker
import ExchangeChecks
import Foundation
import GraphSimulator

/// `exocheck simulate-graph`: the Graph/login simulator as a process.
struct SimulateGraphCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate-graph",
        abstract: "Serve a loopback stand-in for the Microsoft login and Graph reports endpoints.",
        discussion: """
            Built-in tenants (client id 8f2c6d1e-4b7a-4e39-9c55-0a1b2c3d4e5f, secret 'Xy7~Q8r.pL-2+s/Ab=c%d&e'):
            contoso.onmicrosoft.com (12 users, 14 mailboxes), empty, tailspin (over quota), contoso-direct
            (no redirect), contoso-concealed (hashed names), shortlived (5 s tokens), fault-429, fault-429-daily,
            fault-429-once, fault-500, fault-503, fault-403, fault-401, fault-token-500, fault-token-503-html,
            fault-download-500, slow, slow-short, malformed-<kind>; plus --generated N tenants gen-0 … gen-N-1.
            Admin: GET /_sim/health, GET /_sim/stats, POST /_sim/reset.
            """
    )

    @Option(help: "Address to listen on (loopback by default).") var host = "127.0.0.1"
    @Option(help: "Port; 0 picks a free one.") var port = 0
    @Option(help: "Also write the bound port to this file (atomically).") var portFile: String?
    @Option(help: "JSON configuration file (replaces the built-in tenants).") var config: String?
    @Option(help: "Number of generated tenants gen-0.onmicrosoft.com … to add.") var generated = 0
    @Option(help: "Users per generated tenant.") var users = 500
    @Option(help: "Seed of the generated data.") var seed: UInt64 = 20250628
    @Option(help: "Stop by itself after this many seconds (0 = until SIGTERM/SIGINT).") var lifetime: Double = 0

    func run() async throws {
        let configuration: SimulatorConfiguration
        if let config {
            configuration = try SimulatorConfiguration.load(path: config)
        } else {
            configuration = .standard(
                generated: (0..<generated).map {
                    GeneratedTenantSpec(name: "gen-\($0)", data: GeneratedData(users: users, seed: seed &+ UInt64($0), domain: "gen\($0).example"))
                })
        }
        let running = try await GraphSimulator(configuration: configuration).start(host: host, port: port)
        // Written unbuffered: scripts wait for this line on a pipe.
        SafeOutput.standardOutput.write("graph simulator listening on \(running.baseURL)\n")
        if let portFile {
            let tmp = portFile + ".tmp"
            try "\(running.port)\n".write(toFile: tmp, atomically: false, encoding: .utf8)
            rename(tmp, portFile)
        }
        await ProcessSignals.waitForTermination(lifetime: lifetime)
        await running.stop()
    }
}

/// Waits for SIGTERM/SIGINT (or a lifetime).
enum ProcessSignals {
    static func waitForTermination(lifetime: Double = 0) async {
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let (stream, continuation) = AsyncStream<Void>.makeStream()
        let sources = [SIGTERM, SIGINT].map { sig -> DispatchSourceSignal in
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { continuation.yield() }
            source.resume()
            return source
        }
        if lifetime > 0 {
            Task {
                try? await Task.sleep(for: Duration(clampedSeconds: lifetime))
                continuation.yield()
            }
        }
        for await _ in stream { break }
        sources.forEach { $0.cancel() }
    }
}

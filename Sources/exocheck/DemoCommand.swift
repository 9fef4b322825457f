import ArgumentParser
import ExchangeChecks
import Foundation
import GraphReports
import GraphSimulator

/// `exocheck demo`: no external services. Starts the Graph simulator in process and runs checks
/// on its tenants through the same code path as `exocheck run`.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a self-contained demo: simulated Microsoft Graph tenants and Centreon-compatible checks."
    )

    func run() async throws {
        let sim = try await GraphSimulator(configuration: .standard(generated: [
            GeneratedTenantSpec(name: "gen-healthy", data: GeneratedData(users: 2000, seed: 7, domain: "healthy.example", overQuotaRatio: 0)),
            GeneratedTenantSpec(name: "gen-overquota", data: GeneratedData(users: 2000, seed: 8, domain: "full.example", overQuotaRatio: 0.05)),
        ])).start()
        print("Graph simulator on \(sim.baseURL) (login and Graph endpoints)\n")
        let transport = HTTPTransport.make()
        let tokens = TokenCache()
        let checks: [(String, [String])] = [
            ("contoso.onmicrosoft.com", ["--mode=email-activity"]),
            ("contoso.onmicrosoft.com", ["--mode=mailbox-usage", "--filter-counters=.*", "--filter-perfdata=^active"]),
            ("gen-healthy.onmicrosoft.com", ["--mode=mailbox-usage", "--warning-active-mailboxes=40:"]),
            ("gen-overquota.onmicrosoft.com", ["--mode=mailbox-usage", "--filter-counters=status", "--output-ignore-perfdata"]),
            ("fault-429-once.onmicrosoft.com", ["--mode=email-activity", "--output-ignore-perfdata"]),
            ("fault-403.onmicrosoft.com", ["--mode=mailbox-usage"]),
            ("malformed-truncated.onmicrosoft.com", ["--mode=mailbox-usage"]),
        ]
        var byStatus: [CheckStatus: Int] = [:]
        for (tenant, args) in checks {
            let argv = args + ["--tenant=\(tenant)"]
            guard case .check(let config, _) = Invocation.parse(try CentreonArguments(argv), requireConnection: false) else { continue }
            let session = GraphSession(
                app: AppIdentity(tenant: tenant, clientId: SimulatorConfiguration.defaultClientId,
                                 credential: .secret(SimulatorConfiguration.defaultClientSecret),
                                 endpoints: GraphEndpoints(login: sim.baseURL, graph: sim.baseURL)),
                transport: transport, tokenCache: tokens)
            let outcome = await ExchangeCheckRunner.run(config, reports: session, deadline: .now.advanced(by: .seconds(20)))
            let rendered = outcome.rendered(config.output)
            byStatus[rendered.status, default: 0] += 1
            print("$ exocheck run \(argv.joined(separator: " ")) …")
            let line = rendered.text.split(separator: "\n").first.map(String.init) ?? ""
            print(line.count > 400 ? String(line.prefix(400)) + " …" : line)
            print("(exit \(rendered.exitCode))\n")
        }
        let stats = await sim.stats()
        print("Checks by status: " + CheckStatus.allCases.map { "\($0.rawValue) \(byStatus[$0] ?? 0)" }.joined(separator: ", "))
        print("Graph simulator saw \(stats.tokenRequests) token requests, \(stats.reportRequests) report requests, \(stats.downloadRequests) downloads.")
        await transport.shutdown()
        await sim.stop()
    }
}

import ExchangeChecks
import Foundation
import GraphSimulator
import ExocheckTestSupport
import Testing

/// `exocheck run` with a certificate credential and credential expiry warnings (issue 12 item 3),
/// against the simulator's identity endpoint, which verifies the signed client assertion.
@Suite("run's certificate credential and expiry warnings", .serialized)
struct CredentialTests {
    static func openssl(_ args: [String]) async throws {
        let out = try await runProcess("/usr/bin/env", ["openssl"] + args)
        #expect(out.exitCode == 0, "openssl \(args.first ?? "")")
    }

    @Test("run --certificate-file/--private-key-file prints exactly what run --client-secret prints; a certificate within --expiry-warning-days warns on stderr only; 0 days: no warning; a wrong key is an auth UNKNOWN; unreadable or oversized files are refused before any request")
    func certificateRun() async throws {
        let dir = try TemporaryDirectory("exocheck-cred")
        defer { dir.remove() }
        let d = dir.path
        try await Self.openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=exocheck-test", "-days", "5",
                                "-keyout", d + "/app.key", "-out", d + "/app.crt"])
        try await Self.openssl(["rsa", "-in", d + "/app.key", "-pubout", "-out", d + "/app.pub"])
        try await Self.openssl(["genrsa", "-out", d + "/other.key", "2048"])
        try Data(repeating: 0x41, count: 256 * 1024 + 1).write(to: URL(fileURLWithPath: d + "/big.crt"))
        var config = SimulatorConfiguration.standard()
        var tenant = SimulatedTenant(name: "certified", data: .fixture("small"))
        tenant.aliases = ["certified.onmicrosoft.com"]
        tenant.clients = [SimulatedClient(
            clientId: SimulatorConfiguration.defaultClientId, clientSecret: SimulatorConfiguration.defaultClientSecret,
            certificatePEM: try String(contentsOfFile: d + "/app.crt", encoding: .utf8),
            publicKeyPEM: try String(contentsOfFile: d + "/app.pub", encoding: .utf8))]
        config.tenants.append(tenant)
        try await withSimulator(config) { sim in
            var runs = 0
            func run(_ credential: [String]) async throws -> ExocheckBinary.Output {
                runs += 1  // a state directory each: no run may use another's cached token
                return try await ExocheckBinary.run([
                    "run", "--mode=mailbox-usage", "--tenant=certified.onmicrosoft.com", "--client-id=\(SimulatorConfiguration.defaultClientId)",
                    "--login-endpoint=\(sim.baseURL)", "--graph-endpoint=\(sim.baseURL)", "--statefile-dir=\(d)/state-\(runs)",
                    "--filter-counters=.*",
                ] + credential, environment: ["TZ": "UTC"])
            }
            let bySecret = try await run(["--client-secret=\(SimulatorConfiguration.defaultClientSecret)"])
            #expect(bySecret.exitCode != 3 && !bySecret.stdout.hasPrefix("UNKNOWN"), "\(bySecret.stdout)\(bySecret.stderr)")
            #expect(bySecret.stderr.isEmpty)
            let tokensBefore = await sim.stats().tokenRequests
            let byCertificate = try await run(["--certificate-file=\(d)/app.crt", "--private-key-file=\(d)/app.key"])
            #expect(byCertificate.exitCode == bySecret.exitCode)
            #expect(byCertificate.stdout == bySecret.stdout)
            #expect(await sim.stats().tokenRequests == tokensBefore + 1, "one token request, with the signed assertion")
            #expect(byCertificate.stderr.hasPrefix("exocheck: warning: The client certificate expires in 4 days ("), "\(byCertificate.stderr)")
            #expect(byCertificate.stderr.contains("replace it before then."))

            let quiet = try await run(["--certificate-file=\(d)/app.crt", "--private-key-file=\(d)/app.key", "--expiry-warning-days=0"])
            #expect(quiet.stdout == bySecret.stdout)
            #expect(quiet.stderr.isEmpty, "\(quiet.stderr)")
            let far = try await run(["--certificate-file=\(d)/app.crt", "--private-key-file=\(d)/app.key", "--expiry-warning-days=4"])
            #expect(far.stderr.isEmpty, "5 days less a few seconds remain: outside a 4-day window")

            let wrongKey = try await run(["--certificate-file=\(d)/app.crt", "--private-key-file=\(d)/other.key"])
            #expect(wrongKey.exitCode == 3)
            #expect(wrongKey.stdout.hasPrefix("UNKNOWN: "), "\(wrongKey.stdout)")
            #expect(wrongKey.stdout.contains("AADSTS700027") || wrongKey.stderr.contains("AADSTS700027"), "\(wrongKey.stdout)\(wrongKey.stderr)")

            let secretExpired = try await run(["--client-secret=\(SimulatorConfiguration.defaultClientSecret)", "--secret-expires=2020-01-01"])
            #expect(secretExpired.stdout == bySecret.stdout)
            #expect(secretExpired.stderr.hasPrefix("exocheck: warning: The client secret expired "), "\(secretExpired.stderr)")
            #expect(secretExpired.stderr.contains("(2020-01-01)"))

            let tokensNow = await sim.stats().tokenRequests
            // A private key pasted where its path goes is never echoed; a FIFO is refused without
            // waiting for a writer.
            let pem = try String(contentsOfFile: d + "/app.key", encoding: .utf8)
            #expect(mkfifo(d + "/fifo", 0o600) == 0)
            let pasted = try await run(["--certificate-file=\(d)/app.crt", "--private-key-file=\(pem)"])
            #expect(pasted.exitCode == 3)
            #expect(pasted.stdout.contains("the private key file (a value that is not a file path: not shown) cannot be read"), "\(pasted.stdout)")
            #expect(!pasted.stdout.contains("PRIVATE") && !pasted.stderr.contains("PRIVATE") && !pasted.stdout.contains(String(pem.dropFirst(40).prefix(20))))
            for (certificate, key, expected) in [
                ("\(d)/fifo", "\(d)/app.key", "the certificate file '\(d)/fifo' is not a regular file"),
                ("\(d)/missing.crt", "\(d)/app.key", "the certificate file '\(d)/missing.crt' cannot be read"),
                ("/dev/zero", "\(d)/app.key", "the certificate file '/dev/zero' is not a regular file"),
                ("\(d)/big.crt", "\(d)/app.key", "the certificate file '\(d)/big.crt' holds more than 256 KiB"),
                ("\(d)/app.key", "\(d)/app.key", "holds no PEM certificate"),
                ("\(d)/app.crt", "\(d)/app.crt", "is not an RSA private key in PEM form"),
            ] {
                let refused = try await run(["--certificate-file=\(certificate)", "--private-key-file=\(key)"])
                #expect(refused.exitCode == 3)
                #expect(refused.stdout.hasPrefix("UNKNOWN: Cannot use the certificate credential: "), "\(refused.stdout)")
                #expect(refused.stdout.contains(expected), "\(refused.stdout)")
                #expect(!refused.stdout.contains("PRIVATE KEY"))
            }
            #expect(await sim.stats().tokenRequests == tokensNow, "a credential that cannot be made sends nothing")
        }
    }
}

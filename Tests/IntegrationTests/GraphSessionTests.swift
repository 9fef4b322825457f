import ExchangeChecks
import Foundation
import GraphReports
import GraphSimulator
import Testing

@testable import GraphReports
import ExocheckTestSupport

/// The Graph client against the simulator over real HTTP on loopback.
@Suite("Graph client")
struct GraphSessionTests {
    static let mailbox = ReportRequest(report: "getMailboxUsageDetail", parameter: .period("D7"))

    func session(_ sim: RunningGraphSimulator, tenant: String, secret: String = SimulatorConfiguration.defaultClientSecret,
                 cache: TokenCache = TokenCache(), disk: DiskTokenStore? = nil, timeout: Duration = .seconds(10),
                 transport: HTTPTransport) -> GraphSession {
        GraphSession(app: AppIdentity(tenant: tenant, clientId: SimulatorConfiguration.defaultClientId, credential: .secret(secret),
                                      endpoints: GraphEndpoints(login: sim.baseURL, graph: sim.baseURL)),
                     transport: transport, tokenCache: cache, diskStore: disk, requestTimeout: timeout)
    }

    func deadline(_ seconds: Double = 20) -> ContinuousClock.Instant { .now.advanced(by: .milliseconds(Int64(seconds * 1000))) }

    func withTransport<T>(_ body: (HTTPTransport) async throws -> T) async throws -> T {
        let transport = HTTPTransport.make()
        do {
            let v = try await body(transport)
            await transport.shutdown()
            return v
        } catch {
            await transport.shutdown()
            throw error
        }
    }

    @Test("one token request for many concurrent checks of the same tenant (single flight)")
    func singleFlight() async throws {
        try await withSimulator { sim in
            try await withTransport { transport in
                let s = session(sim, tenant: "contoso.onmicrosoft.com", transport: transport)
                let d = deadline()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<20 {
                        group.addTask {
                            var stats = FetchStats()
                            _ = try await s.token(deadline: d, stats: &stats)
                        }
                    }
                    try await group.waitForAll()
                }
                #expect(await sim.stats().tokenRequests == 1)
            }
        }
    }

    @Test("the report redirect is followed without sending the bearer token to the download URL")
    func redirectWithoutAuthorization() async throws {
        try await withSimulator { sim in
            try await withTransport { transport in
                var stats = FetchStats()
                let body = try await session(sim, tenant: "contoso.onmicrosoft.com", transport: transport)
                    .report(Self.mailbox, deadline: deadline(), stats: &stats)
                #expect(try ReportParser.mailboxUsage(body).count == 14)
                let simStats = await sim.stats()
                #expect(simStats.downloadRequests == 1)
                #expect(simStats.downloadsWithAuthorization == 0)
                #expect(stats.graphCalls == 2)
            }
        }
    }

    @Test("a single 429 with Retry-After: 1 is waited out and ends in the report")
    func retryAfterOnce() async throws {
        try await withSimulator { sim in
            try await withTransport { transport in
                var stats = FetchStats()
                let start = ContinuousClock.now
                let body = try await session(sim, tenant: "fault-429-once.onmicrosoft.com", transport: transport)
                    .report(Self.mailbox, deadline: deadline(), stats: &stats)
                #expect(!body.isEmpty)
                #expect(stats.throttled == 1)
                #expect(start.duration(to: .now) >= .milliseconds(900))
            }
        }
    }

    @Test("a Retry-After beyond the time budget fails at once as throttled, saying when to retry")
    func retryAfterBeyondBudget() async throws {
        try await withSimulator { sim in
            try await withTransport { transport in
                var stats = FetchStats()
                let start = ContinuousClock.now
                await #expect {
                    _ = try await session(sim, tenant: "fault-503.onmicrosoft.com", transport: transport)
                        .report(Self.mailbox, deadline: deadline(10), stats: &stats)
                } throws: { error in
                    guard let e = error as? GraphError else { return false }
                    return e.kind == .throttled && e.message.contains("retry after 30 s") && e.retryAfterSeconds == 30
                }
                #expect(start.duration(to: .now) < .seconds(3))
            }
        }
    }

    @Test("HTTP 403 is a permission error that says to grant Reports.Read.All")
    func forbidden() async throws {
        try await withSimulator { sim in
            try await withTransport { transport in
                var stats = FetchStats()
                await #expect {
                    _ = try await session(sim, tenant: "fault-403.onmicrosoft.com", transport: transport)
                        .report(Self.mailbox, deadline: deadline(), stats: &stats)
                } throws: { error in
                    (error as? GraphError).map { $0.kind == .permission && $0.message.contains("Reports.Read.All") } ?? false
                }
            }
        }
    }

    @Test("HTTP 401 drops the token and retries once with a new one")
    func unauthorizedRenewsOnce() async throws {
        try await withSimulator { sim in
            try await withTransport { transport in
                var stats = FetchStats()
                await #expect(throws: GraphError.self) {
                    _ = try await session(sim, tenant: "fault-401.onmicrosoft.com", transport: transport)
                        .report(Self.mailbox, deadline: deadline(), stats: &stats)
                }
                let s = await sim.stats()
                #expect(s.tokenRequests == 2)
                #expect(s.reportRequests == 2)
            }
        }
    }

    @Test("login 5xx: one token request and the plugin's error without a token retry policy (run); retried with one (the worker) (was: every check waiting on the token failed)")
    func tokenRetry() async throws {
        try await withSimulator { sim in
            try await withTransport { transport in
                // As the plugin: one request, its error.
                var stats = FetchStats()
                await #expect(throws: GraphError.self) {
                    _ = try await session(sim, tenant: "fault-token-503-twice.onmicrosoft.com", transport: transport)
                        .token(deadline: deadline(), stats: &stats)
                }
                #expect(await sim.stats().tokenRequests == 1)
                // The worker's policy: the second failure is retried too, the third request succeeds.
                var s = session(sim, tenant: "fault-token-503-twice.onmicrosoft.com", transport: transport)
                s.tokenRetry = .graph
                let token = try await s.token(deadline: deadline(), stats: &stats)
                #expect(!token.value.isEmpty)
                #expect(await sim.stats().tokenRequests == 3)
                // Not transient: a wrong secret is not retried.
                var wrong = session(sim, tenant: "contoso.onmicrosoft.com", secret: "wrong", transport: transport)
                wrong.tokenRetry = .graph
                let before = await sim.stats().tokenRequests
                await #expect(throws: GraphError.self) { _ = try await wrong.token(deadline: deadline(), stats: &stats) }
                #expect(await sim.stats().tokenRequests == before + 1)
            }
        }
    }

    @Test("ETag revalidation answers 304 Not Modified")
    func etag() async throws {
        try await withSimulator { sim in
            try await withTransport { transport in
                let s = session(sim, tenant: "contoso-direct.onmicrosoft.com", transport: transport)
                var stats = FetchStats()
                guard case .body(_, let etag?) = try await s.fetch(Self.mailbox, deadline: deadline(), stats: &stats) else {
                    Issue.record("no ETag")
                    return
                }
                guard case .notModified = try await s.fetch(Self.mailbox, deadline: deadline(), etag: etag, stats: &stats) else {
                    Issue.record("expected 304")
                    return
                }
                #expect(await sim.stats().notModified == 1)
            }
        }
    }

    @Test("a slow answer beyond --timeout is a timeout error")
    func timeout() async throws {
        try await withSimulator { sim in
            try await withTransport { transport in
                var stats = FetchStats()
                await #expect {
                    _ = try await session(sim, tenant: "slow-short.onmicrosoft.com", timeout: .milliseconds(300), transport: transport)
                        .report(Self.mailbox, deadline: deadline(), stats: &stats)
                } throws: { error in
                    (error as? GraphError).map { $0.kind == .timeout && $0.message.contains("--timeout") } ?? false
                }
            }
        }
    }

    @Test("a report larger than the body limit is a graph error that says so, downloaded once (was: 'Cannot reach Graph' or 'Cannot download', as if unreachable)")
    func oversizedReport() async throws {
        try await withSimulator { sim in
            try await withTransport { base in
                var transport = base
                transport.maxBodyBytes = 512  // the contoso mailbox report is a few KB
                var stats = FetchStats()
                await #expect {
                    _ = try await session(sim, tenant: "contoso.onmicrosoft.com", transport: transport)
                        .report(Self.mailbox, deadline: deadline(), stats: &stats)
                } throws: { error in
                    guard let e = error as? GraphError else { return false }
                    return e.kind == .graph && e.message.contains("is larger than 512 bytes, exocheck's limit") && !e.message.contains("reach")
                }
                #expect(await sim.stats().downloadRequests == 1)
            }
        }
    }

    @Test("a download that stalls after its headers is a timeout within --timeout (was: no answer; only the head had a deadline)")
    func stalledBody() async throws {
        try await withSimulator { sim in
            try await withTransport { transport in
                var stats = FetchStats()
                let started = ContinuousClock.now
                await #expect {
                    _ = try await session(sim, tenant: "stall-body.onmicrosoft.com", timeout: .seconds(1), transport: transport)
                        .report(Self.mailbox, deadline: deadline(6), stats: &stats)
                } throws: { error in
                    (error as? GraphError).map { $0.kind == .timeout } ?? false
                }
                let elapsed = started.duration(to: .now)
                #expect(elapsed < .seconds(15), "answered after \(elapsed)")
            }
        }
    }

    @Test("hostile redirects (cloud metadata, a private address, a decimal loopback) are not followed; the error names the host, never the signed URL (was: followed)",
          arguments: [("redirect-metadata", "169.254.169.254", "link-local"), ("redirect-private", "10.1.2.3", "private"),
                      ("redirect-decimal", "2130706433", "non-canonical")])
    func hostileRedirect(tenant: String, host: String, kind: String) async throws {
        try await withSimulator { sim in
            try await withTransport { transport in
                var stats = FetchStats()
                await #expect {
                    _ = try await session(sim, tenant: "\(tenant).onmicrosoft.com", transport: transport)
                        .report(Self.mailbox, deadline: deadline(5), stats: &stats)
                } throws: { error in
                    guard let e = error as? GraphError else { return false }
                    return e.kind == .graph && e.message.contains(host) && e.message.contains(kind) && !e.message.contains("sig=secret")
                        && e.message.contains("allowedDownloadHosts")
                }
                #expect(await sim.stats().downloadRequests == 0)
                #expect(await sim.stats().reportRequests == 1, "no retry of a refused redirect")
            }
        }
    }

    @Test("redirect policy: https only (http only when the endpoint is http); internal literals refused unless they are the endpoint's host; optional host list")
    func redirectPolicy() {
        let graph = RedirectPolicy(endpoint: "https://graph.microsoft.com")
        #expect(graph.refusal("https://reportsncu.office.com/data/x?sig=1") == nil)
        #expect(graph.refusal("http://reportsncu.office.com/data/x")?.contains("not https") == true)
        for address in ["https://127.0.0.1/", "https://localhost/", "https://a.localhost/", "https://10.0.0.1/", "https://172.16.5.4/",
                         "https://192.168.1.1/", "https://169.254.169.254/", "https://100.64.0.1/", "https://0.0.0.0/", "https://224.0.0.1/",
                         "https://[::1]/", "https://[fe80::1]/", "https://[fd00::1]/", "https://[::ffff:127.0.0.1]/", "https://[::]/",
                         "https://2130706433/", "https://0x7f.1/", "https://0177.0.0.1/", "https://127.1/", "https://LOCALHOST./",
                         "https://[::127.0.0.1]/", "https://[::a9fe:a9fe]/", "https://[::ffff:0:10.0.0.1]/", "https://[64:ff9b::a9fe:a9fe]/",
                         "https://[2002:7f00:1::]/", "https://[fec0::1]/", "https://198.18.0.1/", "https://192.0.0.8/",
                         "https://user@10.0.0.1/"] {
            #expect(graph.refusal(address) != nil, "\(address)")
        }
        for external in ["https://8.8.8.8/", "https://172.32.0.1/", "https://[2001:db8::1]/", "https://1e100.net/", "https://example.com./"] {
            #expect(graph.refusal(external) == nil, "\(external)")
        }
        #expect(graph.refusal("not a url") != nil)
        #expect(graph.refusal("/relative/only") != nil)
        let local = RedirectPolicy(endpoint: "http://127.0.0.1:8080")
        #expect(local.refusal("http://127.0.0.1:8080/download") == nil, "the simulator's own host and port")
        #expect(local.refusal("http://127.0.0.1:9090/download") != nil, "another port of the endpoint's host")
        #expect(local.refusal("http://169.254.169.254/") != nil)
        let listed = RedirectPolicy(endpoint: "https://graph.microsoft.com", allowedHosts: ["*.office.com", "reports.example"])
        #expect(listed.refusal("https://reportsncu.office.com/x") == nil)
        #expect(listed.refusal("https://reports.example/x") == nil)
        #expect(listed.refusal("https://evil.example/x")?.contains("allowedDownloadHosts") == true)
        #expect(listed.refusal("https://office.com.evil.example/x") != nil)
    }

    @Test("report numbers a check cannot hold (400 digits, a fraction in a count) are UNKNOWN naming the report, column and row (was: +inf, or used as is)",
          arguments: [("huge-number", "beyond 2^53"), ("fraction-count", "a fraction")])
    func badNumbers(tenant: String, what: String) async throws {
        try await withSimulator { sim in
            let state = FileManager.default.temporaryDirectory.appendingPathComponent("exocheck-numbers-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: state) }
            for mode in ["mailbox-usage", "email-activity"] {
                let out = try await ExocheckBinary.run([
                    "run", "--mode=\(mode)", "--tenant=malformed-\(tenant).onmicrosoft.com", "--client-id=\(SimulatorConfiguration.defaultClientId)",
                    "--client-secret=\(SimulatorConfiguration.defaultClientSecret)", "--login-endpoint=\(sim.baseURL)",
                    "--graph-endpoint=\(sim.baseURL)", "--statefile-dir=\(state.path)", "--filter-counters=.*",
                ])
                #expect(out.exitCode == 3, "\(mode): \(out.stdout)")
                #expect(out.stdout.hasPrefix("UNKNOWN:"))
                #expect(out.stdout.contains(mode == "mailbox-usage" ? "getMailboxUsageDetail" : "getEmailActivityUserDetail"), "\(out.stdout)")
                #expect(out.stdout.contains(mode == "mailbox-usage" ? "'Item Count'" : "'Send Count'"))
                #expect(out.stdout.contains("of data row "))
                #expect(out.stdout.contains(what))
            }
        }
    }

    @Test("connection refused names the host and port, at once")
    func refused() async throws {
        let start = ContinuousClock.now
        defer { #expect(start.duration(to: .now) < .seconds(5)) }
        try await withTransport { transport in
            let s = GraphSession(app: AppIdentity(tenant: "t", clientId: "c", credential: .secret("s"),
                                                  endpoints: GraphEndpoints(login: "http://127.0.0.1:1", graph: "http://127.0.0.1:1")),
                                 transport: transport, tokenCache: TokenCache())
            var stats = FetchStats()
            await #expect {
                _ = try await s.report(Self.mailbox, deadline: deadline(), stats: &stats)
            } throws: { error in
                (error as? GraphError).map { $0.message.contains("127.0.0.1:1") && $0.message.contains("connection refused") } ?? false
            }
        }
    }

    @Test("wrong secret keeps the plugin's wording and explains AADSTS7000215")
    func wrongSecret() async throws {
        try await withSimulator { sim in
            try await withTransport { transport in
                var stats = FetchStats()
                await #expect {
                    _ = try await session(sim, tenant: "contoso.onmicrosoft.com", secret: "s3cr3t-Value-XYZ", transport: transport)
                        .report(Self.mailbox, deadline: deadline(), stats: &stats)
                } throws: { error in
                    guard let e = error as? GraphError else { return false }
                    return e.kind == .auth
                        && e.message == "Login endpoint API return error code 'invalid_client' (add --debug option for detailed message)"
                        && e.details.contains { $0.contains("Secret ID") }
                        && !e.message.contains("s3cr3t-Value-XYZ") && !e.details.joined().contains("s3cr3t-Value-XYZ")
                }
            }
        }
    }

    @Test("disk token cache: reused across processes, 0600, no secret stored, ignored after a secret change")
    func diskCache() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try await withSimulator { sim in
            try await withTransport { transport in
                let disk = DiskTokenStore(directory: dir.path + "/nested")
                var stats = FetchStats()
                _ = try await session(sim, tenant: "contoso.onmicrosoft.com", disk: disk, transport: transport).token(deadline: deadline(), stats: &stats)
                // A new in-memory cache (another process): the disk copy is used.
                _ = try await session(sim, tenant: "contoso.onmicrosoft.com", disk: disk, transport: transport).token(deadline: deadline(), stats: &stats)
                #expect(await sim.stats().tokenRequests == 1)
                let files = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/nested")
                #expect(files.count == 1)
                let path = dir.path + "/nested/" + files[0]
                let attributes = try FileManager.default.attributesOfItem(atPath: path)
                #expect((attributes[.posixPermissions] as? Int) == 0o600)
                let content = try String(contentsOfFile: path, encoding: .utf8)
                #expect(!content.contains(SimulatorConfiguration.defaultClientSecret))
                // Another secret for the same tenant + client: the cached token is not used.
                await #expect(throws: GraphError.self) {
                    _ = try await session(sim, tenant: "contoso.onmicrosoft.com", secret: "changed", disk: disk, transport: transport)
                        .token(deadline: deadline(), stats: &stats)
                }
                #expect(await sim.stats().tokenRequests == 2)
            }
        }
    }

    @Test("a refused credential is remembered for a while when asked (no login request per check)")
    func failureMemory() async throws {
        try await withSimulator { sim in
            try await withTransport { transport in
                let cache = TokenCache(failureMemory: .seconds(60))
                var stats = FetchStats()
                for _ in 0..<3 {
                    await #expect(throws: GraphError.self) {
                        _ = try await session(sim, tenant: "contoso.onmicrosoft.com", secret: "wrong", cache: cache, transport: transport)
                            .token(deadline: deadline(), stats: &stats)
                    }
                }
                #expect(await sim.stats().tokenRequests == 1)
                // Without memory (exocheck run), every attempt asks again.
                let plain = TokenCache()
                for _ in 0..<2 {
                    await #expect(throws: GraphError.self) {
                        _ = try await session(sim, tenant: "contoso.onmicrosoft.com", secret: "wrong", cache: plain, transport: transport)
                            .token(deadline: deadline(), stats: &stats)
                    }
                }
                #expect(await sim.stats().tokenRequests == 3)
            }
        }
    }

    @Test("a token issued for less than the 10 s margin is reused until half its lifetime, as the plugin's one request per check (was: requested again at once)")
    func shortLivedToken() async throws {
        try await withSimulator { sim in
            try await withTransport { transport in
                let cache = TokenCache(refreshMargin: .seconds(10))
                var stats = FetchStats()
                _ = try await session(sim, tenant: "shortlived.onmicrosoft.com", cache: cache, transport: transport).token(deadline: deadline(), stats: &stats)
                _ = try await session(sim, tenant: "shortlived.onmicrosoft.com", cache: cache, transport: transport).token(deadline: deadline(), stats: &stats)
                #expect(await sim.stats().tokenRequests == 1)
            }
        }
    }

    @Test("Retry-After may be fractional seconds or an HTTP date")
    func retryAfterParsing() {
        #expect(GraphSession.parseRetryAfter("2.128") == 2.128)
        #expect(GraphSession.parseRetryAfter("7") == 7)
        #expect(GraphSession.parseRetryAfter("soon") == nil)
        let date = GraphSession.parseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT")
        #expect(date == 0)
    }

    @Test("form encoding escapes reserved characters of the secret")
    func formEncoding() {
        #expect(FormEncoding.encode([("client_secret", "Xy7~Q8r.pL-2+s/Ab=c%d&e")]) == "client_secret=Xy7%7EQ8r.pL-2%2Bs%2FAb%3Dc%25d%26e")
    }
}

@Suite("Graph simulator")
struct GraphSimulatorTests {
    @Test("generated tenants are deterministic by seed")
    func deterministic() async throws {
        let spec = GeneratedTenantSpec(name: "gen", data: GeneratedData(users: 300, seed: 42))
        let config = SimulatorConfiguration.standard(generated: [spec])
        func fetch() async throws -> [UInt8] {
            try await withSimulator(config) { sim in
                let transport = HTTPTransport.make()
                defer { Task { await transport.shutdown() } }
                let s = GraphSession(app: AppIdentity(tenant: "gen.onmicrosoft.com", clientId: SimulatorConfiguration.defaultClientId,
                                                      credential: .secret(SimulatorConfiguration.defaultClientSecret),
                                                      endpoints: GraphEndpoints(login: sim.baseURL, graph: sim.baseURL)),
                                     transport: transport, tokenCache: TokenCache())
                var stats = FetchStats()
                return try await s.report(GraphSessionTests.mailbox, deadline: .now.advanced(by: .seconds(10)), stats: &stats)
            }
        }
        let a = try await fetch()
        let b = try await fetch()
        #expect(a == b)
        let rows = try ReportParser.mailboxUsage(a)
        #expect(rows.count == 300 + 300 / 40)
    }

    @Test("concealed tenants serve 32-hex-digit names and the long output says so")
    func concealed() async throws {
        let state = try TemporaryDirectory()
        defer { state.remove() }
        try await withSimulator { sim in
            let out = try await ExocheckBinary.run([
                "run", "--mode=email-activity", "--tenant=contoso-concealed.onmicrosoft.com",
                "--client-id=\(SimulatorConfiguration.defaultClientId)", "--client-secret=\(SimulatorConfiguration.defaultClientSecret)",
                "--login-endpoint=\(sim.baseURL)", "--graph-endpoint=\(sim.baseURL)", "--statefile-dir=\(state.path)",
                "--filter-counters=.*", "--verbose",
            ], environment: ["TZ": "UTC"])
            #expect(out.exitCode == 0)
            #expect(!out.stdout.contains("contoso.com"))
            #expect(out.stdout.contains("concealed"))
        }
    }

    @Test("admin endpoints: stats count, reset zeroes")
    func admin() async throws {
        try await withSimulator { sim in
            let transport = HTTPTransport.make()
            let answer = try await transport.send(.GET, sim.baseURL + "/_sim/health", timeout: .seconds(5))
            #expect(answer.status == 200)
            _ = try await transport.send(.GET, sim.baseURL + "/nope", timeout: .seconds(5))
            #expect(await sim.stats().otherRequests == 1)
            await sim.reset()
            #expect(await sim.stats().otherRequests == 0)
            await transport.shutdown()
        }
    }
}

@Suite("Hostile Graph headers")
struct HostileGraphHeaderTests {
    @Test("Retry-After: 1e19 is bounded and formats without trapping (was SIGILL)")
    func hugeRetryAfter() {
        let parsed = GraphSession.parseRetryAfter("1e19")
        #expect(parsed == GraphSession.maxRetryAfterSeconds)
        #expect(GraphSession.formatSeconds(1e19) == "10000000000000000000 s")
        #expect(GraphSession.formatSeconds(.infinity) == "0 s")
        #expect(GraphSession.formatSeconds(2.5) == "2.5 s")
        #expect(GraphSession.formatSeconds(parsed ?? 0) == "31536000 s")
        #expect(GraphSession.parseRetryAfter("inf") == nil)
        #expect(GraphSession.parseRetryAfter("-1") == nil)
    }
}

@Suite("Evaluation pool (the watchdog)")
struct EvaluationPoolTests {
    @Test("work past its deadline plus grace is abandoned with a timeout, its thread counted as stuck until it returns")
    func abandonsAndCountsStuck() async throws {
        let pool = EvaluationPool(threads: 1, grace: .milliseconds(100))
        defer { pool.shutdown() }
        let release = DispatchSemaphore(value: 0)
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(100))
        await #expect(throws: GraphError.self) {
            _ = try await pool.evaluate(deadline: deadline) { release.wait(); return 1 }
        }
        #expect(pool.stuckThreads == 1)
        // Work queued behind the stuck thread times out too, and is skipped once the thread frees.
        await #expect(throws: GraphError.self) {
            _ = try await pool.evaluate(deadline: ContinuousClock.now.advanced(by: .milliseconds(50))) { 2 }
        }
        release.signal()
        var freed = false
        for _ in 0..<100 where !freed {
            try await Task.sleep(for: .milliseconds(20))
            freed = pool.stuckThreads == 0
        }
        #expect(freed)
        let value = try await pool.evaluate(deadline: ContinuousClock.now.advanced(by: .seconds(5))) { 42 }
        #expect(value == 42)
    }

    @Test("the regex budget of the calling task applies on the pool's threads")
    func budgetCrossesThreads() async throws {
        let pool = EvaluationPool(threads: 2, grace: .seconds(1))
        defer { pool.shutdown() }
        let budget = RegexBudget(limit: .milliseconds(200))
        let regex = try FilterRegex("(.|.|.|.|.)*Z", option: "filter-user")
        let matched = try await RegexBudget.$current.withValue(budget) {
            try await pool.evaluate(deadline: ContinuousClock.now.advanced(by: .seconds(10))) {
                regex.matches(String(repeating: "a", count: 40))
            }
        }
        #expect(!matched)
        #expect(budget.exceededOption == "filter-user")
    }

    @Test("many concurrent evaluations all complete (no lost wake-ups)")
    func many() async throws {
        let pool = EvaluationPool(threads: 2, grace: .seconds(5))
        defer { pool.shutdown() }
        let sum = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<500 {
                group.addTask { try await pool.evaluate(deadline: ContinuousClock.now.advanced(by: .seconds(30))) { i } }
            }
            var total = 0
            for try await v in group { total += v }
            return total
        }
        #expect(sum == (0..<500).reduce(0, +))
    }
}

extension GraphSession {
    /// The report body as a throwing call that adds its cost to `stats` (also when it fails), as
    /// the runner counts it.
    func report(_ request: ReportRequest, deadline: ContinuousClock.Instant, stats: inout FetchStats) async throws(GraphError) -> [UInt8] {
        switch try await fetch(request, deadline: deadline, etag: nil, stats: &stats) {
        case .body(let bytes, _): return bytes
        case .notModified: throw GraphError(.graph, "304 without a cached copy")
        }
    }
}

/// `--proxyurl`: what the transport can use, refused clearly otherwise, never echoed.
@Suite("Proxy URL")
struct ProxyURLTests {
    @Test("an http:// proxy is read with its port (3128 by default), in any case of the scheme")
    func httpProxy() throws {
        let p = try HTTPClientProxy(parsing: "http://proxy.example:8080")
        #expect(p.host == "proxy.example" && p.port == 8080 && p.username == nil && p.password == nil)
        let q = try HTTPClientProxy(parsing: "HTTP://10.0.0.1")
        #expect(q.host == "10.0.0.1" && q.port == 3128)
    }

    @Test("user and password in the URL are used for the proxy (percent-decoded) instead of being dropped (was: ignored, so the proxy answered 407)")
    func credentials() throws {
        let p = try HTTPClientProxy(parsing: "http://svc%2Dmon:p%40ss%3Aword@proxy.example:3128")
        #expect(p.username == "svc-mon")
        #expect(p.password == "p@ss:word")
        #expect(p.host == "proxy.example")
    }

    @Test(
        "a scheme the transport cannot use is refused, naming the scheme (was: socks5:// or https:// used as a plain HTTP proxy)",
        arguments: ["socks5://proxy.example:1080", "https://proxy.example:8443", "socks4a://p:1", "ftp://p:21"])
    func unsupportedScheme(url: String) {
        #expect(throws: HTTPClientProxy.ParseError.self) { try HTTPClientProxy(parsing: url) }
        do {
            _ = try HTTPClientProxy(parsing: url)
        } catch {
            #expect(error.description.contains("http://host:port"))
        }
    }

    @Test(
        "an unusable URL is refused without echoing it (it may hold a password)",
        arguments: ["http://user:s3cretPW@", "proxy.example:8080", "http://user:s3cretPW@:8080", "http://p:99999", "http://[::1", "  ", "http://p:0"])
    func refusedWithoutEcho(url: String) {
        do {
            let p = try HTTPClientProxy(parsing: url)
            Issue.record("accepted \(p.host):\(p.port)")
        } catch {
            #expect(!error.description.contains("s3cretPW"))
            #expect(!error.description.contains(url))
            #expect(error.description.contains("--proxyurl"))
        }
    }
}

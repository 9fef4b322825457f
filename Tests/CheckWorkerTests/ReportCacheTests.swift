import ExchangeChecks
import Foundation
import GraphReports
import GraphSimulator
import Testing

@testable import CheckWorker

/// The worker's report cache and credentials against the simulator over loopback HTTP.
@Suite("Report cache and credentials", .serialized)
struct ReportCacheTests {
    static let d7 = ReportRequest(report: "getMailboxUsageDetail", parameter: .period("D7"))

    func withSession<T>(_ tenant: String, credential: ClientCredential = .secret(SimulatorConfiguration.defaultClientSecret),
                        configuration: SimulatorConfiguration = .standard(),
                        _ body: (GraphSession, RunningGraphSimulator) async throws -> T) async throws -> T {
        let sim = try await GraphSimulator(configuration: configuration).start()
        let transport = HTTPTransport.make()
        let session = GraphSession(app: AppIdentity(tenant: tenant, clientId: SimulatorConfiguration.defaultClientId, credential: credential,
                                                    endpoints: GraphEndpoints(login: sim.baseURL, graph: sim.baseURL)),
                                   transport: transport, tokenCache: TokenCache())
        do {
            let v = try await body(session, sim)
            await transport.shutdown()
            await sim.stop()
            return v
        } catch {
            await transport.shutdown()
            await sim.stop()
            throw error
        }
    }

    var deadline: ContinuousClock.Instant { .now.advanced(by: .seconds(15)) }

    /// A memoisable value of about `bytes` bytes.
    static func memo(bytes: Int) -> MemoValue {
        var result = CheckResult()
        result.longOutput = [String(repeating: "x", count: max(0, bytes - 300))]
        return .check(MemoisedCheck(result: result, rendered: OutputRenderer.render(CheckResult(), options: OutputOptions())))
    }

    @Test("memoised values count in the byte budget and go first when it is exceeded; one larger than a quarter of the budget, or for a snapshot not cached, is not kept")
    func memoBudget() async throws {
        try await withSession("contoso.onmicrosoft.com") { session, _ in
            let probe = ReportCache()
            let size = try await probe.report(Self.d7, tenant: "c", session: session, deadline: deadline).0.bytes
            let value = Self.memo(bytes: size / 3)
            let cache = ReportCache(ttl: .seconds(60), maxBytes: size + value.bytes * 3 / 2)
            let (snapshot, _) = try await cache.report(Self.d7, tenant: "c", session: session, deadline: deadline)
            let a = MemoKey(snapshots: [snapshot.id], derivation: "check:a")
            let b = MemoKey(snapshots: [snapshot.id], derivation: "check:b")
            await cache.remember(a, value)
            #expect(await cache.bytes == snapshot.bytes + value.bytes)
            #expect(await cache.memoised(a) != nil)
            // The second does not fit beside the first: the least recently used memo goes, the report stays.
            await cache.remember(b, value)
            #expect(await cache.memoised(a) == nil)
            #expect(await cache.memoised(b) != nil)
            #expect(await cache.count == 1)
            #expect(await cache.bytes <= cache.maxBytes)
            await cache.remember(MemoKey(snapshots: [snapshot.id], derivation: "check:huge"), Self.memo(bytes: cache.maxBytes / 4 + 1000))
            #expect(await cache.memoised(MemoKey(snapshots: [snapshot.id], derivation: "check:huge")) == nil)
            await cache.remember(MemoKey(snapshots: [UInt64.max], derivation: "check:gone"), value)
            #expect(await cache.memoCount == 1)
        }
    }

    @Test("after a reload, the data of tenants no longer configured (removed or re-pointed) goes with its memos; the rest stays (was: kept until evicted)")
    func keepOnlyConfiguredTenants() async throws {
        try await withSession("contoso.onmicrosoft.com") { session, _ in
            let cache = ReportCache(ttl: .seconds(60))
            let (kept, _) = try await cache.report(Self.d7, tenant: "stays", session: session, deadline: deadline)
            let (gone, _) = try await cache.report(Self.d7, tenant: "goes", session: session, deadline: deadline)
            await cache.remember(MemoKey(snapshots: [kept.id], derivation: "check:a"), Self.memo(bytes: 1_000))
            await cache.remember(MemoKey(snapshots: [gone.id], derivation: "check:a"), Self.memo(bytes: 1_000))
            #expect(await cache.count == 2)
            #expect(await cache.memoCount == 2)
            #expect(await cache.keepOnly(tenants: ["stays"]) == 1)
            #expect(await cache.count == 1)
            #expect(await cache.memoCount == 1)
            #expect(await cache.bytes == kept.bytes + Self.memo(bytes: 1_000).bytes)
            #expect(await cache.memoised(MemoKey(snapshots: [kept.id], derivation: "check:a")) != nil)
            let (_, again) = try await cache.report(Self.d7, tenant: "stays", session: session, deadline: deadline)
            #expect(again == .hit)
            let (_, refetched) = try await cache.report(Self.d7, tenant: "goes", session: session, deadline: deadline)
            #expect(refetched == .miss)
        }
    }

    @Test("memoised values live as long as their snapshot: a revalidated copy keeps them; an evicted snapshot takes them along")
    func memoLifetime() async throws {
        try await withSession("contoso-direct.onmicrosoft.com") { session, _ in
            let cache = ReportCache(ttl: .milliseconds(100))
            let (snapshot, _) = try await cache.report(Self.d7, tenant: "c", session: session, deadline: deadline)
            let key = MemoKey(snapshots: [snapshot.id], derivation: "check:a")
            await cache.remember(key, Self.memo(bytes: 1000))
            try await Task.sleep(for: .milliseconds(150))
            let (same, origin) = try await cache.report(Self.d7, tenant: "c", session: session, deadline: deadline)
            #expect(origin == .revalidated && same === snapshot)
            #expect(await cache.memoised(key) != nil)
        }
        try await withSession("contoso.onmicrosoft.com") { session, _ in
            let probe = ReportCache()
            let mailbox = try await probe.report(Self.d7, tenant: "c", session: session, deadline: deadline).0.bytes
            let email = ReportRequest(report: "getEmailActivityUserDetail", parameter: .period("D7"))
            let other = try await probe.report(email, tenant: "c", session: session, deadline: deadline).0.bytes
            // Room for either report and a small memo, not for both reports (sizes are estimates
            // from capacities, which may differ by a few bytes between two parses).
            let cache = ReportCache(ttl: .seconds(60), maxBytes: max(mailbox, other) + min(mailbox, other) / 2)
            #expect(Self.memo(bytes: 0).bytes < min(mailbox, other) / 2 - 64)
            let (snapshot, _) = try await cache.report(Self.d7, tenant: "c", session: session, deadline: deadline)
            let key = MemoKey(snapshots: [snapshot.id], derivation: "check:a")
            await cache.remember(key, Self.memo(bytes: 0))
            #expect(await cache.memoCount == 1)
            let (kept, _) = try await cache.report(email, tenant: "c", session: session, deadline: deadline)
            #expect(await cache.count == 1)
            #expect(await cache.memoised(key) == nil)
            #expect(await cache.memoCount == 0)
            #expect(await cache.bytes == kept.bytes)
        }
    }

    @Test("refresh-aware: before a change is seen a copy is revalidated every initialInterval; a dated report (a past day's data) is kept a day; answers say when Graph last confirmed the copy")
    func refreshAware() async throws {
        try await withSession("contoso-direct.onmicrosoft.com") { session, sim in
            var refresh = RefreshSchedule.Configuration()
            refresh.initialInterval = .milliseconds(100)
            let cache = ReportCache(ttl: .milliseconds(100), refresh: refresh)
            let dated = ReportRequest(report: "getEmailActivityUserDetail", parameter: .date("2025-06-28"))
            let first = await cache.answer(Self.d7, tenant: "c", session: session, deadline: deadline)
            _ = await cache.answer(dated, tenant: "c", session: session, deadline: deadline)
            try await Task.sleep(for: .milliseconds(150))
            let again = await cache.answer(Self.d7, tenant: "c", session: session, deadline: deadline)
            #expect(again.origin == .revalidated)
            let day = await cache.answer(dated, tenant: "c", session: session, deadline: deadline)
            #expect(day.origin == .hit, "a past day's report is not asked again within the day")
            let hit = await cache.answer(Self.d7, tenant: "c", session: session, deadline: deadline)
            #expect(hit.origin == .hit)
            // The hit's copy was confirmed by the revalidation, not now; the first answer's at its download.
            let (c1, c2, c3) = (try #require(first.confirmedAt), try #require(again.confirmedAt), try #require(hit.confirmedAt))
            #expect(c1 < c2 && c3 == c2)
            _ = sim
        }
    }

    @Test("refresh-aware: a report that could not be parsed is asked again after the first interval, not kept a day (was: a dated report's parse failure cached for 24 h)")
    func refreshAwareBadBody() async throws {
        try await withSession("malformed-html.onmicrosoft.com") { session, _ in
            var refresh = RefreshSchedule.Configuration()
            refresh.initialInterval = .milliseconds(100)
            let cache = ReportCache(ttl: .milliseconds(100), refresh: refresh)
            let dated = ReportRequest(report: "getEmailActivityUserDetail", parameter: .date("2025-06-28"))
            let first = await cache.answer(dated, tenant: "c", session: session, deadline: deadline)
            #expect((try? first.body.get())?.reportDate == "")
            try await Task.sleep(for: .milliseconds(150))
            let again = await cache.answer(dated, tenant: "c", session: session, deadline: deadline)
            #expect(again.origin != .hit)
        }
    }

    @Test("fresh entries are hits; concurrent misses share one download")
    func hitsAndSingleFlight() async throws {
        try await withSession("contoso.onmicrosoft.com") { session, sim in
            let cache = ReportCache(ttl: .seconds(60))
            let outcomes = try await withThrowingTaskGroup(of: ReportCache.Outcome.self) { group in
                for _ in 0..<10 {
                    group.addTask { try await cache.report(Self.d7, tenant: "contoso", session: session, deadline: self.deadline).1 }
                }
                return try await group.reduce(into: [ReportCache.Outcome]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 == .miss }.count == 1)
            #expect(outcomes.filter { $0 == .hit }.count == 9)
            let (_, again) = try await cache.report(Self.d7, tenant: "contoso", session: session, deadline: deadline)
            #expect(again == .hit)
            #expect(await sim.stats().reportRequests == 1)
        }
    }

    @Test("an expired entry with an ETag is revalidated with If-None-Match (304 keeps the body)")
    func revalidation() async throws {
        try await withSession("contoso-direct.onmicrosoft.com") { session, sim in
            let cache = ReportCache(ttl: .milliseconds(200))
            let (first, o1) = try await cache.report(Self.d7, tenant: "c", session: session, deadline: deadline)
            try await Task.sleep(for: .milliseconds(300))
            let (second, o2) = try await cache.report(Self.d7, tenant: "c", session: session, deadline: deadline)
            #expect(o1 == .miss && o2 == .revalidated)
            #expect(first === second, "a revalidated copy is the same snapshot (its memoised values stay)")
            #expect(await sim.stats().notModified == 1)
        }
    }

    @Test("when the call budget is spent: a stale copy is served, else the check fails as throttled at once")
    func budget() async throws {
        try await withSession("contoso.onmicrosoft.com") { session, sim in
            let cache = ReportCache(ttl: .milliseconds(100), budget: 2, window: .seconds(60))
            _ = try await cache.report(Self.d7, tenant: "c", session: session, deadline: deadline)
            let d30 = ReportRequest(report: "getMailboxUsageDetail", parameter: .period("D30"))
            _ = try await cache.report(d30, tenant: "c", session: session, deadline: deadline)
            try await Task.sleep(for: .milliseconds(200))
            // Expired, budget spent: the stale copy.
            let (_, outcome) = try await cache.report(Self.d7, tenant: "c", session: session, deadline: deadline)
            #expect(outcome == .stale)
            // Never fetched, budget spent, deadline too close to wait: throttled.
            let d90 = ReportRequest(report: "getMailboxUsageDetail", parameter: .period("D90"))
            await #expect {
                _ = try await cache.report(d90, tenant: "c", session: session, deadline: .now.advanced(by: .seconds(2)))
            } throws: { error in
                (error as? GraphError).map { $0.kind == .throttled && $0.message.contains("budget") } ?? false
            }
            // Another tenant has its own budget.
            let (_, other) = try await cache.report(d90, tenant: "other", session: session, deadline: deadline)
            #expect(other == .miss)
            #expect(await sim.stats().reportRequests == 3)
        }
    }

    @Test("a check that fails on its token still reports the token request it made (was: lost, and cache.token said none)")
    func tokenCostOnFailure() async throws {
        try await withSession("contoso.onmicrosoft.com", credential: .secret("wrong-secret")) { badSession, sim in
            let cache = ReportCache(ttl: .seconds(60))
            let answer = await CachedReports(cache: cache, tenant: "c", session: badSession).report(Self.d7, deadline: self.deadline)
            guard case .failure(let error) = answer.body else {
                Issue.record("a wrong secret gave data")
                return
            }
            #expect(error.kind == .auth)
            #expect(answer.cost.tokenLookups == 1 && answer.cost.tokenRequests == 1, "\(answer.cost)")
            #expect(await sim.stats().tokenRequests == 1)
        }
    }

    @Test("the call budget is spent only when a call is made: a check that fails on its token gives its slot back (was: slot spent)")
    func budgetRefundedWithoutCall() async throws {
        try await withSession("contoso.onmicrosoft.com", credential: .secret("wrong-secret")) { badSession, sim in
            let cache = ReportCache(ttl: .seconds(60), budget: 1, window: .seconds(600))
            await #expect(throws: GraphError.self) {
                _ = try await cache.report(Self.d7, tenant: "c", session: badSession, deadline: self.deadline)
            }
            #expect(await sim.stats().reportRequests == 0)
            let transport = HTTPTransport.make()
            let good = GraphSession(app: AppIdentity(tenant: "contoso.onmicrosoft.com", clientId: SimulatorConfiguration.defaultClientId,
                                                     credential: .secret(SimulatorConfiguration.defaultClientSecret),
                                                     endpoints: GraphEndpoints(login: sim.baseURL, graph: sim.baseURL)),
                                    transport: transport, tokenCache: TokenCache())
            let (_, outcome) = try await cache.report(Self.d7, tenant: "c", session: good, deadline: .now.advanced(by: .seconds(2)))
            #expect(outcome == .miss)
            await transport.shutdown()
        }
    }

    @Test("a stale copy older than the maximum stale age is not served when the budget is spent (was: served whatever its age)")
    func staleMaxAge() async throws {
        try await withSession("contoso.onmicrosoft.com") { session, sim in
            let cache = ReportCache(ttl: .milliseconds(100), budget: 1, window: .seconds(600), maxStale: .milliseconds(200))
            _ = try await cache.report(Self.d7, tenant: "c", session: session, deadline: deadline)
            try await Task.sleep(for: .milliseconds(150))
            let (_, young) = try await cache.report(Self.d7, tenant: "c", session: session, deadline: deadline)
            #expect(young == .stale)
            try await Task.sleep(for: .milliseconds(300))
            await #expect {
                _ = try await cache.report(Self.d7, tenant: "c", session: session, deadline: .now.advanced(by: .seconds(2)))
            } throws: { error in
                (error as? GraphError).map { $0.kind == .throttled && $0.message.contains("maximum stale age") } ?? false
            }
            #expect(await sim.stats().reportRequests == 1)
        }
    }

    @Test("a joiner waits for a shared download no longer than its own deadline (was: the first caller's)")
    func joinerOwnDeadline() async throws {
        try await withSession("slow-short.onmicrosoft.com") { session, sim in
            let cache = ReportCache(ttl: .seconds(60))
            let leader = Task { try await cache.report(Self.d7, tenant: "s", session: session, deadline: .now.advanced(by: .seconds(15))) }
            try await Task.sleep(for: .milliseconds(200))
            let started = ContinuousClock.now
            await #expect {
                _ = try await cache.report(Self.d7, tenant: "s", session: session, deadline: .now.advanced(by: .milliseconds(300)))
            } throws: { error in
                (error as? GraphError).map { $0.kind == .timeout && $0.message.contains("another check started") } ?? false
            }
            // The simulator holds the report for 1 s: the joiner gave up well before it answered.
            #expect(started.duration(to: .now) < .milliseconds(900))
            // A joiner whose deadline has already passed (its timer fires before it waits) too.
            let late = ContinuousClock.now
            await #expect(throws: GraphError.self) {
                _ = try await cache.report(Self.d7, tenant: "s", session: session, deadline: .now.advanced(by: .milliseconds(-100)))
            }
            #expect(late.duration(to: .now) < .milliseconds(500))
            let (_, outcome) = try await leader.value
            #expect(outcome == .miss)
            #expect(await sim.stats().reportRequests == 1)
        }
    }

    @Test("a cancelled joiner stops waiting at once (was: it waited for the shared download to end)")
    func cancelledJoiner() async throws {
        try await withSession("slow-short.onmicrosoft.com") { session, sim in
            let cache = ReportCache(ttl: .seconds(60))
            let leader = Task { try await cache.report(Self.d7, tenant: "s", session: session, deadline: .now.advanced(by: .seconds(15))) }
            try await Task.sleep(for: .milliseconds(200))
            let joiner = Task { try await cache.report(Self.d7, tenant: "s", session: session, deadline: .now.advanced(by: .seconds(15))) }
            try await Task.sleep(for: .milliseconds(100))
            let cancelled = ContinuousClock.now
            joiner.cancel()
            let result = await joiner.result
            // The simulator holds the report for 1 s: the joiner ended well before it answered.
            #expect(cancelled.duration(to: .now) < .milliseconds(500), "the cancelled joiner took \(cancelled.duration(to: .now))")
            #expect(throws: GraphError.self) { _ = try result.get() }
            let (_, outcome) = try await leader.value
            #expect(outcome == .miss)
            #expect(await sim.stats().reportRequests == 1)
        }
    }

    @Test("checks that waited for budget together share one download afterwards (was: each fetched on its own)")
    func singleFlightAfterBudgetWait() async throws {
        try await withSession("slow-short.onmicrosoft.com") { session, sim in
            let cache = ReportCache(ttl: .milliseconds(50), budget: 1, window: .seconds(2), maxStale: .zero)
            _ = try await cache.report(Self.d7, tenant: "s", session: session, deadline: deadline)
            try await Task.sleep(for: .milliseconds(100))
            let outcomes = try await withThrowingTaskGroup(of: ReportCache.Outcome.self) { group in
                for _ in 0..<3 {
                    group.addTask { try await cache.report(Self.d7, tenant: "s", session: session, deadline: self.deadline).1 }
                }
                return try await group.reduce(into: [ReportCache.Outcome]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 == .hit }.count == 2, "\(outcomes)")
            #expect(await sim.stats().reportRequests == 2)
        }
    }

    @Test("the cache holds at most its byte budget: past dates go first, then the least recently used; a body larger than the budget is served, not kept")
    func byteBudget() async throws {
        try await withSession("contoso.onmicrosoft.com") { session, sim in
            let probe = ReportCache()
            let email = { (d: String) in ReportRequest(report: "getEmailActivityUserDetail", parameter: .date(d)) }
            var sizes: [Int] = []
            for d in ["2025-06-26", "2025-06-27", "2025-06-28"] {
                sizes.append(try await probe.report(email(d), tenant: "c", session: session, deadline: deadline).0.bytes)
            }
            sizes.sort()
            // Room for any two of the bodies, not for all three. A snapshot's size counts its
            // arrays' capacities, which the allocator may round differently from one parse to the
            // next: half the smallest body of slack (the CI rehearsal of 2026-12-03 saw the second
            // date evict the first with no slack).
            let budget = sizes[1] + sizes[2] + sizes[0] / 2
            #expect(sizes[0] > 0)
            let cache = ReportCache(ttl: .seconds(60), maxBytes: budget)
            _ = try await cache.report(email("2025-06-27"), tenant: "c", session: session, deadline: deadline)
            _ = try await cache.report(email("2025-06-28"), tenant: "c", session: session, deadline: deadline)
            // The older date is used last, yet it goes first: a past date.
            let (_, o) = try await cache.report(email("2025-06-27"), tenant: "c", session: session, deadline: deadline)
            #expect(o == .hit)
            _ = try await cache.report(email("2025-06-26"), tenant: "c", session: session, deadline: deadline)
            #expect(await cache.count == 2)
            #expect(await cache.evictions == 1)
            #expect(await cache.bytes <= budget)
            let (_, kept) = try await cache.report(email("2025-06-28"), tenant: "c", session: session, deadline: deadline)
            #expect(kept == .hit, "the newest date stays")
            let tiny = ReportCache(ttl: .seconds(60), maxBytes: 10)
            let (served, first) = try await tiny.report(Self.d7, tenant: "c", session: session, deadline: deadline)
            #expect((try? served.content.get()) != nil && first == .miss)
            #expect(await tiny.count == 0)
            #expect(await tiny.bytes == 0)
            _ = sim
        }
    }

    @Test("workload identity: the projected service-account token in federatedTokenFile is the client assertion, read again for every token request (it rotates); a token for another subject is refused naming the federated credential")
    func federatedToken() async throws {
        let dir = NSTemporaryDirectory() + "exocheck-wif-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func openssl(_ args: [String]) throws -> Data {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["openssl"] + args
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return data
        }
        func b64url(_ d: Data) -> String {
            d.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        }
        // The cluster's service-account issuer key, and a token as the kubelet projects it.
        _ = try openssl(["genrsa", "-out", dir + "/issuer.key", "2048"])
        _ = try openssl(["rsa", "-in", dir + "/issuer.key", "-pubout", "-out", dir + "/issuer.pub"])
        let issuer = "https://oidc.example/cluster-1"
        func projectToken(subject: String) throws {
            let header = b64url(Data(#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#.utf8))
            let exp = Int(Date().timeIntervalSince1970) + 3600
            let payload = b64url(Data(#"{"aud":["api://AzureADTokenExchange"],"exp":\#(exp),"iss":"\#(issuer)","sub":"\#(subject)"}"#.utf8))
            try Data("\(header).\(payload)".utf8).write(to: URL(fileURLWithPath: dir + "/signing-input"))
            let signature = try openssl(["dgst", "-sha256", "-sign", dir + "/issuer.key", dir + "/signing-input"])
            try "\(header).\(payload).\(b64url(signature))\n".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        }
        var config = SimulatorConfiguration.standard()
        var tenant = SimulatedTenant(name: "federated", data: .fixture("small"))
        tenant.aliases = ["federated.onmicrosoft.com"]
        let identity = FederatedIdentity(issuer: issuer, subject: "system:serviceaccount:monitoring:exocheck",
                                         publicKeyPEM: try String(contentsOfFile: dir + "/issuer.pub", encoding: .utf8))
        tenant.clients = [SimulatedClient(clientId: SimulatorConfiguration.defaultClientId, clientSecret: "", federated: identity)]
        config.tenants.append(tenant)
        // The Azure SDK variables, as the AKS workload identity webhook injects them.
        let environment = ["AZURE_TENANT_ID": "federated.onmicrosoft.com", "AZURE_CLIENT_ID": SimulatorConfiguration.defaultClientId,
                           "AZURE_FEDERATED_TOKEN_FILE": dir + "/token"]
        try projectToken(subject: identity.subject)
        let c = try WorkerConfiguration.parse("tenants: {fed: {workloadIdentity: true}}", baseDirectory: dir, environment: environment)
        let credential = try #require(c.tenants["fed"]?.credential)
        #expect(c.tenants["fed"]?.tenantId == "federated.onmicrosoft.com")
        try await withSession("federated.onmicrosoft.com", credential: credential, configuration: config) { session, _ in
            let body = try await session.report(Self.d7, deadline: deadline).body.get()
            #expect((try? body.content.get()) != nil)
        }
        // The file rotates: the next token request reads the new content.
        try projectToken(subject: "system:serviceaccount:other:intruder")
        try await withSession("federated.onmicrosoft.com", credential: credential, configuration: config) { session, _ in
            await #expect {
                _ = try await session.report(Self.d7, deadline: deadline).body.get()
            } throws: { error in
                (error as? GraphError).map { $0.kind == .auth && $0.details.joined().contains("federated credential") } ?? false
            }
        }
        try projectToken(subject: identity.subject)
        try await withSession("federated.onmicrosoft.com", credential: credential, configuration: config) { session, _ in
            let body = try await session.report(Self.d7, deadline: deadline).body.get()
            #expect((try? body.content.get()) != nil)
        }
        // Start-up refuses what cannot work, naming the setting.
        #expect(throws: ConfigurationError.self) {
            _ = try WorkerConfiguration.parse("tenants: {fed: {workloadIdentity: true}}", baseDirectory: dir, environment: [:])
        }
        #expect(throws: ConfigurationError.self) {
            _ = try WorkerConfiguration.parse("tenants: {fed: {tenantId: a, clientId: b, federatedTokenFile: missing}}", baseDirectory: dir)
        }
    }

    @Test("a certificate credential signs an RS256 client assertion the identity platform accepts; another key is refused")
    func certificateAssertion() async throws {
        let dir = NSTemporaryDirectory() + "exocheck-cert-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func openssl(_ args: [String]) throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["openssl"] + args
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
        }
        try openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=exocheck-test", "-days", "1",
                     "-keyout", dir + "/app.key", "-out", dir + "/app.crt"])
        try openssl(["rsa", "-in", dir + "/app.key", "-pubout", "-out", dir + "/app.pub"])
        try openssl(["genrsa", "-out", dir + "/other.key", "2048"])
        let cert = try String(contentsOfFile: dir + "/app.crt", encoding: .utf8)
        let pub = try String(contentsOfFile: dir + "/app.pub", encoding: .utf8)
        var config = SimulatorConfiguration.standard()
        var tenant = SimulatedTenant(name: "certified", data: .fixture("small"))
        tenant.aliases = ["certified.onmicrosoft.com"]
        tenant.clients = [SimulatedClient(clientId: SimulatorConfiguration.defaultClientId, clientSecret: "", certificatePEM: cert, publicKeyPEM: pub)]
        config.tenants.append(tenant)
        func credential(key: String) throws -> ClientCredential {
            let yaml = """
            tenants: {certified: {tenantId: certified.onmicrosoft.com, clientId: \(SimulatorConfiguration.defaultClientId),
                                  certificateFile: app.crt, privateKeyFile: \(key)}}
            """
            let c = try WorkerConfiguration.parse(yaml, baseDirectory: dir)
            guard let cred = c.tenants["certified"]?.credential else { throw ConfigurationError("no credential") }
            return cred
        }
        try await withSession("certified.onmicrosoft.com", credential: try credential(key: "app.key"), configuration: config) { session, _ in
            let body = try await session.report(Self.d7, deadline: deadline).body.get()
            #expect((try? body.content.get()) != nil)
        }
        try await withSession("certified.onmicrosoft.com", credential: try credential(key: "other.key"), configuration: config) { session, _ in
            await #expect {
                _ = try await session.report(Self.d7, deadline: deadline).body.get()
            } throws: { error in
                (error as? GraphError).map { $0.kind == .auth && $0.details.joined().contains("AADSTS700027") } ?? false
            }
        }
    }
}

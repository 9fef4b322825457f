import Crypto
import Foundation
import Hummingbird
import Logging
import NIOCore

/// A loopback stand-in for `login.microsoftonline.com` (client-credentials tokens) and the
/// Graph usage-report endpoints (`/v1.0/reports/<name>(period='D7')`, 302 to a pre-authenticated
/// download URL), with fault switches. Used by tests, benchmarks and the demo.
public struct GraphSimulator: Sendable {
    /// The tenants, app registrations and fault rules this simulator serves.
    public let configuration: SimulatorConfiguration

    /// Builds a simulator of `configuration` (default: the built-in tenants of
    /// `SimulatorConfiguration.standard()`); nothing listens until `start`.
    public init(configuration: SimulatorConfiguration = .standard()) {
        self.configuration = configuration
    }

    /// Starts listening on `host:port` (0 = a free port) and returns once the port is bound.
    public func start(host: String = "127.0.0.1", port: Int = 0, logger: Logger? = nil) async throws -> RunningGraphSimulator {
        let state = try SimulatorState(configuration: configuration)
        let handler = SimulatorHandler(state: state, configuration: configuration)
        let (portStream, portContinuation) = AsyncStream<Int>.makeStream()
        var quiet = Logger(label: "exocheck.graph-simulator")
        quiet.logLevel = .critical
        let app = Application(
            responder: CallbackResponder<BasicRequestContext> { request, _ in try await handler.respond(request) },
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "exocheck-graph-simulator"),
            onServerRunning: { channel in
                portContinuation.yield(channel.localAddress?.port ?? 0)
                portContinuation.finish()
            },
            logger: logger ?? quiet)
        let task = Task { try await app.run() }
        var bound = 0
        for await p in portStream {
            bound = p
            break
        }
        guard bound > 0 else {
            task.cancel()
            _ = try? await task.value
            throw SimulatorError("the Graph simulator could not listen on \(host):\(port)")
        }
        return RunningGraphSimulator(host: host, port: bound, state: state, task: task)
    }
}

/// A started simulator: its URL, counters, and `stop()`.
public struct RunningGraphSimulator: Sendable {
    /// The address it listens on, as given to `start`.
    public let host: String
    /// The TCP port actually bound (a free one when `start` was given 0).
    public let port: Int
    let state: SimulatorState
    let task: Task<Void, any Error>

    /// `http://127.0.0.1:<port>`: both the login and the Graph endpoint.
    public var baseURL: String { "http://\(host):\(port)" }

    /// The counters since the start or the last `reset()`.
    public func stats() async -> SimulatorStats { await state.stats }

    /// Zeroes the counters and fault-rule counters; returns the counters as they were.
    @discardableResult
    public func reset() async -> SimulatorStats { await state.reset() }

    /// Stops the server (cancels its task) and waits until it has ended.
    public func stop() async {
        task.cancel()
        _ = try? await task.value
    }
}

/// Counters since the last reset. A request is counted when it arrives.
public struct SimulatorStats: Sendable, Codable, Equatable {
    /// Requests to `/{tenant}/oauth2/v2.0/token`, whatever the answer.
    public var tokenRequests = 0
    /// Access tokens issued (token requests answered 200).
    public var tokensIssued = 0
    /// Requests to `/v1.0/reports/…` or `/beta/reports/…`.
    public var reportRequests = 0
    /// Requests to the pre-authenticated download URLs (`/data/download/…`).
    public var downloadRequests = 0
    /// Requests to any other path (answered 404); the admin endpoints (`/_sim/…`, `/_graphsim/…`)
    /// are not counted.
    public var otherRequests = 0
    /// Answers with 304 Not Modified (an `If-None-Match` that matched the body's ETag).
    public var notModified = 0
    /// Downloads that carried an Authorization header (must stay 0: the bearer token never
    /// goes to the download host).
    public var downloadsWithAuthorization = 0
    /// `name(period|date)` → count.
    public var byReport: [String: Int] = [:]
    /// `name(period|date)` per tenant: `tenant/name(variant)` → count.
    public var byTenantReport: [String: Int] = [:]
    /// Token requests (not tokens issued) per tenant as written in the token URL, lowercased → count.
    public var tokensByTenant: [String: Int] = [:]
    /// Answers per HTTP status (the code as a string, e.g. `429`) → count, counted when answered.
    public var byStatus: [String: Int] = [:]
    /// Requests that arrived and are not answered yet; `reset()` keeps this one.
    public var inFlight = 0

    enum CodingKeys: String, CodingKey {
        case tokenRequests = "token_requests", tokensIssued = "tokens_issued", reportRequests = "report_requests"
        case downloadRequests = "download_requests", otherRequests = "other_requests", notModified = "not_modified"
        case byReport = "by_report", byTenantReport = "by_tenant_report", tokensByTenant = "tokens_by_tenant"
        case byStatus = "by_status", inFlight = "in_flight", downloadsWithAuthorization = "downloads_with_authorization"
    }
}

/// Mutable simulator state: counters, fault-rule counters, and the served bodies.
actor SimulatorState {
    var stats = SimulatorStats()
    var ruleMatches: [String: Int] = [:]
    let reports: [String: TenantReports]
    var bodyCache: [String: [UInt8]] = [:]

    init(configuration: SimulatorConfiguration) throws {
        var reports: [String: TenantReports] = [:]
        var fixtures: [String: TenantReports] = [:]
        for tenant in configuration.tenants {
            switch tenant.data {
            case .fixture(let name):
                if fixtures[name] == nil { fixtures[name] = try TenantReports.fixture(name) }
                reports[tenant.name] = fixtures[name]
            case .generated(let g):
                reports[tenant.name] = TenantReports.generated(g)
            }
        }
        self.reports = reports
    }

    func reset() -> SimulatorStats {
        let old = stats
        let inFlight = stats.inFlight
        stats = SimulatorStats()
        stats.inFlight = inFlight
        ruleMatches = [:]
        return old
    }

    func arrive(_ kind: String, tenant: String? = nil, report: String? = nil) {
        stats.inFlight += 1
        switch kind {
        case "token":
            stats.tokenRequests += 1
            if let tenant { stats.tokensByTenant[tenant, default: 0] += 1 }
        case "report":
            stats.reportRequests += 1
            if let report {
                stats.byReport[report, default: 0] += 1
                if let tenant { stats.byTenantReport["\(tenant)/\(report)", default: 0] += 1 }
            }
        case "download": stats.downloadRequests += 1
        default: stats.otherRequests += 1
        }
    }

    func depart(status: Int) {
        stats.inFlight -= 1
        stats.byStatus[String(status), default: 0] += 1
        if status == 304 { stats.notModified += 1 }
    }

    func tokenIssued() { stats.tokensIssued += 1 }

    func downloadHadAuthorization() { stats.downloadsWithAuthorization += 1 }

    /// Which of `rules` apply to this request (counting matches for skip/times).
    func applicable(_ rules: [FaultRule], tenant: String, target: FaultRule.Target, report: String?, variant: FaultRule.Variant?) -> [FaultRule] {
        var out: [FaultRule] = []
        for (index, rule) in rules.enumerated() {
            guard rule.on == target || rule.on == .any else { continue }
            if let r = rule.report, r != report { continue }
            if let v = rule.variant, v != variant { continue }
            let key = "\(tenant)#\(index)"
            let n = ruleMatches[key, default: 0] + 1
            ruleMatches[key] = n
            if n <= rule.skip { continue }
            if let times = rule.times, n > rule.skip + times { continue }
            out.append(rule)
        }
        return out
    }

    func body(tenant: SimulatedTenant, report: String, date: String?, malformed: MalformedKind?) -> [UInt8]? {
        let key = "\(tenant.name)|\(report)|\(date ?? "D7")|\(malformed?.rawValue ?? "")"
        if let cached = bodyCache[key] { return cached }
        guard var table = reports[tenant.name]?.table(report: report, date: date) else { return nil }
        if tenant.concealNames { table = table.concealed() }
        var bytes = table.csv()
        if let malformed { bytes = Malformation.apply(malformed, to: bytes) }
        let shaped = Malformation.shape(bytes, tenant: tenant, malformed: malformed)
        bodyCache[key] = shaped
        return shaped
    }
}

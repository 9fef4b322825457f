import ExchangeChecks
import Foundation
import NIOHTTP1
import Tracing

extension ReportRequest {
    /// The request path under the Graph endpoint.
    var path: String {
        let encoded = parameterText.replacingOccurrences(of: "'", with: "%27")
        return "/v1.0/reports/\(report)(\(encoded))"
    }
}

/// A downloaded report, or "unchanged" after an `If-None-Match` revalidation.
public enum ReportDownload: Sendable {
    /// The report bytes as downloaded (HTTP 200), with the answer's `ETag` header (nil when absent).
    case body([UInt8], etag: String?)
    /// HTTP 304: the copy whose ETag was sent in `If-None-Match` is still current.
    case notModified
}

/// Talks to Graph for one app identity (tenant + client): tokens through the shared caches,
/// report requests with the redirect followed by hand, retries within the check's deadline.
public struct GraphSession: Sendable {
    /// The tenant and app this session gets tokens and reports for.
    public let app: AppIdentity
    let transport: HTTPTransport
    let tokenCache: TokenCache
    let diskStore: DiskTokenStore?
    /// Per-request timeout (`--timeout`).
    public var requestTimeout: Duration
    /// Retries of report requests and downloads (429/503/5xx, unreachable): `RetryPolicy.graph`.
    public var retry = RetryPolicy.graph
    /// Retries of the token request after a transient failure (login 5xx or 429, unreachable).
    /// nil: one request, as the plugin makes (`run`); the worker sets `RetryPolicy.graph`, so that
    /// a short login outage does not fail every check waiting on the tenant's token.
    public var tokenRetry: RetryPolicy?
    /// Where the report redirect may lead (https, no internal addresses, optional host list).
    public var redirectPolicy: RedirectPolicy
    /// Where warnings go (stderr for `run`, the log for the worker).
    let warn: @Sendable (String) -> Void
    /// Told about every Graph HTTP answer: (report name, HTTP status, 0 for a transport failure).
    public var observer: (@Sendable (_ report: String, _ status: Int) -> Void)?

    /// Builds a session for `app`: tokens through `tokenCache` (and `diskStore` when given), requests
    /// through `transport`, each limited to `requestTimeout` (default 10 s), warnings to `warn`
    /// (default: dropped). Reports are retried with `RetryPolicy.graph`, the token request is not
    /// retried, and redirects are judged by a `RedirectPolicy` for the app's Graph endpoint.
    public init(
        app: AppIdentity, transport: HTTPTransport, tokenCache: TokenCache, diskStore: DiskTokenStore? = nil,
        requestTimeout: Duration = .seconds(10), warn: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.app = app
        self.transport = transport
        self.tokenCache = tokenCache
        self.diskStore = diskStore
        self.requestTimeout = requestTimeout
        self.warn = warn
        self.redirectPolicy = RedirectPolicy(endpoint: app.endpoints.graph)
    }

    var key: TokenKey { TokenKey(app: app) }

    /// A Graph answer larger than the transport's body limit: not retried (it would be as large
    /// again), and said as such rather than as an unreachable Graph.
    static func tooLarge(_ request: ReportRequest, limit: Int) -> GraphError {
        let size = limit >= 1 << 20 ? "\(limit >> 20) MiB" : "\(limit) bytes"
        return GraphError(
            .graph,
            "The answer to \(request) is larger than \(size), exocheck's limit for one report after decompression; no numbers were computed. A real report of even 100,000 mailboxes is about 30 MB: check what --graph-endpoint serves."
        )
    }

    /// Seconds left until `deadline`, for messages.
    func secondsLeft(_ deadline: ContinuousClock.Instant) -> Double {
        remainingDuration(deadline).inSeconds
    }

    /// A token: memory cache, then disk cache, then the identity platform.
    public func token(deadline: ContinuousClock.Instant, stats: inout FetchStats) async throws(GraphError) -> AccessToken {
        let before = stats.tokenRequests
        return try await TraceSpan.run(TraceSpan.token) { span throws(GraphError) in
            defer { span.attributes[TraceSpan.Attribute.tokenRequests] = stats.tokenRequests - before }
            return try await cachedToken(deadline: deadline, stats: &stats)
        }
    }

    private func cachedToken(deadline: ContinuousClock.Instant, stats: inout FetchStats) async throws(GraphError) -> AccessToken {
        let key = self.key
        let app = self.app
        let transport = self.transport
        let diskStore = self.diskStore
        let requestTimeout = self.requestTimeout
        let warn = self.warn
        let requested = RequestFlag()
        let tokenRetry = self.tokenRetry
        // Counted whether the token comes or not: a check that failed on its token spent requests.
        stats.tokenLookups += 1
        defer { stats.tokenRequests += requested.count }
        let (token, _) = try await tokenCache.token(for: key) { () async throws(GraphError) -> AccessToken in
            if let disk = diskStore?.load(key) { return disk }
            var tries = (tokenRetry ?? RetryPolicy(maxAttempts: 1, initialBackoff: .zero, maxBackoff: .zero)).start()
            // A retry must leave the report request its time: the budget it may use ends one
            // request timeout before the check's deadline.
            let reportReserve = requestTimeout
            while true {
                let left = Self.remainingDuration(deadline)
                let timeout = min(requestTimeout, max(.milliseconds(1), left))
                requested.set()
                do throws(GraphError) {
                    let token = try await IdentityClient(transport: transport).requestToken(for: app, timeout: timeout)
                    if let warning = diskStore?.save(token, for: key) { warn(warning) }
                    return token
                } catch  where error.transient {
                    let decision = tries.next(
                        serverDelay: error.retryAfterSeconds.map(Self.duration),
                        remaining: Self.remainingDuration(deadline) - reportReserve)
                    guard case .retry(let wait) = decision else { throw error }
                    warn("the login endpoint failed (\(error.message)); retrying in \(IdentityClient.seconds(wait))")
                    try? await Task.sleep(for: wait)
                    if Task.isCancelled { throw error }
                }
            }
        }
        return token
    }

    /// Downloads one report. `etag` asks for revalidation (`If-None-Match`).
    public func fetch(
        _ request: ReportRequest, deadline: ContinuousClock.Instant, etag: String? = nil,
        stats: inout FetchStats
    ) async throws(GraphError) -> ReportDownload {
        var token = try await token(deadline: deadline, stats: &stats)
        var renewedAfter401 = false
        var tries = retry.start()
        var attempt: Int { tries.failures + 1 }
        let url = app.endpoints.graph + request.path
        while true {
            let left = remainingDuration(deadline)
            if left <= .zero {
                throw GraphError(.timeout, "No time left in this check's time budget to request \(request) (the deadline passed).")
            }
            var headers = [("Authorization", "Bearer \(token.value)"), ("Accept", "text/csv, application/octet-stream")]
            if let etag { headers.append(("If-None-Match", etag)) }
            stats.graphCalls += 1
            let answer: HTTPAnswer
            do {
                answer = try await transport.send(.GET, url, headers: headers, timeout: min(requestTimeout, left))
                observer?(request.report, answer.status)
            } catch {
                // An answer whose body was too large still has the status Graph gave it.
                observer?(request.report, error.status)
                switch error {
                case .timeout(let s):
                    throw GraphError(
                        .timeout,
                        "Graph did not answer \(request) within \(IdentityClient.seconds(s)) (--timeout); Graph may be slow, retry later or raise --timeout.")
                case .unreachable(let why):
                    let tried = attempt
                    if case .retry(let wait) = tries.next(remaining: remainingDuration(deadline)) {
                        try await sleep(wait)
                        continue
                    }
                    throw GraphError(.graph, "Cannot reach Graph at \(HTTPTransport.hostPort(url)): \(why) (\(tried) attempt\(tried == 1 ? "" : "s")).")
                case .tooLarge(let limit, _):
                    throw Self.tooLarge(request, limit: limit)
                }
            }
            switch answer.status {
            case 200:
                return .body(answer.body, etag: answer.header("ETag"))
            case 304:
                return .notModified
            case 301, 302, 303, 307, 308:
                guard let location = answer.header("Location"), let target = resolve(location, against: url) else {
                    throw GraphError(.graph, "Graph answered \(request) with HTTP \(answer.status) but no usable Location header.")
                }
                if let refusal = redirectPolicy.refusal(target) {
                    throw GraphError(
                        .graph,
                        "The download of \(request) was not followed: \(refusal). If this is a legitimate Microsoft download host, add it to graph.allowedDownloadHosts; otherwise check the Graph endpoint and any proxy in between."
                    )
                }
                return try await download(target, request: request, deadline: deadline, etag: etag, stats: &stats)
            case 401 where !renewedAfter401:
                // The token expired or was revoked: drop it and get a new one, once.
                renewedAfter401 = true
                await tokenCache.invalidate(key, token: token)
                diskStore?.remove(key)
                token = try await self.token(deadline: deadline, stats: &stats)
                continue
            case 429, 503:
                stats.throttled += 1
                let retryAfter = answer.header("Retry-After").flatMap(Self.parseRetryAfter)
                let left = secondsLeft(deadline)
                let tried = attempt
                if case .retry(let wait) = tries.next(serverDelay: retryAfter.map(Self.duration), remaining: remainingDuration(deadline)) {
                    try await sleep(wait)
                    continue
                }
                throw graphError(answer, request: request, attempts: tried, retryAfter: retryAfter, budgetLeft: left)
            case 500, 502, 504:
                let tried = attempt
                if case .retry(let wait) = tries.next(remaining: remainingDuration(deadline)) {
                    try await sleep(wait)
                    continue
                }
                throw graphError(answer, request: request, attempts: tried, retryAfter: nil, budgetLeft: secondsLeft(deadline))
            default:
                throw graphError(answer, request: request, attempts: attempt, retryAfter: nil, budgetLeft: secondsLeft(deadline))
            }
        }
    }

    /// The pre-authenticated download URL: no Authorization header, whatever the host.
    func download(
        _ url: String, request: ReportRequest, deadline: ContinuousClock.Instant, etag: String?,
        stats: inout FetchStats
    ) async throws(GraphError) -> ReportDownload {
        var tries = retry.start()
        var attempt: Int { tries.failures + 1 }
        while true {
            let left = remainingDuration(deadline)
            if left <= .zero { throw GraphError(.timeout, "No time left in this check's time budget to download \(request).") }
            var headers: [(String, String)] = []
            if let etag { headers.append(("If-None-Match", etag)) }
            stats.graphCalls += 1
            let answer: HTTPAnswer
            do {
                answer = try await transport.send(.GET, url, headers: headers, timeout: min(requestTimeout, left))
                observer?(request.report + " download", answer.status)
            } catch {
                observer?(request.report + " download", error.status)
                switch error {
                case .timeout(let s):
                    throw GraphError(
                        .timeout,
                        "The report download of \(request) from \(HTTPTransport.hostPort(url)) did not finish within \(IdentityClient.seconds(s)) (--timeout).")
                case .unreachable(let why):
                    throw GraphError(.graph, "Cannot download \(request) from \(HTTPTransport.hostPort(url)): \(why).")
                case .tooLarge(let limit, _):
                    throw Self.tooLarge(request, limit: limit)
                }
            }
            switch answer.status {
            case 200: return .body(answer.body, etag: answer.header("ETag"))
            case 304: return .notModified
            case 500, 502, 503, 504:
                let tried = attempt
                if case .retry(let wait) = tries.next(remaining: remainingDuration(deadline)) {
                    try await sleep(wait)
                    continue
                }
                throw GraphError(
                    .graph,
                    "The report download of \(request) from \(HTTPTransport.hostPort(url)) failed with HTTP \(answer.status)\(tried > 1 ? " after \(tried) attempts" : ""); retry later."
                )
            case 403, 404:
                throw GraphError(
                    .graph, "The report download URL of \(request) answered HTTP \(answer.status) (expired or unknown download link); retry the check.")
            default:
                throw GraphError(
                    .graph,
                    "The report download of \(request) from \(HTTPTransport.hostPort(url)) failed with HTTP \(answer.status)\(attempt > 1 ? " after \(attempt) attempts" : ""); retry later."
                )
            }
        }
    }

    func graphError(_ answer: HTTPAnswer, request: ReportRequest, attempts: Int, retryAfter: Double?, budgetLeft: Double) -> GraphError {
        let json = try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any]
        let error = json?["error"] as? [String: Any]
        let code = error?["code"] as? String
        let graphMessage = error?["message"] as? String
        let status = answer.status
        var kind: GraphError.Kind = .graph
        var advice: String
        switch status {
        case 401:
            kind = .auth
            advice =
                "Graph rejected the access token even after a new one was requested; check that the app registration exists in this tenant and the endpoints belong to the same cloud."
        case 403:
            kind = .permission
            advice =
                "the app lacks the Reports.Read.All application permission with admin consent: grant it under Entra ID > App registrations > API permissions, then grant admin consent."
        case 429, 503:
            kind = .throttled
            let what =
                status == 429
                ? "Graph is throttling report calls (about 14 per 10 minutes per report, tenant and app)"
                : "Graph is temporarily unavailable"
            let retry = retryAfter.map { "it asked to retry after \(Self.formatSeconds($0))" } ?? "no Retry-After was given"
            if let retryAfter, retryAfter >= budgetLeft - 0.2 {
                advice =
                    "\(what); \(retry), beyond this check's remaining time budget (\(Self.formatSeconds(max(0, budgetLeft)))). Retry after \(Self.formatSeconds(retryAfter)) or lower the check frequency."
            } else {
                advice = "\(what); still refused after \(attempts) attempt\(attempts == 1 ? "" : "s") (\(retry)). Lower the check frequency or retry later."
            }
        case 400:
            advice = "Graph refused \(request) as a bad request" + (graphMessage.map { ": \($0)" } ?? "") + "."
        case 404:
            advice = "Graph does not know \(request); check --graph-endpoint."
        default:
            advice = "Graph failed on \(request)\(attempts > 1 ? " after \(attempts) attempts" : ""); retry later."
        }
        let head: String
        if let code {
            head = "Graph endpoint API return error code '\(code)' (HTTP \(status)): "
        } else {
            let type = answer.header("Content-Type").map { ", \($0.split(separator: ";").first.map(String.init) ?? $0)" } ?? ""
            head = "Graph answered \(request) with HTTP \(status) (no JSON error body\(type)): "
        }
        var details: [String] = []
        if let graphMessage { details.append("Graph says: \(graphMessage)") }
        if let inner = error?["innerError"] as? [String: Any], let id = inner["request-id"] as? String {
            details.append("Graph request-id: \(id)")
        }
        return GraphError(kind, head + advice, details: details, retryAfterSeconds: retryAfter)
    }

    /// `Retry-After`: seconds, possibly fractional (`2.128`), or an HTTP date.
    static func parseRetryAfter(_ value: String) -> Double? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        // Bounded: a hostile or broken server may say 1e19 (which used to trap when formatted).
        if let s = Double(trimmed), s.isFinite, s >= 0 { return min(s, maxRetryAfterSeconds) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        if let date = formatter.date(from: trimmed) { return max(0, date.timeIntervalSinceNow) }
        return nil
    }

    /// A year: any longer Retry-After is read as this.
    static let maxRetryAfterSeconds = 31_536_000.0

    static func formatSeconds(_ s: Double) -> String {
        guard s.isFinite, abs(s) < 1e15 else { return String(format: "%.0f s", s.isFinite ? s : 0) }
        return s == s.rounded() ? "\(Int64(s)) s" : String(format: "%.1f s", s)
    }

    func remainingDuration(_ deadline: ContinuousClock.Instant) -> Duration { Self.remainingDuration(deadline) }
    static func remainingDuration(_ deadline: ContinuousClock.Instant) -> Duration { ContinuousClock.now.duration(to: deadline) }

    /// Seconds (finite, at most `maxRetryAfterSeconds`, from `parseRetryAfter`) as a Duration.
    static func duration(_ seconds: Double) -> Duration {
        Duration(clampedSeconds: min(seconds, maxRetryAfterSeconds))
    }

    func sleep(_ wait: Duration) async throws(GraphError) {
        do {
            try await Task.sleep(for: wait)
        } catch {
            throw GraphError(.timeout, "The check was cancelled while waiting to retry.")
        }
    }

    func resolve(_ location: String, against base: String) -> String? {
        if location.hasPrefix("http://") || location.hasPrefix("https://") { return location }
        guard let baseURL = URL(string: base), let url = URL(string: location, relativeTo: baseURL) else { return nil }
        return url.absoluteString
    }
}

/// Counts the token requests made inside the token closure, read after it ran (the closure may
/// run in another task).
/// Token requests sent by one `token` call (retries included).
final class RequestFlag: Sendable {
    private let storage = Mutex(0)
    func set() { storage.withLock { $0 += 1 } }
    var count: Int { storage.withLock { $0 } }
}

import Synchronization

extension GraphSession: ReportSource {
    /// Straight from Graph (`exocheck run`, no cache): every answer is a `miss`, parsed on the
    /// calling task (one check per process: nothing to share it with).
    public func report(_ request: ReportRequest, deadline: ContinuousClock.Instant) async -> ReportAnswer {
        var stats = FetchStats()
        do throws(GraphError) {
            switch try await fetch(request, deadline: deadline, stats: &stats) {
            case .body(let bytes, _): return .data(ReportSnapshot.parse(bytes, request: request), .miss, cost: stats)
            case .notModified:
                return .failure(GraphError(.graph, "Graph answered 304 Not Modified to \(request) without a cached copy."), cost: stats)
            }
        } catch {
            return .failure(error, cost: stats)
        }
    }
}

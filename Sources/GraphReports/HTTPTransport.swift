import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Microsoft national clouds: each has its own login and Graph hosts; tokens do not cross them.
public enum NationalCloud: String, Sendable, Codable, CaseIterable {
    /// `global` (login.microsoftonline.com), `usgov` and `usgovdod` (US Government,
    /// login.microsoftonline.us), `china` (login.chinacloudapi.cn).
    case global, usgov, usgovdod, china

    /// The login and Graph base URLs of this cloud (e.g. `https://login.microsoftonline.us` and
    /// `https://dod-graph.microsoft.us` for `usgovdod`).
    public var endpoints: GraphEndpoints {
        switch self {
        case .global: return GraphEndpoints(login: "https://login.microsoftonline.com", graph: "https://graph.microsoft.com")
        case .usgov: return GraphEndpoints(login: "https://login.microsoftonline.us", graph: "https://graph.microsoft.us")
        case .usgovdod: return GraphEndpoints(login: "https://login.microsoftonline.us", graph: "https://dod-graph.microsoft.us")
        case .china: return GraphEndpoints(login: "https://login.chinacloudapi.cn", graph: "https://microsoftgraph.chinacloudapi.cn")
        }
    }
}

/// Base URLs of the identity platform and of Graph (no trailing slash).
public struct GraphEndpoints: Sendable, Hashable, Codable {
    /// Base URL of the identity platform, e.g. `https://login.microsoftonline.com`; tokens come from
    /// `<login>/<tenant>/oauth2/v2.0/token`.
    public var login: String
    /// Base URL of Graph, e.g. `https://graph.microsoft.com`; reports are read under
    /// `<graph>/v1.0/reports/`, and the token scope is `<graph>/.default`.
    public var graph: String

    /// Builds the endpoints, dropping one trailing slash from each URL.
    public init(login: String, graph: String) {
        self.login = login.hasSuffix("/") ? String(login.dropLast()) : login
        self.graph = graph.hasSuffix("/") ? String(graph.dropLast()) : graph
    }
}

/// One HTTP answer, body collected.
struct HTTPAnswer: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]

    func header(_ name: String) -> String? { headers.first(name: name) }
}

/// Transport failures, before any HTTP status exists.
enum TransportFailure: Error {
    case timeout(Duration)
    case unreachable(String)
    /// The body (after decompression) is larger than `limit` bytes: not retried. `status` is the
    /// answer's HTTP status (0 when the head had not arrived).
    case tooLarge(limit: Int, status: Int)

    /// The HTTP status the server gave before the failure (0: no answer head arrived).
    var status: Int {
        if case .tooLarge(_, let status) = self { return status }
        return 0
    }
}

/// A thin layer over AsyncHTTPClient: one request, a timeout, the body collected, redirects
/// never followed automatically (the report redirect is followed by hand so that the bearer
/// token never reaches the download host).
public struct HTTPTransport: Sendable {
    let client: HTTPClient
    /// Largest body accepted, after decompression (a 100,000-mailbox report is about 30 MB).
    var maxBodyBytes = Self.defaultMaxBodyBytes
    /// The body limit in bytes (256 MiB), also the decompression limit of `defaultConfiguration`.
    public static let defaultMaxBodyBytes = 256 * 1024 * 1024

    /// Wraps `client`, which should be configured with `defaultConfiguration(proxy:)` (redirects must
    /// not be followed automatically); `shutdown()` shuts it down.
    public init(client: HTTPClient) {
        self.client = client
    }

    /// The client configuration the transport expects: redirects not followed, the optional `proxy`,
    /// decompression limited to `defaultMaxBodyBytes`, failed connection attempts not retried,
    /// 10 s connect and 30 s read timeouts.
    public static func defaultConfiguration(proxy: HTTPClient.Configuration.Proxy? = nil) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.proxy = proxy
        // A compressed answer may not inflate past the body limit (a zip bomb is an error).
        configuration.decompression = .enabled(limit: .size(Self.defaultMaxBodyBytes))
        // GraphSession retries within the check's deadline itself; a refused connection must
        // surface at once instead of being retried until the connect timeout.
        configuration.connectionPool.retryConnectionEstablishment = false
        // Idle limits under every request's own deadline: a connection that neither connects
        // nor sends a byte for this long is dropped even where no deadline was given.
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(30))
        // No client spans and no trace context sent to Microsoft: the worker's own spans
        // (TraceSpan) say what a check did, and a client span would record the pre-authenticated
        // download URL (a credential for the tenant's report data) in the trace.
        configuration.tracing.tracer = nil
        return configuration
    }

    /// Shuts the client down (call once when done).
    public func shutdown() async {
        try? await client.shutdown()
    }

    func send(
        _ method: HTTPMethod, _ url: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
        timeout requested: Duration
    ) async throws(TransportFailure) -> HTTPAnswer {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.headers.add(name: "User-Agent", value: "exocheck/1.0")
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        // 1 ms to 1 day: a deadline already passed still makes one short attempt.
        let limited = min(max(.milliseconds(1), requested), .seconds(86_400))
        let nanoseconds = limited.components.seconds * 1_000_000_000 + limited.components.attoseconds / 1_000_000_000
        let timeout = TimeAmount.nanoseconds(nanoseconds)
        // AsyncHTTPClient's timeout covers the response head only: the body is collected under
        // the same deadline, so that a download that stalls after its headers cannot hang a check.
        let bodyDeadline = ContinuousClock.now.advanced(by: .nanoseconds(nanoseconds))
        let limit = maxBodyBytes
        // The answer's status once its head arrived (for a body that turns out too large).
        var status = 0
        do {
            let response = try await client.execute(request, timeout: timeout)
            status = Int(response.status.code)
            let buffer = try await withThrowingTaskGroup(of: ByteBuffer?.self) { group in
                group.addTask { try await response.body.collect(upTo: limit) }
                group.addTask {
                    try await Task.sleep(until: bodyDeadline)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let buffer = first else { throw HTTPClientError.deadlineExceeded }
                return buffer
            }
            return HTTPAnswer(
                status: Int(response.status.code), headers: response.headers,
                body: Array(buffer.readableBytesView))
        } catch is NIOTooManyBytesError {
            throw .tooLarge(limit: limit, status: status)
        } catch let error as HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .connectTimeout, .writeTimeout:
                throw .timeout(requested)
            case .bodyLengthMismatch, .remoteConnectionClosed:
                throw .unreachable("the connection was closed before the answer was complete")
            default:
                throw .unreachable(Self.describe(error))
            }
        } catch {
            // NIOHTTPDecompression.DecompressionError.limit: the body inflates past the limit.
            if String(reflecting: error).contains("DecompressionError.limit") { throw .tooLarge(limit: limit, status: status) }
            let text = Self.describe(error)
            if text.localizedCaseInsensitiveContains("timeout") || text.localizedCaseInsensitiveContains("timed out") {
                throw .timeout(requested)
            }
            throw .unreachable(text)
        }
    }

    static func describe(_ error: any Error) -> String {
        let text = String(describing: error)
        if text.localizedCaseInsensitiveContains("connection refused") || text.contains("ECONNREFUSED") || text.contains("errno: 111") {
            return "connection refused"
        }
        if text.localizedCaseInsensitiveContains("no such host") || text.localizedCaseInsensitiveContains("name resolution")
            || text.localizedCaseInsensitiveContains("lookup")
        {
            return "host name could not be resolved"
        }
        if text.localizedCaseInsensitiveContains("certificate") || text.localizedCaseInsensitiveContains("handshake") {
            return "TLS handshake failed (\(text.prefix(200)))"
        }
        return String(text.prefix(300))
    }

    /// `host:port` of a URL, for messages.
    static func hostPort(_ url: String) -> String {
        guard let u = URLComponents(string: url), let host = u.host else { return url }
        let port = u.port ?? (u.scheme == "http" ? 80 : 443)
        return "\(host):\(port)"
    }
}

/// An HTTP proxy given as `http://host:port` or `http://user:password@host:port` (the plugin's
/// `--proxyurl`). Only plain HTTP proxies (CONNECT for https targets): what the transport can use.
public struct HTTPClientProxy: Sendable, Equatable, CustomStringConvertible {
    /// Host name or address of the proxy.
    public var host: String
    /// TCP port of the proxy; 3128 when the URL gives none.
    public var port: Int
    /// Basic authentication for the proxy, from the URL's user and password (percent-decoded).
    public var username: String?
    /// The password of `username` (never printed: see `description`).
    public var password: String?

    /// Why a `--proxyurl` cannot be used. Never contains the URL, which may hold a password.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        /// What is wrong and what to give instead.
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// Proxy schemes a user may mean that the transport does not speak (named in the error).
    static let otherProxySchemes: Set<String> = ["https", "socks4", "socks4a", "socks5", "socks5h"]

    /// Parses `url`; throws a `ParseError` that says what is wrong without repeating the URL.
    public init(parsing url: String) throws(ParseError) {
        let usage = "give http://host:port, or http://user:password@host:port for a proxy that asks for a login"
        guard let c = URLComponents(string: url.trimmingCharacters(in: .whitespaces)) else {
            throw ParseError("--proxyurl is not a URL: \(usage)")
        }
        guard let scheme = c.scheme?.lowercased(), scheme == "http" else {
            if let scheme = c.scheme?.lowercased(), Self.otherProxySchemes.contains(scheme) {
                throw ParseError("--proxyurl: \(scheme):// proxies are not supported, only HTTP proxies (https targets go through CONNECT): \(usage)")
            }
            throw ParseError("--proxyurl must start with http://: \(usage)")
        }
        guard let host = c.host, !host.isEmpty else { throw ParseError("--proxyurl has no host: \(usage)") }
        let port = c.port ?? 3128
        guard (1...65_535).contains(port) else { throw ParseError("--proxyurl has a port outside 1 to 65535: \(usage)") }
        self.host = host
        self.port = port
        self.username = c.user.flatMap { $0.isEmpty ? nil : $0 }
        self.password = c.password
    }

    /// `host:port`, and whether a login is used; never the password.
    public var description: String { "\(host):\(port)\(username == nil ? "" : " (with a login)")" }

    /// The transport's proxy setting.
    var configuration: HTTPClient.Configuration.Proxy {
        .server(host: host, port: port, authorization: username.map { .basic(username: $0, password: password ?? "") })
    }
}

extension HTTPTransport {
    /// A transport with its own client (shut it down when done).
    public static func make(proxy: HTTPClientProxy? = nil) -> HTTPTransport {
        let configuration = defaultConfiguration(proxy: proxy?.configuration)
        return HTTPTransport(client: HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration))
    }
}

extension HTTPTransport {
    /// True when `url` answers HTTP at all (any status) within `timeout`.
    public func reachable(_ url: String, timeout: Duration = .seconds(5)) async -> Bool {
        do {
            _ = try await send(.GET, url, timeout: timeout)
            return true
        } catch {
            return false
        }
    }
}

/// The answer to `HTTPTransport.post`: what a relay hands on (status, two headers, the body).
public struct PostAnswer: Sendable, Equatable {
    /// The HTTP status.
    public var status: Int
    /// The answer's `Content-Type`, if any.
    public var contentType: String?
    /// The answer's `Retry-After`, as sent (unchecked).
    public var retryAfter: String?
    /// The body, at most the limit given to `post`.
    public var body: [UInt8]
}

extension HTTPTransport {
    /// One POST of `body` to `url` with `headers`, under `timeout`; the answer's body at most
    /// `maxAnswerBytes`. A failure before a complete answer (unreachable, timed out, an answer
    /// too large) is described in a few words without the URL's user information or any header.
    public func post(
        _ url: String, headers: [(String, String)], body: [UInt8], timeout: Duration, maxAnswerBytes: Int
    ) async -> Result<PostAnswer, PostFailure> {
        var bounded = self
        bounded.maxBodyBytes = maxAnswerBytes
        do throws(TransportFailure) {
            let answer = try await bounded.send(.POST, url, headers: headers, body: body, timeout: timeout)
            return .success(
                PostAnswer(status: answer.status, contentType: answer.header("Content-Type"), retryAfter: answer.header("Retry-After"), body: answer.body))
        } catch {
            switch error {
            case .timeout: return .failure(PostFailure(reason: "no answer within \(IdentityClient.seconds(timeout))"))
            case .unreachable(let why): return .failure(PostFailure(reason: why))
            case .tooLarge(let limit, _): return .failure(PostFailure(reason: "the answer is larger than \(limit) bytes"))
            }
        }
    }
}

/// Why `HTTPTransport.post` got no answer.
public struct PostFailure: Error, Sendable, Equatable {
    /// A few words: connection refused, no answer within 10 s, ….
    public var reason: String
}

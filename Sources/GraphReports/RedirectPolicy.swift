import Foundation

/// Where a report redirect may lead. Graph answers a report request with 302 to a short-lived,
/// pre-authenticated download URL; a hostile or compromised answer could point it at the
/// worker's own network (cloud metadata at 169.254.169.254, a broker, an admin port). So:
///
/// * only `https`, unless the configured Graph endpoint itself is `http` (a local simulator);
/// * never to a loopback, private, link-local, shared (CGNAT), multicast or unspecified address
///   literal, nor `localhost`, nor a number written in a non-canonical form (`2130706433`,
///   `0x7f.1`), unless the target host is the configured endpoint's own host;
/// * when `allowedHosts` is set, only to those hosts (`name` exact, `*.name` any subdomain).
///
/// Host names are judged as written: a public name that resolves to an internal address is not
/// caught here (that needs a resolver hook; see SECURITY.md).
public struct RedirectPolicy: Sendable, Equatable {
    /// The configured Graph endpoint (`https://graph.microsoft.com` by default).
    public var endpoint: String
    /// Download hosts allowed (nil: any public host).
    public var allowedHosts: [String]?

    /// Builds the policy for the Graph `endpoint`, optionally limited to `allowedHosts` (`name` or
    /// `*.name`).
    public init(endpoint: String, allowedHosts: [String]? = nil) {
        self.endpoint = endpoint
        self.allowedHosts = allowedHosts
    }

    /// Nil when `target` may be followed; otherwise why not (names the host, never the path or
    /// query, which hold the download's credential).
    public func refusal(_ target: String) -> String? {
        guard let url = URLComponents(string: target), let scheme = url.scheme?.lowercased(),
            let rawHost = url.host, !rawHost.isEmpty
        else {
            return "the redirect target is not an absolute URL"
        }
        let host = Self.normalised(rawHost)
        let base = URLComponents(string: endpoint)
        let endpointScheme = base?.scheme?.lowercased() ?? "https"
        // The endpoint's own host is exempt only on its own port: an internal endpoint (the
        // simulator) must not open every other port of that host.
        let sameOrigin = base?.host.map(Self.normalised) == host && Self.port(url) == base.flatMap(Self.port)
        let endpointHost = sameOrigin ? host : "\u{0}"
        guard scheme == "https" || (scheme == "http" && endpointScheme == "http") else {
            return "the redirect to \(host) uses \(scheme), not https"
        }
        if host != endpointHost, let kind = Self.internalKind(host) {
            return "the redirect leads to \(host), \(kind)"
        }
        if let allowedHosts, host != endpointHost, !allowedHosts.contains(where: { Self.matches(host, $0) }) {
            return "the redirect leads to \(host), which is not in graph.allowedDownloadHosts"
        }
        return nil
    }

    static func port(_ url: URLComponents) -> Int {
        url.port ?? (url.scheme?.lowercased() == "http" ? 80 : 443)
    }

    static func normalised(_ host: String) -> String {
        var h = host.lowercased()
        if h.hasPrefix("["), h.hasSuffix("]") { h = String(h.dropFirst().dropLast()) }
        while h.hasSuffix(".") { h.removeLast() }
        return h
    }

    static func matches(_ host: String, _ pattern: String) -> Bool {
        let p = normalised(pattern)
        if p.hasPrefix("*.") { return host.hasSuffix(String(p.dropFirst())) }
        return host == p
    }

    /// Why `host` is internal (or written so that it could be), nil for a public name or address.
    static func internalKind(_ host: String) -> String? {
        if host == "localhost" || host.hasSuffix(".localhost") { return "a loopback name" }
        if host.contains(":") { return ipv6Kind(host) }
        // A DNS name's last label never starts with a digit: such a host is an address, in
        // some notation (inet_aton also reads 2130706433, 0x7f.1 and 0177.0.0.1 as 127.0.0.1).
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard let last = parts.last, last.first?.isNumber == true else { return nil }
        let octets = parts.compactMap { p -> UInt8? in
            guard !p.isEmpty, p.count <= 3, p.allSatisfy(\.isNumber), !(p.count > 1 && p.hasPrefix("0")) else { return nil }
            return UInt8(p)
        }
        guard parts.count == 4, octets.count == 4 else { return "an address written in a non-canonical form" }
        return ipv4Kind(octets[0], octets[1])
    }

    static func ipv4Kind(_ a: UInt8, _ b: UInt8) -> String? {
        switch (a, b) {
        case (0, _): return "an unspecified address"
        case (127, _): return "a loopback address"
        case (10, _), (172, 16...31), (192, 168): return "a private address"
        case (169, 254): return "a link-local address"
        case (100, 64...127): return "a shared (CGNAT) address"
        case (198, 18...19), (192, 0): return "a benchmarking or protocol-assignment address"
        case (224..., _): return "a multicast or reserved address"
        default: return nil
        }
    }

    static func ipv6Kind(_ host: String) -> String? {
        var bytes = [UInt8](repeating: 0, count: 16)
        guard inet_pton(AF_INET6, host, &bytes) == 1 else { return "an address written in a non-canonical form" }
        if bytes == [UInt8](repeating: 0, count: 16) { return "an unspecified address" }
        if bytes == [UInt8](repeating: 0, count: 15) + [1] { return "a loopback address" }
        if bytes[0] & 0xFE == 0xFC { return "a private address" }
        if bytes[0] == 0xFE, bytes[1] & 0xC0 == 0x80 { return "a link-local address" }
        if bytes[0] == 0xFF { return "a multicast or reserved address" }
        if bytes[0] == 0xFE, bytes[1] & 0xC0 == 0xC0 { return "a site-local address" }
        // Forms that carry an IPv4 address, judged as that address: IPv4-compatible (::a.b.c.d),
        // IPv4-mapped (::ffff:a.b.c.d), IPv4-translated (::ffff:0:a.b.c.d), NAT64 (64:ff9b::/96)
        // and 6to4 (2002:aabb:ccdd::/48).
        let zeros = { (r: Range<Int>) in bytes[r].allSatisfy { $0 == 0 } }
        if zeros(0..<12) || (zeros(0..<10) && bytes[10] == 0xFF && bytes[11] == 0xFF)
            || (zeros(0..<8) && bytes[8] == 0xFF && bytes[9] == 0xFF && zeros(10..<12))
            || (bytes[0] == 0x00 && bytes[1] == 0x64 && bytes[2] == 0xFF && bytes[3] == 0x9B && zeros(4..<12))
        {
            return ipv4Kind(bytes[12], bytes[13]) ?? nil
        }
        if bytes[0] == 0x20, bytes[1] == 0x02 { return ipv4Kind(bytes[2], bytes[3]) ?? nil }
        return nil
    }
}

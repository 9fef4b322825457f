import ExchangeChecks
import Foundation
import Synchronization
import Testing

@testable import GraphReports

/// How long the token cache hands out a token (issue 11, item 4). Pure: the identity platform is
/// a closure that counts its calls, the clock is given.
@Suite("Token reuse and lifetime")
struct TokenLifetimeTests {
    static let key = TokenKey(app: AppIdentity(tenant: "t", clientId: "c", credential: .secret("s"),
                                               endpoints: GraphEndpoints(login: "https://login.example", graph: "https://graph.example")))

    /// Asks `cache` for a token at each offset from `start` (seconds); every request to the
    /// identity platform issues a token of `lifetime` seconds at that moment. Returns the number
    /// of requests made.
    static func requests(margin: TimeInterval, lifetime: TimeInterval, at offsets: [TimeInterval]) async throws -> Int {
        let cache = TokenCache(refreshMargin: .milliseconds(Int64(margin * 1000)))
        let count = Mutex(0)
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        for offset in offsets {
            let now = start.addingTimeInterval(offset)
            _ = try await cache.token(for: key, now: now) { () async throws(GraphError) -> AccessToken in
                count.withLock { $0 += 1 }
                return AccessToken(value: "tok", expiresAt: now.addingTimeInterval(lifetime), lifetime: lifetime)
            }
        }
        return count.withLock { $0 }
    }

    @Test("a token living less than the worker's 300 s margin is reused until half its life (was: never reused, one token request per check)")
    func shortLivedWorkerToken() async throws {
        // 120 s tokens, a check every 10 s for two minutes: renewed at 60 s remaining.
        #expect(try await Self.requests(margin: 300, lifetime: 120, at: stride(from: 0, through: 120, by: 10).map(Double.init)) == 3)
    }

    @Test("within one check, a token living less than run's 10 s margin is requested once (was: twice, the plugin makes one request)")
    func shortLivedRunToken() async throws {
        #expect(try await Self.requests(margin: 10, lifetime: 5, at: [0, 0.5, 1]) == 1)
    }

    @Test("an hour-long token is renewed 300 s before its end by the worker, 10 s by run (unchanged)")
    func longLivedToken() async throws {
        #expect(try await Self.requests(margin: 300, lifetime: 3599, at: [0, 3298, 3300]) == 2)
        #expect(try await Self.requests(margin: 10, lifetime: 3599, at: [0, 3588, 3590]) == 2)
    }

    @Test("a token of unknown lifetime (read back from disk) follows the margin alone")
    func unknownLifetime() {
        let now = Date()
        let token = AccessToken(value: "x", expiresAt: now.addingTimeInterval(100))
        #expect(!token.isUsable(now: now, margin: 300))
        #expect(token.isUsable(now: now, margin: 10))
    }

    @Test("a PEM file with its END marker before its BEGIN marker is not a certificate (was: an invalid range, a trap at start-up)")
    func reversedPEM() {
        #expect(CertificateAssertion.der(fromPEM: "-----END CERTIFICATE-----\nAAAA\n-----BEGIN CERTIFICATE-----\n", label: "CERTIFICATE") == nil)
        #expect(CertificateAssertion.der(fromPEM: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", label: "CERTIFICATE") == Data([0, 0, 0]))
    }
}

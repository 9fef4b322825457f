import CheckWorker
import ExchangeChecks
import Foundation
import Testing

/// What a result's `cache` field says about its token and report, through a real worker.
@Suite("Result cache field", .serialized)
struct ResultCacheFieldTests {
    @Test("cache.token: miss when requested, hit when a needed token came from the cache, none when no token was needed (was: hit for a report served from the report cache, which needs no token)")
    func tokenUse() async throws {
        let fleet = try await WorkerFleet(tenants: 1, users: 4)
        try await fleet.use {
            _ = try fleet.startWorker("w")
            #expect(await fleet.waitForAssignments(1))
            // One after the other: each must see the caches the previous one left.
            let steps: [(CheckRequest, token: String, report: String)] = [
                (CheckRequest(id: "first", tenant: "t0", mode: .mailboxUsage), "miss", "miss"),
                (CheckRequest(id: "again", tenant: "t0", mode: .mailboxUsage), "none", "hit"),
                (CheckRequest(id: "other-report", tenant: "t0", mode: .emailActivity), "hit", "miss"),
                (CheckRequest(id: "unknown-tenant", tenant: "nobody", mode: .mailboxUsage), "none", "none"),
            ]
            for (request, token, report) in steps {
                try await fleet.submit([request])
                let sink = ResultSink()
                #expect(try await fleet.collect(into: sink, timeout: .seconds(60)) { await $0.ids.contains(request.id) })
                let result = await sink.byId()[request.id]?.first
                #expect(result?.cache.token == token, "\(request.id): token \(result?.cache.token ?? "-")")
                #expect(result?.cache.report == report, "\(request.id): report \(result?.cache.report ?? "-")")
            }
            // The metric counts only checks that needed a token.
            let metrics = try await fleet.metrics("w")
            let lines = metrics.split(separator: "\n").filter { $0.contains("token_cache") }
            #expect(WorkerFleet.value(of: #"exocheck_token_cache_total{result="hit"}"#, in: metrics) == 1, "\(lines)")
            #expect(WorkerFleet.value(of: #"exocheck_token_cache_total{result="miss"}"#, in: metrics) == 1, "\(lines)")
        }
    }
}

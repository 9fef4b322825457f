import ArgumentParser
import CheckWorker
import Foundation

/// `exocheck bench refresh`: the refresh-aware cache's schedule against a simulated Graph that
/// refreshes once per simulated day at a jittered time, on a compressed clock (RefreshSimulation:
/// the same schedule the worker's cache uses). Prints calls per report and day and how stale the
/// served data got, next to a fixed TTL.
struct BenchRefresh: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refresh",
        abstract: "Report calls per day and staleness of the refresh-aware cache, on a simulated clock (seconds to run)."
    )

    @Option(help: "Simulated days per run.") var days = 60
    @Option(help: "Jitter of the daily refresh time, ± hours.") var jitterHours = 3.0
    @Option(help: "Seeds (one run each).") var seeds = 10
    @Option(help: "The poller's check interval, seconds.") var checkSeconds = 300.0
    @Option(help: "Revalidation interval around the expected refresh, seconds (graph.reportRefreshMaxLagSeconds).") var maxLagSeconds = 3_600.0

    func run() async throws {
        var config = RefreshSchedule.Configuration()
        config.maxLag = .seconds(maxLagSeconds)
        config.initialInterval = min(.seconds(900), config.maxLag)
        SafeOutput.print(
            "exocheck bench refresh: \(days) simulated days × \(seeds) seeds, refresh at 09:00 ± \(jitterHours) h, a check every \(Int(checkSeconds)) s, maxLag \(Int(maxLagSeconds)) s"
        )
        var worstCalls = 0
        var meanCalls = 0.0
        var worstLag = Duration.zero
        for seed in 1...max(1, seeds) {
            let f = RefreshSimulation.run(
                days: days, jitter: .seconds(jitterHours * 3_600), seed: UInt64(seed), checkInterval: .seconds(checkSeconds),
                configuration: config)
            worstCalls = max(worstCalls, f.maxCallsPerDay)
            meanCalls += f.meanCallsPerDay / Double(max(1, seeds))
            worstLag = max(worstLag, f.maxStaleness)
            SafeOutput.print(
                String(
                    format: "  seed %2d: calls/day max %2d mean %5.2f; staleness max %5.1f min; %d refreshes seen", seed, f.maxCallsPerDay,
                    f.meanCallsPerDay, Double(f.maxStaleness.components.seconds) / 60, f.refreshes))
        }
        let ttlCalls = 86_400 / max(checkSeconds, 900)
        SafeOutput.print(
            String(
                format: "refresh-aware: at most %d calls per report and day (mean %.2f), data at most %.1f min behind Graph's", worstCalls, meanCalls,
                Double(worstLag.components.seconds) / 60))
        SafeOutput.print(String(format: "fixed 15-minute TTL: %.0f calls per report and day", ttlCalls))
    }
}

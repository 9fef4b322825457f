import Testing

@testable import CheckWorker

/// The refresh-aware cache's schedule (pure): when a cached report is revalidated, learned from
/// when its data changed; and the goal of issue 11 on a simulated, compressed clock.
@Suite struct RefreshScheduleTests {
    static let hour = Duration.seconds(3_600)

    @Test("before any change is seen, the copy is revalidated every maxLag")
    func beforeLearning() {
        var s = RefreshSchedule()
        let t = ContinuousClock.Instant.now
        #expect(s.due(after: t) == t.advanced(by: Self.hour))
        s.observe(at: t, changed: false)
        #expect(s.due(after: t) == t.advanced(by: Self.hour))
    }

    @Test("after changes at the same time of day, it stays quiet until the window before the next one, then revalidates every maxLag; a late change is polled for less often")
    func learnedWindow() {
        var s = RefreshSchedule()
        let t0 = ContinuousClock.Instant.now
        for k in 0..<5 { s.observe(at: t0.advanced(by: .seconds(86_400 * k)), changed: true) }
        let last = t0.advanced(by: .seconds(86_400 * 4))
        let next = last.advanced(by: .seconds(86_400))
        // Five changes at the same time of day: the window opens maxLag + 1 h before it.
        #expect(s.due(after: last) == next.advanced(by: .zero - Self.hour * 2))
        let inWindow = next.advanced(by: .zero - Self.hour)
        #expect(s.due(after: inWindow) == inWindow.advanced(by: Self.hour))
        // Late (Graph skipped a day): past the window and 4 h more, every 3 h, not hourly.
        let late = next.advanced(by: Self.hour * 6)
        #expect(s.due(after: late) == late.advanced(by: Self.hour * 3))
    }

    @Test("times of day that straddle midnight are an hour apart, not 23 (23:30 and 00:30)")
    func phaseWraps() throws {
        var s = RefreshSchedule()
        let t0 = ContinuousClock.Instant.now
        s.observe(at: t0, changed: true)
        s.observe(at: t0.advanced(by: .seconds(86_400 + 3_600)), changed: true)
        let w = try #require(s.window)
        // Two changes: 4 h margin; spans the two times of day plus maxLag before.
        #expect(w.start.duration(to: w.end) == Self.hour * (1 + 1 + 4 + 4))
    }

    @Test("goal: at most 12 report calls per day (304s included) with data at most 1 hour older than Graph's, refresh time jittering ±3 h, over 60 simulated days and 10 seeds (was: 96 calls/day with the 15-minute TTL)")
    func goal() {
        for seed in UInt64(1)...10 {
            let f = RefreshSimulation.run(days: 60, jitter: .seconds(3 * 3_600), seed: seed)
            #expect(f.maxCallsPerDay <= 12, "seed \(seed): \(f)")
            #expect(f.maxStaleness <= Self.hour, "seed \(seed): \(f)")
            #expect(f.refreshes >= 59, "seed \(seed): every refresh is seen")
        }
    }
}

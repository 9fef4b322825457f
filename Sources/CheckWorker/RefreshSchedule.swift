/// When a cached report is due for revalidation, learned from when its data changed (issue 11,
/// "a refresh-aware cache"). Pure: no clock of its own, no I/O; the cache feeds it what it saw
/// and asks when to look again, and `RefreshScheduleTests` and `exocheck bench refresh` drive it
/// with a compressed, simulated clock.
///
/// Graph refreshes a tenant's usage reports about once a day, at a time of day that varies by
/// hours. A fixed TTL of 15 minutes spends 96 calls per report and day to notice one change.
/// This schedule instead:
/// * until it has seen the data change once, revalidates every `initialInterval` (at most
///   `maxLag`: the data is then at most that much older than Graph's);
/// * once it has seen changes, it knows their time of day (their phase in `period`): it stays
///   quiet until `margin` before the next expected change, then revalidates every `maxLag` until
///   it sees the change. The window spans the times of day changes were seen (how much the
///   refresh time wanders), widened by `maxLag` (a change is seen up to `maxLag` after it
///   happens) and a margin: `minimumMargin` once five changes were seen, `initialMargin` before;
/// * a change that does not come by `initialMargin` after the window (a day Graph skipped) does
///   not make it poll hourly all day: from then on it revalidates every `lateInterval`.
public struct RefreshSchedule: Sendable, Equatable {
    /// The schedule's settings.
    public struct Configuration: Sendable, Equatable {
        /// How much older than Graph's the served data may get around an expected change (and
        /// before any change was seen): the revalidation interval then. Default 1 hour.
        public var maxLag: Duration = .seconds(3_600)
        /// The revalidation interval before any change was seen (the worker uses the smaller of
        /// `graph.reportCacheSeconds` and `maxLag`). Default 1 hour.
        public var initialInterval: Duration = .seconds(3_600)
        /// How often the data changes: Graph's daily refresh. Default 24 hours.
        public var period: Duration = .seconds(86_400)
        /// The margin around the window with fewer than five changes seen, and how long past
        /// the window the schedule keeps revalidating every `maxLag`. Default 4 hours.
        public var initialMargin: Duration = .seconds(4 * 3_600)
        /// The margin around the window once five changes were seen. Default 1 hour.
        public var minimumMargin: Duration = .seconds(3_600)
        /// The revalidation interval past the window (the change is late). Default 3 hours.
        public var lateInterval: Duration = .seconds(3 * 3_600)
        /// Changes remembered (the newest): two weeks of daily refreshes by default.
        public var history = 14

        /// The defaults: hourly around the expected refresh, quiet elsewhere.
        public init() {}
    }

    /// The settings.
    public let configuration: Configuration
    /// When a change was first seen, oldest first (at most `configuration.history`).
    public private(set) var changes: [ContinuousClock.Instant] = []

    /// A schedule that has seen nothing yet.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// The data was fetched or revalidated at `time`; `changed` when it differed from the copy
    /// before (a new download whose ETag or content is new). The first fetch of a report is not
    /// a change: nobody knows when that data appeared.
    public mutating func observe(at time: ContinuousClock.Instant, changed: Bool) {
        guard changed else { return }
        changes.append(time)
        if changes.count > max(1, configuration.history) { changes.removeFirst(changes.count - max(1, configuration.history)) }
    }

    /// The window of the next expected change: from `maxLag` + `margin` before the earliest time
    /// of day a change was seen (a change is seen up to `maxLag` after it happened) to `margin`
    /// after the latest, on the day after the last change. Times of day are offsets from the
    /// first change folded into ±period/2, so that 23:30 and 00:30 are an hour apart. nil
    /// before any change.
    var window: (start: ContinuousClock.Instant, end: ContinuousClock.Instant)? {
        guard let first = changes.first, let last = changes.last else { return nil }
        let period = configuration.period
        let offsets = changes.map { first.duration(to: $0).folded(into: period) }
        let lo = offsets.min() ?? .zero
        let hi = offsets.max() ?? .zero
        // Few changes seen say little about how far the time of day wanders.
        let pad = changes.count >= 5 ? configuration.minimumMargin : configuration.initialMargin
        // The first change's time of day on the day after the last change.
        let days = (first.duration(to: last.advanced(by: period)) / period).rounded()
        guard let whole = Int(exactly: days) else { return nil }
        let base = first.advanced(by: period * whole)
        return (base.advanced(by: lo - configuration.maxLag - pad), base.advanced(by: hi + pad))
    }

    /// When the copy checked at `time` is due for revalidation.
    public func due(after time: ContinuousClock.Instant) -> ContinuousClock.Instant {
        let lag = configuration.maxLag
        guard let window else { return time.advanced(by: min(configuration.initialInterval, lag)) }
        if time < window.start { return window.start }
        // Every maxLag through the window and for a while after it (a change later than any seen).
        if time <= window.end.advanced(by: configuration.initialMargin) { return time.advanced(by: lag) }
        return time.advanced(by: max(lag, configuration.lateInterval))
    }
}

extension Duration {
    /// This duration folded into [-period/2, period/2) (its phase relative to 0).
    func folded(into period: Duration) -> Duration {
        let p = period.attosecondsValue
        guard p > 0 else { return self }
        var r = attosecondsValue % p
        if r < 0 { r += p }
        if r >= p / 2 { r -= p }
        let (seconds, attoseconds) = r.quotientAndRemainder(dividingBy: 1_000_000_000_000_000_000)
        return Duration(secondsComponent: Int64(seconds), attosecondsComponent: Int64(attoseconds))
    }

    /// This duration in attoseconds (Int128 holds every Duration).
    var attosecondsValue: Int128 {
        Int128(components.seconds) * 1_000_000_000_000_000_000 + Int128(components.attoseconds)
    }
}

/// A poller against a simulated Graph whose report refreshes once per simulated day at a time
/// that jitters from day to day, on a compressed clock (no waiting): what `RefreshSchedule`
/// costs in calls and in staleness. Pure and deterministic for a seed; `exocheck bench refresh`
/// prints its figures and `RefreshScheduleTests` holds them to the goal.
public enum RefreshSimulation {
    /// What a simulated run measured, over the days after `warmupDays`.
    public struct Figures: Sendable, Equatable {
        /// Days measured.
        public var days: Int
        /// Report calls (downloads and 304s) per day: the most in one day, and the mean.
        public var maxCallsPerDay: Int
        /// The mean of calls per day.
        public var meanCallsPerDay: Double
        /// How much older than Graph's the served data was at worst (0 when always current).
        public var maxStaleness: Duration
        /// Changes the poller saw over the whole run (one per refresh, when none was missed).
        public var refreshes: Int
    }

    /// Runs `days` simulated days: Graph refreshes on day k at `refreshHour` + a jitter uniform in
    /// ±`jitter` (seeded); a poller asks every `checkInterval`; the cache revalidates when its
    /// copy is due. The first `warmupDays` are not measured (the schedule is learning).
    public static func run(
        days: Int = 30, warmupDays: Int = 2, refreshHour: Double = 9, jitter: Duration = .seconds(3 * 3_600), seed: UInt64 = 1,
        checkInterval: Duration = .seconds(300), configuration: RefreshSchedule.Configuration = .init()
    ) -> Figures {
        let day = configuration.period
        let origin = ContinuousClock.Instant.now
        var rng = seed
        func uniform() -> Double {
            // SplitMix64.
            rng &+= 0x9E37_79B9_7F4A_7C15
            var z = rng
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
        }
        let jitterSeconds = Double(jitter.components.seconds)
        // Graph's refresh instants, one per day.
        let refreshes = (0..<(days + 1)).map { k in
            origin.advanced(by: day * k + .seconds(refreshHour * 3_600 + (uniform() * 2 - 1) * jitterSeconds))
        }
        /// Graph's version at `t`: how many refreshes happened by then.
        func version(at t: ContinuousClock.Instant) -> Int { refreshes.prefix { $0 <= t }.count }

        var schedule = RefreshSchedule(configuration: configuration)
        var cached = version(at: origin)
        var due = schedule.due(after: origin)
        var calls = [Int](repeating: 0, count: days)
        var staleness = Duration.zero
        var seen = 0
        var t = origin
        let end = origin.advanced(by: day * days)
        while t < end {
            let d = Int(origin.duration(to: t) / day)
            if t >= due {
                calls[d] += 1
                let now = version(at: t)
                schedule.observe(at: t, changed: now != cached)
                if now != cached { seen += 1 }
                cached = now
                due = schedule.due(after: t)
            }
            // What the check was served: how long Graph has had newer data.
            if d >= warmupDays, version(at: t) > cached {
                staleness = max(staleness, refreshes[cached].duration(to: t))
            }
            t = t.advanced(by: checkInterval)
        }
        let measured = calls.dropFirst(warmupDays)
        return Figures(
            days: measured.count, maxCallsPerDay: measured.max() ?? 0,
            meanCallsPerDay: measured.isEmpty ? 0 : Double(measured.reduce(0, +)) / Double(measured.count),
            maxStaleness: staleness, refreshes: seen)
    }
}

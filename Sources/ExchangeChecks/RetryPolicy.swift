/// The one retry rule of every remote call exocheck repeats: Graph report requests, report
/// downloads and result publishing. A policy is configuration (how many tries, how the wait
/// grows, how much time to keep in reserve); a `Retry` is the state of one call's tries. Both are
/// pure: the caller sleeps, and decides which failures are worth a retry at all (a 403 is not, a
/// 429 is; a permanent Kafka error is not, a broker that went away is).
public struct RetryPolicy: Sendable, Equatable {
    /// Tries in all, the first included; `nil`: no limit (the caller's deadline or stop ends it).
    public var maxAttempts: Int?
    /// The first wait when the server names none; doubled after each failure up to `maxBackoff`.
    public var initialBackoff: Duration
    /// The cap of the backoff wait before jitter (never below `initialBackoff`).
    public var maxBackoff: Duration
    /// Each backoff wait is multiplied by a random factor in `1 ± jitter` (0: none), so that the
    /// checks a throttling storm hit at once do not come back at once.
    public var jitter: Double
    /// A retry is made only if its wait leaves at least this much of the caller's time budget,
    /// enough for the retried call to have a chance.
    public var reserve: Duration
    /// The same, when the server named the wait (`Retry-After`): its wait is exact, so less slack.
    public var serverReserve: Duration

    /// Builds a policy, clamping impossible values: at least 1 try, no negative durations,
    /// `maxBackoff` at least `initialBackoff`, `jitter` within 0...1 (0 when not finite).
    public init(
        maxAttempts: Int?, initialBackoff: Duration, maxBackoff: Duration, jitter: Double = 0,
        reserve: Duration = .zero, serverReserve: Duration = .zero
    ) {
        self.maxAttempts = maxAttempts.map { max(1, $0) }
        self.initialBackoff = max(.zero, initialBackoff)
        self.maxBackoff = max(self.initialBackoff, maxBackoff)
        self.jitter = jitter.isFinite ? min(max(jitter, 0), 1) : 0
        self.reserve = max(.zero, reserve)
        self.serverReserve = max(.zero, serverReserve)
    }

    /// Graph report requests and report downloads: 4 tries, so at most 3 waits of about 0.5, 1
    /// and 2 s (doubling, ±20 % jitter, capped at 8 s), always within the check's deadline.
    public static let graph = RetryPolicy(
        maxAttempts: 4, initialBackoff: .milliseconds(500), maxBackoff: .seconds(8),
        jitter: 0.2, reserve: .milliseconds(500), serverReserve: .milliseconds(200))
    /// Publishing a result: 0.5 s doubling to 5 s, without limit while the error is retriable (the
    /// broker may come back; the check keeps its slot and its offset meanwhile). Errors that are
    /// neither retriable nor known to be permanent get `publishUnknownErrorTries` (PublishPolicy).
    public static let publish = RetryPolicy(maxAttempts: nil, initialBackoff: .milliseconds(500), maxBackoff: .seconds(5))
    /// Tries given to a publish error that is neither retriable nor known to be permanent.
    public static let publishUnknownErrorTries = 5

    /// The state of a new call's tries.
    public func start() -> Retry { Retry(policy: self) }
}

/// One call's tries under a `RetryPolicy`: ask `next` after each failure.
public struct Retry: Sendable, Equatable {
    /// What to do after a failed try.
    public enum Decision: Sendable, Equatable {
        /// Try again after waiting this long.
        case retry(after: Duration)
        /// Stop trying, for this reason.
        case giveUp(GiveUp)
    }
    /// Why no further try is made.
    public enum GiveUp: Sendable, Equatable {
        /// `maxAttempts` tries were made.
        case attemptsExhausted
        /// The wait would leave less than the reserve of the caller's time budget.
        case beyondDeadline
    }

    /// The policy these tries follow.
    public let policy: RetryPolicy
    /// Failed tries so far.
    public private(set) var failures = 0
    private var backoff: Duration

    /// The state before the first try: no failures, the next wait `initialBackoff` (before jitter).
    public init(policy: RetryPolicy) {
        self.policy = policy
        self.backoff = policy.initialBackoff
    }

    /// After a failed try: how long to wait before the next, or why not to try again.
    /// - serverDelay: the wait the server asked for (`Retry-After`), used instead of the backoff.
    /// - remaining: what is left of the caller's time budget (`nil`: no deadline).
    /// - unit: a number in 0...1 that picks the jitter (random by default; fixed in tests).
    public mutating func next(
        serverDelay: Duration? = nil, remaining: Duration? = nil,
        unit: Double = Double.random(in: 0...1)
    ) -> Decision {
        failures += 1
        if let max = policy.maxAttempts, failures >= max { return .giveUp(.attemptsExhausted) }
        let wait: Duration
        let reserve: Duration
        if let serverDelay {
            wait = max(.zero, serverDelay)
            reserve = policy.serverReserve
        } else {
            let u = unit.isFinite ? min(max(unit, 0), 1) : 0.5
            wait = backoff * (1 + policy.jitter * (2 * u - 1))
            reserve = policy.reserve
        }
        if let remaining, wait + reserve >= remaining { return .giveUp(.beyondDeadline) }
        // Duration arithmetic saturates nowhere, so cap before doubling: maxBackoff bounds it.
        backoff = backoff >= policy.maxBackoff / 2 ? policy.maxBackoff : backoff * 2
        return .retry(after: wait)
    }
}

import ExchangeChecks
import Testing

@Suite("RetryPolicy: the one retry rule of Graph requests, downloads and publishing")
struct RetryPolicyTests {
    func waits(_ policy: RetryPolicy, failures: Int, unit: Double = 0.5) -> [Retry.Decision] {
        var retry = policy.start()
        return (0..<failures).map { _ in retry.next(unit: unit) }
    }

    @Test("the backoff doubles from its first wait and stays at its maximum")
    func doubling() {
        let policy = RetryPolicy(maxAttempts: nil, initialBackoff: .milliseconds(500), maxBackoff: .seconds(5))
        #expect(waits(policy, failures: 7) == [0.5, 1, 2, 4, 5, 5, 5].map { .retry(after: .milliseconds(Int64($0 * 1000))) })
    }

    @Test("maxAttempts counts the first try: 4 attempts allow 3 waits, then give up")
    func attempts() {
        let decisions = waits(RetryPolicy(maxAttempts: 4, initialBackoff: .seconds(1), maxBackoff: .seconds(8)), failures: 4)
        #expect(decisions.prefix(3).allSatisfy { if case .retry = $0 { true } else { false } })
        #expect(decisions.last == .giveUp(.attemptsExhausted))
    }

    @Test("a policy without a limit retries as long as it is asked (publishing while the broker is away)")
    func unlimited() {
        let decisions = waits(.publish, failures: 1_000)
        #expect(decisions.allSatisfy { if case .retry = $0 { true } else { false } })
        #expect(decisions.last == .retry(after: .seconds(5)))
    }

    @Test("jitter stays within ±jitter of the backoff and is picked by the unit")
    func jitter() {
        let policy = RetryPolicy(maxAttempts: nil, initialBackoff: .seconds(1), maxBackoff: .seconds(1), jitter: 0.2)
        #expect(waits(policy, failures: 1, unit: 0) == [.retry(after: .milliseconds(800))])
        #expect(waits(policy, failures: 1, unit: 1) == [.retry(after: .milliseconds(1200))])
        // A broken random source cannot push the wait out of range.
        #expect(waits(policy, failures: 1, unit: .infinity) == [.retry(after: .seconds(1))])
        #expect(waits(policy, failures: 1, unit: 7) == [.retry(after: .milliseconds(1200))])
        for _ in 0..<200 {
            var retry = policy.start()
            guard case .retry(let wait) = retry.next() else { Issue.record("no retry"); return }
            #expect(wait >= .milliseconds(800) && wait <= .milliseconds(1200))
        }
    }

    @Test("a server's wait (Retry-After) replaces the backoff, with the server reserve")
    func serverDelay() {
        var retry = RetryPolicy.graph.start()
        #expect(retry.next(serverDelay: .seconds(2), remaining: .seconds(3)) == .retry(after: .seconds(2)))
        var late = RetryPolicy.graph.start()
        // 2.9 s + 0.2 s reserve does not fit in 3 s.
        #expect(late.next(serverDelay: .milliseconds(2900), remaining: .seconds(3)) == .giveUp(.beyondDeadline))
        var absurd = RetryPolicy.graph.start()
        #expect(absurd.next(serverDelay: .seconds(31_536_000), remaining: .seconds(60)) == .giveUp(.beyondDeadline))
    }

    @Test("no retry whose wait would leave less than the reserve of the time budget")
    func deadline() {
        var retry = RetryPolicy.graph.start()
        // Backoff 0.5 s ± 20 %, reserve 0.5 s: 1.5 s is enough, 0.9 s is not.
        #expect(retry.next(remaining: .milliseconds(1500), unit: 0.5) == .retry(after: .milliseconds(500)))
        var short = RetryPolicy.graph.start()
        #expect(short.next(remaining: .milliseconds(900), unit: 0.5) == .giveUp(.beyondDeadline))
        var gone = RetryPolicy.graph.start()
        #expect(gone.next(remaining: .seconds(-1)) == .giveUp(.beyondDeadline))
    }

    @Test("out-of-range configuration is clamped: at least one attempt, no negative waits, jitter within 0...1")
    func clamped() {
        let policy = RetryPolicy(maxAttempts: -3, initialBackoff: .seconds(-1), maxBackoff: .seconds(-5), jitter: .nan,
                                 reserve: .seconds(-1))
        #expect(policy.maxAttempts == 1 && policy.initialBackoff == .zero && policy.maxBackoff == .zero && policy.jitter == 0)
        #expect(waits(policy, failures: 1) == [.giveUp(.attemptsExhausted)])
    }
}

/// Seconds → Duration at the boundary (`Duration(clampedSeconds:)`).
@Suite("Durations from seconds")
struct DurationTests {
    @Test("fractions are kept to the millisecond; NaN, negative and absurd values never trap (was: Int64(x * 1000) at about twenty places)")
    func clamped() {
        #expect(Duration(clampedSeconds: 0.25) == .milliseconds(250))
        #expect(Duration(clampedSeconds: 20) == .seconds(20))
        #expect(Duration(clampedSeconds: -3) == .zero)
        #expect(Duration(clampedSeconds: .nan) == .zero)
        #expect(Duration(clampedSeconds: .infinity) == .seconds(Int64(Duration.maximumSeconds)))
        #expect(Duration(clampedSeconds: 1e300) == .seconds(Int64(Duration.maximumSeconds)))
        #expect(Duration(clampedSeconds: 1.5).inSeconds == 1.5)
    }
}

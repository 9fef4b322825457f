/// Seconds given as numbers (configuration files, command-line options, Retry-After) become
/// `Duration` here and only here; everything past that boundary uses `Duration`.
extension Duration {
    /// The largest duration this conversion gives: about 31 years, far past every budget, so
    /// that no later arithmetic can overflow.
    public static let maximumSeconds: Double = 1_000_000_000

    /// `seconds` as a Duration, to the millisecond, never trapping: not-a-number and negative
    /// values are zero, values beyond `maximumSeconds` (infinity included) are that maximum.
    public init(clampedSeconds seconds: Double) {
        guard !seconds.isNaN, seconds > 0 else {
            self = .zero
            return
        }
        let s = Swift.min(seconds, Duration.maximumSeconds)
        self = .milliseconds(Int64((s * 1000).rounded(.down)))
    }

    /// The duration in seconds (for printing and for APIs that take seconds).
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

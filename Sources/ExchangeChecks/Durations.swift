import Foundation

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

/// How late something is, in words an operator reads at a glance: `0.8 s`, `42 s`, `12 min`,
/// `5 h`, `2380 days` (whole units past a minute).
public enum Lateness {
    /// `seconds` (negative or not a number: 0) in the largest unit that keeps it readable.
    public static func describe(seconds: Double) -> String {
        let s = seconds.isNaN ? 0 : Swift.max(0, Swift.min(seconds, Duration.maximumSeconds))
        if s < 10 { return String(format: "%.1f s", s) }
        if s < 120 { return "\(Int(s)) s" }
        if s < 7_200 { return "\(Int(s / 60)) min" }
        if s < 172_800 { return "\(Int(s / 3_600)) h" }
        return "\(Int(s / 86_400)) days"
    }
}

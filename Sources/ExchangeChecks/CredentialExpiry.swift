import Foundation

/// When an app credential stops working: a certificate's notAfter, or the expiry date an operator
/// configured for a client secret (Entra shows it; the secret itself does not carry it). A
/// federated credential has none: nothing is stored that could expire.
///
/// Pure: the time is given, nothing is read. The worker turns it into a metric
/// (`exocheck_credential_expiry_timestamp_seconds`) and, within the warning window, into an entry
/// of the result's `warnings`; `exocheck run` prints the warning on stderr, so that its output
/// stays the plugin's.
public struct CredentialExpiry: Sendable, Equatable {
    /// What expires.
    public enum Source: String, Sendable {
        /// The client certificate (its notAfter).
        case certificate
        /// The client secret (the configured expiry date).
        case secret
    }

    /// The first instant the credential is no longer valid.
    public var notAfter: Date
    /// What expires.
    public var source: Source

    /// An expiry of `source` at `notAfter`.
    public init(notAfter: Date, source: Source) {
        self.notAfter = notAfter
        self.source = source
    }

    /// Days before expiry from which checks carry a warning, when not configured.
    public static let defaultWarningDays = 30
    /// The largest warning window accepted (ten years).
    public static let maximumWarningDays = 3_650

    /// The warning for a check at `now`: nil while more than `warningDays` days remain (or when
    /// `warningDays` is 0: warnings off). Names the tenant when given (a configured name, never a
    /// request's text) and the date, never the credential.
    public func warning(now: Date, warningDays: Int, tenant: String? = nil) -> String? {
        guard warningDays > 0 else { return nil }
        let remaining = notAfter.timeIntervalSince(now)
        guard remaining.isFinite, remaining <= Double(warningDays) * 86_400 else { return nil }
        let what = source == .certificate ? "client certificate" : "client secret"
        let whose = tenant.map { "The \(what) of tenant '\($0)'" } ?? "The \(what)"
        let date = Self.day(notAfter)
        if remaining <= 0 {
            // Lateness caps what it describes: beyond that, only the date is true.
            guard -remaining < Duration.maximumSeconds else { return "\(whose) expired on \(date): token requests fail until it is replaced." }
            return "\(whose) expired \(Lateness.describe(seconds: -remaining)) ago (\(date)): token requests fail until it is replaced."
        }
        return "\(whose) expires in \(Lateness.describe(seconds: remaining)) (\(date)): replace it before then."
    }

    /// `notAfter` as seconds since 1970, the value of the expiry metric.
    public var timestamp: Double { notAfter.timeIntervalSince1970 }

    /// Parses a configured expiry: a date (`2027-06-30`, read as 00:00 UTC that day, the earliest
    /// reading) or an RFC 3339 date-time. Nil when the text is neither.
    public static func parseDate(_ text: String) -> Date? {
        let t = text.trimmingCharacters(in: .whitespaces)
        guard t.utf8.count <= 64 else { return nil }
        if t.utf8.count >= 19 {
            // The parser is lenient (hour 25 or February 30 roll over): the date must be one the
            // date-only rule accepts, and the time of day and any offset in range.
            let bytes = Array(t.utf8)
            func field(_ at: Int) -> Int? {
                guard at + 1 < bytes.count, bytes[at] >= 48, bytes[at] <= 57, bytes[at + 1] >= 48, bytes[at + 1] <= 57 else { return nil }
                return Int(bytes[at] - 48) * 10 + Int(bytes[at + 1] - 48)
            }
            guard parseDate(String(decoding: bytes[0..<10], as: UTF8.self)) != nil, bytes[10] == UInt8(ascii: "T") || bytes[10] == UInt8(ascii: "t"),
                let h = field(11), h <= 23, let m = field(14), m <= 59, let s = field(17), s <= 60
            else { return nil }
            if let last = bytes.last, last != UInt8(ascii: "Z"), last != UInt8(ascii: "z") {
                // An offset: ±hh:mm at the end.
                let n = bytes.count
                guard n >= 25, bytes[n - 6] == UInt8(ascii: "+") || bytes[n - 6] == UInt8(ascii: "-"), bytes[n - 3] == UInt8(ascii: ":"),
                    let oh = field(n - 5), oh <= 23, let om = field(n - 2), om <= 59
                else { return nil }
            }
            return RFC3339.parse(t)
        }
        guard t.utf8.count == 10, let d = try? Date(t + "T00:00:00Z", strategy: Date.ISO8601FormatStyle()) else { return nil }
        // Lenient too (February 30 becomes March 2): the date must read back as given.
        return day(d) == t ? d : nil
    }

    /// `2027-06-30` (UTC).
    static func day(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle().year().month().day())
    }
}

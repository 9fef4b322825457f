/// A Nagios/Centreon threshold range: `10`, `10:`, `~:10`, `10:20`, `@10:20`, decimals with `.`
/// or `,`, byte suffixes `KB`…`EB` (powers of 1024) and `Kb`…`Eb` (powers of 1000).
///
/// Semantics (Centreon `parse_threshold` / `threshold_check`): without `@` the range alerts when
/// the value is outside `[start, end]`; with `@` when inside (bounds included). A missing start
/// is 0, `~` is minus infinity, a missing end is plus infinity.
public struct ThresholdRange: Sendable, Equatable {
    /// The option value as given (trimmed).
    public let text: String
    /// Written with a leading `@`: alerts when the value is inside the range, not outside.
    public let inside: Bool  // leading '@'
    /// nil = minus infinity.
    public let start: Bound?
    /// nil = plus infinity.
    public let end: Bound?

    /// One bound: its numeric value and the text Centreon prints back in perfdata.
    public struct Bound: Sendable, Equatable {
        /// The bound's number, byte suffix applied; `,` is a decimal point except before a byte
        /// suffix (`1,5KB` is 1 KB, as in Perl).
        public let value: Double
        /// What perfdata prints for the bound: the number as written (`,` becomes `.`, a `+` is
        /// dropped), or the computed value for a byte suffix.
        public let text: String
        /// Written with a decimal point: compared at 8-decimal precision, like the plugin.
        let hasDecimalPoint: Bool
    }

    /// Parses a range; returns nil when the text is not a valid range. An empty text means
    /// "no threshold" and is handled by the caller.
    public init?(_ raw: String) {
        let trimmed = raw.trimmingASCIIWhitespace()
        var rest = Substring(trimmed)
        var inside = false
        if rest.first == "@" {
            inside = true
            rest = rest.dropFirst()
        }
        var startText: Substring? = nil
        var endText: Substring = rest
        if let colon = rest.firstIndex(of: ":") {
            startText = rest[..<colon]
            endText = rest[rest.index(after: colon)...]
        }
        // start: '~' | number | '' ; end: number | ''
        var start: Bound?
        if let s = startText {
            if s == "~" {
                start = nil
            } else if s.isEmpty {
                start = Bound(value: 0, text: "0", hasDecimalPoint: false)
            } else {
                guard let b = Self.parseNumber(s, isStart: true) else { return nil }
                start = b
            }
        } else {
            start = Bound(value: 0, text: "0", hasDecimalPoint: false)
        }
        var end: Bound?
        if endText.isEmpty {
            // The plugin's pattern accepts "@" and ":" alone (0 to infinity); an empty option
            // value means "no threshold" and never reaches this parser.
            end = nil
        } else {
            guard let b = Self.parseNumber(endText, isStart: false) else { return nil }
            end = b
        }
        self.text = trimmed
        self.inside = inside
        self.start = start
        self.end = end
    }

    /// `(\+|-)?\d+([.,]\d+)?([KMGTPE][bB])?`
    private static func parseNumber(_ s: Substring, isStart: Bool) -> Bound? {
        var chars = Array(s.utf8)
        var sign = ""
        if let f = chars.first, f == UInt8(ascii: "+") || f == UInt8(ascii: "-") {
            if f == UInt8(ascii: "-") { sign = "-" }
            chars.removeFirst()
        }
        var multiplier: Double? = nil
        if chars.count >= 2, let last = chars.last, last == UInt8(ascii: "B") || last == UInt8(ascii: "b") {
            let prefixes: [UInt8: Double] = [
                UInt8(ascii: "K"): 1, UInt8(ascii: "M"): 2, UInt8(ascii: "G"): 3,
                UInt8(ascii: "T"): 4, UInt8(ascii: "P"): 5, UInt8(ascii: "E"): 6,
            ]
            if let exponent = prefixes[chars[chars.count - 2]] {
                let base: Double = last == UInt8(ascii: "B") ? 1024 : 1000
                multiplier = pow(base, exponent)
                chars.removeLast(2)
            }
        }
        // digits ( [.,] digits )?
        var i = 0
        while i < chars.count, chars[i] >= 0x30, chars[i] <= 0x39 { i += 1 }
        guard i > 0 else { return nil }
        var separatorAt: Int? = nil
        if i < chars.count, chars[i] == UInt8(ascii: ".") || chars[i] == UInt8(ascii: ",") {
            separatorAt = i
            i += 1
            let fractionStart = i
            while i < chars.count, chars[i] >= 0x30, chars[i] <= 0x39 { i += 1 }
            guard i > fractionStart else { return nil }
        }
        guard i == chars.count else { return nil }
        var digits = String(decoding: chars, as: UTF8.self)
        if let multiplier {
            // Perl numifies "1,5" as 1 before scaling; keep that quirk for byte suffixes.
            let numeric = PerlNumber.numify(sign + digits)
            let value = numeric * multiplier
            let text = PerlNumber.string(value)
            return Bound(value: value, text: text, hasDecimalPoint: text.contains("."))
        }
        if let separatorAt {
            var bytes = Array(digits.utf8)
            bytes[separatorAt] = UInt8(ascii: ".")
            digits = String(decoding: bytes, as: UTF8.self)
        }
        let text = sign + digits
        guard let value = Double(text) else { return nil }
        return Bound(value: value, text: text, hasDecimalPoint: separatorAt != nil)
    }

    /// True when `value` raises this threshold.
    public func alerts(_ value: Double, valueHasDecimalPoint: Bool) -> Bool {
        let v = PerlNumber.comparable(value, hasDecimalPoint: valueHasDecimalPoint)
        let lo = start.map { PerlNumber.comparable($0.value, hasDecimalPoint: $0.hasDecimalPoint) } ?? -.infinity
        let hi = end.map { PerlNumber.comparable($0.value, hasDecimalPoint: $0.hasDecimalPoint) } ?? .infinity
        if inside { return v >= lo && v <= hi }
        return v < lo || v > hi
    }

    /// The perfdata field: `[@]start:end`, `~` for minus infinity, empty end for plus infinity.
    public var perfdataText: String {
        (inside ? "@" : "") + (start?.text ?? "~") + ":" + (end?.text ?? "")
    }

    /// The perfdata field of a percentage threshold turned into an absolute count:
    /// each finite bound × total / 100, truncated to an integer (Perl `int`).
    public func perfdataText(percentOf total: Double) -> String {
        func scaled(_ b: Bound) -> String {
            PerlNumber.string(Double(PerlNumber.integerPart(b.value * total / 100)))
        }
        return (inside ? "@" : "") + (start.map(scaled) ?? "~") + ":" + (end.map(scaled) ?? "")
    }
}

/// Warning / critical / unknown thresholds of one counter; nil = not set.
public struct CounterThresholds: Sendable, Equatable {
    /// `--warning-<counter>`: the counter is WARNING when this range alerts.
    public var warning: ThresholdRange?
    /// `--critical-<counter>`: the counter is CRITICAL when this range alerts (checked first).
    public var critical: ThresholdRange?
    /// `--unknown-<counter>`: the counter is UNKNOWN when this range alerts (checked last; the
    /// `active-*` counters ignore it).
    public var unknown: ThresholdRange?

    /// Builds thresholds; each level defaults to not set.
    public init(warning: ThresholdRange? = nil, critical: ThresholdRange? = nil, unknown: ThresholdRange? = nil) {
        self.warning = warning
        self.critical = critical
        self.unknown = unknown
    }

    /// Critical first, then warning, then unknown (when `useUnknown`); the first match wins.
    public func status(of value: Double, useUnknown: Bool = true) -> CheckStatus {
        // Most counters have no threshold: skip formatting the value (a per-instance hot path).
        if warning == nil, critical == nil, unknown == nil || !useUnknown { return .ok }
        let hasPoint = PerlNumber.string(value).contains(".")
        if let critical, critical.alerts(value, valueHasDecimalPoint: hasPoint) { return .critical }
        if let warning, warning.alerts(value, valueHasDecimalPoint: hasPoint) { return .warning }
        if useUnknown, let unknown, unknown.alerts(value, valueHasDecimalPoint: hasPoint) { return .unknown }
        return .ok
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The result record's JSON, written by hand (issue 11, item 3: encoding was a fifth of a warm
/// worker's CPU through `JSONEncoder`'s generic containers).
///
/// The bytes are exactly what `JSONEncoder` with `[.sortedKeys, .withoutEscapingSlashes]` writes
/// for `CheckResultMessage`'s `Encodable` conformance, which stays the reference:
/// `CheckMessageTests/handWrittenEncoderMatchesJSONEncoder` compares the two on hostile strings,
/// label keys and numbers. The rules it reproduces:
/// - keys sorted by their UTF-8 bytes (label keys too);
/// - strings: `"` and `\` escaped, `\b \t \n \f \r` short, other bytes below 0x20 as `\u00xx`
///   (lower-case hex); everything else, `/` and DEL included, as is;
/// - a `Double` as its `description` without a trailing `.0` (`1e+21`, `-0`, `0.1`);
/// - a non-finite `Double` makes the whole encoding fail (empty), as `JSONEncoder` throws.
struct ResultJSON {
    private(set) var bytes: [UInt8] = []
    private(set) var failed = false

    init(capacity: Int) {
        bytes.reserveCapacity(capacity)
    }

    /// The result's bytes; empty when a number is not finite.
    static func encode(_ r: CheckResultMessage) -> [UInt8] {
        var w = ResultJSON(capacity: 320 + r.output.utf8.count * 2 + r.perfdata.count * 160)
        w.result(r)
        return w.failed ? [] : w.bytes
    }

    mutating func result(_ r: CheckResultMessage) {
        raw("{\"attempt\":")
        int(r.attempt)
        raw(",\"cache\":{\"report\":")
        string(r.cache.report)
        raw(",\"token\":")
        string(r.cache.token)
        raw("},\"checkedAt\":")
        string(r.checkedAt)
        raw(",\"durationMs\":")
        double(r.durationMs)
        raw(",\"error\":")
        if let e = r.error {
            raw("{\"kind\":")
            string(e.kindName)
            raw(",\"message\":")
            string(e.message)
            raw("}")
        } else {
            raw("null")
        }
        raw(",\"exitCode\":")
        int(r.exitCode)
        raw(",\"id\":")
        optional(r.id)
        raw(",\"labels\":{")
        var first = true
        for (key, value) in r.labels.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }) {
            if !first { raw(",") }
            first = false
            string(key)
            raw(":")
            string(value)
        }
        raw("},\"mode\":")
        optional(r.mode)
        raw(",\"output\":")
        string(r.output)
        raw(",\"perfdata\":[")
        for (i, m) in r.perfdata.enumerated() {
            if i > 0 { raw(",") }
            metric(m)
        }
        raw("]")
        if let age = r.reportAgeSeconds {
            raw(",\"reportAgeSeconds\":")
            int(age)
        }
        raw(",\"reportDate\":")
        string(r.reportDate)
        raw(",\"status\":")
        string(r.status)
        raw(",\"summary\":")
        string(r.summary)
        raw(",\"tenant\":")
        optional(r.tenant)
        if r.truncated == true { raw(",\"truncated\":true") }
        if let warnings = r.warnings, !warnings.isEmpty {
            raw(",\"warnings\":[")
            for (i, w) in warnings.enumerated() {
                if i > 0 { raw(",") }
                string(w)
            }
            raw("]")
        }
        raw(",\"worker\":")
        string(r.worker)
        raw("}")
    }

    mutating func metric(_ m: CheckResultMessage.Metric) {
        raw("{\"critical\":")
        string(m.critical)
        raw(",\"label\":")
        string(m.label)
        if let max = m.max {
            raw(",\"max\":")
            double(max)
        }
        if let min = m.min {
            raw(",\"min\":")
            double(min)
        }
        raw(",\"unit\":")
        string(m.unit)
        raw(",\"value\":")
        if let v = m.value { double(v) } else { raw("null") }
        raw(",\"warning\":")
        string(m.warning)
        raw("}")
    }

    mutating func raw(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func optional(_ s: String?) {
        if let s { string(s) } else { raw("null") }
    }

    mutating func int(_ i: Int) {
        bytes.append(contentsOf: String(i).utf8)
    }

    mutating func double(_ d: Double) {
        guard d.isFinite else {
            failed = true
            return
        }
        var text = d.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        bytes.append(contentsOf: text.utf8)
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    mutating func string(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { utf8 in
            var runStart = 0
            for i in utf8.indices {
                let b = utf8[i]
                guard b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") else { continue }
                if runStart < i { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<i])) }
                runStart = i + 1
                switch b {
                case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
                case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
                case 0x08: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
                case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
                case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
                case 0x0C: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
                case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
                default:
                    bytes.append(contentsOf: [
                        UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), Self.hex[Int(b >> 4)], Self.hex[Int(b & 0x0F)],
                    ])
                }
            }
            if runStart < utf8.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...])) }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

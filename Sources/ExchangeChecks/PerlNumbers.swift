import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// C's `snprintf` for one double: what Perl's `sprintf` prints for `%f`/`%g` formats (Perl hands
/// them to the C library), without Foundation's `String(format:)`, which costs a CFString and
/// dynamic casts per call (12 % of a 2,000-mailbox `exocheck run` in a profile).
enum CFormat {
    /// `format` holds exactly one floating-point conversion (`%.2f`, `%.15g`, …).
    static func double(_ format: StaticString, _ value: Double) -> String {
        var buffer = [CChar](repeating: 0, count: 128)
        // A string literal's StaticString is NUL-terminated (`utf8Start`), as vsnprintf needs.
        let cFormat = UnsafeRawPointer(format.utf8Start).assumingMemoryBound(to: CChar.self)
        var written = withVaList([value]) { vsnprintf(&buffer, buffer.count, cFormat, $0) }
        if written >= buffer.count {
            // %f of a large value: 1e308 has 309 digits before the point.
            buffer = [CChar](repeating: 0, count: Int(written) + 1)
            written = withVaList([value]) { vsnprintf(&buffer, buffer.count, cFormat, $0) }
        }
        guard written >= 0 else { return "" }
        return String(decoding: buffer.prefix(Int(written)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Number conversions with the semantics of the Perl plugin, so that output is byte-identical.
enum PerlNumber {
    /// Perl's numeric value of a string: leading whitespace, optional sign, digits, optional
    /// fraction and exponent; anything else stops the parse ("12abc" → 12, "" → 0, "1,5" → 1).
    static func numify(_ text: String) -> Double {
        // Fast path: plain integers and decimals (nearly every report value).
        if let fast = text.utf8.withContiguousStorageIfAvailable(plainDecimal), let value = fast { return value }
        if text.isEmpty { return 0 }
        var scalars = Substring(text).unicodeScalars.drop(while: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
        var out = ""
        if let f = scalars.first, f == "+" || f == "-" {
            out.unicodeScalars.append(f)
            scalars = scalars.dropFirst()
        }
        let lowered = String(String.UnicodeScalarView(scalars.prefix(3))).lowercased()
        if lowered == "inf" { return out == "-" ? -.infinity : .infinity }
        if lowered == "nan" { return .nan }
        var sawDigit = false
        var sawDot = false
        var sawExp = false
        var iterator = scalars.makeIterator()
        var pending: [Unicode.Scalar] = []
        while let c = iterator.next() {
            if c.properties.numericType == .decimal, c.isASCII {
                out.unicodeScalars.append(contentsOf: pending)
                pending.removeAll()
                out.unicodeScalars.append(c)
                sawDigit = true
            } else if c == ".", !sawDot, !sawExp {
                sawDot = true
                out.unicodeScalars.append(c)
            } else if (c == "e" || c == "E"), sawDigit, !sawExp {
                sawExp = true
                pending = [c]
                if let n = iterator.next() {
                    if n == "+" || n == "-" {
                        pending.append(n)
                    } else if n.isASCII, n.properties.numericType == .decimal {
                        out.unicodeScalars.append(contentsOf: pending)
                        pending.removeAll()
                        out.unicodeScalars.append(n)
                    } else {
                        break
                    }
                }
            } else {
                break
            }
        }
        guard sawDigit else { return 0 }
        if out.hasSuffix(".") { out.removeLast() }
        return Double(out) ?? 0
    }

    /// `[-]digits[.digits]` → its value; nil for anything else (handled by the slow path).
    private static func plainDecimal(_ bytes: UnsafeBufferPointer<UInt8>) -> Double? {
        guard !bytes.isEmpty, bytes.count <= 18 else { return nil }
        var i = 0
        var negative = false
        if bytes[0] == UInt8(ascii: "-") { negative = true; i = 1 }
        guard i < bytes.count else { return nil }
        var integer: Int64 = 0
        var digits = 0
        while i < bytes.count, bytes[i] >= 48, bytes[i] <= 57 {
            integer = integer * 10 + Int64(bytes[i] - 48)
            digits += 1
            i += 1
        }
        guard digits > 0 else { return nil }
        if i == bytes.count { return Double(negative ? -integer : integer) }
        return nil  // fractions and exponents: exact conversion by the slow path
    }

    /// Perl's default stringification of a number (`%.15g`, integers without a decimal point).
    static func string(_ value: Double) -> String {
        if value.isInfinite { return value < 0 ? "-Inf" : "Inf" }
        if value.isNaN { return "NaN" }
        if value == value.rounded(.towardZero), abs(value) < 1e15 {
            return String(Int64(value))
        }
        return CFormat.double("%.15g", value)
    }

    /// `sprintf('%d', $value)` of a Perl scalar holding a number or numeric string.
    static func integerPart(_ value: Double) -> Int64 {
        if value.isNaN { return 0 }
        if value >= 9.2233720368547758e18 { return Int64.max }
        if value <= -9.2233720368547758e18 { return Int64.min }
        return Int64(value.rounded(.towardZero))
    }

    /// Perl's `%`: integer operands (their integer parts), the result has the sign of the right
    /// operand; nil for a zero divisor (Perl dies with "Illegal modulus zero"). Computed in
    /// floating point, so no operand can trap (`Int64.min % -1` does in integer arithmetic).
    static func modulo(_ left: Double, _ right: Double) -> Double? {
        guard left.isFinite, right.isFinite else { return right.isNaN || left.isNaN ? nil : (right.isInfinite && left.isFinite ? left : nil) }
        let m = left.rounded(.towardZero)
        let n = right.rounded(.towardZero)
        if n == 0 { return nil }
        var r = m.truncatingRemainder(dividingBy: n)
        if r != 0, (r < 0) != (n < 0) { r += n }
        return r == 0 ? 0 : r
    }

    /// `sprintf('%.2f', $value)`.
    static func fixed2(_ value: Double) -> String {
        fastFixed2(value) ?? CFormat.double("%.2f", value)
    }

    /// `%.2f` without the C library where that cannot differ from it: a value below 1e9 whose
    /// hundredths are not within 1e-4 of a tie. C rounds the exact binary value; `|v| * 100`
    /// is off from it by at most 8e-6 there, so the rounding direction is the same. Ties and
    /// large values: nil (the caller asks C).
    static func fastFixed2(_ value: Double) -> String? {
        let magnitude = abs(value)
        guard magnitude < 1e9 else { return nil }  // also NaN and infinities
        let scaled = magnitude * 100
        let whole = scaled.rounded(.down)
        let fraction = scaled - whole
        guard abs(fraction - 0.5) > 1e-4 else { return nil }
        let cents = Int64(whole) + (fraction > 0.5 ? 1 : 0)
        let negative = value.sign == .minus  // C prints -0.00 for -0.001 and for -0.0
        let hundredths = cents % 100
        return (negative ? "-" : "") + String(cents / 100) + (hundredths < 10 ? ".0" : ".") + String(hundredths)
    }

    /// Bytes humanised as the plugin's `change_bytes` does: `806.97 MB`.
    static func humanBytes(_ value: Double) -> String {
        var v = abs(value)
        let sign = value < 0 ? -1.0 : 1.0
        var unit = ""
        for candidate in ["K", "M", "G", "T"] {
            if v / 1024 < 1 { break }
            unit = candidate
            v /= 1024
        }
        return fixed2(sign * v) + " " + unit + "B"
    }

    /// The comparison form used by the plugin's `threshold_check`: numbers written with a decimal
    /// point are rounded to 8 decimals (`sprintf('%.8f')`) before comparing.
    static func comparable(_ value: Double, hasDecimalPoint: Bool) -> Double {
        guard hasDecimalPoint, value.isFinite else { return value }
        return Double(CFormat.double("%.8f", value)) ?? value
    }
}

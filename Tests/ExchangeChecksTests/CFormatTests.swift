import Foundation
import Testing

@testable import ExchangeChecks

@Suite("CFormat: C's snprintf prints what String(format:) printed")
struct CFormatTests {
    /// Values where rounding, exponents, signs and sizes differ.
    static let values: [Double] = {
        var v: [Double] = [
            0, -0.0, 0.005, 0.015, 0.025, 1.005, 2.675, 0.125, 0.375, 1e-7, 123.456, -123.456, 1e15, 1e15 + 0.5, 9.999999999999999e14,
            1e21, 1e22, 1.7976931348623157e308, -1.7976931348623157e308, 5e-324, 2.2250738585072014e-308, 49.875, 1023.995, 1048575.995,
            .infinity, -.infinity, .nan, 214_748_364_800, 0.1 + 0.2,
        ]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            v.append(Double(bitPattern: rng.next()))  // any bit pattern: subnormals, huge, NaN payloads
            v.append(Double.random(in: -1e6...1e6, using: &rng))
            v.append(Double(Int.random(in: -1_000_000...1_000_000, using: &rng)) / 1000)
        }
        return v
    }()

    @Test("%.2f, %.8f and %.15g: byte for byte the same as String(format:) for 6,000 values, specials included")
    func sameAsFoundation() {
        var mismatches: [String] = []
        for value in Self.values {
            for (c, f) in [(CFormat.double("%.2f", value), String(format: "%.2f", value)),
                           (CFormat.double("%.8f", value), String(format: "%.8f", value)),
                           (CFormat.double("%.15g", value), String(format: "%.15g", value))] where c != f {
                mismatches.append("\(value.bitPattern): \(c) vs \(f)")
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
    }

    @Test("fixed2's fast path prints what C prints: 200,000 values, ties and near-ties included")
    func fixed2FastPath() {
        var values = Self.values
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<50_000 {
            let cents = Double(Int.random(in: -100_000_000...100_000_000, using: &rng))
            values.append((cents + 0.5) / 100)  // ties in decimal, near-ties in binary
            values.append(cents / 100)
            values.append(Double.random(in: -1e9...1e9, using: &rng))
            values.append(Double.random(in: -0.02...0.02, using: &rng))
        }
        var mismatches: [String] = []
        for value in values where PerlNumber.fixed2(value) != String(format: "%.2f", value) {
            mismatches.append("\(value): \(PerlNumber.fixed2(value)) vs \(String(format: "%.2f", value))")
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
        #expect(PerlNumber.fastFixed2(2.675) == nil && PerlNumber.fixed2(2.675) == "2.67" && PerlNumber.fastFixed2(1.234) == "1.23" && PerlNumber.fastFixed2(-0.001) == "-0.00" && PerlNumber.fastFixed2(-0.0) == "-0.00")
        #expect(PerlNumber.fastFixed2(1e9) == nil && PerlNumber.fastFixed2(.nan) == nil)
    }

    @Test("a value longer than the first buffer (1.8e308 with %.2f: 312 characters) is printed whole")
    func longValue() {
        let s = CFormat.double("%.2f", 1.7976931348623157e308)
        #expect(s.count == 312 && s.hasPrefix("17976931348623157") && s.hasSuffix(".00"))
    }

    @Test("perfdata labels: a quote is doubled, labels without one are unchanged")
    func quotedLabels() {
        #expect(Perfdatum(label: "it's", value: "1").quotedLabel == "it''s")
        #expect(Perfdatum(label: "''", value: "1").quotedLabel == "''''")
        #expect(Perfdatum(label: "plain", value: "1").quotedLabel == "plain")
    }
}

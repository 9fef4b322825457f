import Foundation
import Testing

@testable import ExchangeChecks

@Suite("Threshold ranges")
struct ThresholdTests {
    func range(_ s: String) throws -> ThresholdRange { try #require(ThresholdRange(s)) }

    @Test("perfdata rendering of option values (spec §6 table)", arguments: [
        ("10", "0:10"), ("10:", "10:"), ("~:10", "~:10"), ("10:20", "10:20"), ("@10:20", "@10:20"),
        ("10.5", "0:10.5"), ("10,5", "0:10.5"), ("200GB", "0:214748364800"), ("1Mb", "0:1000000"),
        ("1KB", "0:1024"), ("2Kb", "0:2000"), ("+10", "0:10"), ("-5:5", "-5:5"), (":", "0:"), ("@", "@0:"),
        (" 10 ", "0:10"), ("1EB", "0:1.15292150460685e+18"),
    ])
    func perfdataText(input: String, expected: String) throws {
        #expect(try range(input).perfdataText == expected)
    }

    @Test("invalid ranges are rejected", arguments: ["abc", "50%", "10:abc", "1:2:3", "~", "10..5", "5KBB", "1.", ".5", "@@1"])
    func invalid(input: String) {
        #expect(ThresholdRange(input) == nil)
    }

    @Test("outside range alerts; bounds are inside")
    func outside() throws {
        let r = try range("10:20")
        #expect(r.alerts(9, valueHasDecimalPoint: false))
        #expect(!r.alerts(10, valueHasDecimalPoint: false))
        #expect(!r.alerts(20, valueHasDecimalPoint: false))
        #expect(r.alerts(21, valueHasDecimalPoint: false))
        #expect(try range("10").alerts(-1, valueHasDecimalPoint: false))
        #expect(!(try range("~:10").alerts(-1e9, valueHasDecimalPoint: false)))
        #expect(!(try range("10:").alerts(1e12, valueHasDecimalPoint: false)))
    }

    @Test("@ alerts inside the range, bounds included")
    func inside() throws {
        let r = try range("@200:250")
        #expect(r.alerts(200, valueHasDecimalPoint: false))
        #expect(r.alerts(221, valueHasDecimalPoint: false))
        #expect(r.alerts(250, valueHasDecimalPoint: false))
        #expect(!r.alerts(251, valueHasDecimalPoint: false))
    }

    @Test("values and bounds with decimals compare at 8 decimals")
    func eightDecimals() throws {
        // 58.333333333 (7/12) rounds to 58.33333333 and equals a bound written with 8 decimals.
        let r = try range("58.33333333:")
        #expect(!r.alerts(700.0 / 12.0, valueHasDecimalPoint: true))
        #expect(try range("58.33333334:").alerts(700.0 / 12.0, valueHasDecimalPoint: true))
        // A bound with more decimals is rounded too: 58.333333334 → 58.33333333, equal to the value.
        #expect(!(try range("58.333333334:").alerts(700.0 / 12.0, valueHasDecimalPoint: true)))
    }

    @Test("critical is checked first, then warning, then unknown")
    func order() throws {
        let t = CounterThresholds(warning: try range("10"), critical: try range("20"), unknown: try range("5"))
        #expect(t.status(of: 25) == .critical)
        #expect(t.status(of: 15) == .warning)
        #expect(t.status(of: 7) == .unknown)
        #expect(t.status(of: 7, useUnknown: false) == .ok)
        #expect(t.status(of: 3) == .ok)
    }

    @Test("percent thresholds become truncated absolute counts in perfdata (spec §6)", arguments: [
        ("50", 12.0, "0:6"), ("60:", 12.0, "7:"), ("@50:60", 12.0, "@6:7"), ("~:40", 12.0, "~:4"),
        ("58.3333", 12.0, "0:6"), ("90:", 14.0, "12:"), ("50:", 0.0, "0:"), ("90:", 12.0, "10:"),
    ])
    func percentPerfdata(input: String, total: Double, expected: String) throws {
        #expect(try range(input).perfdataText(percentOf: total) == expected)
    }
}

@Suite("Perl number formatting")
struct PerlNumberTests {
    @Test("bytes are humanised like change_bytes (spec §5)", arguments: [(Double, String)]([
        (0.0, "0.00 B"), (1023, "1023.00 B"), (1024, "1.00 KB"), (846_166_680, "806.97 MB"),
        (107_374_182_401, "100.00 GB"), (223_742_893_568, "208.38 GB"), (4_209_256_652_223, "3.83 TB"),
        (1_125_899_906_842_624 * 2, "2048.00 TB"), (-2048, "-2.00 KB"),
    ]))
    func humanBytes(value: Double, expected: String) {
        #expect(PerlNumber.humanBytes(value) == expected)
    }

    @Test("numify takes the leading number like Perl", arguments: [(String, Double)]([
        ("12", 12.0), ("", 0), ("abc", 0), ("12abc", 12), ("1,5", 1), (" 7 ", 7), ("-3.5", -3.5), ("1e3", 1000), ("2.", 2),
    ]))
    func numify(text: String, expected: Double) {
        #expect(PerlNumber.numify(text) == expected)
    }

    @Test("stringification: integers plain, others %.15g")
    func stringify() {
        #expect(PerlNumber.string(214_748_364_800) == "214748364800")
        #expect(PerlNumber.string(10.5) == "10.5")
        #expect(PerlNumber.string(700.0 / 12.0) == "58.3333333333333")
    }

    @Test("%d takes the integer part")
    func integerPart() {
        #expect(PerlNumber.integerPart(12.9) == 12)
        #expect(PerlNumber.integerPart(-12.9) == -12)
    }
}

import ExchangeChecks
import Foundation
import Logging
import Testing

@testable import CheckWorker

/// User names in logs (issue 12 item 6): redacted by default, the domain kept.
@Suite("Personal data in logs")
struct PersonalDataTests {
    @Test("the local part of every address becomes <user>; the domain stays; text without addresses is unchanged")
    func redacts() {
        #expect(PersonalData.redactUserNames("row 3: 'jane.doe@contoso.com' is not a number") == "row 3: '<user>@contoso.com' is not a number")
        #expect(PersonalData.redactUserNames("a@x.io, b+tag@y.example.org.") == "<user>@x.io, <user>@y.example.org.")
        #expect(PersonalData.redactUserNames("jérôme@contoso.fr") == "<user>@contoso.fr")
        #expect(PersonalData.redactUserNames("o'brien@tenant.onmicrosoft.com;") == "<user>@tenant.onmicrosoft.com;")
        // Inside a regex (a refused --filter-user), and with decomposed accents (was: not redacted,
        // or the name's start left in clear).
        #expect(PersonalData.redactUserNames(#"--filter-user=^jane\.doe@contoso\.com$"#) == #"--filter-user=^<user>@contoso\.com$"#)
        #expect(PersonalData.redactUserNames("je\u{301}ro\u{302}me@x.fr") == "<user>@x.fr")
        // URL-encoded, as in a logged URL or a request id (was: left in clear).
        #expect(PersonalData.redactUserNames("GET /users/jane.doe%40contoso.com/x") == "GET /users/<user>%40contoso.com/x")
        #expect(PersonalData.redactUserNames("id=a%2Bb%40x.io&y") == "id=<user>%40x.io&y")
        for unchanged in ["50%40", "100%", "%40contoso.com", "a%4", "a%41b.c"] {
            #expect(PersonalData.redactUserNames(unchanged) == unchanged, "\(unchanged)")
        }
        for unchanged in ["no address here", "@contoso.com", "user@localhost", "50%@", "a@b", "", "@@@", "x@.", "x@-.-"] {
            #expect(PersonalData.redactUserNames(unchanged) == unchanged, "\(unchanged)")
        }
    }

    @Test("hostile text: many '@', long runs, no quadratic time on 1 MB")
    func hostile() {
        let encoded = String(repeating: "%40", count: 300_000) + "b.c"
        #expect(PersonalData.redactUserNames(encoded).hasSuffix("%40b.c"))
        let many = String(repeating: "a@", count: 200_000) + "b.c"
        let out = PersonalData.redactUserNames(many)
        #expect(out.hasSuffix("<user>@b.c"))
        let long = String(repeating: "x", count: 1_000_000) + "@contoso.com"
        #expect(PersonalData.redactUserNames(long) == "<user>@contoso.com")
        let clock = ContinuousClock()
        let elapsed = clock.measure { _ = PersonalData.redactUserNames(String(repeating: "@x.y ", count: 200_000)) }
        #expect(elapsed < .seconds(20), "linear: \(elapsed)")
    }

    @Test("the worker's log lines (JSON and text) redact messages and metadata values by default; log.redactUserNames: false keeps them")
    func logHandler() throws {
        var h = JSONLogHandler(label: "t", json: true)
        let when = Date(timeIntervalSince1970: 0)
        let json = h.line(level: .warning, message: "token for jane@contoso.com", metadata: ["upn": "john@contoso.com"], error: nil, time: when)
        #expect(!json.contains("jane") && !json.contains("john"))
        #expect(json.contains("<user>@contoso.com"))
        h.redactUserNames = false
        #expect(h.line(level: .warning, message: "jane@contoso.com", metadata: nil, error: nil, time: when).contains("jane@contoso.com"))
        let text = JSONLogHandler(label: "t", json: false).line(level: .info, message: "m", metadata: ["k": "x.y@z.org"], error: nil, time: when)
        #expect(text.hasSuffix("t: m k=<user>@z.org"))
        let keyed = JSONLogHandler(label: "t", json: true).line(level: .info, message: "m", metadata: ["jane@contoso.com": "1"], error: nil, time: when)
        #expect(!keyed.contains("jane"), "metadata keys too")
        #expect(try WorkerConfiguration.parse("log: {redactUserNames: false}").logRedactUserNames == false)
        #expect(try WorkerConfiguration.parse("{}").logRedactUserNames == true)
        #expect(throws: ConfigurationError.self) { try WorkerConfiguration.parse("log: {redactUserNames: sometimes}") }
    }

    @Test("a log line is one line of valid JSON whose values read back exactly, whatever the text (control characters, quotes, backslashes, U+2028, any script)")
    func logLineJSON() throws {
        var rng = SystemRandomNumberGenerator()
        var samples = ["", "plain", "quote \" backslash \\ slash /", "tab\tnew\nline\rcr", "\u{0}\u{1}\u{1f}\u{7f}\u{85}", "\u{2028}\u{2029}", "é中😀", "{\"k\":1}"]
        for _ in 0..<300 {
            let n = Int.random(in: 0..<40, using: &rng)
            samples.append(String(String.UnicodeScalarView((0..<n).compactMap { _ in
                Unicode.Scalar(UInt32.random(in: 0..<(Bool.random(using: &rng) ? 0x80 : 0x11_0000), using: &rng))
            })))
        }
        for (i, v) in samples.enumerated() {
            let object = ["message": v, "k\(i)\n\"": v, "time": "t"]
            let line = JSONLogHandler.jsonObject(object)
            #expect(!line.contains("\n") && !line.contains("\r") && !line.unicodeScalars.contains("\u{2028}"))
            let back = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String]
            #expect(back == object, "\(line)")
            let sorted = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            #expect((try JSONSerialization.jsonObject(with: sorted) as? [String: String]) == back)
        }
        #expect(JSONLogHandler.jsonObject(["b": "2", "a": "1/x"]) == #"{"a":"1/x","b":"2"}"#, "keys sorted, slashes as they are")
    }
}

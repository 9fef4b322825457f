@testable import CheckWorker
import ExchangeChecks
import Foundation
import Kafka
import Testing

@Suite("Result size policy and publishing rules (pure)")
struct ResultSizePolicyTests {
    static func base() -> CheckResultMessage {
        CheckResultMessage(
            id: "x", tenant: "t", mode: "mailbox-usage", labels: ["host": "h", "service": "s"], status: "CRITICAL", exitCode: 2,
            output: "", summary: "", perfdata: [], reportDate: "2026-01-01", checkedAt: "2026-01-01T00:00:00Z", durationMs: 1,
            worker: "w", attempt: 1, cache: .init(token: "hit", report: "hit"), error: nil)
    }

    /// A per-mailbox rendering: summary, 3 global perfdata, 2 per mailbox, one long line per mailbox.
    static func rendering(mailboxes: Int, summary: String = "CRITICAL: Mailbox 'a' Used: 1 GB ") -> (String, [Perfdatum], String) {
        var perf = [Perfdatum(label: "exchange.mailboxes.active.count", value: "\(mailboxes)", unit: "mailboxes", min: "0", max: "\(mailboxes)"),
                    Perfdatum(label: "exchange.mailboxes.active.usage.total.bytes", value: "5000", unit: "B", min: "0"),
                    Perfdatum(label: "exchange.mailboxes.inactive.usage.total.bytes", value: "0", unit: "B", min: "0")]
        var long: [String] = []
        for i in 0..<mailboxes {
            perf.append(Perfdatum(label: "user\(i)@x.example#exchange.mailboxes.usage.bytes", value: "\(i * 1000)", unit: "B", min: "0",
                                  instance: "user\(i)@x.example"))
            perf.append(Perfdatum(label: "user\(i)@x.example#exchange.mailboxes.items.count", value: "\(i)", min: "0",
                                  instance: "user\(i)@x.example"))
            long.append("Mailbox 'user\(i)@x.example' Used: \(i) KB \"quoted\" \\ items: \(i)")
        }
        let text = summary + "|" + perf.map { " " + $0.rendered }.joined() + "\n" + long.joined(separator: "\n")
        return (summary, perf, text)
    }

    @Test("a result that fits is published whole and not marked truncated")
    func fitsUnchanged() {
        let (short, perf, text) = Self.rendering(mailboxes: 10)
        let policy = ResultSizePolicy(maxValueBytes: 100_000)
        let r = policy.fit(Self.base(), shortOutput: short, perfdata: perf, text: text)
        #expect(r.output == text)
        #expect(r.perfdata.count == perf.count)
        #expect(r.truncated == nil)
        #expect(!String(decoding: r.encoded(), as: UTF8.self).contains("truncated"))
    }

    @Test("a result over the limit: state, exit code, summary and global perfdata kept; per-instance perfdata and long output cut in order; marker; under the limit", arguments: [8_192, 20_000, 100_000])
    func cutToFit(limit: Int) throws {
        let (short, perf, text) = Self.rendering(mailboxes: 2_000)
        let policy = ResultSizePolicy(maxValueBytes: limit)
        let r = policy.fit(Self.base(), shortOutput: short, perfdata: perf, text: text)
        #expect(r.encoded().count <= limit)
        #expect(r.truncated == true)
        #expect(r.status == "CRITICAL" && r.exitCode == 2)
        #expect(r.summary == "CRITICAL: Mailbox 'a' Used: 1 GB")
        #expect(r.output.hasPrefix(short + "| " + perf[0].rendered + " " + perf[1].rendered + " " + perf[2].rendered))
        let instance = r.perfdata.filter { $0.label.contains("#") }
        #expect(r.perfdata.count - instance.count == 3)
        // Kept in order from the first, and the text holds exactly the kept items.
        #expect(instance.map(\.label) == perf.dropFirst(3).prefix(instance.count).map(\.label))
        let first = r.output.split(separator: "\n", maxSplits: 1)[0]
        #expect(first == short + "|" + perf.prefix(3 + instance.count).map { " " + $0.rendered }.joined())
        let lines = r.output.split(separator: "\n", omittingEmptySubsequences: false).dropFirst()
        #expect(lines.last?.hasPrefix("(exocheck: result cut to fit the results topic's record limit of \(limit) bytes") == true)
        #expect(lines.dropLast().elementsEqual(text.split(separator: "\n").dropFirst().prefix(lines.count - 1)))
        // The room is used: at 100 KB most of it holds data, not only the frame.
        if limit >= 20_000 { #expect(r.encoded().count > limit / 2) }
        #expect(try JSONSerialization.jsonObject(with: Data(r.encoded())) is [String: Any])
    }

    @Test("a summary of control characters (six bytes each in JSON) is cut by its escaped size and still fits")
    func controlCharacterSummary() {
        let summary = "CRITICAL: " + String(repeating: "\u{01}", count: 40_000) + " "
        let (short, perf, text) = Self.rendering(mailboxes: 10, summary: summary)
        let r = ResultSizePolicy(maxValueBytes: 20_000).fit(Self.base(), shortOutput: short, perfdata: perf, text: text)
        #expect(r.encoded().count <= 20_000)
        #expect(r.truncated == true)
    }

    @Test("a summary larger than half the limit is cut at a character boundary and says so")
    func hugeSummary() {
        let summary = "CRITICAL: " + String(repeating: "Mailbox 'é' Used: 1 GB - ", count: 4_000) + " "
        let (short, perf, text) = Self.rendering(mailboxes: 50, summary: summary)
        let r = ResultSizePolicy(maxValueBytes: 20_000).fit(Self.base(), shortOutput: short, perfdata: perf, text: text)
        #expect(r.encoded().count <= 20_000)
        #expect(r.truncated == true)
        #expect(r.summary.hasPrefix("CRITICAL: Mailbox 'é'"))
        #expect(r.summary.hasSuffix("(summary cut)"))
        #expect(r.output.contains("the summary"))
        #expect(r.perfdata.filter { !$0.label.contains("#") }.count == 3)
    }

    @Test("a long line holding a carriage return before the newline is cut by bytes, not characters")
    func carriageReturn() {
        var (short, perf, text) = Self.rendering(mailboxes: 400)
        short += "\r"
        text = short + "|" + perf.map { " " + $0.rendered }.joined() + "\r\nline one\r\nline two"
        let r = ResultSizePolicy(maxValueBytes: 8_192).fit(Self.base(), shortOutput: short, perfdata: perf, text: text)
        #expect(r.encoded().count <= 8_192)
        #expect(r.truncated == true)
    }

    @Test("the limit follows the producer's message.max.bytes, less room for key, headers and framing")
    func limitFromProperties() {
        #expect(ResultSizePolicy(kafkaProperties: [:]).maxValueBytes == 1_000_000 - ResultSizePolicy.recordOverheadBytes)
        #expect(ResultSizePolicy(kafkaProperties: ["message.max.bytes": "200000"]).maxValueBytes == 200_000 - ResultSizePolicy.recordOverheadBytes)
        #expect(ResultSizePolicy(kafkaProperties: ["message.max.bytes": "1000"]).maxValueBytes == ResultSizePolicy.minimumValueBytes)
        #expect(ResultSizePolicy(kafkaProperties: ["message.max.bytes": "junk"]).maxValueBytes == 1_000_000 - ResultSizePolicy.recordOverheadBytes)
    }

    @Test("a result that cannot be published becomes an UNKNOWN of kind publish with the id and capped host/service labels only")
    func publishFailureShape() {
        var r = Self.base()
        r.labels = ["host": String(repeating: "h", count: 900), "service": "svc", "secretish": "x"]
        r.output = String(repeating: "o", count: 10_000)
        r.perfdata = [.init(label: "a", value: 1, unit: "", warning: "", critical: "", min: nil, max: nil)]
        let f = r.publishFailure(topic: "results", bytes: 2_000_000)
        #expect(f.id == "x" && f.tenant == "t" && f.mode == "mailbox-usage")
        #expect(f.status == "UNKNOWN" && f.exitCode == 3)
        #expect(f.error?.kind == .publish)
        #expect(f.error?.message.contains("2000000 bytes") == true)
        #expect(f.error?.message.contains("CRITICAL") == true, "says what the check found")
        #expect(Set(f.labels.keys) == ["host", "service"])
        #expect(f.labels["host"]?.utf8.count == CheckResultMessage.fallbackLabelBytes)
        #expect(f.perfdata.isEmpty)
        #expect(f.encoded().count < 2_048)
    }

    @Test("publishing retries: too large → smaller record; unknown topic or authorization → give up at once; transient → back off without limit; other errors → give up after a few tries")
    func publishPolicy() {
        var p = PublishPolicy()
        #expect(p.next(after: KafkaError(code: KafkaError.messageTooLarge, message: "")) == .tooLarge)
        #expect(p.next(after: KafkaError(code: 18, message: "RECORD_LIST_TOO_LARGE")) == .tooLarge)
        #expect(p.next(after: KafkaError(code: 87, message: "INVALID_RECORD")) == .tooLarge)
        for code: Int32 in [3, 29, 31, -188, -190, 17] {
            var q = PublishPolicy()
            #expect(q.next(after: KafkaError(code: code, message: "")) == .fail, "code \(code)")
        }
        #expect(p.next(after: KafkaError(code: 1, message: "", isFatal: true)) == .fail)
        var delays: [Duration] = []
        for _ in 0..<50 {
            if case .retry(let d) = p.next(after: KafkaError(code: -195, message: "", isRetriable: true)) { delays.append(d) }
        }
        #expect(delays.count == 50)
        #expect(delays.first == RetryPolicy.publish.initialBackoff && delays.last == RetryPolicy.publish.maxBackoff)
        var other = PublishPolicy()
        var decisions: [PublishPolicy.Decision] = []
        for _ in 0..<PublishPolicy.maxOtherTries { decisions.append(other.next(after: KafkaError(code: 40, message: ""))) }
        #expect(decisions.dropLast().allSatisfy { if case .retry = $0 { true } else { false } })
        #expect(decisions.last == .fail)
    }
}

import ExchangeChecks

/// How a result that would not fit in one Kafka record is cut so that the check is still answered
/// with its real state (docs/result-size.md).
///
/// librdkafka refuses a record whose key, value and headers together (uncompressed) exceed the
/// producer's `message.max.bytes`, so compression does not help. A per-mailbox check of a large
/// tenant prints megabytes. The policy keeps, always: the status, the exit code, the summary (cut
/// only when it alone would take more than half the limit), and every global perfdata item. It
/// then keeps per-instance perfdata (`Perfdatum.instance` set; in the text and in the `perfdata`
/// array alike) and long output lines, in order, as far as they fit, and ends the output with a
/// marker line saying what was cut. `truncated` is then true.
public struct ResultSizePolicy: Sendable, Equatable {
    /// Bytes the encoded result (the record's value) may hold.
    public var maxValueBytes: Int

    /// A policy with this value limit in bytes, taken as is (no overhead subtracted, no minimum).
    public init(maxValueBytes: Int) {
        self.maxValueBytes = maxValueBytes
    }

    /// librdkafka's default `message.max.bytes`.
    public static let defaultMessageMaxBytes = 1_000_000
    /// Room kept for the record's key (a tenant name), headers (id, content type, traceparent) and
    /// the protocol's per-record framing, which librdkafka counts against `message.max.bytes` too.
    public static let recordOverheadBytes = 2_048
    /// The smallest value limit the worker accepts (below it not even a summary and a few
    /// global perfdata items fit).
    public static let minimumValueBytes = 4_096

    /// The policy for a producer configured with these librdkafka properties.
    public init(kafkaProperties: [String: String]) {
        let configured = kafkaProperties["message.max.bytes"].flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let messageMax = configured.map { max($0, 0) } ?? Self.defaultMessageMaxBytes
        self.init(maxValueBytes: max(messageMax - Self.recordOverheadBytes, Self.minimumValueBytes))
    }

    /// Output of at most this many UTF-8 bytes makes a small result: fitting and encoding it
    /// takes tens of microseconds, so the worker does it where the check runs rather than on
    /// the evaluation pool (whose hop costs about as much).
    public static let smallOutputBytes = 16_384

    /// Whether a check with this output text is small (`smallOutputBytes`); the perfdata are in
    /// the text, so it bounds them too.
    public static func isSmall(_ text: String) -> Bool {
        text.utf8.count <= smallOutputBytes
    }

    /// What a rendered check becomes on the wire: `base` holds every field except `output`,
    /// `summary`, `perfdata` and `truncated`, which come from the rendering (cut to fit).
    public func fit(_ base: CheckResultMessage, shortOutput: String, perfdata: [Perfdatum], text: String) -> CheckResultMessage {
        fitEncoded(base, shortOutput: shortOutput, perfdata: perfdata, text: text).result
    }

    /// `fit`, with the result's encoding (`CheckResultMessage.encoded()`), which fitting computes
    /// anyway: the record's value, so that publishing does not encode it again.
    public func fitEncoded(
        _ base: CheckResultMessage, shortOutput: String, perfdata: [Perfdatum], text: String
    ) -> (result: CheckResultMessage, encoded: [UInt8]) {
        var whole = base
        whole.output = text
        whole.summary = CheckProcessor.summary(shortOutput)
        whole.perfdata = CheckResultMessage.metrics(perfdata)
        whole.truncated = nil
        let encodedWhole = whole.encoded()
        if !encodedWhole.isEmpty, encodedWhole.count <= maxValueBytes { return (whole, encodedWhole) }

        // The parts of the text: short output, perfdata (as rendered), long output lines.
        let perfText = perfdata.isEmpty ? "" : "|" + perfdata.map { " " + $0.rendered }.joined()
        let head = shortOutput + perfText
        // Compared as bytes: a text may hold "\r" before the "\n", which Swift's characters join.
        let longLines: [Substring]
        if text.utf8.starts(with: head.utf8), text.utf8.dropFirst(head.utf8.count).first == UInt8(ascii: "\n") {
            let rest = String(decoding: text.utf8.dropFirst(head.utf8.count + 1), as: UTF8.self)
            longLines = rest.split(separator: "\n", omittingEmptySubsequences: false)
        } else {
            longLines = []
        }
        var short = shortOutput
        var shortCut = false
        if Self.escapedBytes(short) > maxValueBytes / 2 {
            // Cut by escaped size: the summary appears twice (output and summary), and a control
            // character takes six bytes in JSON.
            short = Self.prefix(short, escapedBytes: maxValueBytes / 8) + " (summary cut) "
            shortCut = true
        }
        let instance = perfdata.indices.filter { perfdata[$0].instance != nil }
        let global = perfdata.indices.filter { perfdata[$0].instance == nil }

        func build(instanceKept: Int, linesKept: Int) -> CheckResultMessage {
            var keep = Set(global)
            keep.formUnion(instance.prefix(instanceKept))
            let kept = perfdata.indices.filter { keep.contains($0) }.map { perfdata[$0] }
            var out = short
            if !kept.isEmpty { out += "|" + kept.map { " " + $0.rendered }.joined() }
            var lines = longLines.prefix(linesKept).map(String.init)
            var cut: [String] = []
            if shortCut { cut.append("the summary") }
            if instanceKept < instance.count { cut.append("per-instance perfdata (\(instanceKept) of \(instance.count) kept)") }
            if linesKept < longLines.count { cut.append("long output (\(linesKept) of \(longLines.count) lines kept)") }
            lines.append("(exocheck: result cut to fit the results topic's record limit of \(maxValueBytes) bytes: \(cut.joined(separator: ", ")))")
            out += "\n" + lines.joined(separator: "\n")
            var m = base
            m.output = out
            m.summary = CheckProcessor.summary(short)
            m.perfdata = CheckResultMessage.metrics(kept)
            m.truncated = true
            return m
        }

        // Greedy by estimated cost (an upper bound of each part's escaped JSON size), then checked
        // by encoding; the estimate only errs high, so the loop below rarely runs twice.
        let baseSize = build(instanceKept: 0, linesKept: 0).encoded().count
        var room = maxValueBytes - baseSize
        var instanceKept = 0
        var linesKept = 0
        let perfShare = room / 2
        var spent = 0
        while instanceKept < instance.count {
            let cost = Self.perfdatumCost(perfdata[instance[instanceKept]])
            if spent + cost > perfShare { break }
            spent += cost
            instanceKept += 1
        }
        room -= spent
        while linesKept < longLines.count {
            let cost = Self.escapedBytes(longLines[linesKept]) + 2
            if cost > room { break }
            room -= cost
            linesKept += 1
        }
        while instanceKept < instance.count {
            let cost = Self.perfdatumCost(perfdata[instance[instanceKept]])
            if cost > room { break }
            room -= cost
            instanceKept += 1
        }
        var result = build(instanceKept: instanceKept, linesKept: linesKept)
        var encoded = result.encoded()
        while encoded.count > maxValueBytes, instanceKept + linesKept > 0 {
            instanceKept /= 2
            linesKept /= 2
            result = build(instanceKept: instanceKept, linesKept: linesKept)
            encoded = result.encoded()
        }
        return (result, encoded)
    }

    /// An upper bound of what one perfdata item adds: its text in `output` and its object in
    /// `perfdata` (keys, three numbers of at most 24 characters, escaped strings).
    static func perfdatumCost(_ p: Perfdatum) -> Int {
        let strings = escapedBytes(p.label) + escapedBytes(p.unit) + escapedBytes(p.warning) + escapedBytes(p.critical)
        return escapedBytes(" " + p.rendered) + strings + 3 * 24 + 96
    }

    /// An upper bound of a string's size inside a JSON string literal.
    static func escapedBytes<S: StringProtocol>(_ s: S) -> Int {
        var n = 0
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): n += 2
            case 0..<0x20, 0x7F: n += 6
            default: n += 1
            }
        }
        return n
    }

    /// The longest prefix of whole characters whose JSON-escaped size is at most `escapedBytes`.
    static func prefix(_ s: String, escapedBytes limit: Int) -> String {
        var used = 0
        var end = s.startIndex
        for c in s {
            let size = escapedBytes(String(c))
            if used + size > limit { break }
            used += size
            end = s.index(after: end)
        }
        return String(s[..<end])
    }

    /// The longest prefix of whole characters that holds at most `bytes` UTF-8 bytes.
    static func prefix(_ s: String, bytes: Int) -> String {
        var used = 0
        var end = s.startIndex
        for c in s {
            let size = c.utf8.count
            if used + size > bytes { break }
            used += size
            end = s.index(after: end)
        }
        return String(s[..<end])
    }
}

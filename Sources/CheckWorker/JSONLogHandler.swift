import ExchangeChecks
import Foundation
import Logging

/// swift-log handler writing one JSON object per line to stderr (production), or plain text.
/// Lines go through `SafeOutput.standardError`: whole lines, never interleaved, and a closed or
/// broken stderr makes logging a no-op instead of crashing the worker.
public struct JSONLogHandler: LogHandler {
    /// Metadata written with every line; an event's own metadata wins on the same key.
    public var metadata: Logger.Metadata = [:]
    /// The lowest level logged (default info; the worker sets it from `log.level`).
    public var logLevel: Logger.Level = .info
    let label: String
    let json: Bool
    /// `log.redactUserNames`: user names (the local part of `name@domain` addresses) in messages
    /// and metadata values are written as `<user>` (PersonalData); on by default.
    public var redactUserNames = true
    /// Metadata keys whose values are written as `<withheld>` (for a library that logs values it
    /// should not, such as swift-otel's environment overrides: TraceExportSettings).
    public var withheldMetadata: Set<String> = []

    /// A handler for the logger named `label` (written as `logger`): one JSON object per line, or with
    /// `json` false a text line `time level label: message key=value…`.
    public init(label: String, json: Bool = true) {
        self.label = label
        self.json = json
    }

    /// One entry of `metadata`, by key.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes one line for `event` to standard error: time, level, label, message, the error (as
    /// metadata `error`) and the merged metadata.
    public func log(event: LogEvent) {
        write(level: event.level, message: event.message, metadata: event.metadata, error: event.error)
    }

    func write(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, error: (any Error)?) {
        SafeOutput.standardError.write(line(level: level, message: message, metadata: explicit, error: error, time: Date()) + "\n")
    }

    /// The line written for one event (without its newline).
    func line(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, error: (any Error)?, time date: Date) -> String {
        var all = metadata
        if let error { all["error"] = "\(error)" }
        if let explicit { all.merge(explicit) { $1 } }
        for key in withheldMetadata where all[key] != nil { all[key] = "<withheld>" }
        let redact = redactUserNames
        func clean(_ text: String) -> String { redact ? PersonalData.redactUserNames(text) : text }
        let time = date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        if json {
            var object: [String: String] = ["time": time, "level": level.rawValue, "logger": label, "message": clean(message.description)]
            for (k, v) in all { object[clean(k)] = clean("\(v)") }
            return Self.jsonObject(object)
        }
        let meta = all.sorted { $0.key < $1.key }.map { "\(clean($0.key))=\(clean("\($0.value)"))" }.joined(separator: " ")
        return "\(time) \(level.rawValue) \(label): \(clean(message.description))\(meta.isEmpty ? "" : " " + meta)"
    }

    /// A flat object of strings as one line of JSON, keys sorted, written directly: a worker logs
    /// a line per check, and JSONSerialization (an NSDictionary per line) cost about 15 % of a
    /// warm worker's CPU (docs/benchmarks.md). Escapes what JSON requires (`"`, `\\`, control
    /// characters), and U+2028/U+2029 too, so that a line is also valid JavaScript.
    static func jsonObject(_ object: [String: String]) -> String {
        var out = "{"
        out.reserveCapacity(256)
        var first = true
        for key in object.keys.sorted() {
            if !first { out.append(",") }
            first = false
            appendString(key, to: &out)
            out.append(":")
            appendString(object[key] ?? "", to: &out)
        }
        out.append("}")
        return out
    }

    static func appendString(_ text: String, to out: inout String) {
        out.append("\"")
        var plain = text.unicodeScalars.startIndex
        let scalars = text.unicodeScalars
        var i = plain
        while i < scalars.endIndex {
            let c = scalars[i]
            let escape: String?
            switch c {
            case "\"": escape = "\\\""
            case "\\": escape = "\\\\"
            case "\n": escape = "\\n"
            case "\r": escape = "\\r"
            case "\t": escape = "\\t"
            case "\u{2028}": escape = "\\u2028"
            case "\u{2029}": escape = "\\u2029"
            default:
                if c.value < 0x20 {
                    let hex = String(c.value, radix: 16)
                    escape = "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    escape = nil
                }
            }
            if let escape {
                out.unicodeScalars.append(contentsOf: scalars[plain..<i])
                out.append(escape)
                plain = scalars.index(after: i)
            }
            i = scalars.index(after: i)
        }
        out.unicodeScalars.append(contentsOf: scalars[plain..<scalars.endIndex])
        out.append("\"")
    }
}

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
        var all = metadata
        if let error { all["error"] = "\(error)" }
        if let explicit { all.merge(explicit) { $1 } }
        let time = Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        let text: String
        if json {
            var object: [String: String] = ["time": time, "level": level.rawValue, "logger": label, "message": message.description]
            for (k, v) in all { object[k] = "\(v)" }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            text = String(decoding: data, as: UTF8.self)
        } else {
            let meta = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            text = "\(time) \(level.rawValue) \(label): \(message)\(meta.isEmpty ? "" : " " + meta)"
        }
        SafeOutput.standardError.write(text + "\n")
    }
}

import ExchangeChecks
import Foundation
import Kafka

/// The dead-letter topic's record format, in one place: the headers a worker adds to the copy of
/// a refused request, how `exocheck dlq` reads them back, and what a replay sends.
///
/// Anyone who can write to the dead-letter topic can write anything there: every field read
/// back is bounded and made printable before it is shown, and a replay sends only what the
/// original request held (its key, value and own headers).
public enum DeadLetterHeader {
    /// The topic the request was read from.
    public static let sourceTopic = "exocheck-source-topic"
    /// Its partition there.
    public static let sourcePartition = "exocheck-source-partition"
    /// Its offset there.
    public static let sourceOffset = "exocheck-source-offset"
    /// Why it was refused (the result's message).
    public static let reason = "exocheck-dlt-reason"
    /// The result's error kind (`CheckErrorKind`).
    public static let errorKind = "exocheck-error-kind"
    /// Present when the request's own headers were too large to copy (and so were left out).
    public static let headersDropped = "exocheck-headers-dropped"
    /// Present on a stub: the record was too large to copy whole; only its start was kept.
    public static let truncated = "exocheck-dlt-truncated"
    /// A stub's original size in bytes.
    public static let sourceSize = "exocheck-source-size"
    /// A stub's original SHA-256 (hex).
    public static let sourceSHA256 = "exocheck-source-sha256"
    /// On a replayed request: the dead-letter record it came from (`topic:partition:offset`).
    public static let replayOf = "exocheck-replay-of"
    /// On a replayed request: how many times it was replayed (1 for the first replay).
    public static let replayCount = "exocheck-replay-count"

    /// Headers a worker or a replay adds: a replay sends the original headers without these.
    public static let added: Set<String> = [
        sourceTopic, sourcePartition, sourceOffset, reason, errorKind, headersDropped, truncated, sourceSize, sourceSHA256, replayOf, replayCount,
    ]
}

/// One record of the dead-letter topic as `exocheck dlq` shows it. Text fields are printable
/// (control characters replaced) and capped, since the topic may hold anything.
public struct DeadLetterRecord: Sendable {
    /// Where the copy is: the dead-letter topic, its partition and offset.
    public var topic: String
    /// The copy's partition in the dead-letter topic.
    public var partition: Int32
    /// The copy's offset in the dead-letter topic.
    public var offset: Int64
    /// When the copy was written (from the record's timestamp); nil when it has none.
    public var time: Date?
    /// The error kind (`exocheck-error-kind`), as written; `?` when absent.
    public var kind: String
    /// Why it was refused (`exocheck-dlt-reason`); empty when absent.
    public var reason: String
    /// The record key: the tenant the producer named; empty when none.
    public var tenant: String
    /// The request id: the `exocheck-id` header, else the `id` field of a JSON value; empty when
    /// neither.
    public var id: String
    /// Where the request was read from (`topic:partition:offset`); empty when not recorded.
    public var source: String
    /// True for a stub: the request was larger than a record could copy; only its start is here.
    public var truncated: Bool
    /// True when the request's own headers were too large and were left out of the copy.
    public var headersDropped: Bool
    /// How many times this request was replayed before it was dead-lettered again (0: never).
    public var replayCount: Int
    /// The request's deadline when its value is a JSON request with one, else nil.
    public var deadline: Date?
    /// The record as read (key, value and headers), for `show` and a replay.
    public var message: KafkaMessage

    /// Characters of a field kept for display.
    public static let fieldLimit = 512

    /// Reads a dead-letter record; never fails (missing headers leave their fields empty).
    public init(_ message: KafkaMessage) {
        self.message = message
        topic = Self.printable(message.topic)
        partition = message.partition
        offset = message.offset
        time = message.timestamp.flatMap { $0 > 0 && $0 < 253_402_300_800_000 ? Date(timeIntervalSince1970: Double($0) / 1000) : nil }
        kind = Self.printable(message.header(DeadLetterHeader.errorKind) ?? "?")
        reason = Self.printable(message.header(DeadLetterHeader.reason) ?? "")
        tenant = Self.printable(message.keyString ?? "")
        truncated = message.header(DeadLetterHeader.truncated) != nil
        headersDropped = message.header(DeadLetterHeader.headersDropped) != nil
        replayCount = message.header(DeadLetterHeader.replayCount).flatMap { Int($0) }.map { min(max(0, $0), 1_000_000) } ?? 0
        let parts = [DeadLetterHeader.sourceTopic, DeadLetterHeader.sourcePartition, DeadLetterHeader.sourceOffset].compactMap { message.header($0) }
        source = parts.count == 3 ? Self.printable(parts.joined(separator: ":")) : ""
        // The value is parsed only when it is small enough to be a request a worker would read.
        var object: [String: Any]? = nil
        if message.value.count <= 1_048_576, !truncated {
            object = (try? JSONSerialization.jsonObject(with: Data(message.value))) as? [String: Any]
        }
        id = Self.printable(message.header("exocheck-id") ?? (object?["id"] as? String) ?? "")
        deadline = (object?["deadline"] as? String).flatMap { RFC3339.parse(String($0.prefix(64))) }
    }

    /// `SafeOutput.printable`, cut to `fieldLimit` characters by default.
    public static func printable(_ text: String, limit: Int = fieldLimit) -> String { SafeOutput.printable(text, limit: limit) }

    /// Why this record may not be replayed (nil: it may). A stub lost the request's end; a
    /// `poison` request made workers die twice; one replayed `maxReplays` times keeps failing.
    public func replayRefusal(maxReplays: Int, allowPoison: Bool) -> String? {
        if truncated { return "only the first bytes of this request were kept (it was larger than a record could copy): it cannot be sent again" }
        if headersDropped {
            return "its own headers (the id, the trace context) were too large and were not copied: it cannot be sent again as it was"
        }
        let added = replay(to: "").headers.reduce(0) { $0 + $1.name.utf8.count + ($1.value?.count ?? 0) }
        if added > CheckProcessor.maxHeaderBytes {
            return "its headers with the replay's would exceed a worker's limit of \(CheckProcessor.maxHeaderBytes) bytes"
        }
        if kind == CheckErrorKind.poison.rawValue, !allowPoison {
            return "a poison request (workers died twice while it ran): replaying it may crash workers again; --allow-poison sends it anyway"
        }
        if replayCount >= maxReplays {
            return "already replayed \(replayCount) time(s) and dead-lettered again; --max-replays raises the limit"
        }
        return nil
    }

    /// The request to send again to `topic`: the original key, value and headers (without the
    /// ones a worker or an earlier replay added), plus where it came from and the replay count.
    public func replay(to topic: String) -> OutgoingMessage {
        var headers = message.headers.filter { !DeadLetterHeader.added.contains($0.name) }
        headers.append(KafkaHeader(DeadLetterHeader.replayOf, "\(message.topic):\(message.partition):\(message.offset)"))
        headers.append(KafkaHeader(DeadLetterHeader.replayCount, String(replayCount + 1)))
        return OutgoingMessage(topic: topic, key: message.key, value: message.value, headers: headers)
    }

    /// One line of `dlq list`: position, time, kind, tenant, id, replays, reason.
    public var listLine: String {
        let when = time.map { RFC3339.string($0) } ?? "-"
        var flags: [String] = []
        if truncated { flags.append("stub") }
        if headersDropped { flags.append("headers-dropped") }
        if replayCount > 0 { flags.append("replayed \(replayCount)x") }
        let extra = flags.isEmpty ? "" : " [\(flags.joined(separator: ", "))]"
        return "\(partition):\(offset)  \(when)  \(kind)  tenant=\(tenant.isEmpty ? "-" : tenant)  id=\(id.isEmpty ? "-" : id)\(extra)  \(reason)"
    }

    /// The record as one JSON object (`dlq list --format json`): the fields above, the value as
    /// text when it is UTF-8, else base64.
    public var json: [String: Any] {
        var o: [String: Any] = [
            "partition": Int(partition), "offset": offset, "kind": kind, "reason": reason, "tenant": tenant, "id": id, "source": source,
            "truncated": truncated, "headersDropped": headersDropped, "replayCount": replayCount,
        ]
        if let time { o["time"] = RFC3339.string(time) }
        if let deadline { o["deadline"] = RFC3339.string(deadline) }
        if let text = String(validating: message.value, as: UTF8.self) {
            o["value"] = text
        } else {
            o["valueBase64"] = Data(message.value).base64EncodedString()
        }
        return o
    }
}

/// Which dead-letter records `exocheck dlq` lists, shows or replays.
public struct DeadLetterFilter: Sendable {
    /// Only these error kinds (empty: all).
    public var kinds: Set<String> = []
    /// Only this tenant (record key).
    public var tenant: String?
    /// Only this request id.
    public var id: String?
    /// Only records written at or after this time.
    public var since: Date?
    /// Only this record (`partition:offset` in the dead-letter topic).
    public var position: (partition: Int32, offset: Int64)?

    /// A filter that keeps every record.
    public init() {}

    /// True when the filter names something (a replay needs one, or `--all`).
    public var isRestrictive: Bool { !kinds.isEmpty || tenant != nil || id != nil || since != nil || position != nil }

    /// Whether `record` is selected.
    public func matches(_ record: DeadLetterRecord) -> Bool {
        if !kinds.isEmpty, !kinds.contains(record.kind) { return false }
        if let tenant, record.tenant != tenant { return false }
        if let id, record.id != id { return false }
        if let since, (record.time ?? .distantPast) < since { return false }
        if let position, position.partition != record.partition || position.offset != record.offset { return false }
        return true
    }

    /// Parses `partition:offset` (both non-negative integers); nil when the text is not one.
    public static func position(_ text: String) -> (partition: Int32, offset: Int64)? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let p = Int32(parts[0]), p >= 0, let o = Int64(parts[1]), o >= 0 else { return nil }
        return (p, o)
    }
}

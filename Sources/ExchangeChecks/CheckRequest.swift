import Foundation

// The check request as it arrives from Kafka: decoding and validation are pure (no I/O), so they
// live in the core, where the fuzzer builds them quickly (scripts/fuzz.sh).

/// A validated check request (`exocheck.requests`, JSON; see schemas/check-request.schema.json).
public struct CheckRequest: Sendable, Equatable {
    /// The request's `id` (safe text of at most `CheckRequestDecoder.maxIdBytes` bytes), echoed in
    /// its result.
    public var id: String
    /// The `tenant` field: which of the worker's configured tenants the check is for (at most
    /// `CheckRequestDecoder.maxTenantBytes` bytes).
    public var tenant: String
    /// The `mode` field: which check to run.
    public var mode: CheckMode
    /// The Centreon argument list the request stands for (from `options` or `args`).
    public var arguments: [String]
    /// The `deadline` field: after it the check is no longer run (an `expired` result instead),
    /// and it shortens the check's time budget; nil = no deadline of its own.
    public var deadline: Date?
    /// The `labels` field: key/value strings carried into the result; empty when absent.
    public var labels: [String: String]
    /// The `replyTo` field: the topic the result is published to instead of the default one (a
    /// worker accepts only the topics it allows); nil = the default topic.
    public var replyTo: String?

    /// Builds a request as given, without the validation of `CheckRequestDecoder.decode`.
    public init(
        id: String, tenant: String, mode: CheckMode, arguments: [String] = [], deadline: Date? = nil,
        labels: [String: String] = [:], replyTo: String? = nil
    ) {
        self.id = id
        self.tenant = tenant
        self.mode = mode
        self.arguments = arguments
        self.deadline = deadline
        self.labels = labels
        self.replyTo = replyTo
    }

    /// The JSON document for this request (`options` are written as `args`).
    public func json() -> [String: Any] {
        var o: [String: Any] = ["id": id, "tenant": tenant, "mode": mode.rawValue, "args": arguments]
        if let deadline { o["deadline"] = RFC3339.string(deadline) }
        if !labels.isEmpty { o["labels"] = labels }
        if let replyTo { o["replyTo"] = replyTo }
        return o
    }

    /// `json()` as JSON bytes with sorted keys (the record value to produce); empty if it cannot
    /// be serialised.
    public func encoded() -> [UInt8] {
        Array((try? JSONSerialization.data(withJSONObject: json(), options: [.sortedKeys])) ?? Data())
    }
}

/// Why a request is refused; `id` is set when it could be read.
public struct RequestRejection: Error, Sendable, Equatable {
    /// The request's id when it could be read as safe text (from the body, or the `exocheck-id`
    /// header); nil otherwise.
    public var id: String?
    /// The `tenant` field when it is safe text; nil otherwise.
    public var tenant: String?
    /// The `mode` field when it names a known mode; nil otherwise (an unknown mode is not echoed).
    public var mode: String?
    /// The request's labels when they are valid; empty otherwise.
    public var labels: [String: String]
    /// Why the request was refused, worded so that no value that may be a secret is echoed.
    public var reason: String

    /// Builds a rejection; `tenant` and `mode` default to nil (not known).
    public init(id: String?, tenant: String? = nil, mode: String? = nil, labels: [String: String], reason: String) {
        self.id = id
        self.tenant = tenant
        self.mode = mode
        self.labels = labels
        self.reason = reason
    }
}

/// Decodes and validates check requests without I/O, and holds their size limits.
public enum CheckRequestDecoder {
    /// Bytes of a request id.
    public static let maxIdBytes = 256
    /// Bytes of a tenant name.
    public static let maxTenantBytes = 128
    /// Labels of one request, bytes of a label key and of a label value.
    public static let maxLabels = 32
    /// Bytes of a label key, made of ASCII letters, digits, `-`, `_` and `.` only.
    public static let maxLabelKeyBytes = 64
    /// Bytes of a label value (may be empty; no control characters).
    public static let maxLabelValueBytes = 1024
    static let knownFields: Set<String> = ["id", "tenant", "mode", "options", "args", "deadline", "labels", "replyTo"]
    /// Credentials and endpoints (from the option table): never in a request, never passed on by `submit`.
    public static let credentialOptions: Set<String> = Set(OptionTable.entries.filter { $0.use == .connection }.map(\.name))

    /// Text that can be echoed into results, logs and headers: 1…`maxBytes` UTF-8 bytes and no
    /// control characters (no newline can reach a log line or a Nagios command).
    public static func isSafeText(_ text: String, maxBytes: Int) -> Bool {
        let n = text.utf8.count
        guard n >= 1, n <= maxBytes else { return false }
        // Printable ASCII (most text) needs no look-up of Unicode properties.
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return true }
        return !text.unicodeScalars.contains { $0.properties.generalCategory == .control || $0 == "\u{2028}" || $0 == "\u{2029}" }
    }

    /// A legal Kafka topic name (what the broker accepts): 1 to 249 ASCII letters, digits, `.`,
    /// `_` and `-`, and not `.` or `..`.
    public static func isTopicName(_ name: String) -> Bool {
        let bytes = name.utf8
        guard (1...249).contains(bytes.count), name != ".", name != ".." else { return false }
        return bytes.allSatisfy { b in
            (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39)
                || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
        }
    }

    static func isSafeLabelKey(_ key: String) -> Bool {
        let bytes = key.utf8
        guard (1...maxLabelKeyBytes).contains(bytes.count) else { return false }
        return bytes.allSatisfy { b in
            (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39)
                || b == UInt8(ascii: "-") || b == UInt8(ascii: "_") || b == UInt8(ascii: ".")
        }
    }

    /// Validated labels, or why not (the reason names no key or value that could be a secret).
    struct LabelProblem: Error { let reason: String }

    static func labels(_ raw: JSONValue) -> Result<[String: String], LabelProblem> {
        guard case .object(let l) = raw, l.values.allSatisfy({ $0.string != nil }) else {
            return .failure(LabelProblem(reason: "'labels' must be an object of strings"))
        }
        guard l.count <= maxLabels else { return .failure(LabelProblem(reason: "'labels' has \(l.count) entries, more than the limit of \(maxLabels)")) }
        var out: [String: String] = [:]
        for (k, v) in l {
            guard isSafeLabelKey(k) else {
                return .failure(LabelProblem(reason: "a label key is not 1 to \(maxLabelKeyBytes) bytes of letters, digits, '-', '_' and '.' (not shown)"))
            }
            guard let value = v.string, value.isEmpty || isSafeText(value, maxBytes: maxLabelValueBytes) else {
                return .failure(LabelProblem(reason: "label '\(k)' is longer than \(maxLabelValueBytes) bytes or holds control characters"))
            }
            out[k] = value
        }
        return .success(out)
    }

    /// Decodes and validates a request. Never includes a value that may be a secret in the
    /// reason: option values, unknown modes, positional arguments and unknown names are not
    /// echoed. `headerId` is the record's `exocheck-id` header, used when the body is unreadable.
    public static func decode(_ bytes: [UInt8], maxBytes: Int, headerId: String? = nil) -> Result<CheckRequest, RequestRejection> {
        decode(bytes, maxBytes: maxBytes, headerId: headerId, commonOnly: false)
            ?? .failure(RequestRejection(id: nil, labels: [:], reason: "the request is not valid JSON"))
    }

    /// `decode` when the value is in the common JSON form (`CommonJSON`, bounded nesting, no
    /// `JSONDecoder`); nil when it is not (then `decode` it, on a thread with a large stack).
    public static func decodeCommon(_ bytes: [UInt8], maxBytes: Int, headerId: String? = nil) -> Result<CheckRequest, RequestRejection>? {
        decode(bytes, maxBytes: maxBytes, headerId: headerId, commonOnly: true)
    }

    static func decode(_ bytes: [UInt8], maxBytes: Int, headerId: String?, commonOnly: Bool) -> Result<CheckRequest, RequestRejection>? {
        let fallbackId = headerId.flatMap { isSafeText($0, maxBytes: maxIdBytes) ? $0 : nil }
        if bytes.count > maxBytes {
            return .failure(
                RequestRejection(
                    id: fallbackId ?? recoverId(bytes), labels: [:],
                    reason: "request of \(bytes.count) bytes exceeds the limit of \(maxBytes) bytes"))
        }
        // Decoded into a typed JSON tree (JSONValue, Codable): strings, numbers and booleans are
        // told apart by the decoder, not by the runtime type of a Foundation object. The common
        // form is read without the decoder (CommonJSON: the same tree, keys known distinct).
        let common = CommonJSON.parse(bytes)
        if commonOnly, common == nil { return nil }
        guard let object = common ?? (try? JSONDecoder().decode(JSONValue.self, from: Data(bytes))) else {
            return .failure(RequestRejection(id: fallbackId ?? recoverId(bytes), labels: [:], reason: "the request is not valid JSON"))
        }
        guard case .object(let o) = object else {
            return .failure(RequestRejection(id: fallbackId, labels: [:], reason: "the request must be a JSON object"))
        }
        var rejection = RequestRejection(id: fallbackId, labels: [:], reason: "")
        func reject(_ reason: String) -> Result<CheckRequest, RequestRejection> {
            rejection.reason = reason
            return .failure(rejection)
        }
        // Read what can be echoed first, so that even a refused request gets a useful result.
        if let id = o["id"]?.string, isSafeText(id, maxBytes: maxIdBytes) { rejection.id = id }
        if let t = o["tenant"]?.string, isSafeText(t, maxBytes: maxTenantBytes) { rejection.tenant = t }
        if let m = o["mode"]?.string, let mode = CheckMode(rawValue: m) { rejection.mode = mode.rawValue }
        if let raw = o["labels"], case .success(let l) = labels(raw) { rejection.labels = l }
        // A name twice in one object is ambiguous: this decoder keeps the first, most others the
        // last, so a validator in front of the workers could read another tenant than they do.
        if common == nil, JSONValue.hasDuplicateKeys(bytes) {
            return reject("a field name appears twice in one object (not shown): each name may appear once")
        }

        if let unknown = o.keys.sorted().first(where: { !knownFields.contains($0) }) {
            if OptionTable.looksSecret(unknown) {
                return reject("a field whose name suggests a secret is not allowed: secrets belong to the worker's configuration, never to a request")
            }
            // Field names are not echoed either: a producer's typo may hold a value.
            return reject("unknown field (not shown); a request has only " + knownFields.sorted().joined(separator: ", "))
        }
        guard let id = o["id"]?.string else { return reject("'id' is required and must be a string") }
        guard isSafeText(id, maxBytes: maxIdBytes) else { return reject("'id' must be 1 to \(maxIdBytes) bytes without control characters") }
        guard let tenant = o["tenant"]?.string, !tenant.isEmpty else { return reject("'tenant' is required and must be a non-empty string") }
        guard isSafeText(tenant, maxBytes: maxTenantBytes) else {
            return reject("'tenant' must be 1 to \(maxTenantBytes) bytes without control characters")
        }
        guard let modeName = o["mode"]?.string else { return reject("'mode' is required and must be a string") }
        guard let mode = CheckMode(rawValue: modeName) else {
            return reject("unknown mode (not shown): 'email-activity' or 'mailbox-usage'")
        }
        var labels: [String: String] = [:]
        if let raw = o["labels"] {
            switch Self.labels(raw) {
            case .success(let l): labels = l
            case .failure(let problem): return reject(problem.reason)
            }
        }
        var deadline: Date? = nil
        if let raw = o["deadline"] {
            guard let text = raw.string, text.utf8.count <= 64, let d = RFC3339.parse(text) else {
                return reject("'deadline' must be an RFC 3339 date-time such as 2026-11-29T03:00:00Z")
            }
            deadline = d
        }
        var replyTo: String? = nil
        if let raw = o["replyTo"] {
            guard let r = raw.string, isTopicName(r) else {
                return reject("'replyTo' must be a Kafka topic name: 1 to 249 of a-z, A-Z, 0-9, '.', '_' and '-', not '.' or '..'")
            }
            replyTo = r
        }
        if o["options"] != nil, o["args"] != nil { return reject("give either 'options' or 'args', not both") }
        var arguments: [String] = []
        if let raw = o["options"] {
            guard case .object(let options) = raw else { return reject("'options' must be an object") }
            for name in options.keys.sorted() {
                let bare = name.hasPrefix("--") ? String(name.dropFirst(2)) : name
                // Checked before the option becomes an argument: a key holding '=' would
                // otherwise smuggle another option (and its value) past this check.
                if let refusal = OptionTable.requestRefusal(bare) { return reject(refusal) }
                switch options[name] {
                case .string(let s)?: arguments.append("--\(bare)=\(s)")
                case .number(let text)?: arguments.append("--\(bare)=\(text)")
                case .bool(let b)?: if b { arguments.append("--\(bare)") }  // a flag: true sets it, false leaves it out
                default: return reject("option '\(bare)' must be a string, a number or a boolean")
                }
            }
        }
        if let raw = o["args"] {
            guard case .array(let args) = raw, args.allSatisfy({ $0.string != nil }) else { return reject("'args' must be an array of strings") }
            arguments = args.compactMap(\.string)
        }
        // The option names as the check's parser will read them (after splitting at '='), each
        // checked against the option table.
        let parsed: CentreonArguments
        do { parsed = try CentreonArguments(arguments) } catch { return reject(error.redacted) }
        for name in parsed.order {
            if let refusal = OptionTable.requestRefusal(name) { return reject(refusal) }
        }
        return .success(
            CheckRequest(
                id: id, tenant: tenant, mode: mode, arguments: arguments, deadline: deadline,
                labels: labels, replyTo: replyTo))
    }

    /// The W3C trace context `traceparent` of version 00 (`00-<trace id>-<parent id>-<flags>`,
    /// lower-case hex, neither id all zeros), the only form a worker continues or copies to a
    /// result. Later versions are not parsed: a producer sending one gets a new trace.
    public static func isTraceparent(_ value: [UInt8]) -> Bool {
        guard value.count == 55, value[0] == UInt8(ascii: "0"), value[1] == UInt8(ascii: "0") else { return false }
        var traceNonZero = false
        var parentNonZero = false
        for (i, b) in value.enumerated() {
            if i == 2 || i == 35 || i == 52 {
                if b != UInt8(ascii: "-") { return false }
            } else if !((b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66)) {
                return false
            } else if b != UInt8(ascii: "0") {
                if i > 2 && i < 35 { traceNonZero = true }
                if i > 35 && i < 52 { parentNonZero = true }
            }
        }
        return traceNonZero && parentNonZero
    }

    /// The id of a record that is not decoded: its `exocheck-id` header, else an `"id":"…"` near
    /// its start; nil when neither is safe text.
    public static func identify(_ bytes: [UInt8], headerId: String?) -> String? {
        if let headerId, isSafeText(headerId, maxBytes: maxIdBytes) { return headerId }
        return recoverId(bytes)
    }

    /// Best effort: an `"id":"…"` in a body that is not valid JSON.
    static func recoverId(_ bytes: [UInt8]) -> String? {
        let text = String(decoding: bytes.prefix(4096), as: UTF8.self)
        guard let range = text.range(of: #""id"\s*:\s*"([^"\\]{1,256})""#, options: .regularExpression) else { return nil }
        let match = String(text[range])
        guard let firstQuote = match.dropFirst(4).firstIndex(of: "\"") else { return nil }
        let value = String(match[match.index(after: firstQuote)...].dropLast())
        return isSafeText(value, maxBytes: maxIdBytes) ? value : nil
    }
}

/// A JSON document as a typed tree, decoded with `JSONDecoder` (whose nesting limit bounds its
/// depth): what a check request is validated from. A number keeps its text as the decoder reads
/// it (an integer as written, anything else as the shortest `Double` text).
enum JSONValue: Decodable, Sendable, Equatable {
    case string(String)
    case number(String)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([String: JSONValue])

    /// The decoder tells the JSON types apart (a string is never read as a number or a boolean,
    /// nor these as each other), so the order of the attempts changes only the cost: each failed
    /// attempt throws, so the commonest kinds of a request (strings, then objects) come first.
    /// Integers are tried before other numbers, so an integer keeps its written form.
    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let o = try? c.decode([String: JSONValue].self) {
            self = .object(o)
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int64.self) {
            self = .number(String(i))
        } else if let d = try? c.decode(Double.self) {
            self = .number(d.description)
        } else {
            self = .array(try c.decode([JSONValue].self))
        }
    }

    /// Whether some object of `bytes` (valid JSON) names a key twice, compared after escapes are
    /// resolved (`"a"` and `"\u0061"` are the same key).
    static func hasDuplicateKeys(_ b: [UInt8]) -> Bool {
        var stack: [Set<String>?] = []  // one entry per open object (its keys) or array (nil)
        var expectKey = false
        var i = 0
        while i < b.count {
            switch b[i] {
            case UInt8(ascii: "{"):
                stack.append([])
                expectKey = true
            case UInt8(ascii: "["):
                stack.append(nil)
                expectKey = false
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if !stack.isEmpty { stack.removeLast() }
                expectKey = false
            case UInt8(ascii: ","):
                expectKey = stack.last.map { $0 != nil } ?? false
            case UInt8(ascii: "\""):
                var j = i + 1
                var escaped = false
                while j < b.count, escaped || b[j] != UInt8(ascii: "\"") {
                    escaped = !escaped && b[j] == UInt8(ascii: "\\")
                    j += 1
                }
                if expectKey, let last = stack.last, var keys = last {
                    let raw = b[(i + 1)..<Swift.min(j, b.count)]
                    // Without a backslash (valid JSON) the key is its bytes; escapes are resolved
                    // by the decoder.
                    let key =
                        raw.contains(UInt8(ascii: "\\"))
                        ? (try? JSONDecoder().decode(String.self, from: Data([0x22] + raw + [0x22]))) ?? String(decoding: raw, as: UTF8.self)
                        : String(decoding: raw, as: UTF8.self)
                    if keys.contains(key) { return true }
                    keys.insert(key)
                    stack[stack.count - 1] = keys
                }
                expectKey = false
                i = j
            default:
                break
            }
            i += 1
        }
        return false
    }

    /// The string, when this is one.
    var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }
}

/// RFC 3339 date-times as requests and results write them (`deadline`, `checkedAt`).
public enum RFC3339 {
    /// Parses an ISO 8601 date-time such as `2026-11-29T03:00:00Z`, with or without fractional
    /// seconds; nil when the text is not one.
    public static func parse(_ text: String) -> Date? {
        if let d = try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)) { return d }
        return try? Date(text, strategy: Date.ISO8601FormatStyle())
    }

    /// Formats `date` in UTC with milliseconds, e.g. `2026-11-29T03:00:01.250Z`.
    public static func string(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}

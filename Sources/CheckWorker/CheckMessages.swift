import ExchangeChecks
import Foundation

/// A validated check request (`exocheck.requests`, JSON; see schemas/check-request.schema.json).
public struct CheckRequest: Sendable, Equatable {
    public var id: String
    public var tenant: String
    public var mode: CheckMode
    /// The Centreon argument list the request stands for (from `options` or `args`).
    public var arguments: [String]
    public var deadline: Date?
    public var labels: [String: String]
    public var replyTo: String?

    public init(id: String, tenant: String, mode: CheckMode, arguments: [String] = [], deadline: Date? = nil,
                labels: [String: String] = [:], replyTo: String? = nil) {
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

    public func encoded() -> [UInt8] {
        Array((try? JSONSerialization.data(withJSONObject: json(), options: [.sortedKeys])) ?? Data())
    }
}

/// Why a request is refused; `id` is set when it could be read.
public struct RequestRejection: Error, Sendable, Equatable {
    public var id: String?
    public var tenant: String?
    public var mode: String?
    public var labels: [String: String]
    public var reason: String
}

public enum CheckRequestDecoder {
    public static let maxIdLength = 256
    static let knownFields: Set<String> = ["id", "tenant", "mode", "options", "args", "deadline", "labels", "replyTo"]
    /// Credentials and endpoints: they belong to the worker's configuration, never to a request.
    public static let credentialOptions: Set<String> = [
        "client-secret", "client-id", "login-endpoint", "graph-endpoint", "statefile-dir", "proxyurl",
    ]
    /// Options a request may never carry (the tenant and mode are fields of the request).
    static let forbiddenOptions = credentialOptions.union(["tenant", "mode", "plugin", "custommode", "time-budget"])

    static func looksSecret(_ name: String) -> Bool {
        let n = name.lowercased()
        return n.contains("secret") || n.contains("password") || n.contains("token") || n.contains("private-key")
            || n.contains("certificate")
    }

    /// Decodes and validates a request. Never includes secret values in the reason.
    public static func decode(_ bytes: [UInt8], maxBytes: Int) -> Result<CheckRequest, RequestRejection> {
        if bytes.count > maxBytes {
            return .failure(RequestRejection(id: nil, labels: [:], reason: "request of \(bytes.count) bytes exceeds the limit of \(maxBytes) bytes"))
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) else {
            return .failure(RequestRejection(id: recoverId(bytes), labels: [:], reason: "the request is not valid JSON"))
        }
        guard let o = object as? [String: Any] else {
            return .failure(RequestRejection(id: nil, labels: [:], reason: "the request must be a JSON object"))
        }
        var rejection = RequestRejection(id: nil, labels: [:], reason: "")
        func reject(_ reason: String) -> Result<CheckRequest, RequestRejection> {
            rejection.reason = reason
            return .failure(rejection)
        }
        // Read what can be echoed first, so that even a refused request gets a useful result.
        if let id = o["id"] as? String, !id.isEmpty, id.count <= maxIdLength { rejection.id = id }
        if let t = o["tenant"] as? String { rejection.tenant = t }
        if let m = o["mode"] as? String { rejection.mode = m }
        if let l = o["labels"] as? [String: String] { rejection.labels = l }

        if let unknown = o.keys.sorted().first(where: { !knownFields.contains($0) }) {
            return reject(looksSecret(unknown) ? "field '\(unknown)' is not allowed: secrets belong to the worker's configuration, never to a request"
                                               : "unknown field '\(unknown)'")
        }
        guard let id = o["id"] as? String else { return reject("'id' is required and must be a string") }
        guard !id.isEmpty, id.count <= maxIdLength else { return reject("'id' must be 1 to \(maxIdLength) characters") }
        guard let tenant = o["tenant"] as? String, !tenant.isEmpty else { return reject("'tenant' is required and must be a non-empty string") }
        guard let modeName = o["mode"] as? String else { return reject("'mode' is required and must be a string") }
        guard let mode = CheckMode(rawValue: modeName) else {
            return reject("unknown mode '\(modeName)' (email-activity or mailbox-usage)")
        }
        var labels: [String: String] = [:]
        if let raw = o["labels"] {
            guard let l = raw as? [String: Any], l.values.allSatisfy({ $0 is String }) else {
                return reject("'labels' must be an object of strings")
            }
            labels = l.compactMapValues { $0 as? String }
        }
        var deadline: Date? = nil
        if let raw = o["deadline"] {
            guard let text = raw as? String, let d = RFC3339.parse(text) else {
                return reject("'deadline' must be an RFC 3339 date-time such as 2026-11-29T03:00:00Z")
            }
            deadline = d
        }
        var replyTo: String? = nil
        if let raw = o["replyTo"] {
            guard let r = raw as? String, !r.isEmpty else { return reject("'replyTo' must be a topic name") }
            replyTo = r
        }
        if o["options"] != nil, o["args"] != nil { return reject("give either 'options' or 'args', not both") }
        var arguments: [String] = []
        if let raw = o["options"] {
            guard let options = raw as? [String: Any] else { return reject("'options' must be an object") }
            for name in options.keys.sorted() {
                let bare = name.hasPrefix("--") ? String(name.dropFirst(2)) : name
                if forbiddenOptions.contains(bare) || looksSecret(bare) {
                    return reject("option '\(bare)' is not allowed in a request: credentials, endpoints and the tenant come from the worker's configuration")
                }
                let value = options[name]
                if let s = value as? String {
                    arguments.append("--\(bare)=\(s)")
                } else if let v = value, isJSONBoolean(v), let b = v as? Bool {
                    if b { arguments.append("--\(bare)") }  // a flag: true sets it, false leaves it out
                } else if let n = value as? NSNumber {
                    arguments.append("--\(bare)=\(n.stringValue)")
                } else {
                    return reject("option '\(bare)' must be a string, a number or a boolean")
                }
            }
        }
        if let raw = o["args"] {
            guard let args = raw as? [Any], args.allSatisfy({ $0 is String }) else { return reject("'args' must be an array of strings") }
            arguments = args.compactMap { $0 as? String }
            for a in arguments where a.hasPrefix("-") {
                let name = String(a.drop(while: { $0 == "-" }).prefix(while: { $0 != "=" }))
                if forbiddenOptions.contains(name) || looksSecret(name) {
                    return reject("option '--\(name)' is not allowed in a request: credentials, endpoints and the tenant come from the worker's configuration")
                }
            }
        }
        return .success(CheckRequest(id: id, tenant: tenant, mode: mode, arguments: arguments, deadline: deadline,
                                     labels: labels, replyTo: replyTo))
    }

    /// Best effort: an `"id":"…"` in a body that is not valid JSON.
    static func recoverId(_ bytes: [UInt8]) -> String? {
        let text = String(decoding: bytes.prefix(4096), as: UTF8.self)
        guard let range = text.range(of: #""id"\s*:\s*"([^"\\]{1,256})""#, options: .regularExpression) else { return nil }
        let match = String(text[range])
        guard let firstQuote = match.dropFirst(4).firstIndex(of: "\"") else { return nil }
        let value = match[match.index(after: firstQuote)...].dropLast()
        return value.isEmpty ? nil : String(value)
    }
}

/// JSONSerialization turns JSON booleans into a boolean NSNumber subclass; tell them apart from 0/1.
func isJSONBoolean(_ value: Any) -> Bool {
    String(describing: type(of: value)).contains("Boolean") || type(of: value) == Bool.self
}

/// A check result (`exocheck.results`, JSON; see schemas/check-result.schema.json).
public struct CheckResultMessage: Sendable, Codable, Equatable {
    public struct Metric: Sendable, Codable, Equatable {
        public var label: String
        public var value: Double?
        public var unit: String
        public var warning: String
        public var critical: String
        public var min: Double?
        public var max: Double?
    }

    public struct Cache: Sendable, Codable, Equatable {
        /// `hit` or `miss`.
        public var token: String
        /// `hit`, `miss`, `revalidated` or `none` (no report fetched).
        public var report: String
    }

    public struct Failure: Sendable, Codable, Equatable {
        public var kind: String
        public var message: String
    }

    public var id: String?
    public var tenant: String?
    public var mode: String?
    public var labels: [String: String]
    public var status: String
    public var exitCode: Int
    public var output: String
    public var summary: String
    public var perfdata: [Metric]
    public var reportDate: String
    public var checkedAt: String
    public var durationMs: Double
    public var worker: String
    public var attempt: Int
    public var cache: Cache
    public var error: Failure?

    enum CodingKeys: String, CodingKey {
        case id, tenant, mode, labels, status, exitCode, output, summary, perfdata, reportDate, checkedAt, durationMs, worker,
             attempt, cache, error
    }

    /// Writes `id`, `tenant`, `mode` and `error` as null when unknown rather than leaving them out.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(tenant, forKey: .tenant)
        try c.encode(mode, forKey: .mode)
        try c.encode(labels, forKey: .labels)
        try c.encode(status, forKey: .status)
        try c.encode(exitCode, forKey: .exitCode)
        try c.encode(output, forKey: .output)
        try c.encode(summary, forKey: .summary)
        try c.encode(perfdata, forKey: .perfdata)
        try c.encode(reportDate, forKey: .reportDate)
        try c.encode(checkedAt, forKey: .checkedAt)
        try c.encode(durationMs, forKey: .durationMs)
        try c.encode(worker, forKey: .worker)
        try c.encode(attempt, forKey: .attempt)
        try c.encode(cache, forKey: .cache)
        try c.encode(error, forKey: .error)
    }

    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(self)) ?? Data())
    }

    public static func decode(_ bytes: [UInt8]) -> CheckResultMessage? {
        try? JSONDecoder().decode(CheckResultMessage.self, from: Data(bytes))
    }

    static func metrics(_ perfdata: [Perfdatum]) -> [Metric] {
        perfdata.map {
            Metric(label: $0.label, value: Double($0.value), unit: $0.unit, warning: $0.warning, critical: $0.critical,
                   min: Double($0.min), max: Double($0.max))
        }
    }
}

public enum RFC3339 {
    public static func parse(_ text: String) -> Date? {
        if let d = try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)) { return d }
        return try? Date(text, strategy: Date.ISO8601FormatStyle())
    }

    public static func string(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}

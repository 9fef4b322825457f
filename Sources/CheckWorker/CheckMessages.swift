import ExchangeChecks
import Foundation

/// A check result (`exocheck.results`, JSON; see schemas/check-result.schema.json).
public struct CheckResultMessage: Sendable, Codable, Equatable {
    /// One perfdata item of the check, as rendered in `output`.
    public struct Metric: Sendable, Codable, Equatable {
        /// The perfdata label (what is measured).
        public var label: String
        /// The measured value; nil when the rendered value is not a finite number.
        public var value: Double?
        /// The unit of measure as rendered (empty when none).
        public var unit: String
        /// The warning threshold range as rendered (empty when none).
        public var warning: String
        /// The critical threshold range as rendered (empty when none).
        public var critical: String
        /// The minimum value; nil when none is rendered or it is not a finite number.
        public var min: Double?
        /// The maximum value; nil when none is rendered or it is not a finite number.
        public var max: Double?

        enum CodingKeys: String, CodingKey {
            case label, value, unit, warning, critical, min, max
        }

        /// Writes `value` as null when it is not a finite number (the result schema requires the
        /// key); `min` and `max` are left out when there are none.
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(label, forKey: .label)
            try c.encode(value, forKey: .value)
            try c.encode(unit, forKey: .unit)
            try c.encode(warning, forKey: .warning)
            try c.encode(critical, forKey: .critical)
            try c.encodeIfPresent(min, forKey: .min)
            try c.encodeIfPresent(max, forKey: .max)
        }
    }

    /// Where the check's token and report came from.
    public struct Cache: Sendable, Codable, Equatable {
        /// `hit` (a token was needed and came from a cache), `miss` (it was requested) or `none`
        /// (no token was needed: refused requests, reports served from the report cache).
        public var token: String
        /// `hit`, `stale`, `revalidated`, `miss` (`ReportOrigin`) or `none` (no report data came).
        public var report: String
    }

    /// Why a check has no state of its own.
    public struct Failure: Sendable, Codable, Equatable {
        /// The kind as written on the wire (kept as is when this build does not know it).
        public var kindName: String
        /// What the operator should know or do; never a secret.
        public var message: String

        enum CodingKeys: String, CodingKey {
            case kindName = "kind"
            case message
        }

        /// A failure of a known kind with the message for the operator.
        public init(kind: CheckErrorKind, message: String) {
            self.kindName = kind.rawValue
            self.message = message
        }

        /// The typed kind; nil for a kind this build does not know (a newer worker wrote it).
        public var kind: CheckErrorKind? { CheckErrorKind(rawValue: kindName) }
    }

    /// The request's id (also sent in the `exocheck-id` header); nil when it could not be read from a
    /// broken request.
    public var id: String?
    /// The request's tenant name (also the record key); nil when neither the request nor a safe
    /// record key gave one.
    public var tenant: String?
    /// The check mode as the request named it; nil when it could not be read (e.g. a poison record).
    public var mode: String?
    /// The request's labels, echoed for routing (`host` and `service` name the Nagios service);
    /// empty when they could not be read.
    public var labels: [String: String]
    /// `OK`, `WARNING`, `CRITICAL` or `UNKNOWN`.
    public var status: String
    /// The plugin exit code (0 to 3) that `exocheck run` would exit with.
    public var exitCode: Int
    /// Exactly what `exocheck run` prints for the same check, without the final newline.
    public var output: String
    /// The first line of the output without perfdata (trailing spaces removed).
    public var summary: String
    /// The check's perfdata items (empty for a refused request).
    public var perfdata: [Metric]
    /// The Report Refresh Date of the data the check used (empty when none).
    public var reportDate: String
    /// How long before the check Graph last confirmed the oldest report it read (its download or
    /// a 304 to the cache's revalidation), in whole seconds; absent when no report data came.
    /// With `reportDate`, how current the data is: the cache serves copies between revalidations.
    public var reportAgeSeconds: Int? = nil
    /// When the worker started on the request record (RFC 3339).
    public var checkedAt: String
    /// How long the worker spent on the request, in milliseconds (rounded).
    public var durationMs: Double
    /// The name of the worker that answered (`worker.name`; default host name and pid).
    public var worker: String
    /// How many times this worker process received the request record, raised to at least 2 for
    /// a suspect run alone after a worker died with it in flight and to at least 3 for a poison record.
    public var attempt: Int
    /// Whether the token and the report came from the worker's caches.
    public var cache: Cache
    /// Why the check has no state of its own; nil (written as null) when it ran normally.
    public var error: Failure?
    /// True when the output and perfdata were cut to fit one record (ResultSizePolicy); written
    /// only when true (absent means whole), so readers of older results see no change.
    public var truncated: Bool? = nil
    /// What the operator should act on besides the check's state (a tenant's credential about to
    /// expire), one sentence each; written only when there is one. Never part of `output`, which
    /// stays equal to the plugin's.
    public var warnings: [String]? = nil

    enum CodingKeys: String, CodingKey {
        case id, tenant, mode, labels, status, exitCode, output, summary, perfdata, reportDate, reportAgeSeconds, checkedAt, durationMs,
            worker, attempt, cache, error, truncated, warnings
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
        try c.encodeIfPresent(reportAgeSeconds, forKey: .reportAgeSeconds)
        try c.encode(checkedAt, forKey: .checkedAt)
        try c.encode(durationMs, forKey: .durationMs)
        try c.encode(worker, forKey: .worker)
        try c.encode(attempt, forKey: .attempt)
        try c.encode(cache, forKey: .cache)
        try c.encode(error, forKey: .error)
        if truncated == true { try c.encode(true, forKey: .truncated) }
        if let warnings, !warnings.isEmpty { try c.encode(warnings, forKey: .warnings) }
    }

    /// Label keys a fallback result keeps (what pollers route results by), each value cut to
    /// `fallbackLabelBytes`.
    public static let fallbackLabelKeys = ["host", "service"]
    /// UTF-8 bytes each label value of a fallback result is cut to (whole characters only).
    public static let fallbackLabelBytes = 256

    /// The answer published when this result itself cannot be (error kind `publish`): the id, the
    /// tenant, the mode and the host/service labels (capped), nothing else of the request or the
    /// check, so that nothing that made the first record unpublishable is copied into this one.
    public func publishFailure(topic: String, bytes: Int) -> CheckResultMessage {
        var labels: [String: String] = [:]
        for key in Self.fallbackLabelKeys {
            if let value = self.labels[key] { labels[key] = ResultSizePolicy.prefix(value, bytes: Self.fallbackLabelBytes) }
        }
        let message = "The check ran (\(status)) but its result (\(bytes) bytes) could not be published to the topic '\(topic)'; see the worker's log."
        let output = "UNKNOWN: \(message) "
        var fallback = CheckResultMessage(
            id: id, tenant: tenant, mode: mode, labels: labels, status: "UNKNOWN", exitCode: 3, output: output,
            summary: CheckProcessor.summary(output), perfdata: [], reportDate: reportDate, checkedAt: checkedAt,
            durationMs: durationMs, worker: worker, attempt: attempt, cache: cache, error: .init(kind: .publish, message: message))
        // The worker's own sentences from its configuration (a credential expiring), small.
        fallback.warnings = warnings
        return fallback
    }

    /// The result as JSON (keys sorted, `/` not escaped), the value of a result record; empty if
    /// encoding fails.
    /// Written by `ResultJSON`, byte for byte what `JSONEncoder` writes for this type's
    /// `Encodable` conformance with those options, at a fraction of its cost.
    public func encoded() -> [UInt8] {
        ResultJSON.encode(self)
    }

    /// The result in a record's value; nil when the bytes are not a valid result JSON or hold a
    /// value no worker writes (`problem`). Any producer can write to the results topic: readers
    /// must be able to use every field of what this returns without checking it again.
    public static func decode(_ bytes: [UInt8]) -> CheckResultMessage? {
        guard let r = try? JSONDecoder().decode(CheckResultMessage.self, from: Data(bytes)), r.problem == nil else { return nil }
        return r
    }

    /// The warnings as lines for a terminal or a log (`exocheck: warning: …`), made printable
    /// (`SafeOutput.printable`: a forged result's escape sequences or newlines become spaces).
    public var warningLines: [String] {
        (warnings ?? []).map { "exocheck: warning: " + SafeOutput.printable($0) }
    }

    /// The longest duration a result may report: a day, in milliseconds.
    public static let maximumDurationMs = 86_400_000.0
    /// The most `warnings` a result may carry, and the UTF-8 bytes of each (readers print them).
    public static let maximumWarnings = (count: 8, bytes: 1_024)

    /// Why a decoded result cannot be used (an exit code outside 0…3, a duration outside
    /// 0…`maximumDurationMs`, a negative attempt); nil when it can.
    public var problem: String? {
        guard (0...3).contains(exitCode) else { return "exitCode is not 0 to 3" }
        guard durationMs.isFinite, durationMs >= 0, durationMs <= Self.maximumDurationMs else { return "durationMs is out of range" }
        guard attempt >= 0 else { return "attempt is negative" }
        if let warnings {
            guard (1...Self.maximumWarnings.count).contains(warnings.count),
                warnings.allSatisfy({ CheckRequestDecoder.isSafeText($0, maxBytes: Self.maximumWarnings.bytes) })
            else {
                return "warnings must hold 1 to \(Self.maximumWarnings.count) sentences of 1 to \(Self.maximumWarnings.bytes) bytes without control characters"
            }
        }
        return nil
    }

    static func finite(_ text: String) -> Double? {
        guard let d = Double(text), d.isFinite else { return nil }
        return d
    }

    static func metrics(_ perfdata: [Perfdatum]) -> [Metric] {
        perfdata.map {
            // JSON has no Inf or NaN (a 400-digit report value numifies to Inf): those become null.
            Metric(
                label: $0.label, value: finite($0.value), unit: $0.unit, warning: $0.warning, critical: $0.critical,
                min: finite($0.min), max: finite($0.max))
        }
    }
}

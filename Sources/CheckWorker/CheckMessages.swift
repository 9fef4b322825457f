import ExchangeChecks
import Foundation

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

        public init(kind: CheckErrorKind, message: String) {
            self.kindName = kind.rawValue
            self.message = message
        }

        /// The typed kind; nil for a kind this build does not know (a newer worker wrote it).
        public var kind: CheckErrorKind? { CheckErrorKind(rawValue: kindName) }
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
    /// True when the output and perfdata were cut to fit one record (ResultSizePolicy); written
    /// only when true (absent means whole), so readers of older results see no change.
    public var truncated: Bool? = nil

    enum CodingKeys: String, CodingKey {
        case id, tenant, mode, labels, status, exitCode, output, summary, perfdata, reportDate, checkedAt, durationMs, worker,
             attempt, cache, error, truncated
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
        if truncated == true { try c.encode(true, forKey: .truncated) }
    }

    /// Label keys a fallback result keeps (what pollers route results by), each value cut to
    /// `fallbackLabelBytes`.
    public static let fallbackLabelKeys = ["host", "service"]
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
        return CheckResultMessage(
            id: id, tenant: tenant, mode: mode, labels: labels, status: "UNKNOWN", exitCode: 3, output: output,
            summary: CheckProcessor.summary(output), perfdata: [], reportDate: reportDate, checkedAt: checkedAt,
            durationMs: durationMs, worker: worker, attempt: attempt, cache: cache, error: .init(kind: .publish, message: message))
    }

    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(self)) ?? Data())
    }

    public static func decode(_ bytes: [UInt8]) -> CheckResultMessage? {
        try? JSONDecoder().decode(CheckResultMessage.self, from: Data(bytes))
    }

    static func finite(_ text: String) -> Double? {
        guard let d = Double(text), d.isFinite else { return nil }
        return d
    }

    static func metrics(_ perfdata: [Perfdatum]) -> [Metric] {
        perfdata.map {
            // JSON has no Inf or NaN (a 400-digit report value numifies to Inf): those become null.
            Metric(label: $0.label, value: finite($0.value), unit: $0.unit, warning: $0.warning, critical: $0.critical,
                   min: finite($0.min), max: finite($0.max))
        }
    }
}

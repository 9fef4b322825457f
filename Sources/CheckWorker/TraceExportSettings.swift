import ExchangeChecks
import Foundation

/// Whether and how a worker exports its spans, decided once from the standard OpenTelemetry
/// environment variables (docs/tracing.md).
///
/// Export is **off** unless asked for: a worker started without any OTLP setting sends nothing
/// anywhere. When it is on, every variable the exporter (swift-otel) will read is checked and
/// normalised here, and the exporter is given only that environment, never the process's: some
/// values it accepts would stop the process (a propagator or sampler it does not implement, the
/// gRPC protocol without its trait), hang its shutdown (a batch size of 0), spin a core (a delay
/// of 0) or allocate without bound (a huge queue). A value this build cannot honour stops the
/// start with an error that names the variable, never its value (an endpoint or a header may hold
/// credentials).
public enum TraceExportSettings: Equatable, Sendable {
    /// No spans leave the process (the tracer stays the no-op one).
    case off
    /// Spans are exported over OTLP/HTTP, through the worker's loopback relay (OTLPRelay) to the
    /// collector.
    case otlp(Exporter)

    /// Where spans go and how: the collector's URL and headers (for the relay, which alone talks
    /// to the collector), and the variables swift-otel's exporter is given.
    public struct Exporter: Equatable, Sendable {
        /// The collector's URL for spans (`…/v1/traces`).
        public var collector: String
        /// Headers sent with every export (`OTEL_EXPORTER_OTLP_HEADERS`): name, value.
        public var headers: [Header]
        /// Time limit of one export to the collector (`OTEL_EXPORTER_OTLP_TIMEOUT`, default 10 s).
        public var timeout: Duration
        /// The checked, normalised OTEL_* variables for swift-otel, without endpoint, headers or
        /// timeout (`environment(relayPort:)` adds those of the relay).
        public var environment: [String: String]

        /// One `name=value` pair of `OTEL_EXPORTER_OTLP_HEADERS` (or of `OTEL_RESOURCE_ATTRIBUTES`).
        public struct Header: Equatable, Sendable {
            /// An HTTP token.
            public var name: String
            /// Visible ASCII (spaces inside allowed).
            public var value: String
        }

        /// swift-otel's environment, exporting to the relay on 127.0.0.1:`relayPort`. Its own
        /// time limit leaves the relay room to answer after the collector's.
        public func environment(relayPort: Int) -> [String: String] {
            var env = environment
            env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "http://127.0.0.1:\(relayPort)/v1/traces"
            let milliseconds = Int(timeout.components.seconds) * 1000 + Int(timeout.components.attoseconds / 1_000_000_000_000_000)
            env["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"] = String(milliseconds + 2000)
            return env
        }
    }

    /// A setting that cannot be honoured.
    public struct Invalid: Error, Sendable, CustomStringConvertible {
        /// What is wrong and what to set instead.
        public let description: String
    }

    /// Metadata keys whose values the worker's logger for the exporter withholds: swift-otel logs
    /// every variable it applies with its value (`OTEL_EXPORTER_OTLP_HEADERS` carries
    /// credentials), and a propagator that refuses a header logs the record's headers (`carrier`).
    public static let diagnosticMetadataWithheld: Set<String> = ["environment_value", "previous_value", "new_value", "carrier"]

    /// The samplers swift-otel implements (jaeger_remote and xray would stop the process).
    public static let samplers: Set<String> = [
        "always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio",
    ]

    /// Bounds of the numeric settings (milliseconds or spans).
    public enum Bounds {
        /// `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_EXPORT_TIMEOUT`: 1 ms to 10 minutes.
        public static let milliseconds = 1...600_000
        /// `OTEL_BSP_MAX_QUEUE_SIZE`: spans held at most (memory).
        public static let queueSize = 1...65_536
        /// Bytes of an endpoint URL, a file path, a header or resource-attribute list.
        public static let maxTextBytes = 4096
    }

    /// Decides from `environment`:
    /// - `OTEL_SDK_DISABLED=true`: off;
    /// - `OTEL_TRACES_EXPORTER`: `none` off, `otlp` on; unset: on when
    ///   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set; anything else
    ///   (console, zipkin, a list) is refused;
    /// - then each variable of the exporter (the signal's own `OTEL_EXPORTER_OTLP_TRACES_*` before
    ///   the shared `OTEL_EXPORTER_OTLP_*`) is checked: protocol `http/protobuf` (default) or
    ///   `http/json`; endpoint an `http://` or `https://` URL without credentials in it; headers
    ///   `name=value` pairs of visible ASCII; timeouts, batch delay and sizes within `Bounds`;
    ///   a sampler swift-otel implements. `serviceInstance` becomes `service.instance.id` unless
    ///   `OTEL_RESOURCE_ATTRIBUTES` names one.
    ///
    /// Not passed on (ignored): `OTEL_PROPAGATORS` (the worker reads and writes the W3C
    /// `traceparent` only), `OTEL_EXPORTER_OTLP_COMPRESSION` (the HTTP exporter does not compress),
    /// and every variable of other signals.
    public static func resolve(_ environment: [String: String], serviceInstance: String = "") throws(Invalid) -> TraceExportSettings {
        let env = Reader(environment: environment)
        if env.value("OTEL_SDK_DISABLED")?.lowercased() == "true" { return .off }
        let endpointKey = env.signalKey("ENDPOINT")
        switch env.value("OTEL_TRACES_EXPORTER")?.lowercased() {
        case nil: if env.value(endpointKey) == nil { return .off }
        case "none": return .off
        case "otlp": break
        default:
            throw Invalid(description: "OTEL_TRACES_EXPORTER must be otlp or none: exocheck exports traces over OTLP/HTTP only")
        }
        var out: [String: String] = [:]
        var collector = "http://localhost:4318/v1/traces"
        var headerList: [Exporter.Header] = []
        var timeoutMilliseconds = 10_000

        let protocolKey = env.signalKey("PROTOCOL")
        switch env.value(protocolKey)?.lowercased() {
        case nil: break
        case let p? where p == "http/protobuf" || p == "http/json": out["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = p
        case "grpc":
            throw Invalid(
                description: "\(protocolKey)=grpc is not supported: this build exports OTLP over HTTP only; set http/protobuf (the collector's port 4318)")
        default:
            throw Invalid(description: "\(protocolKey) must be http/protobuf or http/json")
        }

        if let endpoint = env.value(endpointKey) {
            guard Self.isEndpoint(endpoint) else {
                throw Invalid(
                    description:
                        "\(endpointKey) must be an http:// or https:// URL of at most \(Bounds.maxTextBytes) bytes, without spaces or credentials in it (put those in OTEL_EXPORTER_OTLP_HEADERS)"
                )
            }
            // The signal's own URL is used as is; the shared one is a base URL.
            collector = endpointKey.hasPrefix("OTEL_EXPORTER_OTLP_TRACES_") ? endpoint : Self.tracesURL(base: endpoint)
        }

        let headersKey = env.signalKey("HEADERS")
        if let headers = env.value(headersKey) {
            guard let pairs = Self.pairs(headers) else {
                throw Invalid(
                    description:
                        "\(headersKey) must be a list of name=value pairs separated by commas: names are HTTP tokens, values visible ASCII, \(Bounds.maxTextBytes) bytes at most"
                )
            }
            headerList = pairs
        }

        let timeoutKey = env.signalKey("TIMEOUT")
        if let timeout = try env.milliseconds(timeoutKey) { timeoutMilliseconds = timeout }

        for suffix in ["CERTIFICATE", "CLIENT_KEY", "CLIENT_CERTIFICATE"] {
            let key = env.signalKey(suffix)
            guard env.value(key) != nil else { continue }
            throw Invalid(
                description:
                    "\(key) is not supported: the worker reaches the collector with the system's trust store; for a private CA or client certificates, export to a collector on the same host (a sidecar)"
            )
        }

        if let name = env.value("OTEL_SERVICE_NAME") {
            guard CheckRequestDecoder.isSafeText(name, maxBytes: 256) else {
                throw Invalid(description: "OTEL_SERVICE_NAME must be at most 256 bytes without control characters")
            }
            out["OTEL_SERVICE_NAME"] = name
        }
        var attributes: [Exporter.Header]? = nil
        if let given = env.value("OTEL_RESOURCE_ATTRIBUTES") {
            guard let pairs = Self.pairs(given) else {
                throw Invalid(
                    description:
                        "OTEL_RESOURCE_ATTRIBUTES must be a list of key=value pairs separated by commas: keys are tokens, values visible ASCII, \(Bounds.maxTextBytes) bytes at most"
                )
            }
            attributes = pairs
        }
        let named = attributes?.contains { $0.name == "service.instance.id" } ?? false
        if !named, !serviceInstance.isEmpty, let instance = Self.pairs("service.instance.id=\(serviceInstance)") {
            attributes = (attributes ?? []) + instance
        }
        if let attributes { out["OTEL_RESOURCE_ATTRIBUTES"] = attributes.map { "\($0.name)=\($0.value)" }.joined(separator: ",") }

        if let sampler = env.value("OTEL_TRACES_SAMPLER")?.lowercased() {
            guard samplers.contains(sampler) else {
                throw Invalid(description: "OTEL_TRACES_SAMPLER must be one of \(samplers.sorted().joined(separator: ", "))")
            }
            out["OTEL_TRACES_SAMPLER"] = sampler
            if sampler.hasSuffix("traceidratio"), let argument = env.value("OTEL_TRACES_SAMPLER_ARG") {
                guard let ratio = Double(argument), ratio >= 0, ratio <= 1 else {
                    throw Invalid(description: "OTEL_TRACES_SAMPLER_ARG must be a probability between 0 and 1")
                }
                out["OTEL_TRACES_SAMPLER_ARG"] = String(ratio)
            }
        }

        if let delay = try env.milliseconds("OTEL_BSP_SCHEDULE_DELAY") { out["OTEL_BSP_SCHEDULE_DELAY"] = String(delay) }
        if let timeout = try env.milliseconds("OTEL_BSP_EXPORT_TIMEOUT") { out["OTEL_BSP_EXPORT_TIMEOUT"] = String(timeout) }
        let queue = try env.integer("OTEL_BSP_MAX_QUEUE_SIZE", in: Bounds.queueSize)
        let batchLimit = 1...(queue ?? 2048)
        let batch = try env.integer("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", in: batchLimit)
        if let queue { out["OTEL_BSP_MAX_QUEUE_SIZE"] = String(queue) }
        if let batch { out["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"] = String(batch) }
        if let queue, batch == nil, queue < 512 {
            // The default batch size (512) may not exceed the queue.
            out["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"] = String(queue)
        }
        return .otlp(Exporter(collector: collector, headers: headerList, timeout: .milliseconds(timeoutMilliseconds), environment: out))
    }

    /// The spans URL under a base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`): `<base>/v1/traces`.
    static func tracesURL(base: String) -> String {
        (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/v1/traces"
    }

    /// Whether spans are exported.
    public var isOn: Bool { if case .otlp = self { true } else { false } }

    /// An `http://` or `https://` URL without whitespace, control characters or user information.
    static func isEndpoint(_ url: String) -> Bool {
        let lower = url.lowercased()
        guard url.utf8.count <= Bounds.maxTextBytes, lower.hasPrefix("http://") || lower.hasPrefix("https://") else { return false }
        guard !url.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F || $0.properties.generalCategory == .control }) else {
            return false
        }
        let rest = url.drop { $0 != ":" }.dropFirst(3)
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        return !authority.isEmpty && !authority.contains("@")
    }

    /// `name=value` pairs separated by commas (OTLP headers, resource attributes), whitespace
    /// around names and values dropped; nil unless every name is an HTTP token and every value
    /// non-empty visible ASCII (spaces inside allowed).
    static func pairs(_ text: String) -> [Exporter.Header]? {
        guard text.utf8.count <= Bounds.maxTextBytes else { return nil }
        var out: [Exporter.Header] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { return nil }
            let name = parts[0].trimmingCharacters(in: .whitespaces)
            let value = parts[1].trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty, name.utf8.allSatisfy(isTokenByte), !value.isEmpty,
                value.utf8.allSatisfy({ ($0 >= 0x20 && $0 < 0x7F) || $0 == 0x09 })
            else { return nil }
            out.append(Exporter.Header(name: name, value: value))
        }
        return out
    }

    /// RFC 9110 `tchar`.
    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: Array("!#$%&'*+-.^_`|~".utf8).contains(b)
        }
    }

    /// Reads the process environment: values trimmed, empty as unset.
    struct Reader {
        let environment: [String: String]

        func value(_ key: String) -> String? {
            guard let v = environment[key]?.trimmingCharacters(in: .whitespacesAndNewlines), !v.isEmpty else { return nil }
            return v
        }

        /// The signal's own key (`OTEL_EXPORTER_OTLP_TRACES_<suffix>`) when set, else the shared one.
        func signalKey(_ suffix: String) -> String {
            value("OTEL_EXPORTER_OTLP_TRACES_\(suffix)") != nil ? "OTEL_EXPORTER_OTLP_TRACES_\(suffix)" : "OTEL_EXPORTER_OTLP_\(suffix)"
        }

        func integer(_ key: String, in range: ClosedRange<Int>) throws(Invalid) -> Int? {
            guard let text = value(key) else { return nil }
            guard let n = Int(text), range.contains(n) else {
                throw Invalid(description: "\(key) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return n
        }

        func milliseconds(_ key: String) throws(Invalid) -> Int? {
            try integer(key, in: Bounds.milliseconds)
        }
    }
}

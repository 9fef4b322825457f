/// Whether a worker exports its spans, decided from the standard OpenTelemetry environment
/// variables (docs/tracing.md). The exporter itself (swift-otel, OTLP over HTTP) reads the same
/// variables for everything else: service name, resource attributes, headers, sampler, batch sizes.
///
/// Unlike an SDK's default, export is **off** unless asked for: a worker started without any
/// OTLP setting sends nothing anywhere. A setting this build cannot honour stops the start with an
/// error that names the variable, never its value (an endpoint may hold credentials).
public enum TraceExportSettings: Equatable, Sendable {
    /// No spans leave the process (the tracer stays the no-op one).
    case off
    /// Spans are exported over OTLP/HTTP to the endpoint the environment names (default
    /// `http://localhost:4318/v1/traces`).
    case otlp

    /// A setting that cannot be honoured.
    public struct Invalid: Error, Sendable, CustomStringConvertible {
        /// What is wrong and what to set instead.
        public let description: String
    }

    /// Environment variables whose values swift-otel writes into its diagnostic log lines when it
    /// applies them; a diagnostic logger must withhold them (OTEL_EXPORTER_OTLP_HEADERS carries
    /// credentials, an endpoint URL may).
    public static let diagnosticMetadataWithheld: Set<String> = ["environment_value", "previous_value", "new_value"]

    /// Decides from `environment`:
    /// - `OTEL_SDK_DISABLED=true`: off;
    /// - `OTEL_TRACES_EXPORTER`: `none` off, `otlp` on; unset: on when
    ///   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set; anything else
    ///   (console, zipkin, a list) is refused;
    /// - `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf`
    ///   (default) or `http/json`; `grpc` is refused (this build has no gRPC exporter);
    /// - the endpoint, when set, must be an `http://` or `https://` URL.
    public static func resolve(_ environment: [String: String]) throws(Invalid) -> TraceExportSettings {
        func value(_ key: String) -> String? {
            guard let v = environment[key]?.trimmingWhitespace, !v.isEmpty else { return nil }
            return v
        }
        if value("OTEL_SDK_DISABLED")?.lowercased() == "true" { return .off }
        let tracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        let sharedEndpoint = "OTEL_EXPORTER_OTLP_ENDPOINT"
        let endpointKey = value(tracesEndpoint) != nil ? tracesEndpoint : value(sharedEndpoint) != nil ? sharedEndpoint : nil
        switch value("OTEL_TRACES_EXPORTER")?.lowercased() {
        case nil: if endpointKey == nil { return .off }
        case "none": return .off
        case "otlp": break
        default:
            throw Invalid(description: "OTEL_TRACES_EXPORTER must be otlp or none: exocheck exports traces over OTLP/HTTP only")
        }
        let protocolKey = value("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") != nil ? "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" : "OTEL_EXPORTER_OTLP_PROTOCOL"
        switch value(protocolKey)?.lowercased() {
        case nil, "http/protobuf", "http/json": break
        case "grpc":
            throw Invalid(
                description: "\(protocolKey)=grpc is not supported: this build exports OTLP over HTTP only; set http/protobuf (the collector's port 4318)")
        default:
            throw Invalid(description: "\(protocolKey) must be http/protobuf or http/json")
        }
        if let endpointKey, let endpoint = value(endpointKey) {
            let lower = endpoint.lowercased()
            guard lower.hasPrefix("http://") || lower.hasPrefix("https://"), endpoint.utf8.count <= 2048 else {
                throw Invalid(description: "\(endpointKey) must be an http:// or https:// URL of at most 2048 bytes")
            }
        }
        return .otlp
    }
}

extension String {
    fileprivate var trimmingWhitespace: String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }
}

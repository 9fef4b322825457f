import CheckWorker
import Logging
import OTel
import ServiceLifecycle
import Tracing

/// The worker's span exporter (docs/tracing.md): swift-otel's OTLP/HTTP exporter, configured from
/// the standard OTEL_* environment variables, off unless `TraceExportSettings` says otherwise.
enum TraceExport {
    /// With `.otlp`, bootstraps the process's tracer and returns the service that batches and
    /// sends spans. Run it first in the service group: services stop in reverse order, so it
    /// flushes the worker's last spans after the worker has finished. Nil when off (the tracer
    /// stays the no-op one).
    static func bootstrap(_ settings: TraceExportSettings, serviceInstance: String, diagnostics: Logger) throws -> (any Service)? {
        guard settings == .otlp else { return nil }
        var configuration = OTel.Configuration.default
        // Overridden by OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, as in any SDK.
        configuration.serviceName = "exocheck-worker"
        configuration.resourceAttributes["service.instance.id"] = serviceInstance
        configuration.diagnosticLogger = .custom(diagnostics)
        // Traces only: metrics stay on /metrics (Prometheus) and logs on stderr.
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.traces.enabled = true
        configuration.traces.exporter = .otlp
        let (tracer, service) = try OTel.makeTracingBackend(configuration: configuration)
        InstrumentationSystem.bootstrap(tracer)
        return service
    }
}

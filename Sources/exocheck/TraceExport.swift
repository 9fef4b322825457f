import CheckWorker
import GraphReports
import Logging
import OTel
import ServiceLifecycle
import Tracing

/// The worker's span export (docs/tracing.md): swift-otel's OTLP/HTTP exporter, given only what
/// `TraceExportSettings` checked, sending to the loopback `OTLPRelay`, which alone talks to the
/// collector.
///
/// A service of the worker's group, listed first: services stop in reverse order, so it flushes
/// the worker's last spans after the worker has finished. Inside, the relay starts first and
/// stops last, so that the exporter's final flush still reaches it.
struct TraceExportService: Service {
    let exporter: TraceExportSettings.Exporter
    /// For swift-otel's diagnostics (values withheld: TraceExportSettings.diagnosticMetadataWithheld).
    let diagnostics: Logger
    let logger: Logger

    func run() async throws {
        let transport = HTTPTransport.make()
        let (ports, found) = AsyncStream<Int>.makeStream()
        let relay = OTLPRelay.application(exporter: exporter, transport: transport, logger: logger) { port in
            found.yield(port)
            found.finish()
        }
        let otel = Exporter(settings: exporter, diagnostics: diagnostics, ports: ports)
        let group = ServiceGroup(configuration: .init(services: [.init(service: relay), .init(service: otel)], logger: logger))
        do {
            try await group.run()
        } catch {
            await transport.shutdown()
            throw error
        }
        await transport.shutdown()
    }

    /// swift-otel's tracer and exporter, once the relay listens: the process's tracer is
    /// bootstrapped then (checks that start before it are not traced).
    struct Exporter: Service {
        let settings: TraceExportSettings.Exporter
        let diagnostics: Logger
        let ports: AsyncStream<Int>

        func run() async throws {
            var port = 0
            for await p in ports {
                port = p
                break
            }
            guard port > 0 else { return }
            var configuration = OTel.Configuration.default
            // OTEL_SERVICE_NAME, when set, overrides it.
            configuration.serviceName = "exocheck-worker"
            configuration.diagnosticLogger = .custom(diagnostics)
            // The W3C traceparent only (RequestTrace): OTEL_PROPAGATORS is not passed on.
            configuration.propagators = [.traceContext]
            // Traces only: metrics stay on /metrics (Prometheus) and logs on stderr.
            configuration.logs.enabled = false
            configuration.metrics.enabled = false
            configuration.traces.enabled = true
            configuration.traces.exporter = .otlp
            // The environment TraceExportSettings checked, never the process's.
            let service = try OTel.bootstrap(configuration: configuration, environment: settings.environment(relayPort: port))
            try await service.run()
        }
    }
}

import ArgumentParser
import CheckWorker
import ExchangeChecks
import Foundation
import GraphReports
import Kafka
import Logging
import Prometheus
import ServiceLifecycle

/// `exocheck worker`: consume check requests from Kafka, run them, publish results.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a check worker: consume requests from Kafka, run checks, publish results.",
        discussion: """
            Configuration (YAML or JSON): kafka (properties passed to librdkafka verbatim, topics, group),
            worker (concurrency, listen host:port for /metrics /healthz /readyz, shutdownGraceSeconds),
            graph (endpoints, timeouts, report cache), tenants (name → tenantId, clientId, and
            clientSecretFile | clientSecretEnv | certificateFile + privateKeyFile, cloud). See README.
            SIGTERM/SIGINT: stop consuming, finish in-flight checks within the grace period, flush,
            commit, leave the group.
            Traces: OpenTelemetry spans (consume, fetch, token, parse, evaluate, publish) are exported
            over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
            or OTEL_TRACES_EXPORTER=otlp) is set; off otherwise. OTEL_SERVICE_NAME, _HEADERS,
            _PROTOCOL (http/protobuf, http/json), OTEL_TRACES_SAMPLER work as in any SDK.
            SIGHUP: read the configuration file again; tenants added or removed and rotated secrets
            or certificates take effect at once (checks running keep what they started with). The
            whole file is validated first: a file that fails is refused (log line, metric
            exocheck_config_reloads_total{result="refused"}) and the running configuration stays.
            Changes to kafka, worker, graph (other than credentialExpiryWarningDays) or log need a
            restart: the log line says so.
            """
    )

    @Option(help: "Worker configuration file (YAML or JSON).") var config: String
    @Option(help: "Kafka bootstrap servers; overrides kafka.properties.bootstrap.servers.") var bootstrapServers: String?
    @Option(help: "Write the bound metrics/health port to this file.") var portFile: String?
    @Flag(help: "Only check the configuration (keys, secrets, certificates) and exit.") var checkConfig = false

    func run() async throws {
        // SIGHUP reloads the configuration (ConfigReloader). Until that service listens, its
        // default action would end the worker: a `systemctl reload` right after start.
        signal(SIGHUP, SIG_IGN)
        let configuration: WorkerConfiguration
        do {
            configuration = try WorkerConfiguration.load(path: config)
        } catch {
            SafeOutput.standardError.write("exocheck worker: \(error.description)\n")
            throw ExitCode(2)
        }
        let traceSettings: TraceExportSettings
        do {
            traceSettings = try TraceExportSettings.resolve(ProcessInfo.processInfo.environment, serviceInstance: configuration.worker.name)
        } catch {
            SafeOutput.standardError.write("exocheck worker: \(error.description)\n")
            throw ExitCode(2)
        }
        if checkConfig {
            SafeOutput.print(
                "configuration OK: \(configuration.tenants.count) tenant(s), requests '\(configuration.kafka.requests)', results '\(configuration.kafka.results)', group '\(configuration.kafka.group)'"
            )
            return
        }
        let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        @Sendable func handler(_ label: String) -> JSONLogHandler {
            var h = JSONLogHandler(label: label, json: configuration.logFormat == "json")
            h.logLevel = level
            h.redactUserNames = configuration.logRedactUserNames
            return h
        }
        LoggingSystem.bootstrap { label in handler(label) }
        let logger = Logger(label: "exocheck.worker")
        var traceExporter: (any Service)? = nil
        if case .otlp(let exporter) = traceSettings {
            let diagnostics = Logger(label: "exocheck.otel") { label in
                var h = handler(label)
                h.withheldMetadata = TraceExportSettings.diagnosticMetadataWithheld
                return h
            }
            traceExporter = TraceExportService(exporter: exporter, diagnostics: diagnostics, logger: Logger(label: "exocheck.otlp-relay"))
            logger.info("exporting traces over OTLP/HTTP (OTEL_* environment variables)")
        }
        // exocheck's metrics are registered with this registry directly, with help texts
        // (WorkerMetrics); no swift-metrics backend is bootstrapped, so nothing can register a
        // family of the same name without its help text.
        let registry = PrometheusCollectorRegistry()

        let kafka = configuration.kafkaConfiguration(bootstrapOverride: bootstrapServers)
        guard kafka.bootstrapServers?.isEmpty == false else {
            SafeOutput.standardError.write("exocheck worker: set kafka.properties.bootstrap.servers or --bootstrap-servers\n")
            throw ExitCode(2)
        }
        let transport = HTTPTransport.make()
        let metrics = WorkerMetrics(registry: registry)
        let health = WorkerHealth(livenessWindow: configuration.worker.liveness)
        let processor = CheckProcessor(
            configuration: configuration, transport: transport,
            tokens: TokenCache(refreshMargin: .seconds(300), failureMemory: .seconds(60)),
            reports: ReportCache(
                ttl: configuration.graph.reportCacheTTL,
                budget: configuration.graph.reportCallsPer10Minutes,
                maxStale: configuration.graph.reportMaxStale,
                maxBytes: configuration.graph.reportCacheMaxBytes, refresh: configuration.graph.reportRefresh),
            metrics: metrics, logger: logger)
        let worker = CheckWorkerService(
            configuration: configuration, kafka: kafka, processor: processor,
            metrics: metrics, health: health, logger: logger)
        let portFile = self.portFile
        let http = try HealthServer.application(listen: configuration.worker.listen, registry: registry, health: health, logger: logger) { port in
            logger.info("metrics and health listening", metadata: ["port": "\(port)"])
            if let portFile {
                try? "\(port)\n".write(toFile: portFile + ".tmp", atomically: false, encoding: .utf8)
                rename(portFile + ".tmp", portFile)
            }
        }
        let reloader = ConfigReloader(path: config, running: configuration, processor: processor, metrics: metrics, logger: logger)
        let endpoints = Set(configuration.tenants.values.map(\.endpoints.graph))
        let probe = GraphProbe(transport: transport, endpoints: Array(endpoints), health: health)
        let group = ServiceGroup(
            configuration: .init(
                // Services shut down in reverse order: the worker first, so that /metrics and
                // /healthz keep answering while it finishes its checks and commits.
                services: (traceExporter.map { [ServiceGroupConfiguration.ServiceConfiguration(service: $0)] } ?? []) + [
                    .init(service: http),
                    .init(service: probe),
                    .init(service: reloader),
                    .init(service: worker, successTerminationBehavior: .gracefullyShutdownGroup),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch {
            logger.error("worker failed: \(error)")
            await transport.shutdown()
            throw ExitCode(1)
        }
        await transport.shutdown()
    }
}

/// Marks Graph reachable when every configured Graph endpoint answers HTTP (any status).
struct GraphProbe: Service {
    let transport: HTTPTransport
    let endpoints: [String]
    let health: WorkerHealth

    func run() async throws {
        // Ends quietly on graceful shutdown (the sleep is cancelled; that is not a failure).
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                var ok = true
                for e in endpoints where !(await transport.reachable(e + "/v1.0/")) { ok = false }
                health.set(graphReachable: ok)
                try await Task.sleep(for: .seconds(ok ? 30 : 5))
            }
        }
    }
}

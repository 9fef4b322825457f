import ExchangeChecks
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// Re-reads the worker's configuration file on SIGHUP and applies what can change without a
/// restart: tenants added or removed, and rotated secrets or certificates (`ReloadPlan`). The
/// new file is validated whole first (every key, every secret and certificate file read, as at
/// start); a file that fails is refused with a log line naming the problem and the running
/// configuration stays. Metrics: `exocheck_config_reloads_total{result}`,
/// `exocheck_config_last_reload_successful`.
public struct ConfigReloader: Service {
    let path: String
    let running: WorkerConfiguration
    let processor: CheckProcessor
    let metrics: WorkerMetrics
    let logger: Logger
    let environment: @Sendable () -> [String: String]

    /// A reloader of `path`, whose configuration at start was `running`.
    public init(
        path: String, running: WorkerConfiguration, processor: CheckProcessor, metrics: WorkerMetrics, logger: Logger,
        environment: @escaping @Sendable () -> [String: String] = { ProcessInfo.processInfo.environment }
    ) {
        self.path = path
        self.running = running
        self.processor = processor
        self.metrics = metrics
        self.logger = logger
        self.environment = environment
    }

    /// Waits for SIGHUP until the service group shuts down.
    public func run() async throws {
        var current = running
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            current = await reload(current)
        }
    }

    /// Reads the file again and applies it over `current`; returns what runs now.
    public func reload(_ current: WorkerConfiguration) async -> WorkerConfiguration {
        let loaded: WorkerConfiguration
        do {
            loaded = try WorkerConfiguration.load(path: path, environment: environment())
        } catch {
            metrics.configReload(applied: false)
            logger.error("configuration reload refused, the running configuration stays: \(error.description)", metadata: ["config.path": "\(path)"])
            return current
        }
        let plan = ReloadPlan(running: current, loaded: loaded)
        await processor.apply(loaded)
        metrics.configReload(applied: true)
        logger.notice("configuration reloaded: \(plan.summary)", metadata: ["config.path": "\(path)", "tenants": "\(loaded.tenants.count)"])
        // What runs now: the new tenants and warning window, every other section as started.
        var applied = current
        applied.tenants = loaded.tenants
        applied.graph.credentialExpiryWarningDays = loaded.graph.credentialExpiryWarningDays
        return applied
    }
}

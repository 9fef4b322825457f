import ExchangeChecks
import Foundation
import GraphReports
import Synchronization

/// The tenants a worker answers for and their credentials, replaceable while it runs: SIGHUP
/// re-reads the configuration file (`ConfigReloader`), and a check reads the directory once, when
/// it looks its tenant up, so it runs with one consistent tenant throughout.
public final class TenantDirectory: Sendable {
    /// What checks read: the tenants by name and the credential warning window.
    public struct Snapshot: Sendable {
        /// The configured tenants by name.
        public var tenants: [String: WorkerConfiguration.Tenant]
        /// `graph.credentialExpiryWarningDays`.
        public var warningDays: Int
    }

    private let state: Mutex<Snapshot>

    /// The tenants of `configuration`.
    public init(_ configuration: WorkerConfiguration) {
        state = Mutex(Snapshot(tenants: configuration.tenants, warningDays: configuration.graph.credentialExpiryWarningDays))
    }

    /// The tenants now.
    public var current: Snapshot { state.withLock { $0 } }

    /// Replaces the tenants (checks already running keep the tenant they looked up).
    public func replace(_ snapshot: Snapshot) { state.withLock { $0 = snapshot } }
}

/// What a configuration reload changes: decided here, applied by `ConfigReloader`. Only tenants
/// (with their credentials) and the credential warning window take effect without a restart;
/// a change anywhere else is reported as needing one and is not applied.
public struct ReloadPlan: Sendable, Equatable {
    /// Tenants the new file adds.
    public var added: [String] = []
    /// Tenants the new file no longer has (their requests are refused from now on: unknown tenant).
    public var removed: [String] = []
    /// Tenants whose credential, Microsoft tenant, app or endpoints changed.
    public var changed: [String] = []
    /// Sections whose other changes need a restart (kafka, worker, graph, log).
    public var needsRestart: [String] = []

    /// Compares the running configuration with the one just read.
    public init(running: WorkerConfiguration, loaded: WorkerConfiguration) {
        let old = running.tenants
        let new = loaded.tenants
        added = new.keys.filter { old[$0] == nil }.sorted()
        removed = old.keys.filter { new[$0] == nil }.sorted()
        changed = new.keys.filter { name in old[name].map { $0.identity != new[name]?.identity } ?? false }.sorted()
        var graphOld = running.graph
        var graphNew = loaded.graph
        // The warning window and the endpoints apply through the tenants (each tenant's endpoints
        // are resolved from them when the file is read).
        graphOld.credentialExpiryWarningDays = 0
        graphNew.credentialExpiryWarningDays = 0
        graphOld.loginEndpoint = nil
        graphNew.loginEndpoint = nil
        graphOld.graphEndpoint = nil
        graphNew.graphEndpoint = nil
        if running.kafka != loaded.kafka { needsRestart.append("kafka") }
        if running.worker != loaded.worker { needsRestart.append("worker") }
        if graphOld != graphNew { needsRestart.append("graph") }
        if running.logFormat != loaded.logFormat || running.logLevel != loaded.logLevel || running.logRedactUserNames != loaded.logRedactUserNames {
            needsRestart.append("log")
        }
    }

    /// The log line's words: what changed, and what was not applied.
    public var summary: String {
        func list(_ names: [String]) -> String { names.isEmpty ? "none" : names.joined(separator: ", ") }
        var s = "tenants added: \(list(added)); removed: \(list(removed)); credential or identity changed: \(list(changed))"
        if !needsRestart.isEmpty { s += "; changes to \(needsRestart.joined(separator: ", ")) need a restart and were not applied" }
        return s
    }
}

extension WorkerConfiguration.Tenant {
    /// Everything that tells one tenant configuration from another: the Microsoft tenant, the
    /// app, the endpoints and the credential's fingerprint (a secret's hash, a certificate's
    /// thumbprint, a federated token file's path): what `ReloadPlan` compares.
    public var identity: String {
        let key = TokenKey(app: AppIdentity(tenant: tenantId, clientId: clientId, credential: credential, endpoints: endpoints))
        return [name, key.tenant, key.clientId, endpoints.login, endpoints.graph, key.credentialFingerprint].joined(separator: "\u{0}")
    }

    /// The report cache's name for this tenant's data: its name, Microsoft tenant, app and Graph
    /// endpoint (not the credential: a rotated secret reads the same reports).
    public var reportCacheName: String {
        [name, tenantId.lowercased(), clientId.lowercased(), endpoints.graph].joined(separator: "\u{0}")
    }
}

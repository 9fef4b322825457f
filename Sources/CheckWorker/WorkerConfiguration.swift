import ExchangeChecks
import Foundation
import GraphReports
import Kafka
import Yams

/// The worker's configuration file (YAML; JSON is YAML too). Unknown keys and missing secrets
/// fail at start with a message naming the key; secrets are read from files or the
/// environment only and never logged.
public struct WorkerConfiguration: Sendable {
    /// The `kafka` key: client properties and topic names.
    public struct KafkaSection: Sendable, Equatable {
        /// `kafka.properties`: librdkafka properties passed verbatim (bootstrap.servers, SASL/TLS,
        /// tuning); scalars become strings. `message.max.bytes` also sets the result size limit.
        public var properties: [String: String] = [:]
        /// `kafka.requests`: the topic check requests are consumed from.
        public var requests = "exocheck.requests"
        /// `kafka.results`: the topic results go to, unless a request names an allowed `replyTo`.
        public var results = "exocheck.results"
        /// `kafka.deadLetter`: the topic that receives copies of refused and poison requests.
        public var deadLetter = "exocheck.requests.DLT"
        /// The quarantine's marks (docs/poison-records.md): compacted, at least as many
        /// partitions as `requests` recommended; one per consumer group is simplest.
        public var stateTopic = "exocheck.worker-state"
        /// `kafka.group`: the workers' consumer group id; it is also part of the quarantine marks' keys.
        public var group = "exocheck"
        /// `kafka.heartbeatTopic`: where each worker says every 2 s that it consumes `requests` for
        /// `group` (`WorkerHeartbeat`), so that `submit --wait` can tell an orphaned request at once;
        /// empty: no heartbeats. One partition, short retention (a minute is plenty).
        public var heartbeatTopic = "exocheck.workers"
        /// Topics a request may name in `replyTo` (empty: `replyTo` is refused).
        public var allowedReplyTopics: [String] = []
        /// The defaults shown on each field: the `exocheck.*` topics, group `exocheck`, no properties and
        /// no reply topics.
        public init() {}
    }

    /// The `worker` key: concurrency, time limits, health and the worker's name.
    public struct WorkerSection: Sendable, Equatable {
        /// `worker.concurrency`: checks in flight at most in this worker (at least 1); as many
        /// more records may wait to start, then the consumer stops taking records.
        public var concurrency = 64
        /// host:port of /metrics, /healthz, /readyz (port 0: any free port, logged at start).
        public var listen = "127.0.0.1:9464"
        /// SIGTERM: the whole shutdown (in-flight checks, then flush, commit, leave the group)
        /// ends within this long, even with the broker down (ShutdownDeadline).
        public var shutdownGraceSeconds = 30.0
        /// `shutdownGraceSeconds` as a Duration.
        public var shutdownGrace: Duration { Duration(clampedSeconds: shutdownGraceSeconds) }
        /// `checkTimeoutSeconds` as a Duration.
        public var checkTimeout: Duration { Duration(clampedSeconds: checkTimeoutSeconds) }
        /// `evaluationGraceSeconds` as a Duration.
        public var evaluationGrace: Duration { Duration(clampedSeconds: evaluationGraceSeconds) }
        /// `livenessSeconds` as a Duration.
        public var liveness: Duration { Duration(clampedSeconds: livenessSeconds) }
        /// Longest time one check may take (token, reports, retries), whatever its deadline.
        public var checkTimeoutSeconds = 20.0
        /// `worker.maxRequestBytes`: the largest request record value accepted, in bytes (at least
        /// 256); larger requests are refused and dead-lettered.
        public var maxRequestBytes = 65_536
        /// Dedicated threads for parsing, evaluation and rendering (default: cores, at least 2).
        public var evaluationThreads = max(2, ProcessInfo.processInfo.activeProcessorCount)
        /// How long past a check's budget the worker waits for its evaluation before answering
        /// UNKNOWN `timeout` and counting the thread as stuck.
        public var evaluationGraceSeconds = 5.0
        /// Stuck evaluation threads at which /healthz fails and the worker exits (code 70) to be
        /// restarted; 0 means all of them.
        public var maxStuckThreads = 0
        /// Name written in results (default: host name and pid).
        public var name = "\(ProcessInfo.processInfo.hostName)-\(getpid())"
        /// Checks of one tenant (record key) in flight at most; nil: half the concurrency.
        public var maxInFlightPerTenantSetting: Int?
        /// `maxInFlightPerTenantSetting`, or half the concurrency (at least 1) when it is not set.
        public var maxInFlightPerTenant: Int { maxInFlightPerTenantSetting ?? max(1, concurrency / 2) }
        /// Records received and not yet committable before partitions pause (done records
        /// behind a slow one count).
        public var maxUncommitted = 10_000
        /// With work waiting, /healthz fails when no check finished for this long; nil: three
        /// times the check timeout, at least 60 s.
        public var livenessSecondsSetting: Double?
        /// `livenessSecondsSetting`, or when it is not set three times `checkTimeoutSeconds`, at
        /// least 60 s.
        public var livenessSeconds: Double { livenessSecondsSetting ?? max(60, 3 * checkTimeoutSeconds) }
        /// The built-in defaults, kept for every key the configuration file leaves out.
        public init() {}
    }

    /// The `graph` key: endpoints, request timeout and report cache, for all tenants.
    public struct GraphSection: Sendable, Equatable {
        /// `graph.loginEndpoint`: the login endpoint of every tenant without its own; nil keeps the
        /// tenant's cloud default.
        public var loginEndpoint: String?
        /// `graph.graphEndpoint`: the Graph endpoint of every tenant without its own; nil keeps the
        /// tenant's cloud default.
        public var graphEndpoint: String?
        /// One Graph or login request at most (the check's own budget may cut it shorter).
        public var timeoutSeconds = 10.0
        /// `timeoutSeconds` as a Duration (each Graph request's timeout).
        public var timeout: Duration { Duration(clampedSeconds: timeoutSeconds) }
        /// `graph.reportCacheSeconds`: how long a downloaded report is served from the cache, in
        /// seconds.
        public var reportCacheSeconds = 900.0
        /// Report calls allowed per tenant and report in 10 minutes (Graph's limit is 14).
        public var reportCallsPer10Minutes = 14
        /// How long past its TTL a cached report may still be served when the call budget is spent.
        public var reportMaxStaleSeconds = ReportCache.defaultMaxStale.inSeconds
        /// `reportCacheSeconds` as a Duration (the report cache's TTL).
        public var reportCacheTTL: Duration { Duration(clampedSeconds: reportCacheSeconds) }
        /// `reportMaxStaleSeconds` as a Duration.
        public var reportMaxStale: Duration { Duration(clampedSeconds: reportMaxStaleSeconds) }
        /// `graph.reportRefreshMaxLagSeconds`: the refresh-aware cache (RefreshSchedule). Once it
        /// has seen when a tenant's report changes, it revalidates it only around that time of day,
        /// every this many seconds (the most the served data may lag Graph's then); 0 turns it off
        /// (every copy is fresh for `reportCacheSeconds`). Default 3,600.
        public var reportRefreshMaxLagSeconds = 3_600.0
        /// The refresh-aware cache's schedule (nil when off): revalidation every `maxLag` around
        /// the expected change, every `reportCacheSeconds` (at most `maxLag`) before one was seen.
        public var reportRefresh: RefreshSchedule.Configuration? {
            guard reportRefreshMaxLagSeconds > 0 else { return nil }
            var r = RefreshSchedule.Configuration()
            r.maxLag = Duration(clampedSeconds: reportRefreshMaxLagSeconds)
            r.initialInterval = min(reportCacheTTL, r.maxLag)
            return r
        }
        /// Bytes of report bodies the cache keeps (past dates, then least recently used, go first).
        public var reportCacheMaxBytes = ReportCache.defaultMaxBytes
        /// Hosts the report download may be redirected to (nil: any public https host).
        public var allowedDownloadHosts: [String]?
        /// `graph.credentialExpiryWarningDays`: from this many days before a tenant's credential
        /// expires, its results carry a warning (0: never; the metric is exported either way).
        public var credentialExpiryWarningDays = CredentialExpiry.defaultWarningDays
        /// The built-in defaults, kept for every key the configuration file leaves out.
        public init() {}
    }

    /// One entry of `tenants`: a Microsoft tenant and the app credential used for it.
    public struct Tenant: Sendable {
        /// The key under `tenants`: the name requests give in their `tenant` field.
        public var name: String
        /// `tenants.<name>.tenantId`: the Microsoft tenant (GUID or domain).
        public var tenantId: String
        /// `tenants.<name>.clientId`: the application (client) id of the app registration.
        public var clientId: String
        /// The app's credential: the secret from `clientSecretFile` or `clientSecretEnv`, or a
        /// certificate assertion from `certificateFile` and `privateKeyFile`.
        public var credential: ClientCredential
        /// Login and Graph endpoints: those of `cloud` (default global), replaced by the tenant's or
        /// else the `graph` section's `loginEndpoint` / `graphEndpoint`.
        public var endpoints: GraphEndpoints
        /// When the credential expires: the certificate's notAfter, or `secretExpires` for a
        /// secret; nil when unknown (a secret without `secretExpires`) or none (federated).
        public var credentialExpiry: CredentialExpiry? = nil

        /// A tenant with these values (nothing is read from files or the environment).
        public init(name: String, tenantId: String, clientId: String, credential: ClientCredential, endpoints: GraphEndpoints) {
            self.name = name
            self.tenantId = tenantId
            self.clientId = clientId
            self.credential = credential
            self.endpoints = endpoints
        }
    }

    /// Kafka client properties and topics (`kafka` key).
    public var kafka = KafkaSection()
    /// This worker's concurrency, time limits, health and name (`worker` key).
    public var worker = WorkerSection()
    /// Graph endpoints, timeout and report cache settings for all tenants (`graph` key).
    public var graph = GraphSection()
    /// The configured tenants by name (`tenants` key); empty when loaded with `kafkaOnly`.
    public var tenants: [String: Tenant] = [:]
    /// `log.format`: `json` (one JSON object per line on stderr) or `text`.
    public var logFormat = "json"
    /// `log.level`: the lowest level logged, a swift-log level name (not validated when parsed).
    public var logLevel = "info"
    /// `log.redactUserNames`: write user names in log lines as `<user>` (default true).
    public var logRedactUserNames = true

    /// A configuration with every default and no tenants.
    public init() {}

    /// Loads a worker configuration. With `kafkaOnly` (submit, results) the tenants are not
    /// read, so no secret needs to be present on the submitting host.
    public static func load(
        path: String, environment: [String: String] = ProcessInfo.processInfo.environment,
        kafkaOnly: Bool = false
    ) throws(ConfigurationError) -> WorkerConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError("cannot read the configuration file '\(path)'")
        }
        return try parse(
            String(decoding: data, as: UTF8.self), baseDirectory: (path as NSString).deletingLastPathComponent,
            environment: environment, kafkaOnly: kafkaOnly)
    }

    /// Parses a configuration from YAML (or JSON) text. Relative secret and certificate paths are
    /// resolved against `baseDirectory`, `clientSecretEnv` is looked up in `environment`, and with
    /// `kafkaOnly` the tenants are not read. Throws a ConfigurationError naming the key for an unknown
    /// key, a bad value or a missing secret.
    public static func parse(
        _ text: String, baseDirectory: String = ".", environment: [String: String] = [:],
        kafkaOnly: Bool = false
    ) throws(ConfigurationError) -> WorkerConfiguration {
        let root: Any?
        // No timestamp rule: YAML would read an unquoted 2027-02-30 as March 2 (and 2027-6-5 as a
        // date); dates are strings here, read by the one strict parser (CredentialExpiry).
        do { root = try Yams.load(yaml: text, Resolver.default.removing(.timestamp)) } catch {
            // The problem and its position only: Yams' own description quotes the line, which
            // may hold a secret (an inline password), and reaches the log on a reload.
            switch error as? YamlError {
            case .scanner(_, let problem, let mark, _)?, .parser(_, let problem, let mark, _)?, .composer(_, let problem, let mark, _)?:
                throw ConfigurationError("the configuration is not valid YAML: \(problem) (line \(mark.line), column \(mark.column))")
            default:
                throw ConfigurationError("the configuration is not valid YAML")
            }
        }
        guard let top = root as? [String: Any] else { throw ConfigurationError("the configuration must be a mapping with kafka, worker, graph and tenants") }
        var c = WorkerConfiguration()
        try Section(top, path: "").check(["kafka", "worker", "graph", "tenants", "log"])

        if let k = try Section.optional(top["kafka"], path: "kafka") {
            try k.check(["properties", "requests", "results", "deadLetter", "stateTopic", "group", "allowedReplyTopics", "heartbeatTopic"])
            if let props = try Section.optional(k.raw["properties"], path: "kafka.properties") {
                for (key, value) in props.raw { c.kafka.properties[key] = try Section.scalar(value, path: "kafka.properties.\(key)") }
            }
            c.kafka.requests = try k.string("requests") ?? c.kafka.requests
            c.kafka.results = try k.string("results") ?? c.kafka.results
            c.kafka.deadLetter = try k.string("deadLetter") ?? c.kafka.deadLetter
            c.kafka.stateTopic = try k.string("stateTopic") ?? c.kafka.stateTopic
            c.kafka.group = try k.string("group") ?? c.kafka.group
            c.kafka.heartbeatTopic = try k.string("heartbeatTopic") ?? c.kafka.heartbeatTopic
            c.kafka.allowedReplyTopics = try k.strings("allowedReplyTopics") ?? []
        }
        if let w = try Section.optional(top["worker"], path: "worker") {
            try w.check([
                "concurrency", "listen", "shutdownGraceSeconds", "checkTimeoutSeconds", "maxRequestBytes", "name",
                "evaluationThreads", "evaluationGraceSeconds", "maxStuckThreads", "maxInFlightPerTenant", "maxUncommitted",
                "livenessSeconds",
            ])
            c.worker.concurrency = try w.int("concurrency", min: 1) ?? c.worker.concurrency
            c.worker.listen = try w.string("listen") ?? c.worker.listen
            c.worker.shutdownGraceSeconds = try w.double("shutdownGraceSeconds") ?? c.worker.shutdownGraceSeconds
            c.worker.checkTimeoutSeconds = try w.double("checkTimeoutSeconds") ?? c.worker.checkTimeoutSeconds
            c.worker.maxRequestBytes = try w.int("maxRequestBytes", min: 256) ?? c.worker.maxRequestBytes
            c.worker.evaluationThreads = try w.int("evaluationThreads", min: 1) ?? c.worker.evaluationThreads
            c.worker.evaluationGraceSeconds = try w.double("evaluationGraceSeconds") ?? c.worker.evaluationGraceSeconds
            c.worker.maxStuckThreads = try w.int("maxStuckThreads", min: 0) ?? c.worker.maxStuckThreads
            c.worker.name = try w.string("name") ?? c.worker.name
            c.worker.maxInFlightPerTenantSetting = try w.int("maxInFlightPerTenant", min: 1)
            c.worker.maxUncommitted = try w.int("maxUncommitted", min: 1) ?? c.worker.maxUncommitted
            c.worker.livenessSecondsSetting = try w.double("livenessSeconds")
        }
        if let g = try Section.optional(top["graph"], path: "graph") {
            try g.check([
                "loginEndpoint", "graphEndpoint", "timeoutSeconds", "reportCacheSeconds", "reportCallsPer10Minutes",
                "reportMaxStaleSeconds", "reportCacheMaxBytes", "allowedDownloadHosts", "reportRefreshMaxLagSeconds",
                "credentialExpiryWarningDays",
            ])
            c.graph.loginEndpoint = try g.string("loginEndpoint")
            c.graph.graphEndpoint = try g.string("graphEndpoint")
            c.graph.timeoutSeconds = try g.double("timeoutSeconds") ?? c.graph.timeoutSeconds
            c.graph.reportCacheSeconds = try g.double("reportCacheSeconds") ?? c.graph.reportCacheSeconds
            c.graph.reportCallsPer10Minutes = try g.int("reportCallsPer10Minutes", min: 1) ?? c.graph.reportCallsPer10Minutes
            c.graph.reportMaxStaleSeconds = try g.double("reportMaxStaleSeconds") ?? c.graph.reportMaxStaleSeconds
            c.graph.reportCacheMaxBytes = try g.int("reportCacheMaxBytes", min: 0) ?? c.graph.reportCacheMaxBytes
            c.graph.reportRefreshMaxLagSeconds = try g.double("reportRefreshMaxLagSeconds") ?? c.graph.reportRefreshMaxLagSeconds
            guard c.graph.reportRefreshMaxLagSeconds == 0 || c.graph.reportRefreshMaxLagSeconds >= 60 else {
                throw ConfigurationError("graph.reportRefreshMaxLagSeconds must be 0 (off) or at least 60 seconds")
            }
            c.graph.allowedDownloadHosts = try g.strings("allowedDownloadHosts")
            c.graph.credentialExpiryWarningDays = try g.int("credentialExpiryWarningDays", min: 0) ?? c.graph.credentialExpiryWarningDays
            guard c.graph.credentialExpiryWarningDays <= CredentialExpiry.maximumWarningDays else {
                throw ConfigurationError("graph.credentialExpiryWarningDays must be from 0 (no warnings) to \(CredentialExpiry.maximumWarningDays)")
            }
        }
        if let l = try Section.optional(top["log"], path: "log") {
            try l.check(["format", "level", "redactUserNames"])
            if let redact = try l.string("redactUserNames") {
                guard redact == "true" || redact == "false" else { throw ConfigurationError("log.redactUserNames must be true or false") }
                c.logRedactUserNames = redact == "true"
            }
            c.logFormat = try l.string("format") ?? c.logFormat
            guard ["json", "text"].contains(c.logFormat) else { throw ConfigurationError("log.format must be json or text") }
            c.logLevel = try l.string("level") ?? c.logLevel
            let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
            guard levels.contains(c.logLevel) else {
                throw ConfigurationError("log.level must be one of \(levels.joined(separator: ", "))")
            }
        }
        if !kafkaOnly, let t = try Section.optional(top["tenants"], path: "tenants") {
            for name in t.raw.keys.sorted() {
                guard let section = try Section.optional(t.raw[name], path: "tenants.\(name)") else {
                    throw ConfigurationError("tenants.\(name) is empty: give its tenantId, clientId and a credential, or remove it")
                }
                c.tenants[name] = try tenant(name, section, defaults: c.graph, baseDirectory: baseDirectory, environment: environment)
            }
        }
        return c
    }

    static func tenant(
        _ name: String, _ s: Section, defaults: GraphSection, baseDirectory: String,
        environment: [String: String]
    ) throws(ConfigurationError) -> Tenant {
        try s.check([
            "tenantId", "clientId", "clientSecretFile", "clientSecretEnv", "certificateFile", "privateKeyFile",
            "federatedTokenFile", "workloadIdentity", "cloud", "loginEndpoint", "graphEndpoint", "secretExpires",
        ])
        // Workload identity (Azure SDK conventions, as the AKS webhook injects them): the tenant,
        // client and token file default to AZURE_TENANT_ID, AZURE_CLIENT_ID and
        // AZURE_FEDERATED_TOKEN_FILE, the login endpoint to AZURE_AUTHORITY_HOST.
        let workloadSetting = try s.string("workloadIdentity")
        guard workloadSetting == nil || workloadSetting == "true" || workloadSetting == "false" else {
            throw ConfigurationError("tenants.\(name).workloadIdentity must be true or false")
        }
        let workloadIdentity = workloadSetting == "true"
        func azure(_ variable: String) -> String? { workloadIdentity ? environment[variable].flatMap { $0.isEmpty ? nil : $0 } : nil }
        guard let tenantId = try s.string("tenantId") ?? azure("AZURE_TENANT_ID"), !tenantId.isEmpty else {
            throw ConfigurationError("tenants.\(name).tenantId is required\(workloadIdentity ? " (or AZURE_TENANT_ID with workloadIdentity)" : "")")
        }
        guard let clientId = try s.string("clientId") ?? azure("AZURE_CLIENT_ID"), !clientId.isEmpty else {
            throw ConfigurationError("tenants.\(name).clientId is required\(workloadIdentity ? " (or AZURE_CLIENT_ID with workloadIdentity)" : "")")
        }
        func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : (baseDirectory as NSString).appendingPathComponent(p) }
        let credential: ClientCredential
        var expiry: CredentialExpiry? = nil
        let isSecret = s.raw["clientSecretFile"] != nil || s.raw["clientSecretEnv"] != nil
        if let text = try s.string("secretExpires") {
            guard isSecret else {
                throw ConfigurationError(
                    "tenants.\(name).secretExpires applies to clientSecretFile or clientSecretEnv only (a certificate's own notAfter is used; a federated credential stores no secret)"
                )
            }
            guard let date = CredentialExpiry.parseDate(text) else {
                throw ConfigurationError("tenants.\(name).secretExpires must be a date such as 2027-06-30 or an RFC 3339 date-time")
            }
            expiry = CredentialExpiry(notAfter: date, source: .secret)
        }
        if let file = try s.string("clientSecretFile") {
            let data: Data
            switch CredentialFile.read(resolve(file), maxBytes: 64 * 1024) {
            case .success(let d): data = d
            case .failure(let problem):
                throw ConfigurationError("tenants.\(name).clientSecretFile: the file \(CredentialFile.shown(file)) \(problem.description)")
            }
            let secret = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !secret.isEmpty else { throw ConfigurationError("tenants.\(name).clientSecretFile: \(CredentialFile.shown(file)) is empty") }
            credential = .secret(secret)
        } else if let variable = try s.string("clientSecretEnv") {
            guard let secret = environment[variable], !secret.isEmpty else {
                throw ConfigurationError("tenants.\(name).clientSecretEnv: environment variable \(variable) is not set")
            }
            credential = .secret(secret)
        } else if let cert = try s.string("certificateFile") {
            guard let key = try s.string("privateKeyFile") else {
                throw ConfigurationError("tenants.\(name).certificateFile needs tenants.\(name).privateKeyFile")
            }
            do {
                let assertion = try CertificateAssertion(certificatePEMPath: resolve(cert), privateKeyPEMPath: resolve(key), clientId: clientId)
                credential = assertion.credential
                expiry = assertion.expiry
            } catch {
                throw ConfigurationError("tenants.\(name): \(error)")
            }
        } else if let file = try s.string("federatedTokenFile") ?? azure("AZURE_FEDERATED_TOKEN_FILE") {
            // Read again for every token request (it rotates); here only checked to exist.
            guard FileManager.default.isReadableFile(atPath: resolve(file)) else {
                throw ConfigurationError("tenants.\(name).federatedTokenFile: cannot read \(CredentialFile.shown(file)) (the projected service-account token)")
            }
            credential = .federated(tokenFile: resolve(file))
        } else {
            throw ConfigurationError(
                "tenants.\(name) needs clientSecretFile, clientSecretEnv, certificateFile + privateKeyFile, federatedTokenFile, or workloadIdentity: true with AZURE_FEDERATED_TOKEN_FILE set"
            )
        }
        var endpoints = NationalCloud.global.endpoints
        if let cloudName = try s.string("cloud") {
            guard let cloud = NationalCloud(rawValue: cloudName) else {
                throw ConfigurationError("tenants.\(name).cloud must be one of global, usgov, usgovdod, china")
            }
            endpoints = cloud.endpoints
        }
        // Only without an explicit cloud: `cloud: usgov` keeps its own login host.
        if try s.string("cloud") == nil, let authority = azure("AZURE_AUTHORITY_HOST") {
            endpoints.login = authority.hasSuffix("/") ? String(authority.dropLast()) : authority
        }
        if let login = try s.string("loginEndpoint") ?? defaults.loginEndpoint { endpoints.login = login }
        if let graph = try s.string("graphEndpoint") ?? defaults.graphEndpoint { endpoints.graph = graph }
        var tenant = Tenant(
            name: name, tenantId: tenantId, clientId: clientId, credential: credential,
            endpoints: GraphEndpoints(login: endpoints.login, graph: endpoints.graph))
        tenant.credentialExpiry = expiry
        return tenant
    }

    /// The Kafka properties with `--bootstrap-servers` applied.
    public func kafkaConfiguration(bootstrapOverride: String? = nil) -> KafkaConfiguration {
        var k = KafkaConfiguration(kafka.properties)
        if let bootstrapOverride { k.bootstrapServers = bootstrapOverride }
        return k
    }
}

/// A configuration that cannot be used; `description` says which key is wrong and why.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    /// The message for the operator.
    public let description: String
    /// An error with this message.
    public init(_ description: String) { self.description = description }
}

/// A mapping of the configuration, with typed readers that name the key on error.
struct Section {
    let raw: [String: Any]
    let path: String

    init(_ raw: [String: Any], path: String) {
        self.raw = raw
        self.path = path
    }

    static func optional(_ value: Any?, path: String) throws(ConfigurationError) -> Section? {
        guard let value, !(value is NSNull) else { return nil }
        guard let m = value as? [String: Any] else { throw ConfigurationError("\(path) must be a mapping") }
        return Section(m, path: path)
    }

    func key(_ k: String) -> String { path.isEmpty ? k : "\(path).\(k)" }

    func check(_ allowed: Set<String>) throws(ConfigurationError) {
        if let unknown = raw.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw ConfigurationError("unknown configuration key '\(key(unknown))' (known: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    static func scalar(_ value: Any, path: String) throws(ConfigurationError) -> String {
        switch value {
        case let s as String: return s
        case let b as Bool: return b ? "true" : "false"
        case let i as Int: return String(i)
        case let d as Double: return String(d)
        default: throw ConfigurationError("\(path) must be a scalar")
        }
    }

    func string(_ k: String) throws(ConfigurationError) -> String? {
        guard let v = raw[k], !(v is NSNull) else { return nil }
        return try Self.scalar(v, path: key(k))
    }

    func strings(_ k: String) throws(ConfigurationError) -> [String]? {
        guard let v = raw[k] else { return nil }
        guard let a = v as? [Any] else { throw ConfigurationError("\(key(k)) must be a list") }
        var out: [String] = []
        for item in a { out.append(try Self.scalar(item, path: key(k))) }
        return out
    }

    func int(_ k: String, min: Int) throws(ConfigurationError) -> Int? {
        guard let s = try string(k) else { return nil }
        guard let i = Int(s), i >= min else { throw ConfigurationError("\(key(k)) must be an integer ≥ \(min), got '\(s)'") }
        return i
    }

    func double(_ k: String) throws(ConfigurationError) -> Double? {
        guard let s = try string(k) else { return nil }
        guard let d = Double(s), d >= 0, d <= 1_000_000 else {
            throw ConfigurationError("\(key(k)) must be a number from 0 to 1000000, got '\(s.prefix(40))'")
        }
        return d
    }
}

import Foundation

/// What the simulator serves: tenants, their apps, their data and their faults.
public struct SimulatorConfiguration: Sendable, Codable {
    /// Key for the HMAC that signs access tokens and download links.
    public var signingKey: String
    /// Lifetime of the pre-authenticated download links, seconds.
    public var downloadTTL: Double
    /// The tenants served; a token URL names one by its name, tenant id or an alias (case-insensitive).
    public var tenants: [SimulatedTenant]

    /// Builds a configuration serving `tenants`, signing tokens and download links with `signingKey`;
    /// download links stay valid for `downloadTTL` seconds (default 300).
    public init(signingKey: String = "exocheck-simulator", downloadTTL: Double = 300, tenants: [SimulatedTenant]) {
        self.signingKey = signingKey
        self.downloadTTL = downloadTTL
        self.tenants = tenants
    }

    enum CodingKeys: String, CodingKey { case signingKey, downloadTTL, tenants }

    /// Decodes a JSON configuration: `tenants` is required; a missing `signingKey` or `downloadTTL`
    /// takes the default (`exocheck-simulator`, 300 s).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        signingKey = try c.decodeIfPresent(String.self, forKey: .signingKey) ?? "exocheck-simulator"
        downloadTTL = try c.decodeIfPresent(Double.self, forKey: .downloadTTL) ?? 300
        tenants = try c.decode([SimulatedTenant].self, forKey: .tenants)
    }

    /// The client every built-in tenant accepts (the secret has reserved characters on purpose:
    /// it must be form-encoded).
    public static let defaultClientId = "8f2c6d1e-4b7a-4e39-9c55-0a1b2c3d4e5f"
    /// The client secret of `defaultClientId` (`SimulatedClient.standard`).
    public static let defaultClientSecret = "Xy7~Q8r.pL-2+s/Ab=c%d&e"

    /// Built-in tenants: the fixture tenants, fault tenants and malformed-body tenants, named
    /// like the conformance stand-in's (`contoso.onmicrosoft.com`, `fault-429.onmicrosoft.com`…).
    public static func standard(generated: [GeneratedTenantSpec] = []) -> SimulatorConfiguration {
        var tenants: [SimulatedTenant] = []
        func add(
            _ name: String, _ data: TenantData, aliases: [String]? = nil, clients: [SimulatedClient]? = nil,
            configure: (inout SimulatedTenant) -> Void = { _ in }
        ) {
            var t = SimulatedTenant(name: name, data: data)
            t.aliases = aliases ?? ["\(name).onmicrosoft.com"]
            if let clients { t.clients = clients }
            configure(&t)
            tenants.append(t)
        }
        add(
            "contoso", .fixture("small"),
            clients: [
                .standard,
                SimulatedClient(clientId: "3c9e1f20-6a5b-4c7d-8e9f-112233445566", clientSecret: "no-reports-role", roles: ["User.Read.All"]),
                SimulatedClient(clientId: "77aa88bb-99cc-4dde-8eff-001122334455", clientSecret: "old-secret", secretExpired: true),
            ]
        ) { $0.tenantId = "0d5b8c62-3f4e-4a57-b1c2-6e7f8a9b0c1d" }
        add("empty", .fixture("empty"))
        add("overquota", .fixture("overquota"), aliases: ["tailspin.onmicrosoft.com"])
        add("large", .fixture("large"), aliases: ["fabrikam.onmicrosoft.com"])
        add("contoso-direct", .fixture("small")) { $0.redirect = false }
        add("contoso-plain", .fixture("small")) {
            $0.redirect = false; $0.bom = false; $0.lineEnding = .lf; $0.csvContentType = "text/csv"
        }
        add("contoso-concealed", .fixture("small")) { $0.concealNames = true }
        add("shortlived", .fixture("small")) { $0.expiresIn = 5 }
        add("fault-429", .fixture("small")) { $0.faults = [FaultRule(on: .report, status: 429, retryAfter: 7)] }
        add("fault-429-daily", .fixture("small")) {
            $0.faults = [FaultRule(on: .report, report: "getEmailActivityUserDetail", variant: .date, status: 429, retryAfter: 3)]
        }
        add("fault-429-once", .fixture("small")) { $0.faults = [FaultRule(on: .report, status: 429, retryAfter: 1, times: 1)] }
        add("fault-500", .fixture("small")) { $0.faults = [FaultRule(on: .report, status: 500)] }
        add("fault-503", .fixture("small")) { $0.faults = [FaultRule(on: .report, status: 503, retryAfter: 30)] }
        add("fault-403", .fixture("small")) { $0.faults = [FaultRule(on: .report, status: 403)] }
        add("fault-401", .fixture("small")) {
            $0.faults = [FaultRule(on: .report, status: 401, message: "Lifetime validation failed, the token is expired.")]
        }
        add("fault-token-500", .fixture("small")) { $0.faults = [FaultRule(on: .token, status: 500)] }
        add("fault-token-503-twice", .fixture("small")) { $0.faults = [FaultRule(on: .token, status: 503, times: 2)] }
        add("fault-token-503-html", .fixture("small")) {
            $0.faults = [
                FaultRule(
                    on: .token, status: 503,
                    body: "<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1></body></html>\n",
                    contentType: "text/html")
            ]
        }
        add("fault-download-500", .fixture("small")) {
            $0.faults = [FaultRule(on: .download, status: 500, body: "<html><body>Internal error</body></html>\n", contentType: "text/html")]
        }
        add("slow", .fixture("small")) { $0.faults = [FaultRule(on: .report, delay: 4)] }
        add("slow-short", .fixture("small")) { $0.faults = [FaultRule(on: .report, delay: 1)] }
        add("stall-body", .fixture("small")) { $0.faults = [FaultRule(on: .download, stallBody: 60)] }
        // Hostile redirects: cloud metadata (link-local), a private address, a decimal loopback.
        add("redirect-metadata", .fixture("small")) {
            $0.faults = [FaultRule(on: .report, status: 302, location: "http://169.254.169.254/latest/meta-data/?sig=secret")]
        }
        add("redirect-private", .fixture("small")) { $0.faults = [FaultRule(on: .report, status: 302, location: "https://10.1.2.3/download?sig=secret")] }
        add("redirect-decimal", .fixture("small")) { $0.faults = [FaultRule(on: .report, status: 302, location: "http://2130706433:8080/?sig=secret")] }
        for kind in MalformedKind.allCases {
            add("malformed-\(kind.rawValue.replacingOccurrences(of: "_", with: "-"))", .fixture("small")) {
                $0.faults = [FaultRule(on: .report, malformed: kind)]
            }
        }
        for spec in generated {
            add(spec.name, .generated(spec.data)) { t in
                t.concealNames = spec.concealNames
                if let f = spec.faults { t.faults = f }
                if let clients = spec.clients { t.clients = clients }
            }
        }
        return SimulatorConfiguration(tenants: tenants)
    }

    /// Reads a JSON configuration file.
    public static func load(path: String) throws -> SimulatorConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SimulatorError("cannot read simulator configuration '\(path)'")
        }
        do {
            return try JSONDecoder().decode(SimulatorConfiguration.self, from: data)
        } catch {
            throw SimulatorError("simulator configuration '\(path)' is invalid: \(error)")
        }
    }
}

/// An error of the simulator: an unreadable or invalid configuration, a missing bundled fixture,
/// or an address it could not listen on.
public struct SimulatorError: Error, CustomStringConvertible, Sendable {
    /// The human-readable message, naming the file, fixture or address concerned.
    public let description: String
    /// Builds an error with the message `description`.
    public init(_ description: String) { self.description = description }
}

/// A generated tenant for `standard(generated:)`.
public struct GeneratedTenantSpec: Sendable {
    /// The tenant's name (`standard(generated:)` also accepts `<name>.onmicrosoft.com` for it).
    public var name: String
    /// The parameters its report rows are generated from.
    public var data: GeneratedData
    /// Replace UPNs and display names with hashes, as `SimulatedTenant.concealNames`; default false.
    public var concealNames = false
    /// The tenant's fault rules; nil = none.
    public var faults: [FaultRule]? = nil
    /// The app registrations the tenant accepts; nil = only `SimulatedClient.standard`.
    public var clients: [SimulatedClient]? = nil

    /// Builds a spec; by default names are shown, there are no faults and only the standard client.
    public init(name: String, data: GeneratedData, concealNames: Bool = false, faults: [FaultRule]? = nil, clients: [SimulatedClient]? = nil) {
        self.name = name
        self.data = data
        self.concealNames = concealNames
        self.faults = faults
        self.clients = clients
    }
}

/// One simulated tenant: how token URLs may name it, its app registrations, its report data,
/// the byte shape of its CSV answers and its fault rules.
public struct SimulatedTenant: Sendable, Codable {
    /// The tenant's name: accepted (case-insensitive) in the token URL, and the key of its report data,
    /// fault-rule counters and download links.
    public var name: String
    /// The tenant GUID put in issued tokens' `tid` claim (and accepted in the token URL); by default
    /// a GUID-shaped value derived from the SHA-256 of `name`.
    public var tenantId: String
    /// Other names accepted in the token URL, such as domains; empty by default (`standard()` gives
    /// each built-in tenant `<name>.onmicrosoft.com` or the aliases it lists).
    public var aliases: [String] = []
    /// Where the tenant's report rows come from.
    public var data: TenantData
    /// The app registrations that may get tokens; default: only `SimulatedClient.standard`.
    public var clients: [SimulatedClient] = [.standard]
    /// Token lifetime in seconds.
    public var expiresIn: Int = 3599
    /// Answer reports with 302 to a download URL (as Graph does) instead of 200.
    public var redirect = true
    /// Start CSV bodies with the UTF-8 byte order mark (EF BB BF); default true.
    public var bom = true
    /// Line ends of CSV bodies; default CRLF.
    public var lineEnding: LineEnding = .crlf
    /// The Content-Type header of CSV answers; default `application/octet-stream`.
    public var csvContentType = "application/octet-stream"
    /// Replace UPNs and display names with 32-hex-digit hashes (the tenant privacy setting).
    public var concealNames = false
    /// Fault rules applied to this tenant's token, report and download requests; none by default.
    public var faults: [FaultRule] = []

    /// Line ends of served CSV bodies: `crlf` (CR LF) or `lf` (LF only).
    public enum LineEnding: String, Sendable, Codable { case crlf, lf }

    /// Builds a tenant with the defaults above: the tenant id derived from `name`, no aliases, only
    /// the standard client.
    public init(name: String, data: TenantData) {
        self.name = name
        self.data = data
        self.tenantId = Self.derivedTenantId(name)
    }

    /// A stable GUID-shaped id derived from the name.
    static func derivedTenantId(_ name: String) -> String {
        let h = Hashing.sha256Hex(name)
        let c = Array(h.prefix(32))
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-" + String(c[12..<16]) + "-" + String(c[16..<20]) + "-" + String(c[20..<32])
    }

    enum CodingKeys: String, CodingKey {
        case name, tenantId, aliases, data, clients, expiresIn, redirect, bom, lineEnding, csvContentType, concealNames, faults
    }

    /// Decodes a tenant from JSON: `name` and `data` are required; every other missing key takes its
    /// default (`tenantId` derived from `name`).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        tenantId = try c.decodeIfPresent(String.self, forKey: .tenantId) ?? Self.derivedTenantId(name)
        aliases = try c.decodeIfPresent([String].self, forKey: .aliases) ?? []
        data = try c.decode(TenantData.self, forKey: .data)
        clients = try c.decodeIfPresent([SimulatedClient].self, forKey: .clients) ?? [.standard]
        expiresIn = try c.decodeIfPresent(Int.self, forKey: .expiresIn) ?? 3599
        redirect = try c.decodeIfPresent(Bool.self, forKey: .redirect) ?? true
        bom = try c.decodeIfPresent(Bool.self, forKey: .bom) ?? true
        lineEnding = try c.decodeIfPresent(LineEnding.self, forKey: .lineEnding) ?? .crlf
        csvContentType = try c.decodeIfPresent(String.self, forKey: .csvContentType) ?? "application/octet-stream"
        concealNames = try c.decodeIfPresent(Bool.self, forKey: .concealNames) ?? false
        faults = try c.decodeIfPresent([FaultRule].self, forKey: .faults) ?? []
    }

    func matches(_ name: String) -> Bool {
        let n = name.lowercased()
        return n == self.name.lowercased() || n == tenantId.lowercased() || aliases.contains { $0.lowercased() == n }
    }
}

/// An app registration in a simulated tenant: its client id, its secret or certificate, and the
/// application roles its tokens carry.
public struct SimulatedClient: Sendable, Codable, Equatable {
    /// The application (client) id, matched case-insensitively against the request's `client_id`.
    public var clientId: String
    /// The value `client_secret` must equal; empty: every secret is refused (AADSTS7000215).
    public var clientSecret: String
    /// Application roles put in issued tokens' `roles` claim; report requests need `Reports.Read.All`
    /// (the default), otherwise Graph answers 403.
    public var roles: [String]
    /// When true, even the right secret is refused with AADSTS7000222 (the secret has expired).
    public var secretExpired: Bool
    /// For certificate credentials: the certificate (PEM; its SHA-1 thumbprint must be the
    /// assertion's `x5t`) and its public key (PEM; verifies the RS256 signature).
    public var certificatePEM: String?
    /// The certificate's RSA public key (PEM) that verifies the assertion's RS256 signature; when it
    /// or `certificatePEM` is nil, certificate assertions are refused.
    public var publicKeyPEM: String?
    /// A federated identity credential (workload identity): assertions whose `iss` is its issuer
    /// are checked against it instead of the certificate.
    public var federated: FederatedIdentity?

    /// Builds a client; by default it has the `Reports.Read.All` role, an unexpired secret, no
    /// certificate and no federated credential.
    public init(
        clientId: String, clientSecret: String, roles: [String] = ["Reports.Read.All"], secretExpired: Bool = false,
        certificatePEM: String? = nil, publicKeyPEM: String? = nil, federated: FederatedIdentity? = nil
    ) {
        self.federated = federated
        self.clientId = clientId
        self.clientSecret = clientSecret
        self.roles = roles
        self.secretExpired = secretExpired
        self.certificatePEM = certificatePEM
        self.publicKeyPEM = publicKeyPEM
    }

    /// The client every tenant accepts unless configured otherwise: `defaultClientId` with
    /// `defaultClientSecret` and the `Reports.Read.All` role.
    public static let standard = SimulatedClient(
        clientId: SimulatorConfiguration.defaultClientId, clientSecret: SimulatorConfiguration.defaultClientSecret)

    enum CodingKeys: String, CodingKey { case clientId, clientSecret, roles, secretExpired, certificatePEM, publicKeyPEM, federated }

    /// Decodes a client from JSON: `clientId` is required; a missing secret is empty (secrets are
    /// refused), missing roles are `Reports.Read.All`, no certificate unless both PEMs are given.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        clientId = try c.decode(String.self, forKey: .clientId)
        clientSecret = try c.decodeIfPresent(String.self, forKey: .clientSecret) ?? ""
        roles = try c.decodeIfPresent([String].self, forKey: .roles) ?? ["Reports.Read.All"]
        secretExpired = try c.decodeIfPresent(Bool.self, forKey: .secretExpired) ?? false
        certificatePEM = try c.decodeIfPresent(String.self, forKey: .certificatePEM)
        publicKeyPEM = try c.decodeIfPresent(String.self, forKey: .publicKeyPEM)
        federated = try c.decodeIfPresent(FederatedIdentity.self, forKey: .federated)
    }
}

/// A federated identity credential of an app registration, as Entra ID keeps it: the external
/// issuer (a Kubernetes cluster's OIDC issuer), the subject (`system:serviceaccount:NS:NAME`) and
/// the audience; the simulator also needs the issuer's RSA public key (PEM), which Entra ID would
/// fetch from the issuer's JWKS.
public struct FederatedIdentity: Sendable, Codable, Equatable {
    /// The `iss` the assertion must carry.
    public var issuer: String
    /// The `sub` the assertion must carry.
    public var subject: String
    /// The audience the assertion's `aud` must contain (Entra ID's default is `api://AzureADTokenExchange`).
    public var audience: String
    /// The issuer's RSA public key (PEM) that verifies the assertion's RS256 signature.
    public var publicKeyPEM: String

    /// A federated credential; `audience` defaults to Entra ID's `api://AzureADTokenExchange`.
    public init(issuer: String, subject: String, audience: String = "api://AzureADTokenExchange", publicKeyPEM: String) {
        self.issuer = issuer
        self.subject = subject
        self.audience = audience
        self.publicKeyPEM = publicKeyPEM
    }
}

/// Where a tenant's report rows come from.
public enum TenantData: Sendable, Codable, Equatable {
    /// A bundled data set: `small`, `empty`, `overquota` or `large`.
    case fixture(String)
    /// Rows generated deterministically from these parameters.
    case generated(GeneratedData)
}

/// Parameters of a generated tenant; the same parameters always give the same bytes.
public struct GeneratedData: Sendable, Codable, Equatable {
    /// How many user mailboxes (one email-activity row each); the mailbox usage report adds
    /// `users / 40` shared and room mailboxes.
    public var users: Int
    /// Seed of the SplitMix64 generator; default 1.
    public var seed: UInt64
    /// The `Report Refresh Date` (YYYY-MM-DD) of every row, and the only date with daily
    /// email-activity rows (other dates answer the header only); default 2025-06-28.
    public var reportDate: String
    /// Domain of the generated UPNs (`local@domain`); default `example.test`.
    public var domain: String
    /// Share of mailboxes over their issue-warning quota (0…1).
    public var overQuotaRatio: Double

    /// Builds generation parameters; defaults: seed 1, date 2025-06-28, domain `example.test`, 2 % of
    /// mailboxes over their warning quota.
    public init(users: Int, seed: UInt64 = 1, reportDate: String = "2025-06-28", domain: String = "example.test", overQuotaRatio: Double = 0.02) {
        self.users = users
        self.seed = seed
        self.reportDate = reportDate
        self.domain = domain
        self.overQuotaRatio = overQuotaRatio
    }
}

/// A broken report body served instead of the CSV (`FaultRule.malformed`); the raw values are the
/// JSON names, and name the built-in `malformed-…` tenants (`_` written `-`).
public enum MalformedKind: String, Sendable, Codable, CaseIterable {
    /// After the first data row, a row whose opening quote is never closed.
    case unterminatedQuote = "unterminated_quote"
    /// `truncated`: the first half of the CSV (at least the header and 20 more bytes); `html`: an HTML
    /// error page; `json`: an empty Graph JSON collection; `empty`: no bytes; `garbage`: bytes that are
    /// not UTF-8 text. The last four are served as they are, without BOM or CRLF.
    case truncated, html, json, empty, garbage
    /// The header replaced by `Column 1,Column 2,…` (same number of columns).
    case wrongHeader = "wrong_header"
    /// Every data row cut to its first three fields.
    case shortRows = "short_rows"
    /// The header line only, without a line end.
    case headerOnlyNoNewline = "header_only_no_newline"
    /// The `Send Count` or `Item Count` column of the first data row after the first one without
    /// quotes holds 400 digits.
    case hugeNumber = "huge_number"
    /// The same count cell holds 2.5 (a fraction where a count belongs).
    case fractionCount = "fraction_count"
}

/// A fault switch. Every matching rule applies; `skip` lets the first matches through, `times`
/// limits how many requests it affects.
public struct FaultRule: Sendable, Codable, Equatable {
    /// Which requests a rule matches: `token` (the token endpoint), `report` (Graph report requests),
    /// `download` (the pre-authenticated download URLs) or `any`.
    public enum Target: String, Sendable, Codable { case token, report, download, any }
    /// Which form of report request a rule matches: `period` (`(period='D7')`) or `date`
    /// (`(date=YYYY-MM-DD)`).
    public enum Variant: String, Sendable, Codable { case period, date }

    /// The requests the rule matches; default `.report`.
    public var on: Target
    /// Only requests for this Graph report (e.g. `getEmailActivityUserDetail`); nil = any report.
    /// A rule with a report never matches token requests.
    public var report: String?
    /// Only this form of report request; nil = both. A rule with a variant never matches token
    /// requests.
    public var variant: Variant?
    /// HTTP status answered instead of the real answer; nil = no error answer (only delays, stalls
    /// and malformed bodies). When several matching rules set one, the last rule's answer is sent.
    public var status: Int?
    /// The error code of that answer: the OAuth `error` on the token endpoint, Graph's `error.code`
    /// elsewhere; nil = the usual one for `status`. Unused when `body` is set.
    public var code: String?
    /// The error text: after `AADSTS<number>:` in `error_description` on the token endpoint, Graph's
    /// `error.message` elsewhere; nil = the usual one for `status`. Unused when `body` is set.
    public var message: String?
    /// `Retry-After` header of the `status` answer, in seconds (written as an integer when whole);
    /// nil = none.
    public var retryAfter: Double?
    /// A raw body sent with `status` instead of the JSON error body.
    public var body: String?
    /// Content-Type of `body`; default `text/plain`.
    public var contentType: String?
    /// Seconds to wait before answering; the delays of all matching rules add up.
    public var delay: Double?
    /// Downloads only: send the headers and the first half of the body, then wait this many
    /// seconds before the rest (a download that stalls mid-body).
    public var stallBody: Double?
    /// Serve this broken body instead of the report CSV (report and download requests; after a
    /// redirect the kind travels in the signed download link).
    public var malformed: MalformedKind?
    /// With a 3xx status: the Location header (a hostile redirect).
    public var location: String?
    /// How many matching requests pass untouched before the rule applies; default 0.
    public var skip: Int
    /// How many requests the rule affects after the skipped ones; nil = every later one.
    public var times: Int?

    /// Builds a rule; by default it matches every report request and changes nothing until an effect
    /// (status, delay, stall, malformed body) is set.
    public init(
        on: Target = .report, report: String? = nil, variant: Variant? = nil, status: Int? = nil, code: String? = nil,
        message: String? = nil, retryAfter: Double? = nil, body: String? = nil, contentType: String? = nil,
        delay: Double? = nil, stallBody: Double? = nil, malformed: MalformedKind? = nil, location: String? = nil,
        skip: Int = 0, times: Int? = nil
    ) {
        self.location = location
        self.on = on
        self.report = report
        self.variant = variant
        self.status = status
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
        self.body = body
        self.contentType = contentType
        self.delay = delay
        self.stallBody = stallBody
        self.malformed = malformed
        self.skip = skip
        self.times = times
    }

    enum CodingKeys: String, CodingKey {
        case on, report, variant, status, code, message, retryAfter, body, contentType, delay, stallBody, malformed, location, skip, times
    }

    /// Decodes a rule from JSON; missing keys take the defaults of `init` (`on` = `report`, `skip` = 0).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        on = try c.decodeIfPresent(Target.self, forKey: .on) ?? .report
        report = try c.decodeIfPresent(String.self, forKey: .report)
        variant = try c.decodeIfPresent(Variant.self, forKey: .variant)
        status = try c.decodeIfPresent(Int.self, forKey: .status)
        code = try c.decodeIfPresent(String.self, forKey: .code)
        message = try c.decodeIfPresent(String.self, forKey: .message)
        retryAfter = try c.decodeIfPresent(Double.self, forKey: .retryAfter)
        body = try c.decodeIfPresent(String.self, forKey: .body)
        contentType = try c.decodeIfPresent(String.self, forKey: .contentType)
        delay = try c.decodeIfPresent(Double.self, forKey: .delay)
        stallBody = try c.decodeIfPresent(Double.self, forKey: .stallBody)
        malformed = try c.decodeIfPresent(MalformedKind.self, forKey: .malformed)
        location = try c.decodeIfPresent(String.self, forKey: .location)
        skip = try c.decodeIfPresent(Int.self, forKey: .skip) ?? 0
        times = try c.decodeIfPresent(Int.self, forKey: .times)
    }
}

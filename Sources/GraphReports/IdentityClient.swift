import Foundation

/// An app-only access token for Graph.
public struct AccessToken: Sendable, Equatable, Codable {
    /// The bearer token string, sent as `Authorization: Bearer <value>`.
    public var value: String
    /// When the token expires: the time of the answer plus its `expires_in` (3599 s when absent).
    public var expiresAt: Date
    /// Seconds the token was issued for (`expires_in`); nil when unknown (read back from disk).
    public var lifetime: TimeInterval?

    /// Builds a token from its value and expiry (e.g. one read back from the disk cache), and
    /// the lifetime it was issued for when known.
    public init(value: String, expiresAt: Date, lifetime: TimeInterval? = nil) {
        self.value = value
        self.expiresAt = expiresAt
        self.lifetime = lifetime
    }

    /// Whether the token may still be handed out at `now` by a cache that renews `margin`
    /// seconds before expiry: a short-lived token (a lifetime under twice the margin) is renewed
    /// at half its lifetime instead, so that it is reused at all.
    public func isUsable(now: Date, margin: TimeInterval) -> Bool {
        let effective = lifetime.map { Swift.min(margin, $0 / 2) } ?? margin
        return remaining(now: now) > effective
    }

    /// Seconds left until `expiresAt`, seen from `now` (negative once expired).
    public func remaining(now: Date = Date()) -> TimeInterval { expiresAt.timeIntervalSince(now) }
}

/// How the app proves its identity.
public enum ClientCredential: Sendable {
    /// The value of a client secret, sent as `client_secret`.
    case secret(String)
    /// A signed JWT client assertion, made fresh for each token request; `id` tells one signing
    /// credential from another (a certificate's thumbprint) without holding a secret.
    case assertion(id: String, make: @Sendable (_ audience: String) throws -> String)
    /// Workload identity federation: the client assertion is the token in this file (on
    /// Kubernetes, the projected service-account token that `AZURE_FEDERATED_TOKEN_FILE` names),
    /// read again for every token request because the kubelet rotates it. No secret is stored.
    case federated(tokenFile: String)
}

/// Reading the federated token file: at most `maxBytes`, trimmed; errors name the file only.
enum FederatedToken {
    /// A projected service-account token is about 1 KB; a larger file is not one.
    static let maxBytes = 64 * 1024

    static func read(_ path: String) throws(GraphError) -> String {
        let data: Data
        switch CredentialFile.read(path, maxBytes: maxBytes) {
        case .success(let d): data = d
        case .failure(.tooLarge):
            throw GraphError(
                .auth, "The federated token file \(CredentialFile.shown(path)) holds more than \(maxBytes) bytes: it is not a service-account token.")
        case .failure(let problem):
            throw GraphError(
                .auth,
                "The federated token file \(CredentialFile.shown(path)) \(problem.description) (workload identity): check the service account's token projection and AZURE_FEDERATED_TOKEN_FILE."
            )
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw GraphError(.auth, "The federated token file \(CredentialFile.shown(path)) is empty.") }
        return token
    }
}

/// Who asks for the token: the tenant (name, domain or GUID) and the app.
public struct AppIdentity: Sendable {
    /// The tenant as given (a GUID or a domain such as `contoso.onmicrosoft.com`); it goes,
    /// percent-encoded, into the token URL path.
    public var tenant: String
    /// The application (client) id of the app registration, sent as `client_id`.
    public var clientId: String
    /// How the app proves its identity: a client secret or a certificate assertion.
    public var credential: ClientCredential
    /// The cloud's login and Graph base URLs; the token scope is `<graph>/.default`.
    public var endpoints: GraphEndpoints

    /// Builds an identity from its tenant, client id, credential and endpoints.
    public init(tenant: String, clientId: String, credential: ClientCredential, endpoints: GraphEndpoints) {
        self.tenant = tenant
        self.clientId = clientId
        self.credential = credential
        self.endpoints = endpoints
    }

    var tokenURL: String { "\(endpoints.login)/\(tenant.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? tenant)/oauth2/v2.0/token" }
    var scope: String { endpoints.graph + "/.default" }
}

/// The client-credentials grant against the Microsoft identity platform.
public struct IdentityClient: Sendable {
    let transport: HTTPTransport

    /// Builds a client that sends its token requests through `transport`.
    public init(transport: HTTPTransport) {
        self.transport = transport
    }

    /// `POST {login}/{tenant}/oauth2/v2.0/token`.
    public func requestToken(for app: AppIdentity, timeout: Duration, now: @Sendable () -> Date = Date.init) async throws(GraphError) -> AccessToken {
        var form: [(String, String)] = [("grant_type", "client_credentials"), ("client_id", app.clientId)]
        switch app.credential {
        case .secret(let secret):
            form.append(("client_secret", secret))
        case .assertion(_, let make):
            let jwt: String
            do { jwt = try make(app.tokenURL) } catch {
                throw GraphError(.auth, "Cannot build the certificate client assertion: \(error)")
            }
            form.append(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"))
            form.append(("client_assertion", jwt))
        case .federated(let path):
            form.append(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"))
            form.append(("client_assertion", try FederatedToken.read(path)))
        }
        form.append(("scope", app.scope))
        let body = Array(FormEncoding.encode(form).utf8)
        let answer: HTTPAnswer
        do {
            answer = try await transport.send(
                .POST, app.tokenURL,
                headers: [("Content-Type", "application/x-www-form-urlencoded")],
                body: body, timeout: timeout)
        } catch {
            switch error {
            case .timeout(let s):
                throw GraphError(.timeout, "Login endpoint \(HTTPTransport.hostPort(app.tokenURL)) did not answer within \(Self.seconds(s)) (--timeout).")
            case .unreachable(let why):
                var error = GraphError(.graph, "Cannot reach the login endpoint \(HTTPTransport.hostPort(app.tokenURL)): \(why).")
                error.transient = true
                throw error
            case .tooLarge(let limit, _):
                // The endpoint misbehaves, the credential may be fine: not an auth error (which
                // the worker would remember as a refused credential).
                throw GraphError(
                    .graph,
                    "The login endpoint \(HTTPTransport.hostPort(app.tokenURL)) answered more than \(limit) bytes; that is not a token answer: check --login-endpoint."
                )
            }
        }
        let json = try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any]
        if let json, let code = json["error"] as? String {
            let description = (json["error_description"] as? String) ?? ""
            var error = Self.loginError(code: code, description: description, status: answer.status)
            error.transient = Self.isTransient(status: answer.status)
            error.retryAfterSeconds = answer.header("Retry-After").flatMap(GraphSession.parseRetryAfter)
            throw error
        }
        guard answer.status == 200, let json else {
            let type = answer.header("Content-Type").map { " (\($0.split(separator: ";").first.map(String.init) ?? $0))" } ?? ""
            var error = GraphError(
                .graph,
                "Login endpoint \(HTTPTransport.hostPort(app.tokenURL)) answered HTTP \(answer.status) with a body that is not a token response\(type); check --login-endpoint or retry later."
            )
            error.transient = Self.isTransient(status: answer.status)
            error.retryAfterSeconds = answer.header("Retry-After").flatMap(GraphSession.parseRetryAfter)
            throw error
        }
        guard let token = json["access_token"] as? String, !token.isEmpty else {
            throw GraphError(.auth, "Login endpoint answered HTTP 200 without an access_token.")
        }
        let given = (json["expires_in"] as? Double) ?? (json["expires_in"] as? String).flatMap(Double.init) ?? 3599
        // A login endpoint's expires_in is taken within 0 s to one day (not a number: the default).
        let lifetime = given.isNaN ? 3599 : Swift.min(Swift.max(given, 0), 86_400)
        return AccessToken(value: token, expiresAt: now().addingTimeInterval(lifetime), lifetime: lifetime)
    }

    /// A login answer worth another try: the identity platform's own failure or throttling.
    static func isTransient(status: Int) -> Bool { status >= 500 || status == 429 }

    /// Keeps the plugin's first line (`Login endpoint API return error code '<code>' ...`,
    /// monitoring rules match on it) and explains the AADSTS code in the details.
    static func loginError(code: String, description: String, status: Int) -> GraphError {
        let aadsts = description.split(whereSeparator: { $0 == ":" || $0 == " " }).first.map(String.init) ?? ""
        let meaning = explanation(aadsts: aadsts, code: code)
        var details = ["Login endpoint answered HTTP \(status), error '\(code)'" + (aadsts.hasPrefix("AADSTS") ? " (\(aadsts))" : "") + "."]
        if let meaning { details.append(meaning) }
        if let firstLine = description.split(whereSeparator: { $0 == "\r" || $0 == "\n" }).first {
            details.append("Microsoft says: " + firstLine)
        }
        let kind: GraphError.Kind = aadsts == "AADSTS90002" ? .unknownTenant : (status >= 500 ? .graph : .auth)
        return GraphError(kind, "Login endpoint API return error code '\(code)' (add --debug option for detailed message)", details: details)
    }

    static func explanation(aadsts: String, code: String) -> String? {
        switch aadsts {
        case "AADSTS7000215": return "The client secret is wrong: give the secret's Value (shown once when it was created), not its Secret ID."
        case "AADSTS7000222": return "The client secret has expired: create a new secret for the app registration and update the configuration."
        case "AADSTS7000216", "AADSTS7000218": return "No client secret or certificate assertion was sent: give --client-secret."
        case "AADSTS700016": return "The application (client id) is not known in this tenant: check --client-id and that the app is consented in the tenant."
        case "AADSTS90002": return "The tenant was not found: check --tenant (a GUID or a verified domain such as contoso.onmicrosoft.com)."
        case "AADSTS1002012", "AADSTS70011": return "The scope is invalid: check --graph-endpoint (the scope is <graph endpoint>/.default)."
        case "AADSTS700027": return "The certificate assertion was rejected: check the certificate uploaded to the app registration and the private key."
        case "AADSTS700211", "AADSTS700212", "AADSTS700213", "AADSTS700024":
            return
                "The federated token (workload identity) was rejected: check the app registration's federated credential (issuer = the cluster's OIDC issuer, subject = system:serviceaccount:NAMESPACE:NAME, audience api://AzureADTokenExchange) and that the token file is the projected service-account token."
        default:
            switch code {
            case "temporarily_unavailable", "server_error": return "The identity platform had a temporary problem: retry later."
            default: return nil
            }
        }
    }

    /// `10 s`, `2.5 s`.
    static func seconds(_ d: Duration) -> String {
        let s = d.inSeconds
        if s == s.rounded(), let whole = Int64(exactly: s) { return "\(whole) s" }
        return String(format: "%.1f s", s)
    }
}

/// `application/x-www-form-urlencoded`.
enum FormEncoding {
    static let unreserved: CharacterSet = {
        var set = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)...Unicode.Scalar(127)))
        set.insert(charactersIn: "-._*")
        return set
    }()

    static func encode(_ pairs: [(String, String)]) -> String {
        pairs.map { escape($0.0) + "=" + escape($0.1) }.joined(separator: "&")
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for byte in s.utf8 {
            let scalar = Unicode.Scalar(byte)
            if byte < 128, unreserved.contains(scalar) {
                out.unicodeScalars.append(scalar)
            } else if byte == 0x20 {
                out += "+"
            } else {
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }
}

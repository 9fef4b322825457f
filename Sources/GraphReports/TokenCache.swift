import Crypto
import Foundation

/// Identifies one token: the login endpoint (cloud), the tenant, the app, and a fingerprint of
/// the credential (a changed secret must not reuse a token obtained with the old one).
public struct TokenKey: Hashable, Sendable {
    /// The login base URL (`AppIdentity.endpoints.login`): tokens do not cross clouds.
    public var loginEndpoint: String
    /// The tenant as the identity names it, lowercased.
    public var tenant: String
    /// The application (client) id, lowercased.
    public var clientId: String
    /// SHA-256 (hex) of the client secret, the assertion's id (`certificate:` and the
    /// certificate's thumbprint), or
    /// `federated:` and the SHA-256 of the token file path for workload identity.
    public var credentialFingerprint: String

    /// The key of `app`'s tokens.
    public init(app: AppIdentity) {
        loginEndpoint = app.endpoints.login
        tenant = app.tenant.lowercased()
        clientId = app.clientId.lowercased()
        switch app.credential {
        case .secret(let s): credentialFingerprint = Fingerprint.sha256Hex(s)
        case .assertion(let id, _): credentialFingerprint = id
        case .federated(let path): credentialFingerprint = "federated:" + Fingerprint.sha256Hex(path)
        }
    }
}

enum Fingerprint {
    static func sha256Hex(_ text: String) -> String {
        SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

/// In-memory token cache shared by every check of a process: at most one token request in
/// flight per key (others wait for it), refresh ahead of expiry, invalidation after a 401.
public actor TokenCache {
    /// A cached token is used while it has more than this left (the plugin's rule is 10 s;
    /// long-running workers refresh earlier so that a token never expires mid-download), or more
    /// than half its lifetime when that is shorter (`AccessToken.isUsable`).
    public let refreshMargin: Duration
    /// How long a refused credential (wrong or expired secret, unknown app or tenant) is
    /// remembered, so that a misconfigured tenant does not send the identity platform one
    /// failing request per check. 0 = not remembered (`exocheck run`).
    public let failureMemory: Duration
    private var tokens: [TokenKey: AccessToken] = [:]
    private var failures: [TokenKey: (GraphError, Date)] = [:]
    private var inFlight: [TokenKey: Task<AccessToken, any Error>] = [:]

    /// Builds an empty cache (defaults: a 10 s margin, failures not remembered).
    public init(refreshMargin: Duration = .seconds(10), failureMemory: Duration = .zero) {
        self.refreshMargin = refreshMargin
        self.failureMemory = failureMemory
    }

    /// A usable token for `key`, and whether it came from the cache.
    public func token(
        for key: TokenKey, now: Date = Date(),
        fetch: @escaping @Sendable () async throws(GraphError) -> AccessToken
    ) async throws(GraphError) -> (AccessToken, cached: Bool) {
        if let t = tokens[key], t.isUsable(now: now, margin: refreshMargin.inSeconds) { return (t, true) }
        if let (error, until) = failures[key] {
            if until > now { throw error }
            failures[key] = nil
        }
        if let running = inFlight[key] {
            do { return (try await running.value, true) } catch { throw Self.graphError(error) }
        }
        let task = Task<AccessToken, any Error> { try await fetch() }
        inFlight[key] = task
        defer { inFlight[key] = nil }
        do {
            let token = try await task.value
            tokens[key] = token
            return (token, false)
        } catch {
            let e = Self.graphError(error)
            if failureMemory > .zero, e.kind == .auth || e.kind == .unknownTenant {
                failures[key] = (e, now.addingTimeInterval(failureMemory.inSeconds))  // the clock the caller gave
            }
            throw e
        }
    }

    /// Forgets `token` (after Graph answered 401 for it), unless a newer one already replaced it.
    public func invalidate(_ key: TokenKey, token: AccessToken) {
        if tokens[key] == token { tokens[key] = nil }
    }

    static func graphError(_ error: any Error) -> GraphError {
        (error as? GraphError) ?? GraphError(.auth, "Token request failed: \(error)")
    }
}

/// The on-disk token cache of `exocheck run` (the plugin's `--statefile-dir`): one file per
/// login endpoint + tenant + client id, mode 0600, holding the token, its expiry and a SHA-256 of
/// the secret (never the secret). A token is reused while it has at least 10 s left and the
/// secret is unchanged.
public struct DiskTokenStore: Sendable {
    /// The directory of the token files (created with mode 0700 by the first `save` when missing).
    public let directory: String
    /// A stored token is reused only while it has at least this many seconds left (10).
    public static let minimumRemaining: Duration = .seconds(10)

    struct Entry: Codable {
        var accessToken: String
        var expiresAt: Date
        var credentialSHA256: String
    }

    /// A store in `directory`; nothing is read or created until `load` or `save`.
    public init(directory: String) {
        self.directory = directory
    }

    func path(for key: TokenKey) -> String {
        let name = Fingerprint.sha256Hex("\(key.loginEndpoint)|\(key.tenant)|\(key.clientId)").prefix(32)
        return (directory as NSString).appendingPathComponent("exocheck-token-\(name).json")
    }

    /// The stored token of `key`, or nil when there is none, the file is unreadable, it was obtained
    /// with another secret, or it has less than `minimumRemaining` seconds left at `now`.
    public func load(_ key: TokenKey, now: Date = Date()) -> AccessToken? {
        guard let data = FileManager.default.contents(atPath: path(for: key)),
            let entry = try? JSONDecoder.tokenDecoder.decode(Entry.self, from: data),
            entry.credentialSHA256 == key.credentialFingerprint
        else { return nil }
        let token = AccessToken(value: entry.accessToken, expiresAt: entry.expiresAt)
        return token.remaining(now: now) >= Self.minimumRemaining.inSeconds ? token : nil
    }

    /// Deletes the token file of `key` (after Graph refused its token); errors are ignored.
    public func remove(_ key: TokenKey) {
        try? FileManager.default.removeItem(atPath: path(for: key))
    }

    /// Writes atomically with mode 0600. Returns a warning for stderr when the directory is
    /// not usable (the check goes on without the disk cache).
    public func save(_ token: AccessToken, for key: TokenKey) -> String? {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if !fm.fileExists(atPath: directory, isDirectory: &isDir) {
            do {
                try fm.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                return "exocheck: warning: cannot create the token cache directory '\(directory)'; running without the disk token cache."
            }
        } else if !isDir.boolValue {
            return "exocheck: warning: '\(directory)' is not a directory; running without the disk token cache."
        }
        let entry = Entry(accessToken: token.value, expiresAt: token.expiresAt, credentialSHA256: key.credentialFingerprint)
        guard let data = try? JSONEncoder.tokenEncoder.encode(entry) else { return nil }
        let target = path(for: key)
        let temporary = target + ".tmp-\(getpid())"
        guard fm.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600]) else {
            return "exocheck: warning: cannot write the token cache in '\(directory)' (check write permission); running without the disk token cache."
        }
        if rename(temporary, target) != 0 {
            try? fm.removeItem(atPath: temporary)
            return "exocheck: warning: cannot write the token cache in '\(directory)'; running without the disk token cache."
        }
        return nil
    }
}

extension JSONDecoder {
    static var tokenDecoder: JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .secondsSince1970
        return d
    }
}

extension JSONEncoder {
    static var tokenEncoder: JSONEncoder {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .secondsSince1970
        return e
    }
}

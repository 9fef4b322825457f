import Foundation

/// Parses a Centreon-style argument list (`--opt=value`, `--opt value`, flags) for the
/// `cloud::microsoft::office365::exchange::plugin` plugin, so that existing service definitions
/// run unchanged with `exocheck run`.
///
/// Validation follows the plugin's order: unknown options and mode first, then the output
/// options, then the connection options (`--tenant`, `--client-id`, `--client-secret`), then the
/// mode's own options (thresholds, filters, status expressions). The first problem is reported.
public struct CentreonArguments: Sendable {
    /// Options whose values are collected, in command-line order (last one wins unless multi).
    public private(set) var values: [String: [String]] = [:]
    /// Option names in the order they were first seen.
    public private(set) var order: [String] = []
    /// Position of each option's last occurrence (aliases of one threshold: the later wins).
    private(set) var lastSeen: [String: Int] = [:]
    private var recorded = 0
    /// Every option as given, in order, with its value ("1" for a flag).
    public private(set) var entries: [(name: String, value: String)] = []

    /// Splits the argument list. Any option name is accepted here; whether it is known depends
    /// on the mode and is checked by `CheckConfiguration`.
    public init(_ arguments: [String]) throws(ArgumentError) {
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            i += 1
            guard arg.hasPrefix("-"), arg.count > 1 else {
                throw ArgumentError(
                    "Unexpected argument '\(arg)': options are written --name=value.",
                    redacted: "Unexpected argument at position \(i) (not shown): options are written --name=value.")
            }
            var body = Substring(arg.dropFirst(arg.hasPrefix("--") ? 2 : 1))
            var value: String? = nil
            if let eq = body.firstIndex(of: "=") {
                value = String(body[body.index(after: eq)...])
                body = body[..<eq]
            }
            let name = String(body)
            if name.isEmpty { throw ArgumentError("Unexpected argument '\(arg)'.", redacted: "Unexpected argument at position \(i) (not shown).") }
            if OptionTable.flags.contains(name) {
                if value != nil { throw ArgumentError("Option --\(name) does not take a value.") }
                record(name, "1")
                continue
            }
            if value == nil {
                // Getopt::Long ':s' semantics: the next argument is the value unless it is an option.
                if i < arguments.count, !(arguments[i].hasPrefix("-") && arguments[i].count > 1) {
                    value = arguments[i]
                    i += 1
                } else {
                    value = ""
                }
            }
            record(name, value ?? "")
        }
    }

    /// Builds arguments from a name → value map (the `options` object of a check request).
    public init(options: [(name: String, value: String)]) {
        for (name, value) in options { record(name, value) }
    }

    private mutating func record(_ name: String, _ value: String) {
        if values[name] == nil { order.append(name) }
        values[name, default: []].append(value)
        entries.append((name, value))
        recorded += 1
        lastSeen[name] = recorded
    }

    /// The last value given for option `name` (no leading `--`): the last one wins; `"1"` for a
    /// flag; nil when the option was not given.
    public func last(_ name: String) -> String? { values[name]?.last }

    /// The options in their one written form, `--name=value` (`--name` for a flag), in the
    /// order given, without the `excluded` ones: what a request carries, whichever form
    /// (`--name value` or `--name=value`) the command line used.
    public func normalized(excluding excluded: Set<String> = []) -> [String] {
        entries.filter { !excluded.contains($0.name) }.map { entry in
            OptionTable.flags.contains(entry.name) ? "--\(entry.name)" : "--\(entry.name)=\(entry.value)"
        }
    }
    /// Every value given for option `name`, in command-line order (for repeatable options such as
    /// `--change-exit`); empty when it was not given.
    public func all(_ name: String) -> [String] { values[name] ?? [] }
    /// Whether option `name` was given at all, even with an empty value (how flags are read).
    public func has(_ name: String) -> Bool { values[name] != nil }
}

/// A command-line problem: printed as `UNKNOWN: <message> ` (or the `--opt-exit` status).
///
/// `message` keeps the plugin's wording (values quoted, as `exocheck run` must print them);
/// `redacted` says the same without echoing any value from the input, for answers that other
/// people read (worker results, logs, dead-letter headers), since a value may be a secret.
public struct ArgumentError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The plugin's wording, quoting the offending values: what `exocheck run` prints.
    public let message: String
    /// The same problem without any value from the input (equal to `message` when that quotes
    /// none): for worker results, logs and dead-letter headers.
    public let redacted: String
    /// Builds an error; leave out `redacted` only when `message` quotes no input value, since
    /// `message` is then used for both.
    public init(_ message: String, redacted: String? = nil) {
        self.message = message
        self.redacted = redacted ?? message
    }
    /// The unredacted `message`: not for answers other people read.
    public var description: String { message }
}

/// The connection part of a command line (credentials and endpoints).
public struct ConnectionArguments: Sendable, Equatable {
    /// `--tenant`: the tenant the app signs in to and reads reports of (required, non-empty).
    public var tenant: String
    /// `--client-id`: the application (client) id of the app registration (required, non-empty).
    public var clientId: String
    /// How `run` proves the app's identity: `--client-secret` (the plugin's way), or exocheck's
    /// `--certificate-file` with `--private-key-file`.
    public enum Credential: Sendable, Equatable {
        /// `--client-secret`: the secret's value. A secret: never echo it.
        case secret(String)
        /// `--certificate-file` and `--private-key-file`: PEM files (paths only are kept here).
        case certificate(certificateFile: String, privateKeyFile: String)
    }

    /// The app's credential (exactly one kind must be given).
    public var credential: Credential
    /// exocheck's `--secret-expires`: when the client secret expires (with `--client-secret`
    /// only; a certificate's own notAfter is read from it).
    public var secretExpires: Date? = nil
    /// exocheck's `--expiry-warning-days`: from this many days before the credential expires,
    /// `run` warns on stderr (default 30; 0: never).
    public var expiryWarningDays = CredentialExpiry.defaultWarningDays
    /// `--login-endpoint`: base URL of the identity platform (`defaultLoginEndpoint` when not
    /// given; one trailing `/` is dropped when read from a command line).
    public var loginEndpoint: String
    /// `--graph-endpoint`: base URL of Microsoft Graph (`defaultGraphEndpoint` when not given; one
    /// trailing `/` is dropped when read from a command line).
    public var graphEndpoint: String
    /// `--statefile-dir`: the directory where `exocheck run` keeps its token cache; nil (not given
    /// or empty) for the default directory.
    public var statefileDir: String?
    /// `--timeout`: one HTTP request (default 10 s).
    public var timeout: Duration
    /// exocheck's `--time-budget`: the whole check (token, reports, retries) ends within this.
    public var timeBudget: Duration
    /// `--proxyurl`: the HTTP proxy to go through; nil (not given or empty) for none. Not
    /// validated here: the caller checks it when building its transport.
    public var proxyURL: String?

    /// The public Microsoft identity platform, used when `--login-endpoint` is not given.
    public static let defaultLoginEndpoint = "https://login.microsoftonline.com"
    /// The public Microsoft Graph endpoint, used when `--graph-endpoint` is not given.
    public static let defaultGraphEndpoint = "https://graph.microsoft.com"

    /// Builds connection arguments as given, without validation; the defaults are the command
    /// line's: public endpoints, no state directory, 10 s per request, 20 s for the whole check, no
    /// proxy.
    public init(
        tenant: String, clientId: String, credential: Credential,
        loginEndpoint: String = defaultLoginEndpoint, graphEndpoint: String = defaultGraphEndpoint,
        statefileDir: String? = nil, timeout: Duration = .seconds(10), timeBudget: Duration = .seconds(20),
        proxyURL: String? = nil
    ) {
        self.tenant = tenant
        self.clientId = clientId
        self.credential = credential
        self.loginEndpoint = loginEndpoint
        self.graphEndpoint = graphEndpoint
        self.statefileDir = statefileDir
        self.timeout = timeout
        self.timeBudget = timeBudget
        self.proxyURL = proxyURL
    }

    /// The plugin's custom-mode checks: tenant, client id, client secret must be non-empty
    /// (exocheck also takes `--certificate-file` with `--private-key-file` instead of the secret).
    public init(_ args: CentreonArguments) throws(ArgumentError) {
        func required(_ name: String) throws(ArgumentError) -> String {
            guard let v = args.last(name), !v.isEmpty else { throw ArgumentError("Need to specify --\(name) option.") }
            return v
        }
        let tenant = try required("tenant")
        let clientId = try required("client-id")
        let credential = try Self.credential(args)
        var secretExpires: Date? = nil
        if let text = args.last("secret-expires"), !text.isEmpty {
            guard case .secret = credential else {
                throw ArgumentError("--secret-expires goes with --client-secret only: a certificate's expiry is read from the certificate.")
            }
            guard let date = CredentialExpiry.parseDate(text) else {
                throw ArgumentError(
                    "Wrong --secret-expires value '\(text.prefix(64))': give a date such as 2027-06-30 or an RFC 3339 date-time.",
                    redacted: "Wrong --secret-expires value: give a date such as 2027-06-30 or an RFC 3339 date-time.")
            }
            secretExpires = date
        }
        var warningDays = CredentialExpiry.defaultWarningDays
        if let text = args.last("expiry-warning-days"), !text.isEmpty {
            guard text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let days = Int(text), (0...CredentialExpiry.maximumWarningDays).contains(days) else {
                throw ArgumentError(
                    "Wrong --expiry-warning-days value '\(text.prefix(64))': give a whole number of days from 0 (no warning) to \(CredentialExpiry.maximumWarningDays).",
                    redacted: "Wrong --expiry-warning-days value: give a whole number of days from 0 (no warning) to \(CredentialExpiry.maximumWarningDays).")
            }
            warningDays = days
        }
        func seconds(_ name: String, default value: Duration) throws(ArgumentError) -> Duration {
            guard let t = args.last(name), !t.isEmpty else { return value }
            guard let v = Double(t), v > 0, !v.isNaN else {
                throw ArgumentError(
                    "Wrong --\(name) value '\(t)': give a number of seconds greater than 0.",
                    redacted: "Wrong --\(name) value: give a number of seconds greater than 0.")
            }
            guard v <= Duration.maximumSeconds else {
                throw ArgumentError(
                    "Wrong --\(name) value '\(t)': give at most \(Int(Duration.maximumSeconds)) seconds.",
                    redacted: "Wrong --\(name) value: give at most \(Int(Duration.maximumSeconds)) seconds.")
            }
            return Duration(clampedSeconds: v)
        }
        let timeout = try seconds("timeout", default: .seconds(10))
        let budget = try seconds("time-budget", default: .seconds(20))
        func endpoint(_ name: String, _ fallback: String) throws(ArgumentError) -> String {
            guard let v = args.last(name), !v.isEmpty else { return fallback }
            guard v.hasPrefix("http://") || v.hasPrefix("https://") else {
                throw ArgumentError(
                    "Wrong --\(name) value '\(v)': give a URL starting with https://.",
                    redacted: "Wrong --\(name) value: give a URL starting with https://.")
            }
            return v.hasSuffix("/") ? String(v.dropLast()) : v
        }
        self.init(
            tenant: tenant, clientId: clientId, credential: credential,
            loginEndpoint: try endpoint("login-endpoint", Self.defaultLoginEndpoint),
            graphEndpoint: try endpoint("graph-endpoint", Self.defaultGraphEndpoint),
            statefileDir: args.last("statefile-dir").flatMap { $0.isEmpty ? nil : $0 },
            timeout: timeout, timeBudget: budget,
            proxyURL: args.last("proxyurl").flatMap { $0.isEmpty ? nil : $0 })
        self.secretExpires = secretExpires
        self.expiryWarningDays = warningDays
    }

    /// Exactly one credential: `--client-secret`, or `--certificate-file` with
    /// `--private-key-file`. With none, the plugin's own message (it knows only the secret).
    static func credential(_ args: CentreonArguments) throws(ArgumentError) -> Credential {
        let secret = args.last("client-secret").flatMap { $0.isEmpty ? nil : $0 }
        let certificate = args.last("certificate-file").flatMap { $0.isEmpty ? nil : $0 }
        let key = args.last("private-key-file").flatMap { $0.isEmpty ? nil : $0 }
        switch (secret, certificate, key) {
        case (let secret?, nil, nil): return .secret(secret)
        case (nil, let certificate?, let key?): return .certificate(certificateFile: certificate, privateKeyFile: key)
        case (nil, nil, nil): throw ArgumentError("Need to specify --client-secret option.")
        case (nil, _?, nil): throw ArgumentError("--certificate-file needs --private-key-file (the certificate's RSA private key in PEM form).")
        case (nil, nil, _?): throw ArgumentError("--private-key-file needs --certificate-file (the app's certificate in PEM form).")
        case (_?, _, _):
            throw ArgumentError("Give either --client-secret or --certificate-file with --private-key-file, not both.")
        }
    }
}

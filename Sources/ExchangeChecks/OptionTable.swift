/// Who may give an option: the one table behind `exocheck run`'s parser, `submit`, the worker's
/// request validation and the documentation (SECURITY.md, README).
public enum OptionUse: String, Sendable, CaseIterable {
    /// Shapes the check (thresholds, filters, output options): a request may carry it.
    case check
    /// Meaningful only on a command line (`run`, `submit`): help and listings, the mode and the
    /// time limits (the worker decides those), state files, files written. A request may not.
    case commandLineOnly = "command-line-only"
    /// Credentials, endpoints, proxies and TLS: the worker's configuration, never a request.
    case connection
}

/// The options exocheck knows, with whether they take a value and who may give them.
/// Mode-specific options (`--filter-user`, `--filter-mailbox`, `--warning-*`, `--critical-*`,
/// `--unknown-*`) are `check` options; whether a mode knows them is decided by the mode.
public enum OptionTable {
    /// One option: its name, whether it takes a value, and who may give it.
    public struct Entry: Sendable {
        /// The option's name, without the leading `--`.
        public let name: String
        /// False for a flag: it never takes a value (`--verbose=1` is refused).
        public let takesValue: Bool
        /// Who may give the option: a check request, or only a command line or the worker's
        /// configuration.
        public let use: OptionUse
        /// Accepted for compatibility with existing command lines; no effect in exocheck.
        public let ignored: Bool
    }

    /// Every option with a fixed name, for all modes; the mode-specific filters and thresholds are
    /// not listed (see `use(of:)`).
    public static let entries: [Entry] = {
        var e: [Entry] = []
        func add(_ use: OptionUse, value: Bool, ignored: Bool = false, _ names: String...) {
            for n in names { e.append(Entry(name: n, takesValue: value, use: use, ignored: ignored)) }
        }
        // Connection: credentials and endpoints (and the transport they go through).
        add(.connection, value: true, "tenant", "client-id", "client-secret", "login-endpoint", "graph-endpoint", "proxyurl")
        // exocheck only: the certificate credential for `run`, and the credential's expiry.
        add(.connection, value: true, "certificate-file", "private-key-file", "secret-expires")
        add(.connection, value: true, ignored: true, "http-backend", "ssl-opt", "curl-opt", "http-peer-addr", "proxypac", "ssl")
        add(.connection, value: false, ignored: true, "insecure")
        // Command line only.
        add(.commandLineOnly, value: true, "mode", "statefile-dir", "timeout", "time-budget", "expiry-warning-days")
        add(
            .commandLineOnly, value: true, ignored: true, "plugin", "custommode", "statefile-suffix", "statefile-format",
            "statefile-key", "statefile-cipher", "output-file")
        add(.commandLineOnly, value: false, "list-counters", "help")
        add(.commandLineOnly, value: false, ignored: true, "list-mode", "version", "statefile-concat-cwd")
        // Check options.
        add(
            .check, value: true, "units", "filter-counters", "filter-counters-block", "filter-perfdata", "filter-uom",
            "range-perfdata", "change-exit", "change-short-output", "opt-exit")
        add(
            .check, value: true, ignored: true, "display-ok-counters", "float-precision", "source-encoding", "change-long-output",
            "explode-perfdata-max", "change-perfdata", "extend-perfdata", "extend-perfdata-group", "filter-perfdata-adv")
        add(.check, value: false, "verbose", "debug", "use-new-perfdata", "output-ignore-perfdata", "output-ignore-label")
        add(
            .check, value: false, ignored: true, "debug-stream", "sanity-options", "disco-format", "disco-show", "output-xml",
            "output-json", "output-openmetrics")
        return e
    }()

    static let byName: [String: Entry] = Dictionary(entries.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })

    /// Options that never take a value.
    public static let flags: Set<String> = Set(entries.filter { !$0.takesValue }.map(\.name))

    /// The entry of option `name` (without `--`); nil for mode-specific and unknown names.
    public static func entry(_ name: String) -> Entry? { byName[name] }

    /// Who may give `name`; mode-specific names (filters, thresholds) are `check`, unknown names nil.
    public static func use(of name: String) -> OptionUse? {
        if let e = byName[name] { return e.use }
        if name == "filter-user" || name == "filter-mailbox" { return .check }
        for prefix in ["warning-", "critical-", "unknown-"] where name.hasPrefix(prefix) { return .check }
        return nil
    }

    /// The words `looksSecret` looks for, as UTF-8.
    static let secretWords: [[UInt8]] = [
        "secret", "password", "passwd", "token", "private-key", "privatekey", "certificate", "credential", "apikey", "api-key",
    ].map { Array($0.utf8) }

    /// Options whose names suggest a secret, even if exocheck does not know them.
    public static func looksSecret(_ name: String) -> Bool {
        // Compared as UTF-8 bytes (the words are ASCII), not through Foundation's string search.
        let n = Array(name.lowercased().utf8)
        return secretWords.contains { word in
            n.count >= word.count && (0...(n.count - word.count)).contains { start in n[start..<(start + word.count)].elementsEqual(word) }
        }
    }

    /// Why a check request may not carry option `name` (nil: it may, if the mode knows it).
    /// The message names the option only (never its value).
    public static func requestRefusal(_ name: String) -> String? {
        guard isPlausibleName(name) else {
            return "an option name that is not a valid option name (not shown); options are lower-case words joined by '-'"
        }
        if looksSecret(name) {
            return "option '--\(name)' is not allowed in a request: secrets belong to the worker's configuration, never to a request"
        }
        switch use(of: name) {
        case .connection?:
            return "option '--\(name)' is not allowed in a request: credentials, endpoints and the tenant come from the worker's configuration"
        case .commandLineOnly?:
            switch name {
            case "mode": return "option '--mode' is not allowed in a request: the mode is the request's 'mode' field"
            case "timeout", "time-budget":
                return "option '--\(name)' is not allowed in a request: the time limit is the worker's (set 'deadline' to shorten it)"
            default: return "option '--\(name)' is not allowed in a request: it is for the command line only"
            }
        case .check?, nil:
            return nil
        }
    }

    /// A name that can be echoed safely: 1 to 64 characters of `a-z`, `0-9`, `-` and `_`, not
    /// starting with `-`. Anything else (a `=`, spaces, long text) may be a value in disguise.
    public static func isPlausibleName(_ name: String) -> Bool {
        let bytes = name.utf8
        guard (1...64).contains(bytes.count), bytes.first != UInt8(ascii: "-") else { return false }
        return bytes.allSatisfy { b in
            (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == UInt8(ascii: "-") || b == UInt8(ascii: "_")
        }
    }
}

/// Every limit of the check core, with its default. SECURITY.md lists them.
public enum CheckLimits {
    /// Characters of one status expression (`--warning-status` …).
    public static let maxExpressionLength = 2048
    /// Tokens of one status expression.
    public static let maxExpressionTokens = 512
    /// Nesting of parentheses and prefix operators in one status expression.
    public static let maxExpressionDepth = 32
    /// UTF-16 units of one user regular expression (filters, output rules, `=~`). Above 256,
    /// swift-corelibs-foundation leaks the pattern's copy on every compile.
    public static let maxRegexLength = 256
    /// `--change-short-output` rules of one check.
    public static let maxShortOutputRules = 16
    /// Bytes of one `--change-short-output` replacement.
    public static let maxReplacementBytes = 1024
    /// Bytes of the short output after the `--change-short-output` rules.
    public static let maxShortOutputBytes = 65536
}

import ExchangeChecks

/// Why a check could not get its report data. `kind` is the `error.kind` of a check result;
/// `message` is the first output line after `UNKNOWN: ` and tells the operator what to do;
/// `details` are extra lines shown with `--verbose`/`--debug` (never secrets).
public struct GraphError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kinds are the check's error kinds (a Graph client uses auth, permission, throttled,
    /// graph, timeout, parse and unknown-tenant).
    public typealias Kind = CheckErrorKind

    public var kind: Kind
    public var message: String
    public var details: [String]
    /// For throttling: seconds the server asked us to wait.
    public var retryAfterSeconds: Double?
    /// The server failed or could not be reached (5xx, 429, connection refused): trying again
    /// may succeed. Only what a retry policy looks at; never shown.
    public var transient = false

    public init(_ kind: Kind, _ message: String, details: [String] = [], retryAfterSeconds: Double? = nil) {
        self.kind = kind
        self.message = message
        self.details = details
        self.retryAfterSeconds = retryAfterSeconds
    }

    public var description: String { message }

    /// What the error says; `transient` (a hint for retry policies) is not part of it.
    public static func == (a: GraphError, b: GraphError) -> Bool {
        a.kind == b.kind && a.message == b.message && a.details == b.details && a.retryAfterSeconds == b.retryAfterSeconds
    }
}

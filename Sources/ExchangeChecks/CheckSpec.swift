/// One check, typed: its mode and its parsed, validated options (`configuration`), and the
/// options in the one written form a check request carries (`requestOptions`). Built the same
/// way from a check request (the worker) and from a command line (`submit`), on the option
/// table (`OptionTable`): what a request may not carry is refused here, whichever way it came.
public struct CheckSpec: Sendable {
    /// Mode, thresholds, filters, status expressions and output options, validated.
    public let configuration: CheckConfiguration
    /// The check's options as `--name=value` (`--name` for a flag), in the order given: the
    /// `args` of a check request, whichever form (`--name value` or `--name=value`) was written.
    public let requestOptions: [String]

    /// The normalised check as one text: equal exactly when the mode and the request options
    /// are (what a memoised result is found by). Each part is length-prefixed, so no option value
    /// (which may hold any character, NUL included) can make two different checks look alike.
    public var shape: String {
        ([mode.rawValue] + requestOptions).map { "\($0.utf8.count):\($0)" }.joined()
    }

    /// Which check this is: email-activity or mailbox-usage (from `configuration`).
    public var mode: CheckMode { configuration.mode }

    /// Command-line options that are not check options of a request: the tenant and the mode
    /// become the request's fields; `--plugin` and `--custommode` only name the Centreon plugin.
    public static let requestFields: Set<String> = ["tenant", "mode", "plugin", "custommode"]

    /// From a check request: its `mode` field and its options (no `--mode`, no credentials, no
    /// time limits: `OptionTable.requestRefusal`). Errors are for other people's eyes: use
    /// `redacted`.
    public init(mode: CheckMode, options: CentreonArguments) throws(ArgumentError) {
        for name in options.order {
            if let refusal = OptionTable.requestRefusal(name) { throw ArgumentError(refusal) }
        }
        switch Invocation.parse(options, mode: mode, requireConnection: false) {
        case .check(let c, _): configuration = c
        case .failure(let error, _): throw error
        // Refused above (command-line-only options); kept for completeness.
        case .listCounters, .help: throw ArgumentError("--list-counters and --help are not checks.")
        }
        requestOptions = options.normalized()
    }

    /// From a Centreon command line (`submit`): `--mode` is read from it; `requestFields` are
    /// left out of the options; anything else a request may not carry is refused.
    public init(commandLine: CentreonArguments) throws(ArgumentError) {
        let mode = try CheckMode(commandLine: commandLine)
        let kept = commandLine.entries.filter { !Self.requestFields.contains($0.name) }
        try self.init(mode: mode, options: CentreonArguments(options: kept))
    }
}

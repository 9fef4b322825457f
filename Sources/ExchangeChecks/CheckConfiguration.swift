/// Everything that decides what a check computes and prints, validated.
public struct CheckConfiguration: Sendable {
    /// The check to run: which report is read and which counters and options exist.
    public var mode: CheckMode
    /// `--filter-user` / `--filter-mailbox`; nil = every row.
    public var instanceFilter: FilterRegex?
    /// `--units`: `%` (default) compares and prints `active-*` thresholds as percentages;
    /// anything else behaves as `count` (quirk 10).
    public var unitsPercent = true
    /// `--filter-counters` (default `active|total`); nil = every counter.
    public var filterCounters: FilterRegex?
    /// `--filter-counters-block`: drop whole groups whose name matches.
    public var filterCountersBlock: FilterRegex?
    /// Range thresholds by old counter label.
    public var thresholds: [String: CounterThresholds] = [:]
    /// Mailbox status expressions (critical, warning, unknown); nil = disabled.
    public var criticalStatus: StatusExpression?
    /// `--warning-status` (mailbox-usage default: `defaultWarningStatus`); nil = disabled.
    public var warningStatus: StatusExpression?
    /// `--unknown-status` (no default); nil = disabled.
    public var unknownStatus: StatusExpression?
    /// How the result is printed: `--verbose`, the perfdata filters, `--change-exit`, `--opt-exit` …
    public var output = OutputOptions()

    /// `--filter-counters` when it is not given: counters whose label contains `active` or
    /// `total`, so the per-user and per-mailbox counters are not evaluated unless asked for.
    public static let defaultFilterCounters = "active|total"
    /// mailbox-usage's `--warning-status` when it is not given: storage used above the issue
    /// warning quota.
    public static let defaultWarningStatus = "%{used} > %{issue_warning_quota}"
    /// mailbox-usage's `--critical-status` when it is not given: storage used above the prohibit
    /// send quota.
    public static let defaultCriticalStatus = "%{used} > %{prohibit_send_quota}"

    /// The configuration of `mode` before any option is read: `defaultFilterCounters` and, for
    /// mailbox-usage, the default warning and critical status expressions; no thresholds, no
    /// instance filter, default output options.
    public init(mode: CheckMode) throws(ArgumentError) {
        self.mode = mode
        self.filterCounters = try FilterRegex.option("filter-counters", Self.defaultFilterCounters)
        if mode == .mailboxUsage {
            self.warningStatus = try Self.expression("warning-status", Self.defaultWarningStatus)
            self.criticalStatus = try Self.expression("critical-status", Self.defaultCriticalStatus)
        }
    }

    static func expression(_ option: String, _ text: String) throws(ArgumentError) -> StatusExpression? {
        if text.trimmingASCIIWhitespace().isEmpty { return nil }
        do {
            return try StatusExpression(text, option: option)
        } catch {
            if error.isLimit {
                throw ArgumentError("Invalid --\(option) expression: \(error.description).")
            }
            throw ArgumentError(
                "Invalid --\(option) expression '\(text)': \(error.description).",
                redacted: "Invalid --\(option) expression (syntax error at position \(error.position)).")
        }
    }

    /// Is the counter displayed (and therefore evaluated) under `--filter-counters`?
    public func selects(_ counter: CounterSpec) -> Bool {
        filterCounters.map { $0.matches(counter.label) } ?? true
    }

    /// Whether `--filter-counters-block` drops `group` entirely (its name matches the pattern).
    public func blocks(_ group: CounterGroup) -> Bool {
        filterCountersBlock.map { $0.matches(group.name) } ?? false
    }

    /// The ranges given for `counter` (by its old label, whichever name was used); no ranges
    /// (always OK) when none were given.
    public func thresholds(for counter: CounterSpec) -> CounterThresholds {
        thresholds[counter.label] ?? CounterThresholds()
    }
}

extension FilterRegex {
    /// A regex option; an empty value means "no filter".
    static func option(_ name: String, _ value: String?) throws(ArgumentError) -> FilterRegex? {
        guard let value, !value.isEmpty else { return nil }
        do {
            return try FilterRegex(value, option: name)
        } catch is RegexCache.TooLong {
            throw ArgumentError.regexTooLong(name)
        } catch {
            throw ArgumentError("Invalid --\(name) regular expression '\(value)'.", redacted: "Invalid --\(name) regular expression.")
        }
    }
}

extension CheckMode {
    /// The mode a command line names with `--mode`; the errors are the plugin's.
    public init(commandLine args: CentreonArguments) throws(ArgumentError) {
        guard let name = args.last("mode"), !name.isEmpty else {
            throw ArgumentError("Need to specify --mode option (email-activity or mailbox-usage).")
        }
        guard let mode = CheckMode(rawValue: name) else {
            throw ArgumentError(
                "mode '\(name)' doesn't exist: exocheck knows 'email-activity' and 'mailbox-usage'.",
                redacted: "Unknown mode: exocheck knows 'email-activity' and 'mailbox-usage'.")
        }
        self = mode
    }
}

/// The outcome of reading a full `exocheck run` command line.
public enum Invocation: Sendable {
    /// Run this check.
    case check(CheckConfiguration, ConnectionArguments?)
    /// `--list-counters`: print the list and exit 0, no request.
    case listCounters(CheckMode, OutputOptions)
    /// `--help`.
    case help(CheckMode?)
    /// A command-line problem, printed with the output options read so far.
    case failure(ArgumentError, OutputOptions)

    /// Reads the arguments. With `requireConnection` (the `run` command), `--tenant`,
    /// `--client-id` and `--client-secret` are mandatory.
    /// `mode`: the mode when it is not among the arguments (a check request's `mode` field);
    /// nil reads `--mode`.
    public static func parse(_ args: CentreonArguments, mode givenMode: CheckMode? = nil, requireConnection: Bool = true) -> Invocation {
        var output = OutputOptions()
        // --opt-exit and --output-ignore-label shape even the error line, so read them first.
        if let o = args.last("opt-exit"), let s = CheckStatus(name: o) { output.errorStatus = s }
        output.ignoreLabel = args.has("output-ignore-label")

        if args.has("help") {
            return .help(givenMode ?? args.last("mode").flatMap(CheckMode.init(rawValue:)))
        }
        do throws(ArgumentError) {
            let mode: CheckMode
            if let givenMode { mode = givenMode } else { mode = try CheckMode(commandLine: args) }
            let useNew = args.has("use-new-perfdata")
            try rejectUnknownOptions(args, mode: mode, useNewPerfdata: useNew)
            output = try outputOptions(args)
            var connection: ConnectionArguments? = nil
            if requireConnection { connection = try ConnectionArguments(args) }
            if args.has("list-counters") { return .listCounters(mode, output) }
            var config = try CheckConfiguration(mode: mode)
            config.output = output
            try config.readModeOptions(args, useNewPerfdata: useNew)
            return .check(config, connection)
        } catch {
            return .failure(error, output)
        }
    }

    /// Every option name the mode accepts.
    static func knownOptions(mode: CheckMode, useNewPerfdata: Bool) -> Set<String> {
        var known = Set(OptionTable.entries.map(\.name))
        known.insert(mode.instanceFilterOption)
        for group in mode.groups {
            for counter in group.counters {
                for name in counter.thresholdNames(inInstanceGroup: group.kind == .instances, useNewPerfdata: useNewPerfdata) {
                    known.insert("warning-" + name)
                    known.insert("critical-" + name)
                    known.insert("unknown-" + name)
                }
            }
        }
        return known
    }

    /// A name exocheck knows in some mode: safe to echo (an unknown name may be a value in disguise).
    static func isKnownElsewhere(_ name: String) -> Bool {
        CheckMode.allCases.contains {
            knownOptions(mode: $0, useNewPerfdata: false).contains(name) || knownOptions(mode: $0, useNewPerfdata: true).contains(name)
        }
    }

    static func rejectUnknownOptions(_ args: CentreonArguments, mode: CheckMode, useNewPerfdata: Bool) throws(ArgumentError) {
        let known = knownOptions(mode: mode, useNewPerfdata: useNewPerfdata)
        for name in args.order where !known.contains(name) {
            throw ArgumentError(
                "Unknown option '--\(name)' for mode \(mode.rawValue) (see 'exocheck run --help').",
                redacted: isKnownElsewhere(name)
                    ? "Unknown option '--\(name)' for mode \(mode.rawValue)."
                    : "An option that mode \(mode.rawValue) does not know (its name is not shown: it may hold a value).")
        }
    }

    static func outputOptions(_ args: CentreonArguments) throws(ArgumentError) -> OutputOptions {
        var o = OutputOptions()
        if let opt = args.last("opt-exit") {
            guard let s = CheckStatus(name: opt) else {
                throw ArgumentError("Unknown value '\(opt)' for --opt-exit.", redacted: "Unknown value for --opt-exit (ok, warning, critical or unknown).")
            }
            o.errorStatus = s
        }
        o.verbose = args.has("verbose")
        o.debug = args.has("debug")
        o.ignorePerfdata = args.has("output-ignore-perfdata")
        o.ignoreLabel = args.has("output-ignore-label")
        o.useNewPerfdata = args.has("use-new-perfdata")
        if let r = args.last("range-perfdata") {
            let value = r.isEmpty ? "1" : r
            guard let n = Int(value), (0...2).contains(n), value.count == 1 else {
                throw ArgumentError("Wrong range-perfdata option '\(r)'", redacted: "Wrong range-perfdata option (0, 1 or 2)")
            }
            o.rangePerfdata = n
        }
        if let f = args.last("filter-perfdata") {
            // The plugin filters whenever the option is given, even empty (which matches all).
            o.filterPerfdata = try FilterRegex.option("filter-perfdata", f)
        }
        if let f = args.last("filter-uom") {
            do { o.filterUOM = try FilterRegex(f, option: "filter-uom") } catch is RegexCache.TooLong {
                throw ArgumentError.regexTooLong("filter-uom")
            } catch {
                throw ArgumentError("Invalid --filter-uom regular expression '\(f)'.", redacted: "Invalid --filter-uom regular expression.")
            }
        }
        for rule in args.all("change-exit") {
            let parts = rule.split(separator: "=", omittingEmptySubsequences: false)
            guard parts.count >= 2, let from = CheckStatus(name: String(parts[0])), let to = CheckStatus(name: String(parts[1])) else {
                continue  // the plugin skips malformed rules silently
            }
            o.changeExit[from] = to
        }
        let rules = args.all("change-short-output")
        if rules.count > CheckLimits.maxShortOutputRules {
            throw ArgumentError("Too many --change-short-output rules (\(rules.count)): at most \(CheckLimits.maxShortOutputRules).")
        }
        for rule in rules {
            let parts = rule.split(separator: "~", omittingEmptySubsequences: false).map(String.init)
            guard let pattern = parts.first else { continue }
            let flags = parts.count > 2 ? parts[2] : ""
            let regex: FilterRegex
            do { regex = try FilterRegex(pattern, caseInsensitive: flags.contains("i"), option: "change-short-output") } catch is RegexCache.TooLong {
                throw ArgumentError.regexTooLong("change-short-output")
            } catch {
                throw ArgumentError("Invalid --change-short-output pattern '\(pattern)'.", redacted: "Invalid --change-short-output pattern.")
            }
            if parts.count > 1, parts[1].utf8.count > CheckLimits.maxReplacementBytes {
                throw ArgumentError("A --change-short-output replacement is longer than \(CheckLimits.maxReplacementBytes) bytes.")
            }
            o.changeShortOutput.append(
                ShortOutputSubstitution(
                    pattern: regex, replacement: parts.count > 1 ? parts[1] : "", global: flags.contains("g")))
        }
        return o
    }
}

extension CheckConfiguration {
    mutating func readModeOptions(_ args: CentreonArguments, useNewPerfdata: Bool) throws(ArgumentError) {
        instanceFilter = try FilterRegex.option(mode.instanceFilterOption, args.last(mode.instanceFilterOption))
        if let units = args.last("units") { unitsPercent = units == "%" }
        if let fc = args.last("filter-counters") { filterCounters = try FilterRegex.option("filter-counters", fc) }
        filterCountersBlock = try FilterRegex.option("filter-counters-block", args.last("filter-counters-block"))

        for group in mode.groups {
            for counter in group.counters {
                if counter.isStatusExpression {
                    if let v = args.last("warning-status") { warningStatus = try Self.expression("warning-status", v) }
                    if let v = args.last("critical-status") { criticalStatus = try Self.expression("critical-status", v) }
                    if let v = args.last("unknown-status") { unknownStatus = try Self.expression("unknown-status", v) }
                    continue
                }
                let names = counter.thresholdNames(inInstanceGroup: group.kind == .instances, useNewPerfdata: useNewPerfdata)
                // The printed name is the new one when --use-new-perfdata makes it the primary.
                let primary = names.last ?? counter.label
                var t = CounterThresholds()
                for level in ["warning", "critical", "unknown"] {
                    // Old and new names feed the same threshold; the later one on the line wins.
                    let candidates = names.compactMap { name -> (Int, String)? in
                        guard let v = args.last("\(level)-\(name)") else { return nil }
                        return (args.lastPosition(of: "\(level)-\(name)"), v)
                    }
                    guard let value = candidates.max(by: { $0.0 < $1.0 })?.1 else { continue }
                    if value.isEmpty { continue }
                    guard let range = ThresholdRange(value) else {
                        throw ArgumentError("Wrong \(level)-\(primary) threshold '\(value)'.", redacted: "Wrong \(level)-\(primary) threshold.")
                    }
                    switch level {
                    case "warning": t.warning = range
                    case "critical": t.critical = range
                    default: t.unknown = range
                    }
                }
                if t != CounterThresholds() { thresholds[counter.label] = t }
            }
        }
    }
}

extension CentreonArguments {
    /// Position of an option's last appearance, for "later one wins" between aliases.
    func lastPosition(of name: String) -> Int { lastSeen[name] ?? -1 }
}

extension ArgumentError {
    static func regexTooLong(_ option: String) -> ArgumentError {
        ArgumentError("The --\(option) regular expression is longer than \(CheckLimits.maxRegexLength) characters.")
    }
}

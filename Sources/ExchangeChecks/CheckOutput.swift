import Foundation

/// Nagios status of a check or of one message.
public enum CheckStatus: String, Sendable, Codable, CaseIterable, Comparable {
    /// All is well (exit code 0).
    case ok = "OK"
    /// A warning condition (exit code 1).
    case warning = "WARNING"
    /// A critical condition (exit code 2).
    case critical = "CRITICAL"
    /// The state could not be determined (exit code 3); the default status of errors.
    case unknown = "UNKNOWN"

    /// Nagios exit code.
    public var exitCode: Int32 {
        switch self {
        case .ok: return 0
        case .warning: return 1
        case .critical: return 2
        case .unknown: return 3
        }
    }

    /// The plugin's precedence: CRITICAL > UNKNOWN > WARNING > OK (its status bit masks are
    /// 7, 3, 1, 0 and the worst is the largest mask).
    var severityRank: Int {
        switch self {
        case .ok: return 0
        case .warning: return 1
        case .unknown: return 3
        case .critical: return 7
        }
    }

    /// Orders by the plugin's severity (OK < WARNING < UNKNOWN < CRITICAL), not by exit code.
    public static func < (a: CheckStatus, b: CheckStatus) -> Bool { a.severityRank < b.severityRank }

    /// Parses `ok`, `warning`, `critical`, `unknown` in any case.
    public init?(name: String) {
        self.init(rawValue: name.uppercased())
    }

    /// The most severe of `statuses` in the plugin's precedence; OK when there are none.
    public static func worst(_ statuses: some Sequence<CheckStatus>) -> CheckStatus {
        statuses.max() ?? .ok
    }
}

/// One perfdata metric: `'label'=value[unit];warning;critical;min;max`.
public struct Perfdatum: Sendable, Equatable, Codable {
    /// The metric name, printed between single quotes (a `'` inside is doubled).
    public var label: String
    /// The value, already formatted as it is printed (counters: an integer).
    public var value: String
    /// The unit printed right after the value (e.g. `B`); empty for none.
    public var unit: String
    /// The warning range as printed (`ThresholdRange.perfdataText`); empty when none.
    public var warning: String
    /// The critical range as printed (`ThresholdRange.perfdataText`); empty when none.
    public var critical: String
    /// The lowest value the metric can take (`0` for counters); empty when not stated.
    public var min: String
    /// The highest value the metric can take (the total for the `active-*` counters); empty when
    /// not stated.
    public var max: String
    /// The instance (user, mailbox) the metric belongs to; nil for a global metric. Not printed:
    /// it tells per-instance perfdata from global perfdata whatever the label style.
    public var instance: String?

    /// Builds a metric; unit, ranges, min and max default to empty and `instance` to nil (a global
    /// metric).
    public init(
        label: String, value: String, unit: String = "", warning: String = "", critical: String = "", min: String = "", max: String = "",
        instance: String? = nil
    ) {
        self.instance = instance
        self.label = label
        self.value = value
        self.unit = unit
        self.warning = warning
        self.critical = critical
        self.min = min
        self.max = max
    }

    /// The label as printed: a `'` inside is doubled.
    var quotedLabel: String {
        // Nearly every label has no quote: no copy, and no NSString bridging for those that do.
        guard label.utf8.contains(UInt8(ascii: "'")) else { return label }
        return label.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "''")
    }

    /// The metric as printed in perfdata: `'label'=<value><unit>;warning;critical;min;max`.
    public var rendered: String {
        "'\(quotedLabel)'=\(value)\(unit);\(warning);\(critical);\(min);\(max)"
    }
}

/// Options that shape how a result is printed (Centreon's output.pm options).
public struct OutputOptions: Sendable, Equatable {
    /// `--verbose`: print the long output (one line per instance) after the first line.
    public var verbose = false
    /// `--debug`: also show the details of an error (never secrets).
    public var debug = false
    /// `--output-ignore-perfdata`: print no perfdata.
    public var ignorePerfdata = false
    /// `--output-ignore-label`: leave out the `CRITICAL: ` … `OK: ` section labels of the short
    /// output.
    public var ignoreLabel = false
    /// `--use-new-perfdata`: name metrics by their new-style labels
    /// (`exchange.users.emails.sent.count`, `<instance>#…` per instance).
    public var useNewPerfdata = false
    /// `--filter-perfdata`: keep metrics whose label matches.
    public var filterPerfdata: FilterRegex?
    /// `--filter-uom`: blank units that do not match.
    public var filterUOM: FilterRegex?
    /// `--range-perfdata`: 0, 1 (drop a leading `0:`), 2 (blank thresholds).
    public var rangePerfdata = 0
    /// `--change-exit`: status → status for the exit code only.
    public var changeExit: [CheckStatus: CheckStatus] = [:]
    /// `--change-short-output`: substitutions applied to the short output.
    public var changeShortOutput: [ShortOutputSubstitution] = []
    /// `--opt-exit`: the status of errors (default UNKNOWN).
    public var errorStatus: CheckStatus = .unknown

    /// The defaults: every flag off, no filters or rewrite rules, `range-perfdata` 0, errors UNKNOWN.
    public init() {}
}

/// One `--change-short-output=pattern~replacement~flags` rule.
public struct ShortOutputSubstitution: Sendable, Equatable {
    /// The regular expression searched in the short output (case-insensitive with the `i` flag).
    public let pattern: FilterRegex
    /// The replacement template; `$1` … refer to the pattern's capture groups.
    public let replacement: String
    /// The `g` flag: replace every match, not only the first.
    public let global: Bool

    /// Builds a rule from its parts as given (the option parser checks the replacement's length).
    public init(pattern: FilterRegex, replacement: String, global: Bool) {
        self.pattern = pattern
        self.replacement = replacement
        self.global = global
    }

    /// Applies the rule; nil when the result would exceed `maxBytes` (UTF-8) or the pattern ran
    /// out of time (the current `RegexBudget` then names the option).
    func apply(to text: String, maxBytes: Int) -> String? {
        let ns = text as NSString
        let range = NSRange(location: 0, length: ns.length)
        // Perl's `$1` becomes NSRegularExpression's `$1`; a literal `\` or `$` in the template
        // is already in the right form for both.
        let matches: [NSTextCheckingResult]
        if global {
            guard
                let all = BudgetedMatch.allMatches(
                    pattern.regex, in: text, range: range, option: pattern.option,
                    limit: ns.length + 1)
            else { return nil }
            matches = all
        } else {
            guard let first = BudgetedMatch.firstMatch(pattern.regex, in: text, range: range, option: pattern.option) else {
                return RegexBudget.current?.exceededOption == nil ? text : nil
            }
            matches = [first]
        }
        if matches.isEmpty { return text }
        var out = ""
        var bytes = 0
        var cursor = 0
        func append(_ piece: String) -> Bool {
            bytes += piece.utf8.count
            guard bytes <= maxBytes else { return false }
            out += piece
            return true
        }
        for match in matches {
            guard match.range.location >= cursor else { continue }
            guard append(ns.substring(with: NSRange(location: cursor, length: match.range.location - cursor))) else { return nil }
            guard append(pattern.regex.replacementString(for: match, in: text, offset: 0, template: replacement)) else { return nil }
            cursor = match.range.location + match.range.length
        }
        guard append(ns.substring(from: cursor)) else { return nil }
        return out
    }
}

/// A user-supplied regular expression, compared by its source text and case sensitivity.
public struct FilterRegex: Sendable, Equatable {
    /// The pattern as given: what two filters are compared by.
    public let pattern: String
    /// The compiled pattern (shared through the process-wide cache of compiled patterns).
    public let regex: NSRegularExpression
    /// The option it came from (named when the pattern runs out of time).
    public let option: String

    /// Compiles `pattern` (at most `CheckLimits.maxRegexLength` UTF-16 units); `option` is the
    /// option named if a match runs out of time. Throws when the pattern is too long or invalid.
    public init(_ pattern: String, caseInsensitive: Bool = false, option: String = "filter") throws {
        self.pattern = pattern
        self.option = option
        self.regex = try RegexCache.compile(pattern, options: caseInsensitive ? [.caseInsensitive] : [])
    }

    /// Unanchored search, like Perl's `=~ /pattern/`, under the current `RegexBudget` (a match
    /// stopped at the time limit is false, and the budget records the option).
    public func matches(_ text: String) -> Bool {
        BudgetedMatch.firstMatch(regex, in: text, range: NSRange(text.startIndex..., in: text), option: option) != nil
    }

    /// Equal when the pattern texts and the case sensitivity are equal (the same regex); the
    /// option it came from is not compared.
    public static func == (a: FilterRegex, b: FilterRegex) -> Bool {
        a.pattern == b.pattern && a.regex.options.contains(.caseInsensitive) == b.regex.options.contains(.caseInsensitive)
    }
}

/// The outcome of a check, before rendering: messages by status, long output lines, perfdata.
public struct CheckResult: Sendable, Equatable {
    /// One message of the short output and the status it is filed under.
    public struct Message: Sendable, Equatable {
        /// The section the message is printed in, and its weight in the check's status.
        public var status: CheckStatus
        /// The text, printed after its section label (`CRITICAL: ` …).
        public var text: String
    }

    /// Every message, in the order added; rendering groups them by status.
    public var messages: [Message] = []
    /// Lines printed after the first line with `--verbose` (or with `--debug` for an error).
    public var longOutput: [String] = []
    /// Every metric computed, before the output options filter or rewrite them.
    public var perfdata: [Perfdatum] = []
    /// The report date the check used ('' when the report was empty).
    public var reportDate = ""

    /// An empty result: no messages (so OK), no long output, no perfdata.
    public init() {}

    /// Appends message `text` under `status`.
    public mutating func add(_ status: CheckStatus, _ text: String) {
        messages.append(Message(status: status, text: text))
    }

    /// The worst status of the messages (plugin precedence); OK when there are none.
    public var status: CheckStatus { CheckStatus.worst(messages.map(\.status)) }

    /// A result made of one error message (`UNKNOWN: <message> `, or the `--opt-exit` status).
    public static func error(_ message: String, status: CheckStatus = .unknown) -> CheckResult {
        var r = CheckResult()
        r.add(status, message)
        return r
    }
}

/// What `exocheck run` prints and returns.
public struct RenderedOutput: Sendable, Equatable {
    /// First line without the perfdata part (labels included, trailing space kept).
    public let shortOutput: String
    /// The perfdata metrics that survived the output filters, as printed.
    public let perfdata: [Perfdatum]
    /// Everything printed, without the final newline.
    public let text: String
    /// The status word of the check (before `--change-exit`).
    public let status: CheckStatus
    /// The process exit code (after `--change-exit`).
    public let exitCode: Int32
    /// Set when the output options themselves failed (the text is then their error): `timeout`
    /// when one of their regular expressions ran out of time, `invalidRequest` when the rewrite
    /// rules made the output too long.
    public var optionFailure: CheckErrorKind? = nil
}

/// Prints a `CheckResult` the way the Centreon plugin does, applying the output options.
public enum OutputRenderer {
    /// Renders like the plugin's `output_txt`: sections CRITICAL, WARNING, UNKNOWN, then OK only
    /// when the final status is OK; each `LABEL: ` + messages joined with ` - ` + one space; then
    /// `|` and the metrics, each preceded by a space; then long output lines with `--verbose`.
    public static func render(_ result: CheckResult, options: OutputOptions, isError: Bool = false) -> RenderedOutput {
        // Every regex of the output options runs under a budget; a check evaluated under one
        // (the worker, `run`) shares it, anything else gets the fallback limit per match.
        let budget = RegexBudget.current ?? RegexBudget(limit: RegexBudget.fallbackLimit)
        return RegexBudget.$current.withValue(budget) {
            var problem: String? = nil
            let rendered = renderUnchecked(result, options: options, isError: isError, problem: &problem)
            let failure: CheckErrorKind = problem != nil ? .invalidRequest : .timeout
            guard let message = problem ?? budget.exceededMessage else { return rendered }
            // The output options themselves failed: answer with their error, printed without them.
            var plain = options
            plain.changeShortOutput = []
            plain.filterPerfdata = nil
            plain.filterUOM = nil
            var failed = renderUnchecked(CheckResult.error(message, status: options.errorStatus), options: plain, isError: true, problem: &problem)
            failed.optionFailure = failure
            return failed
        }
    }

    static func renderUnchecked(_ result: CheckResult, options: OutputOptions, isError: Bool, problem: inout String?) -> RenderedOutput {
        let status = result.status
        var short = ""
        for section in [CheckStatus.critical, .warning, .unknown] {
            let texts = result.messages.filter { $0.status == section }.map(\.text)
            if texts.isEmpty { continue }
            short += (options.ignoreLabel ? "" : section.rawValue + ": ") + texts.joined(separator: " - ") + " "
        }
        if status == .ok {
            let texts = result.messages.filter { $0.status == .ok }.map(\.text)
            short += (options.ignoreLabel ? "" : "OK: ") + texts.joined(separator: " - ") + " "
        }
        for rule in options.changeShortOutput {
            guard let next = rule.apply(to: short, maxBytes: CheckLimits.maxShortOutputBytes) else {
                if problem == nil, RegexBudget.current?.exceededOption == nil {
                    problem = "--change-short-output rules make the output longer than \(CheckLimits.maxShortOutputBytes) bytes; shorten the replacements."
                }
                break
            }
            short = next
        }

        var printed: [Perfdatum] = []
        if !options.ignorePerfdata, !isError {
            for var metric in result.perfdata {
                if let filter = options.filterPerfdata, !filter.matches(metric.label) { continue }
                if let uom = options.filterUOM, !uom.matches(metric.unit) { metric.unit = "" }
                switch options.rangePerfdata {
                case 1:
                    metric.warning = dropZeroStart(metric.warning)
                    metric.critical = dropZeroStart(metric.critical)
                case 2:
                    metric.warning = ""
                    metric.critical = ""
                default: break
                }
                printed.append(metric)
            }
        }
        var text = short
        if !printed.isEmpty {
            text += "|" + printed.map { " " + $0.rendered }.joined()
        }
        if options.verbose || (isError && options.debug), !result.longOutput.isEmpty {
            text += "\n" + result.longOutput.joined(separator: "\n")
        }
        let exitStatus = options.changeExit[status] ?? status
        return RenderedOutput(shortOutput: short, perfdata: printed, text: text, status: status, exitCode: exitStatus.exitCode)
    }

    /// `s/^(@?)-?[0\.]+:/$1/` — `0:50` → `50`, `@0:10` → `@10`.
    static func dropZeroStart(_ range: String) -> String {
        var s = Substring(range)
        var at = ""
        if s.first == "@" { at = "@"; s = s.dropFirst() }
        var body = s
        if body.first == "-" { body = body.dropFirst() }
        let zeros = body.prefix(while: { $0 == "0" || $0 == "." })
        guard !zeros.isEmpty else { return range }
        let rest = body.dropFirst(zeros.count)
        guard rest.first == ":" else { return range }
        return at + String(rest.dropFirst())
    }
}

import Foundation

/// Nagios status of a check or of one message.
public enum CheckStatus: String, Sendable, Codable, CaseIterable, Comparable {
    case ok = "OK"
    case warning = "WARNING"
    case critical = "CRITICAL"
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

    public static func < (a: CheckStatus, b: CheckStatus) -> Bool { a.severityRank < b.severityRank }

    /// Parses `ok`, `warning`, `critical`, `unknown` in any case.
    public init?(name: String) {
        self.init(rawValue: name.uppercased())
    }

    public static func worst(_ statuses: some Sequence<CheckStatus>) -> CheckStatus {
        statuses.max() ?? .ok
    }
}

/// One perfdata metric: `'label'=value[unit];warning;critical;min;max`.
public struct Perfdatum: Sendable, Equatable, Codable {
    public var label: String
    public var value: String
    public var unit: String
    public var warning: String
    public var critical: String
    public var min: String
    public var max: String
    /// The instance (user, mailbox) the metric belongs to; nil for a global metric. Not printed:
    /// it tells per-instance perfdata from global perfdata whatever the label style.
    public var instance: String?

    public init(label: String, value: String, unit: String = "", warning: String = "", critical: String = "", min: String = "", max: String = "",
                instance: String? = nil) {
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
    var quotedLabel: String { label.replacingOccurrences(of: "'", with: "''") }

    public var rendered: String {
        "'\(quotedLabel)'=\(value)\(unit);\(warning);\(critical);\(min);\(max)"
    }
}

/// Options that shape how a result is printed (Centreon's output.pm options).
public struct OutputOptions: Sendable, Equatable {
    public var verbose = false
    /// `--debug`: also show the details of an error (never secrets).
    public var debug = false
    public var ignorePerfdata = false
    public var ignoreLabel = false
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

    public init() {}
}

/// One `--change-short-output=pattern~replacement~flags` rule.
public struct ShortOutputSubstitution: Sendable, Equatable {
    public let pattern: FilterRegex
    public let replacement: String
    public let global: Bool

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
            guard let all = BudgetedMatch.allMatches(pattern.regex, in: text, range: range, option: pattern.option,
                                                     limit: ns.length + 1) else { return nil }
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

/// A user-supplied regular expression, compared by its source text.
public struct FilterRegex: Sendable, Equatable {
    public let pattern: String
    public let regex: NSRegularExpression
    /// The option it came from (named when the pattern runs out of time).
    public let option: String

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

    public static func == (a: FilterRegex, b: FilterRegex) -> Bool { a.pattern == b.pattern }
}

/// The outcome of a check, before rendering: messages by status, long output lines, perfdata.
public struct CheckResult: Sendable, Equatable {
    public struct Message: Sendable, Equatable {
        public var status: CheckStatus
        public var text: String
    }

    public var messages: [Message] = []
    public var longOutput: [String] = []
    public var perfdata: [Perfdatum] = []
    /// The report date the check used ('' when the report was empty).
    public var reportDate = ""

    public init() {}

    public mutating func add(_ status: CheckStatus, _ text: String) {
        messages.append(Message(status: status, text: text))
    }

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

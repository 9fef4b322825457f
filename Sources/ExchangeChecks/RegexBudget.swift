import Foundation
import Synchronization

/// The time limit of every user-supplied regular expression of one check.
///
/// Patterns come from requests (`--filter-user`, `--change-short-output`, `=~` in status
/// expressions …) and, for the dynamic `=~`, even from report data, so a catastrophic pattern
/// (`(.|.|.)*Z`) must not hold a thread for minutes. ICU calls back during long matches when
/// `.reportProgress` is given; the callback checks the deadline and stops the match. A match
/// stopped that way counts as "no match" and the budget remembers the first option that ran
/// out of time, so the caller answers UNKNOWN naming that option instead of using a result
/// computed from half-evaluated filters.
///
/// The budget is bound for the duration of a synchronous evaluation with
/// `RegexBudget.$current.withValue(_:operation:)` (a task-local value, which also binds on
/// plain threads). Without a bound budget every match gets `fallbackLimit`.
public final class RegexBudget: Sendable {
    /// When every regular expression of the check must stop; a match still running then counts as
    /// no match.
    public let deadline: ContinuousClock.Instant
    private let state = Mutex<String?>(nil)

    /// Per match when no budget is bound (a safety net for code paths that evaluate outside a check).
    public static let fallbackLimit: Duration = .seconds(2)

    /// The budget bound to the current task (or thread); nil when none is bound, and then every
    /// match gets `fallbackLimit`.
    @TaskLocal public static var current: RegexBudget?

    /// A budget ending at `deadline`, with no option out of time yet.
    public init(deadline: ContinuousClock.Instant) {
        self.deadline = deadline
    }

    /// A budget ending `limit` from now.
    public convenience init(limit: Duration) {
        self.init(deadline: .now.advanced(by: limit))
    }

    /// The option whose regular expression ran out of time first, if any.
    public var exceededOption: String? { state.withLock { $0 } }

    func markExceeded(_ option: String) {
        state.withLock { if $0 == nil { $0 = option } }
    }

    /// The error an evaluation answers when a regular expression ran out of time.
    public var exceededMessage: String? {
        exceededOption.map {
            "The regular expression of --\($0) did not finish within the check's time limit (it backtracks too much on this data); simplify the pattern."
        }
    }
}

/// Matching under the current `RegexBudget`.
enum BudgetedMatch {
    /// The current budget and the deadline of a match; nil when the time is already spent (then
    /// the budget names `option`, unless another option ran out first).
    static func start(_ option: String) -> (budget: RegexBudget?, deadline: ContinuousClock.Instant)? {
        let budget = RegexBudget.current
        let deadline = budget?.deadline ?? ContinuousClock.now.advanced(by: RegexBudget.fallbackLimit)
        if let budget, budget.exceededOption != nil { return nil }
        if ContinuousClock.now >= deadline {
            budget?.markExceeded(option)
            return nil
        }
        return (budget, deadline)
    }

    static func firstMatch(_ regex: NSRegularExpression, in text: String, range: NSRange, option: String) -> NSTextCheckingResult? {
        guard let (budget, deadline) = start(option) else { return nil }
        var found: NSTextCheckingResult? = nil
        regex.enumerateMatches(in: text, options: [.reportProgress], range: range) { result, _, stop in
            if let result {
                found = result
                stop.pointee = true
            } else if ContinuousClock.now >= deadline {
                budget?.markExceeded(option)
                stop.pointee = true
            }
        }
        return found
    }

    /// Every match, in order (for a global substitution); nil when time ran out.
    static func allMatches(_ regex: NSRegularExpression, in text: String, range: NSRange, option: String, limit: Int) -> [NSTextCheckingResult]? {
        guard let (budget, deadline) = start(option) else { return nil }
        var matches: [NSTextCheckingResult] = []
        var timedOut = false
        regex.enumerateMatches(in: text, options: [.reportProgress], range: range) { result, _, stop in
            if let result {
                matches.append(result)
                if matches.count >= limit { stop.pointee = true }
            }
            if ContinuousClock.now >= deadline {
                timedOut = true
                stop.pointee = true
            }
        }
        if timedOut {
            budget?.markExceeded(option)
            return nil
        }
        return matches
    }
}

/// Compiled user patterns, shared by every check of the process.
///
/// Pollers repeat the same few check shapes every few minutes, so each distinct pattern is
/// compiled once. (swift-corelibs-foundation leaks its copy of a pattern longer than 256 UTF-16
/// units on every compile, found by fuzzing, see docs/fuzzing.md: `maxRegexLength` keeps
/// patterns at or under that.) The cache holds at most
/// `capacity` entries (it is emptied when full); a pattern is at most
/// `CheckLimits.maxRegexLength` UTF-16 units.
public enum RegexCache {
    /// A pattern by its UTF-8 bytes: Swift's `String` equality is canonical equivalence (`é`
    /// and `e` + U+0301 are equal), while ICU compiles the code points as given, so two patterns
    /// equal as Strings may match different text.
    struct Key: Hashable {
        let pattern: UTF8Key
        let options: UInt
    }
    /// Compiled ICU patterns can be large (a Unicode property class: hundreds of KB), so few.
    static let capacity = 256
    private static let entries = Mutex<(generation: UInt64, patterns: [Key: NSRegularExpression])>((0, [:]))

    struct TooLong: Error {}

    /// Goes up each time the cache empties itself. Whoever keeps compiled patterns beyond one
    /// check (CheckSpecMemo) lets them go when it changes, so that no more than `capacity`
    /// patterns stay alive however many distinct ones requests bring.
    public static var generation: UInt64 { entries.withLock { $0.generation } }

    static func compile(_ pattern: String, options: NSRegularExpression.Options) throws -> NSRegularExpression {
        guard pattern.utf16.count <= CheckLimits.maxRegexLength else { throw TooLong() }
        let key = Key(pattern: UTF8Key(pattern), options: options.rawValue)
        if let hit = entries.withLock({ $0.patterns[key] }) { return hit }
        let regex = try NSRegularExpression(pattern: pattern, options: options)
        entries.withLock { e in
            if e.patterns.count >= capacity {
                e.patterns.removeAll(keepingCapacity: true)
                e.generation &+= 1
            }
            e.patterns[key] = regex
        }
        return regex
    }
}

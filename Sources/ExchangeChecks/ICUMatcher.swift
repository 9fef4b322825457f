import Foundation
import _FoundationICU

/// One pattern matched against many short texts on one thread: ICU's regex C API directly, as
/// NSRegularExpression would run it, without its per-call costs.
///
/// A filter (`--filter-mailbox`, `--filter-user`) runs once per row, 100,000 times on a large
/// tenant. Through NSRegularExpression each match converts the Swift string to an NSString,
/// copies its UTF-16 out, checks a regex out (or clones it), sets two callbacks and allocates a
/// result: about 1–3 µs, 114–288 ms per filter on 100,000 rows (docs/benchmarks.md). Here one
/// ICU regex is opened per filter evaluation, the text goes into one reused UTF-16 buffer, and a
/// match is `uregex_setText` + `uregex_find`.
///
/// The same as NSRegularExpression (swift-corelibs-foundation's CFRegularExpression): the same
/// ICU library (swift-foundation-icu, the toolchain's `_FoundationICU` module, whose functions
/// carry a `swift_` prefix), the same flags, an unanchored `find` over the whole text, and the
/// same time limit: ICU calls back every 10,000 steps of a find (the count runs across start
/// positions) and as a find moves its start, and the callback stops the match once the deadline
/// has passed (it then counts as no match, and `timedOut` says so). `FilterRegexBulkTests`
/// compares the two on hostile patterns and names. Only case-insensitivity is translated: a
/// filter with any other option is matched through NSRegularExpression.
///
/// Not Sendable, not copyable: the ICU regex holds the text and match state of one thread.
struct ICUMatcher: ~Copyable {
    /// What the callbacks read and write (they get a pointer to it as their context).
    struct Progress {
        var deadline: ContinuousClock.Instant
        var stopped = false
        /// Find-progress calls since the clock was last read.
        var moves: UInt32 = 0
    }

    private let regex: OpaquePointer
    private let progress: UnsafeMutablePointer<Progress>
    /// The current text's UTF-16 code units; never empty (ICU refuses a null text pointer).
    private var buffer: UnsafeMutableBufferPointer<UInt16>
    private var length = 0

    /// Opens `pattern`; nil when ICU refuses it (the caller then matches through
    /// NSRegularExpression, which decides what an invalid or empty pattern does).
    init?(pattern: String, caseInsensitive: Bool, deadline: ContinuousClock.Instant) {
        let units = Array(pattern.utf16)
        guard !units.isEmpty, let count = Int32(exactly: units.count) else { return nil }
        var status = U_ZERO_ERROR
        let flags = caseInsensitive ? UInt32(UREGEX_CASE_INSENSITIVE.rawValue) : 0
        let opened = units.withUnsafeBufferPointer { swift_uregex_open($0.baseAddress, count, flags, nil, &status) }
        guard let opened else { return nil }
        guard Self.succeeded(status) else {
            swift_uregex_close(opened)
            return nil
        }
        let progress = UnsafeMutablePointer<Progress>.allocate(capacity: 1)
        progress.initialize(to: Progress(deadline: deadline))
        swift_uregex_setMatchCallback(opened, { context, _ in ICUMatcher.keepGoing(context) }, UnsafeRawPointer(progress), &status)
        swift_uregex_setFindProgressCallback(opened, { context, _ in ICUMatcher.keepFinding(context) }, UnsafeRawPointer(progress), &status)
        guard Self.succeeded(status) else {
            swift_uregex_close(opened)
            progress.deinitialize(count: 1)
            progress.deallocate()
            return nil
        }
        self.regex = opened
        self.progress = progress
        self.buffer = .allocate(capacity: 64)
    }

    deinit {
        swift_uregex_close(regex)
        progress.deinitialize(count: 1)
        progress.deallocate()
        buffer.deallocate()
    }

    /// Sets a new deadline for the next matches and forgets an earlier stop (for a limit per
    /// match, when no budget is bound).
    func restart(deadline: ContinuousClock.Instant) {
        progress.pointee = Progress(deadline: deadline)
    }

    /// Whether a match was stopped at the deadline.
    var timedOut: Bool { progress.pointee.stopped }

    /// Empties the text being built.
    mutating func clear() { length = 0 }

    /// Appends UTF-8 bytes (valid UTF-8, as from a Swift string) to the text being built.
    mutating func append(utf8 bytes: UnsafeBufferPointer<UInt8>) {
        reserve(bytes.count)  // UTF-16 never takes more code units than UTF-8 takes bytes
        var ascii = true
        for b in bytes where b >= 0x80 {
            ascii = false
            break
        }
        if ascii {
            for b in bytes {
                buffer[length] = UInt16(b)
                length += 1
            }
        } else {
            for unit in String(decoding: bytes, as: UTF8.self).utf16 {
                buffer[length] = unit
                length += 1
            }
        }
    }

    /// Appends UTF-16 code units to the text being built.
    mutating func append(utf16 units: [UInt16]) {
        reserve(units.count)
        for unit in units {
            buffer[length] = unit
            length += 1
        }
    }

    /// Whether the pattern matches somewhere in the text built (false when the match was stopped
    /// at the deadline: `timedOut`, or when ICU failed, as NSRegularExpression answers then).
    mutating func find() -> Bool {
        guard !progress.pointee.stopped, let count = Int32(exactly: length) else { return false }
        var status = U_ZERO_ERROR
        swift_uregex_setText(regex, UnsafePointer(buffer.baseAddress), count, &status)
        guard Self.succeeded(status) else { return false }
        let found = swift_uregex_find(regex, 0, &status)
        return Self.succeeded(status) && found != 0 && !progress.pointee.stopped
    }

    /// ICU's U_SUCCESS: no error (warnings are below zero).
    private static func succeeded(_ status: UErrorCode) -> Bool { status.rawValue <= U_ZERO_ERROR.rawValue }

    private mutating func reserve(_ more: Int) {
        let needed = length + more
        guard needed > buffer.count else { return }
        let grown = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: max(needed, 2 * buffer.count))
        _ = grown.initialize(from: buffer[0..<length])
        buffer.deallocate()
        buffer = grown
    }

    /// Called at every start position of an unanchored find (about 25 times per name for
    /// `contoso\.com$`): the clock is read every 64th call; the step count of the match callback
    /// bounds a long find anyway.
    private static func keepFinding(_ context: UnsafeRawPointer?) -> Int8 {
        guard let context else { return 1 }
        let progress = UnsafeMutableRawPointer(mutating: context).assumingMemoryBound(to: Progress.self)
        progress.pointee.moves &+= 1
        return progress.pointee.moves & 63 == 0 ? keepGoing(context) : 1
    }

    /// 1 to go on, 0 (and `stopped`) once the deadline has passed.
    private static func keepGoing(_ context: UnsafeRawPointer?) -> Int8 {
        guard let context else { return 1 }
        let progress = UnsafeMutableRawPointer(mutating: context).assumingMemoryBound(to: Progress.self)
        if ContinuousClock.now >= progress.pointee.deadline {
            progress.pointee.stopped = true
            return 0
        }
        return 1
    }
}

extension FilterRegex {
    /// For each name, whether the filter matches it: `matches(names[i])` for every `i`, in one
    /// pass through one `ICUMatcher`, under the current `RegexBudget` as `matches` is (once the
    /// time is spent, the rest count as no match and the budget names the option). When ICU
    /// refuses the pattern here, each name goes through `matches`.
    public func matchMask(_ names: UserNames) -> [Bool] {
        var mask = [Bool](repeating: false, count: names.count)
        guard names.count > 0, let (budget, deadline) = BudgetedMatch.start(option) else { return mask }
        guard regex.options.subtracting(.caseInsensitive).isEmpty,
            var matcher = ICUMatcher(pattern: pattern, caseInsensitive: regex.options.contains(.caseInsensitive), deadline: deadline)
        else {
            for i in 0..<names.count { mask[i] = matches(names[i]) }
            return mask
        }
        // Without a bound budget every match gets its own `fallbackLimit`, as `matches` gives it.
        let perMatchLimit = budget == nil
        let domains = names.domains.values.map { Array($0.utf16) }
        for i in 0..<names.count {
            // An anchored pattern's short matches never reach ICU's callbacks: the deadline is
            // also checked between rows (every 16th: a clock read costs about a tenth of a short
            // match), and once more after the last row.
            if !perMatchLimit, i & 15 == 0, ContinuousClock.now >= deadline {
                budget?.markExceeded(option)
                break
            }
            if perMatchLimit { matcher.restart(deadline: .now.advanced(by: RegexBudget.fallbackLimit)) }
            matcher.clear()
            names.locals.withUTF8(i) { matcher.append(utf8: $0) }
            matcher.append(utf16: domains[names.domains.code(i)])
            mask[i] = matcher.find()
            if matcher.timedOut, !perMatchLimit {
                budget?.markExceeded(option)
                return mask
            }
        }
        if !perMatchLimit, ContinuousClock.now >= deadline { budget?.markExceeded(option) }
        return mask
    }
}

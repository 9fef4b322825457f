import ExchangeChecks
import Synchronization

/// Parsed check options by request shape (issue 11, item 3: a poller sends the same few option
/// sets again and again, and parsing them, status expressions and regexes included, was a tenth
/// of a warm worker's CPU plus a hop to the evaluation pool).
///
/// The parse of a mode and an argument list is a pure function of them, so its outcome (the
/// configuration and memo shape, or the refusal's text) is kept and reused. Bounded:
/// - keys are the arguments' UTF-8 bytes (String equality is canonical equivalence, and two
///   canonically equal patterns match different text), only lists of at most `maxKeyBytes`;
/// - at `maxEntries` the memo empties;
/// - the configurations hold compiled patterns: the memo empties whenever the process-wide
///   pattern cache does (`RegexCache.generation`), so it never keeps alive more compiled patterns
///   than that cache's capacity, however many distinct ones requests bring.
/// A parse that did not finish in time is never kept (the caller does not store it).
final class CheckSpecMemo: Sendable {
    /// What parsing a request's options gave.
    enum Parsed: Sendable {
        case check(CheckConfiguration, shape: String)
        case refused(String)
    }

    struct Key: Hashable, Sendable {
        var mode: CheckMode
        var arguments: [[UInt8]]
    }

    let maxEntries: Int
    let maxKeyBytes: Int
    private let state = Mutex<(generation: UInt64, entries: [Key: Parsed])>((0, [:]))

    init(maxEntries: Int = 1_024, maxKeyBytes: Int = 2_048) {
        self.maxEntries = maxEntries
        self.maxKeyBytes = maxKeyBytes
    }

    /// The key of a request's options, or nil when they are too long to keep.
    func key(mode: CheckMode, arguments: [String]) -> Key? {
        var bytes = 0
        for a in arguments {
            bytes += a.utf8.count
            if bytes > maxKeyBytes { return nil }
        }
        return Key(mode: mode, arguments: arguments.map { Array($0.utf8) })
    }

    /// The kept parse, if any, made while the pattern cache is at `generation` (read it before
    /// parsing and pass the same value to `store`).
    func lookup(_ key: Key, generation: UInt64 = RegexCache.generation) -> Parsed? {
        state.withLock { s in
            if s.generation != generation {
                s.entries.removeAll(keepingCapacity: true)
                s.generation = generation
            }
            return s.entries[key]
        }
    }

    /// Keeps a parse made from `generation` on; dropped when the pattern cache has emptied since.
    func store(_ key: Key, _ parsed: Parsed, generation: UInt64, now: UInt64 = RegexCache.generation) {
        state.withLock { s in
            guard generation == now else { return }
            if s.generation != now {
                s.entries.removeAll(keepingCapacity: true)
                s.generation = now
            }
            if s.entries.count >= maxEntries { s.entries.removeAll(keepingCapacity: true) }
            s.entries[key] = parsed
        }
    }

    var count: Int { state.withLock { $0.entries.count } }
}

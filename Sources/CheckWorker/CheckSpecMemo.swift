import ExchangeChecks
import Synchronization

/// Parsed check options by request shape (issue 11, item 3: a poller sends the same few option
/// sets again and again, and parsing them, status expressions and regexes included, was a tenth
/// of a warm worker's CPU plus a hop to the evaluation pool).
///
/// The parse of a mode and an argument list is a pure function of them, so its outcome (the
/// configuration and memo shape, or the refusal's text) is kept and reused. Bounded twice: only
/// argument lists of at most `maxKeyBytes` are kept, and the memo is emptied when it holds
/// `maxEntries`, so hostile requests with ever new options cost at most `maxEntries` ×
/// `maxKeyBytes` of keys (2 MiB by default) and get no slower than without the memo. A parse
/// that did not finish in time is never kept (the caller does not store it).
final class CheckSpecMemo: Sendable {
    /// What parsing a request's options gave.
    enum Parsed: Sendable {
        case check(CheckConfiguration, shape: String)
        case refused(String)
    }

    struct Key: Hashable, Sendable {
        var mode: CheckMode
        var arguments: [String]
    }

    let maxEntries: Int
    let maxKeyBytes: Int
    private let entries = Mutex<[Key: Parsed]>([:])

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
        return Key(mode: mode, arguments: arguments)
    }

    func lookup(_ key: Key) -> Parsed? {
        entries.withLock { $0[key] }
    }

    func store(_ key: Key, _ parsed: Parsed) {
        entries.withLock {
            if $0.count >= maxEntries { $0.removeAll(keepingCapacity: true) }
            $0[key] = parsed
        }
    }

    var count: Int { entries.withLock { $0.count } }
}

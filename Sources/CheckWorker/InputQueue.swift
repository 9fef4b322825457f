import Synchronization

/// The worker loop's mailbox: any thread or task posts without suspending; the one reader takes
/// everything posted since its last call, in order, as one batch.
///
/// Why not an `AsyncStream`: a worker under load receives tens of thousands of small inputs per
/// second (records, "evaluated", "finished"). An `AsyncStream` hands them over one at a time
/// (a generic deque's `removeFirst`, a continuation and often a task wake-up per element), which
/// took about 8 % of a worker's CPU under a burst (`bench pipeline`, perf). Here a post is a lock
/// and an append, and the reader wakes once per batch, not once per input.
final class InputQueue<Element: Sendable>: Sendable {
    private struct State {
        var items: [Element] = []
        var waiter: CheckedContinuation<[Element], Never>?
        var finished = false
        var readerCancelled = false
    }

    private let state = Mutex(State())

    init() {}

    /// Adds an input (dropped once the queue is finished). Never suspends or blocks for long.
    func post(_ element: Element) {
        let waiter: CheckedContinuation<[Element], Never>? = state.withLock { s in
            guard !s.finished else { return nil }
            if let waiter = s.waiter {
                s.waiter = nil
                return waiter
            }
            s.items.append(element)
            return nil
        }
        waiter?.resume(returning: [element])
    }

    /// No more inputs: the reader's `next()` returns what is left, then nil; later posts are dropped.
    func finish() {
        let waiter: CheckedContinuation<[Element], Never>? = state.withLock { s in
            s.finished = true
            let w = s.waiter
            s.waiter = nil
            return w
        }
        waiter?.resume(returning: [])
    }

    /// Inputs posted since the last call, oldest first, waiting while there are none. Nil when
    /// the queue is finished and empty, and from the moment the reading task is cancelled (what
    /// waits then is dropped, as later posts are). One reader only.
    func next() async -> [Element]? {
        let batch: [Element] = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[Element], Never>) in
                let ready: [Element]? = state.withLock { s in
                    if s.readerCancelled { return [] }
                    if !s.items.isEmpty {
                        let batch = s.items
                        s.items = []
                        return batch
                    }
                    if s.finished { return [] }
                    precondition(s.waiter == nil, "InputQueue has one reader")
                    s.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            // As an AsyncStream ends for a cancelled reader: nothing more is read, later posts
            // are dropped.
            let waiter: CheckedContinuation<[Element], Never>? = state.withLock { s in
                s.readerCancelled = true
                s.finished = true
                s.items = []
                let w = s.waiter
                s.waiter = nil
                return w
            }
            waiter?.resume(returning: [])
        }
        return batch.isEmpty ? nil : batch
    }

    /// Inputs waiting to be read (for tests and metrics).
    var count: Int { state.withLock { $0.items.count } }
}

import Synchronization
import Testing

@testable import CheckWorker

@Suite("InputQueue: the worker loop's mailbox")
struct InputQueueTests {
    @Test("inputs posted while the reader is busy come as one batch, in order")
    func batches() async {
        let queue = InputQueue<Int>()
        for i in 0..<100 { queue.post(i) }
        #expect(queue.count == 100)
        let batch = await queue.next()
        #expect(batch == Array(0..<100))
        #expect(queue.count == 0)
        queue.post(100)
        #expect(await queue.next() == [100])
    }

    @Test("a waiting reader is woken by the first post")
    func wakesReader() async {
        let queue = InputQueue<String>()
        async let batch = queue.next()
        try? await Task.sleep(for: .milliseconds(50))
        queue.post("a")
        #expect(await batch == ["a"])
    }

    @Test("finish: what is left is read, then nil; later posts are dropped")
    func finish() async {
        let queue = InputQueue<Int>()
        queue.post(1)
        queue.post(2)
        queue.finish()
        queue.post(3)
        #expect(await queue.next() == [1, 2])
        #expect(await queue.next() == nil)
        #expect(await queue.next() == nil)
    }

    @Test("finish wakes a waiting reader with nil")
    func finishWakes() async {
        let queue = InputQueue<Int>()
        async let batch = queue.next()
        try? await Task.sleep(for: .milliseconds(50))
        queue.finish()
        #expect(await batch == nil)
    }

    @Test("cancelling the reading task ends its wait with nil (before or during the wait)")
    func cancellation() async {
        let queue = InputQueue<Int>()
        let waiting = Task { await queue.next() }
        try? await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        #expect(await waiting.value == nil)
        let cancelledFirst = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await queue.next()
        }
        #expect(await cancelledFirst.value == nil)
    }

    @Test("a cancelled reader stops: nil even when inputs are waiting, as an AsyncStream ends for a cancelled task")
    func cancelledWithInputs() async {
        let queue = InputQueue<Int>()
        queue.post(1)
        let reader = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await queue.next()
        }
        #expect(await reader.value == nil)
        #expect(await Task { await queue.next() }.value == nil, "and stays stopped")
    }

    @Test("many posters on many threads: every input arrives exactly once, each poster's in its order")
    func concurrentPosters() async {
        let queue = InputQueue<(poster: Int, n: Int)>()
        let posters = 8
        let each = 5_000
        await withTaskGroup(of: Void.self) { group in
            for p in 0..<posters {
                group.addTask {
                    for n in 0..<each { queue.post((p, n)) }
                }
            }
            var next = [Int](repeating: 0, count: posters)
            var received = 0
            var batches = 0
            var inOrder = true
            while received < posters * each, let batch = await queue.next() {
                batches += 1
                for item in batch {
                    if item.n != next[item.poster] { inOrder = false }
                    next[item.poster] = item.n + 1
                }
                received += batch.count
            }
            #expect(received == posters * each)
            #expect(inOrder)
            #expect(next == [Int](repeating: each, count: posters))
            #expect(batches <= received)
        }
    }
}

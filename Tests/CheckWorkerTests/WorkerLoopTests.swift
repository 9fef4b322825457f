@testable import CheckWorker
import Kafka
import Testing

/// The worker loop as a pure state machine (no broker, no clock): scheduling, fairness,
/// pausing, offsets, revocation and shutdown, each rule by name.
@Suite struct WorkerLoopTests {
    typealias Loop = WorkerLoop<String>
    static let p0 = TopicPartition("requests", 0)
    static let p1 = TopicPartition("requests", 1)

    /// Feeds events and keeps what the service would see.
    struct Harness {
        var loop: Loop
        var running: [Loop.Job] = []
        var attempts: [String: Int] = [:]
        var stored: [TopicPartition: Int64] = [:]
        var paused = false
        var exited = false
        var graceTimer = false
        var cancelled = false
        var pausedAtAssign: [TopicPartition: Bool] = [:]
        var writes: [(TopicPartition, PartitionMark)] = []
        /// Records started alone in the quarantine slot (their end is reported as such).
        var alone: Set<String> = []
        /// The time received records are stamped with.
        var clock = ContinuousClock.Instant.now

        init(concurrency: Int = 4, perTenant: Int? = nil, maxUncommitted: Int = 10_000, quarantine: Bool = false) {
            loop = Loop(configuration: .init(concurrency: concurrency, maxInFlightPerTenant: perTenant ?? concurrency,
                                             maxUncommitted: maxUncommitted),
                        quarantineEnabled: quarantine, owner: "test")
        }

        mutating func send(_ event: Loop.Event) {
            for action in loop.handle(event) {
                switch action {
                case .start(let job, let mode, let attempt):
                    running.append(job)
                    attempts[job.item] = attempt
                    if mode == .alone { alone.insert(job.item) }
                case .storeOffset(let tp, let next): stored[tp] = next
                case .pauseAll: paused = true
                case .resumeAll: paused = false
                case .setPaused(let parts, let p): for tp in parts { pausedAtAssign[tp] = p }
                case .exit: exited = true
                case .startGraceTimer: graceTimer = true
                case .cancelAll: cancelled = true
                case .writeMark(let tp, let mark): writes.append((tp, mark))
                case .handOver, .log, .quarantineOff: break
                }
            }
        }

        mutating func assign(_ parts: [TopicPartition] = [WorkerLoopTests.p0, WorkerLoopTests.p1]) {
            send(.assigned(parts, epochFloor: 1))
        }

        mutating func receive(_ id: String, _ tp: TopicPartition = WorkerLoopTests.p0, offset: Int64, tenant: String = "t") {
            send(.received(id, tp, offset: offset, tenant: tenant, at: clock))
        }

        /// Finishes the running check `id`.
        mutating func finish(_ id: String, published: Bool = true) {
            guard let i = running.firstIndex(where: { $0.item == id }) else {
                Issue.record("\(id) is not running")
                return
            }
            let job = running.remove(at: i)
            send(.evaluated(tenant: job.tenant))
            send(
                .finished(
                    job.partition, offset: job.offset, generation: job.generation, tenant: job.tenant, published: published,
                    alone: alone.contains(id)))
        }

        /// Checks evaluated whose delivery reports have not come.
        var awaitingDelivery: [Loop.Job] = []

        /// The running check `id` is evaluated and its result handed to the producer.
        mutating func evaluate(_ id: String) {
            guard let i = running.firstIndex(where: { $0.item == id }) else {
                Issue.record("\(id) is not running")
                return
            }
            let job = running.remove(at: i)
            awaitingDelivery.append(job)
            send(.evaluated(tenant: job.tenant))
        }

        /// The delivery report of the evaluated check `id` arrives.
        mutating func deliver(_ id: String, published: Bool = true) {
            guard let i = awaitingDelivery.firstIndex(where: { $0.item == id }) else {
                Issue.record("\(id) is not awaiting delivery")
                return
            }
            let job = awaitingDelivery.remove(at: i)
            send(.finished(job.partition, offset: job.offset, generation: job.generation, tenant: job.tenant, published: published, alone: false))
        }

        var runningIds: [String] { running.map(\.item) }

        /// A takeover of p0 (concurrency 8, quarantine on): the previous owner died with offsets
        /// 0..<10 reserved, so they are suspects here; records r0..<`records` (one tenant each)
        /// arrive and every mark is acknowledged.
        static func takeover(records: Int) -> Harness {
            var h = Harness(concurrency: 8, quarantine: true)
            h.send(.starts([.p0: PartitionStart(committed: 0, metadata: "exocheck/1 r=10", end: nil)]))
            h.assign([.p0])
            for i in 0..<records { h.receive("r\(i)", offset: Int64(i), tenant: "t\(i)") }
            h.confirmWrites()
            return h
        }

        /// The broker acknowledges every mark written so far (and those that follow).
        mutating func confirmWrites() {
            while !writes.isEmpty {
                let (tp, mark) = writes.removeFirst()
                send(.markWritten(tp, mark, failed: false, permanent: false))
            }
        }
    }

    @Test("at most `concurrency` checks in flight; the rest wait in order and start as checks finish")
    func concurrencyBound() {
        var h = Harness(concurrency: 2)
        h.assign()
        for i in 0..<5 { h.receive("r\(i)", offset: Int64(i), tenant: "t\(i)") }
        #expect(h.runningIds == ["r0", "r1"])
        #expect(h.loop.backlog.map(\.item) == ["r2", "r3", "r4"])
        h.finish("r1")
        #expect(h.runningIds == ["r0", "r2"])
        h.finish("r0")
        #expect(h.runningIds == ["r2", "r3"])
    }

    @Test("a check's slot is free once its result is handed to the producer: the next record starts before the delivery report; the offset waits for it (was: the slot was held until the broker acknowledged)")
    func slotFreedAtEnqueue() {
        var h = Harness(concurrency: 1, perTenant: 1)
        h.assign()
        h.receive("a", offset: 0)
        h.receive("b", offset: 1)
        #expect(h.runningIds == ["a"])
        h.evaluate("a")
        #expect(h.runningIds == ["b"], "b starts while a's result awaits its delivery report")
        #expect(h.stored[Self.p0] == nil, "nothing is committable before a's delivery report")
        #expect(h.loop.busy)
        h.evaluate("b")
        h.deliver("b")
        #expect(h.stored[Self.p0] == nil, "b's commit waits for a's")
        h.deliver("a")
        #expect(h.stored[Self.p0] == 2)
        #expect(!h.loop.busy)
    }

    @Test("results awaiting delivery are bounded: partitions pause at 4 × concurrency of them and resume below half (a slow broker must not let encoded results pile up)")
    func publishingBounded() {
        var h = Harness(concurrency: 1)
        h.assign()
        for i in 0..<4 {
            h.receive("r\(i)", offset: Int64(i))
            h.evaluate("r\(i)")
        }
        #expect(h.paused)
        h.deliver("r0")
        #expect(h.paused, "3 of 4 still await delivery")
        h.deliver("r1")
        h.deliver("r2")
        #expect(!h.paused)
    }

    @Test("stop waits for results awaiting their delivery reports, not only for checks being evaluated")
    func stopWaitsForDelivery() {
        var h = Harness(concurrency: 2)
        h.assign()
        h.receive("a", offset: 0)
        h.evaluate("a")
        h.send(.stop)
        #expect(!h.exited && h.graceTimer)
        h.deliver("a")
        #expect(h.exited)
        #expect(h.stored[Self.p0] == 1)
    }

    @Test("one tenant cannot take every slot: at most maxInFlightPerTenant of it run; later records of other tenants go past")
    func perTenantCap() {
        var h = Harness(concurrency: 4, perTenant: 2)
        h.assign()
        for i in 0..<6 { h.receive("a\(i)", offset: Int64(i), tenant: "flood") }
        h.receive("b0", .p1, offset: 0, tenant: "quiet")
        h.receive("b1", .p1, offset: 1, tenant: "quiet")
        #expect(h.runningIds == ["a0", "a1", "b0", "b1"])
        #expect(h.loop.inFlightByTenant == ["flood": 2, "quiet": 2])
        // A finished check of another tenant frees a slot the flood may not take.
        h.finish("b0")
        #expect(h.runningIds == ["a0", "a1", "b1"])
        h.finish("a0")
        #expect(h.runningIds == ["a1", "b1", "a2"])
        #expect(h.loop.inFlightByTenant["flood"] == 2)
    }

    @Test("the load alone never pauses: records waiting to start are `held` for the consumer's gate, which stops taking records at maxHeld (was: a pause at concurrency, and librdkafka re-fetched everything after each resume: a burst ran at about 300 checks/s)")
    func loadDoesNotPause() {
        var h = Harness(concurrency: 4)
        h.assign()
        for i in 0..<10 { h.receive("r\(i)", offset: Int64(i)) }
        #expect(!h.paused)
        #expect(h.loop.inFlight == 4 && h.loop.held == 6)
        #expect(h.loop.configuration.maxHeld == 4)
        h.finish("r0")
        #expect(h.loop.held == 5, "a finished check starts the next waiting record")
        // Past the gate (it opens anyway after maxGateWait when nothing starts): a pause at twice
        // maxHeld, a resume below maxHeld.
        for i in 10..<13 { h.receive("r\(i)", offset: Int64(i)) }
        #expect(h.loop.held == 8 && h.paused)
        for id in ["r1", "r2", "r3", "r4", "r5"] { h.finish(id) }
        #expect(h.loop.held == 3 && !h.paused)
    }

    @Test("done records behind a slow head count: partitions pause at maxUncommitted and resume once the head's commit frees them (was: only in-flight and backlog counted)")
    func completedBehindStuckHead() {
        var h = Harness(concurrency: 4, maxUncommitted: 10)
        h.assign()
        h.receive("head", offset: 0)
        // Eight fast records behind the slow head: done, yet not committable.
        for i in 1...8 {
            h.receive("r\(i)", offset: Int64(i))
            h.finish("r\(i)")
        }
        #expect(!h.paused, "only 2 in flight or waiting, 9 uncommitted")
        #expect(h.loop.uncommitted == 9)
        #expect(h.stored[.p0] == nil)
        h.receive("r9", offset: 9)
        h.finish("r9")
        #expect(h.paused, "10 records received and not committable, though only the head runs")
        h.receive("r10", offset: 10)
        h.finish("r10")
        #expect(h.paused, "still 11 held behind the head")
        #expect(h.loop.load == 1)
        h.finish("head")
        #expect(h.stored[.p0] == 11)
        #expect(!h.paused)
    }

    @Test("the age of the oldest uncommittable record: the head's arrival until its commit, then the next one's")
    func oldestUncommitted() {
        var h = Harness(concurrency: 4)
        h.assign()
        #expect(h.loop.oldestUncommittedSince == nil)
        let t0 = h.clock
        h.receive("head", offset: 0)
        h.clock = t0.advanced(by: .seconds(5))
        h.receive("r1", offset: 1)
        h.receive("other", .p1, offset: 0)
        h.finish("r1")
        #expect(h.loop.oldestUncommittedSince == t0)
        h.finish("head")
        #expect(h.loop.oldestUncommittedSince == t0.advanced(by: .seconds(5)), "p1's record is now the oldest")
        h.finish("other")
        #expect(h.loop.oldestUncommittedSince == nil)
    }

    @Test("an offset is stored only when every record before it has a published answer; an unpublished answer holds it")
    func offsetsOnlyForPublished() {
        var h = Harness(concurrency: 4)
        h.assign()
        for i in 0..<3 { h.receive("r\(i)", offset: Int64(i)) }
        h.finish("r1")
        #expect(h.stored[.p0] == nil)
        h.finish("r0", published: false)
        #expect(h.stored[.p0] == nil, "r0 has no answer: nothing from it on is committed")
        h.finish("r2")
        #expect(h.stored[.p0] == nil)
    }

    @Test("a burst of one tenant at its cap: the backlog's per-tenant counts follow every change, another tenant's record behind the burst starts at once, the burst resumes as slots free, and revocation and stop leave no count behind")
    func backlogCounts() {
        var h = Harness(concurrency: 4, perTenant: 2)
        h.assign()
        for i in 0..<200 { h.receive("a\(i)", offset: Int64(i), tenant: "a") }
        #expect(h.runningIds == ["a0", "a1"])
        #expect(h.loop.backlog.count == 198 && h.loop.backlogByTenant == ["a": 198])
        h.receive("b0", .p1, offset: 0, tenant: "b")
        #expect(h.runningIds == ["a0", "a1", "b0"], "b is below its cap: it starts past a's backlog")
        h.finish("a0")
        #expect(h.runningIds.contains("a2") && h.loop.backlogByTenant == ["a": 197])
        h.receive("b1", .p1, offset: 1, tenant: "b")
        h.receive("b2", .p1, offset: 2, tenant: "b")
        #expect(h.loop.backlogByTenant == ["a": 197, "b": 1], "b1 took the fourth slot; b2 waits")
        h.send(.revoked([.p1]))
        #expect(h.loop.backlogByTenant == ["a": 197])
        h.send(.stop)
        #expect(h.loop.backlog.isEmpty && h.loop.backlogByTenant.isEmpty)
    }

    @Test("after a revocation, completions from the older assignment store nothing and its backlog is dropped")
    func revocation() {
        var h = Harness(concurrency: 1)
        h.assign()
        h.receive("r0", offset: 0)
        h.receive("r1", offset: 1)
        #expect(h.loop.backlog.count == 1)
        h.send(.revoked([.p0]))
        #expect(h.loop.backlog.isEmpty)
        h.assign([.p0])
        h.finish("r0")
        #expect(h.stored[.p0] == nil)
        #expect(h.loop.inFlight == 0)
    }

    @Test("newly assigned partitions take the current pause state (librdkafka keeps a pause across revocation)")
    func pauseOnAssign() {
        var h = Harness(concurrency: 1, maxUncommitted: 2)
        h.assign([.p0])
        #expect(h.pausedAtAssign[.p0] == false)
        h.receive("r0", offset: 0)
        h.receive("r1", offset: 1)
        #expect(h.paused)
        h.assign([.p1])
        #expect(h.pausedAtAssign[.p1] == true)
    }

    @Test("stop runs the backlog records below a started record of their partition, so that the committed offset covers every answered record (was: dropped, the commit stopped at them and the next owner answered the later records again: WorkerFleetTests/sigterm's intermittent duplicates)")
    func stopRunsBacklogBelowStarted() {
        var h = Harness(concurrency: 4, perTenant: 1)
        h.assign()
        h.receive("a0", offset: 0, tenant: "a")
        h.receive("a1", offset: 1, tenant: "a")
        h.receive("b2", offset: 2, tenant: "b")
        h.receive("a3", offset: 3, tenant: "a")
        h.receive("c0", .p1, offset: 0, tenant: "c")
        h.receive("a4", .p1, offset: 1, tenant: "a")
        #expect(h.runningIds == ["a0", "b2", "c0"])
        h.send(.stop)
        #expect(h.loop.backlog.map(\.item) == ["a1"], "a1 is below b2, which started; a3 and a4 are above every started record of their partitions")
        #expect(h.loop.backlogByTenant == ["a": 1])
        h.finish("b2")
        h.finish("c0")
        #expect(h.stored[.p0] == nil && h.stored[.p1] == 1)
        h.finish("a0")
        #expect(h.runningIds == ["a1"], "a1 starts while stopping")
        #expect(!h.exited)
        h.finish("a1")
        #expect(h.stored[.p0] == 3, "every answered record of p0 is committed: the next owner starts at a3")
        #expect(h.exited)
        #expect(h.runningIds.isEmpty && h.loop.backlog.isEmpty)

        // The partition revoked while a kept record waits: it is dropped, and the exit still comes.
        var r = Harness(concurrency: 4, perTenant: 1)
        r.assign()
        r.receive("a0", offset: 0, tenant: "a")
        r.receive("a1", offset: 1, tenant: "a")
        r.receive("b2", offset: 2, tenant: "b")
        r.send(.stop)
        #expect(r.loop.backlog.map(\.item) == ["a1"])
        r.send(.revoked([.p0]))
        #expect(r.loop.backlog.isEmpty)
        r.finish("b2")
        #expect(!r.exited)
        r.finish("a0")
        #expect(r.exited && r.runningIds.isEmpty)

        // What started under an earlier assignment does not count: revoked and assigned again,
        // a waiting record above everything started since is dropped at stop.
        var g = Harness(concurrency: 4, perTenant: 1)
        g.assign([.p0])
        g.receive("a0", offset: 0, tenant: "a")
        g.receive("b5", offset: 5, tenant: "b")
        g.send(.revoked([.p0]))
        g.assign([.p0])
        g.receive("c1", offset: 1, tenant: "c")
        g.receive("a2", offset: 2, tenant: "a")
        #expect(g.runningIds == ["a0", "b5", "c1"], "a0 and b5 of the old assignment still run; a2 waits for a's cap")
        #expect(g.loop.backlog.map(\.item) == ["a2"])
        g.send(.stop)
        #expect(g.loop.backlog.isEmpty, "a2 is above c1, the highest started in this assignment (b5 was started in the old one)")
    }

    @Test("stop: pause, drop the backlog, exit when the checks in flight end; a grace timer; grace expiry cancels and exits")
    func stopAndGrace() {
        var h = Harness(concurrency: 1)
        h.assign()
        h.receive("r0", offset: 0)
        h.receive("r1", offset: 1)
        h.send(.stop)
        #expect(h.paused && h.graceTimer && !h.exited)
        #expect(h.loop.backlog.isEmpty)
        h.receive("late", offset: 2)
        #expect(h.runningIds == ["r0"], "nothing starts after stop")
        h.finish("r0")
        #expect(h.exited)
        #expect(h.runningIds.isEmpty)

        var g = Harness(concurrency: 1)
        g.assign()
        g.receive("r0", offset: 0)
        g.send(.stop)
        g.send(.graceExpired)
        #expect(g.cancelled && g.exited)

        var idle = Harness()
        idle.send(.stop)
        #expect(idle.exited && !idle.graceTimer)
    }

    @Test("a record delivered again within the same assignment (librdkafka re-fetches after pause and resume) runs once and does not hold the commit (was: answered twice, later records re-run by the next owner)")
    func redeliveryAfterResume() {
        var h = Harness(concurrency: 4)
        h.assign()
        h.receive("r0", offset: 0)
        h.receive("r1", offset: 1)
        h.finish("r0")
        #expect(h.stored[.p0] == 1)
        // Delivered again: the one done and committed, and the one still running.
        h.receive("r0-again", offset: 0)
        h.receive("r1-again", offset: 1)
        #expect(h.runningIds == ["r1"])
        h.finish("r1")
        #expect(h.stored[.p0] == 2)
        #expect(h.loop.uncommitted == 0)
        // After a new assignment, the same offsets are new records again.
        h.send(.revoked([.p0]))
        h.assign([.p0])
        h.receive("r1-new-owner", offset: 1)
        #expect(h.runningIds == ["r1-new-owner"])
    }

    @Test("attempt counts the deliveries of a record to this process")
    func attempts() {
        var h = Harness(concurrency: 2)
        h.assign()
        h.receive("first", offset: 0)
        #expect(h.attempts["first"] == 1)
        h.send(.revoked([.p0]))
        h.running.removeAll()
        h.assign([.p0])
        h.receive("again", offset: 0)
        #expect(h.attempts["again"] == 2)
    }

    @Test("stop waits for a takeover's suspects that are below answered records: they run alone, and the commit covers everything answered (was: the loop exited between two suspects, and the next owner answered the later records again)")
    func stopRunsSuspectsBelowAnswered() {
        var h = Harness.takeover(records: 16)
        #expect(h.runningIds.first == "r0", "the first suspect runs alone")
        #expect(Set(h.runningIds) == Set(["r0"] + (10..<16).map { "r\($0)" }), "records after the suspects run normally")
        for i in 10..<16 { h.finish("r\(i)") }
        h.send(.stop)
        var rounds = 0
        while !h.exited, rounds < 50 {
            rounds += 1
            h.confirmWrites()
            if let alone = h.runningIds.first { h.finish(alone) }
        }
        #expect(h.exited)
        #expect(h.stored[.p0] == 16, "every answered record is committed: nothing is answered again")
    }

    @Test("the quarantine turning off during stop hands its suspects back as normal records: those below an answered record still run (was: dropped, and the next owner answered the later records again)")
    func stopQuarantineOffKeepsSuspectsBelowAnswered() {
        var h = Harness.takeover(records: 16)
        for i in 10..<16 { h.finish("r\(i)") }
        h.send(.stop)
        h.finish("r0")
        // r0's clearing mark cannot be written, ever: the quarantine turns off.
        while !h.writes.isEmpty {
            let (tp, mark) = h.writes.removeFirst()
            h.send(.markWritten(tp, mark, failed: true, permanent: true))
        }
        #expect(h.runningIds == (1..<9).map { "r\($0)" }, "r1..r8 run at once (concurrency 8); r9 waits for a slot")
        #expect(!h.exited)
        for i in 1..<10 { h.finish("r\(i)") }
        #expect(h.exited)
        #expect(h.stored[.p0] == 16)
    }

    @Test("stop does not wait for suspects above everything started: they are left to the next owner")
    func stopLeavesSuspectsAboveStarted() {
        var h = Harness.takeover(records: 10)
        #expect(h.runningIds == ["r0"])
        h.send(.stop)
        h.finish("r0")
        h.confirmWrites()
        #expect(h.exited, "only r0 started: the waiting suspects are not below anything answered")
        #expect(h.stored[.p0] == 1)
    }

    @Test("with the quarantine on, records run only below a reservation the broker acknowledged")
    func quarantineReservation() {
        var h = Harness(concurrency: 2, quarantine: true)
        h.assign([.p0])
        h.receive("r0", offset: 0)
        #expect(h.runningIds.isEmpty, "held until the reservation is acknowledged")
        #expect(h.loop.load == 1)
        #expect(!h.writes.isEmpty)
        h.confirmWrites()
        #expect(h.runningIds == ["r0"])
    }
}

fileprivate extension TopicPartition {
    static let p0 = WorkerLoopTests.p0
    static let p1 = WorkerLoopTests.p1
}

@Suite struct WorkerHealthTests {
    @Test("liveness by progress: with work waiting, /healthz fails when no check finished within the window; idle never counts as stalled")
    func livenessByProgress() async throws {
        let health = WorkerHealth(livenessWindow: .milliseconds(100))
        health.set(running: true, joined: true, graphReachable: true)
        #expect(health.live && health.ready)
        try await Task.sleep(for: .milliseconds(200))
        #expect(health.live, "idle: nothing waits, so no progress is due")
        health.set(busy: true)
        #expect(health.live, "work just arrived: the window starts now")
        try await Task.sleep(for: .milliseconds(200))
        #expect(!health.live && !health.ready)
        #expect(health.details.contains("stalled=true"))
        health.progressed()
        #expect(health.live)
    }

    @Test("readiness drops while paused with nothing in flight for longer than the window, and comes back on resume")
    func pausedIdle() {
        let health = WorkerHealth()
        health.set(running: true, joined: true, graphReachable: true, busy: false, paused: true)
        #expect(health.ready, "not yet past the window")
        health.set(paused: false)
        #expect(health.ready)
    }
}

@Suite struct ShutdownDeadlineTests {
    @Test("the checks' share and the close reserve: a quarter of the grace, at most 5 s")
    func closeReserve() {
        #expect(ShutdownDeadline.closeReserve(.seconds(30)) == .seconds(5))
        #expect(ShutdownDeadline.closeReserve(.seconds(4)) == .seconds(1))
        #expect(ShutdownDeadline.closeReserve(.zero) == .zero)
    }

    @Test("the deadline is the grace after SIGTERM, and closing gets at least 2 s whatever the grace (was: grace 0 exited 75 with nothing committed)")
    func deadline() {
        let long = ShutdownDeadline(grace: .seconds(30))
        long.begin()
        let left = ContinuousClock.now.duration(to: long.deadline)
        #expect(left > .seconds(29) && left <= .seconds(30))
        let zero = ShutdownDeadline(grace: .zero)
        zero.begin()
        #expect(ContinuousClock.now.duration(to: zero.deadline) > .milliseconds(1_900))
        // Without SIGTERM (the loop ended another way): the close reserve, at least 2 s.
        #expect(ContinuousClock.now.duration(to: ShutdownDeadline(grace: .seconds(4)).deadline) > .milliseconds(1_900))
    }
}

@testable import CheckWorker
import Kafka
import Testing

/// The poison-record quarantine as a pure state machine (no broker): marks, reservations,
/// suspects one at a time, the verdict after a second death, and orderly hand-overs.
@Suite struct PoisonGuardTests {
    let tp = TopicPartition("requests", 0)
    let other = TopicPartition("requests", 1)

    /// Replays what a worker does with the actions: marks are "written" at once unless `confirm`
    /// is false, so `marks` is what the state topic would hold and `committed` what the group
    /// committed (the progress reported so far).
    struct Harness {
        var guardState = PoisonGuard<Int64>(window: 8)
        var marks: [TopicPartition: PartitionMark] = [:]
        var committed: [TopicPartition: Int64] = [:]
        var started: [Int64] = []
        var alone: [Int64] = []
        var deadLettered: [Int64] = []
        var pending: [(TopicPartition, PartitionMark)] = []
        var writes = 0
        var confirm = true

        mutating func apply(_ actions: [PoisonGuard<Int64>.Action]) {
            var queue = actions
            while !queue.isEmpty {
                switch queue.removeFirst() {
                case .run(let o): started.append(o)
                case .runAlone(let o): alone.append(o)
                case .deadLetter(let o): deadLettered.append(o)
                case .write(let tp, let mark):
                    writes += 1
                    if confirm {
                        marks[tp] = mark
                        queue += guardState.written(tp, mark)
                    } else {
                        pending.append((tp, mark))
                    }
                }
            }
        }
        mutating func confirmPending() {
            let all = pending
            pending = []
            for (tp, mark) in all {
                marks[tp] = mark
                apply(guardState.written(tp, mark))
            }
        }
        mutating func progress(_ tp: TopicPartition, _ next: Int64) {
            committed[tp] = next
            apply(guardState.progress(tp, next: next))
        }
        /// Both partitions ours, each with suspects below `reserved` from an earlier death.
        mutating func assignWithSuspects(_ partitions: [TopicPartition], reserved: Int64) {
            for p in partitions {
                _ = guardState.assign(p, start: PartitionStart(committed: 0, metadata: "exocheck/1 r=\(reserved)", end: nil))
            }
        }
        /// What the next owner reads after this one died.
        func start(_ tp: TopicPartition, end: Int64? = nil) -> PartitionStart {
            PartitionStart(committed: committed[tp], metadata: marks[tp]?.encoded, end: end)
        }
    }

    @Test func partitionMarkRoundTripsAndIgnoresForeignOrUnknownText() {
        let mark = PartitionMark(reserved: 120, suspectEnd: 80, alone: 75, poison: 70)
        #expect(mark.encoded == "exocheck/1 r=120 q=80 a=75 p=70")
        #expect(PartitionMark(decoding: mark.encoded) == mark)
        #expect(PartitionMark(decoding: "exocheck/1 clean q=9")?.clean == true)
        #expect(PartitionMark(decoding: nil) == nil)
        #expect(PartitionMark(decoding: "") == nil)
        #expect(PartitionMark(decoding: "some other tool") == nil)
        #expect(PartitionMark(decoding: "exocheck/1 " + String(repeating: "r=1 ", count: 100)) == nil)  // too long
        // Hostile or future fields are skipped, never trusted.
        let odd = PartitionMark(decoding: "exocheck/1 r=-5 q=99999999999999999999999 a=x z=4 future r=7")
        #expect(odd == PartitionMark(reserved: 7))
        // Offsets near Int64.max are refused, so `p + 1` cannot trap.
        #expect(PartitionMark(decoding: "exocheck/1 p=9223372036854775807 a=9223372036854775806") == PartitionMark())
        var g = PoisonGuard<Int64>(window: 8)
        _ = g.assign(tp, start: PartitionStart(committed: 0, metadata: "exocheck/1 p=9223372036854775807 r=4611686018427387904", end: nil))
    }

    @Test func normalRecordsStartOnlyBelowAWrittenReservation() {
        var h = Harness()
        h.confirm = false
        _ = h.guardState.assign(tp, start: PartitionStart(committed: 0, metadata: nil, end: nil))
        h.apply(h.guardState.receive(tp, offset: 0, item: 0))
        #expect(h.started.isEmpty)  // waits for r=
        #expect(h.pending.count == 1)
        #expect(h.pending.first?.1.reserved == 8)
        h.apply(h.guardState.receive(tp, offset: 1, item: 1))
        #expect(h.pending.count == 1)  // one reservation covers the window
        h.confirmPending()
        #expect(h.started == [0, 1])
        // Later records inside the window start at once; the next reservation is asked half a
        // window ahead, so a steady stream never waits.
        h.confirm = true
        for o in Int64(2)...Int64(40) { h.apply(h.guardState.receive(tp, offset: o, item: o)) }
        #expect(h.started == Array(0...40))
        #expect(h.guardState.waiting == 0)
    }

    @Test func reservationsCostOneWritePerHalfWindowNotOnePerCheck() {
        var h = Harness()
        _ = h.guardState.assign(tp, start: PartitionStart(committed: 0, metadata: nil, end: nil))
        for o in Int64(0)..<1000 { h.apply(h.guardState.receive(tp, offset: o, item: o)) }
        #expect(h.writes <= 1000 / 4 + 1)
        #expect(h.started.count == 1000)
    }

    @Test func anOrderlyHandOverLeavesNothingSuspect() {
        var h = Harness()
        _ = h.guardState.assign(tp, start: PartitionStart(committed: 10, metadata: nil, end: nil))
        for o in Int64(10)..<14 { h.apply(h.guardState.receive(tp, offset: o, item: o)) }
        h.progress(tp, 12)
        let clean = h.guardState.cleanMark(tp)
        #expect(clean == PartitionMark(clean: true, epoch: 1))
        var next = PoisonGuard<Int64>(window: 8)
        let verdict = next.assign(tp, start: PartitionStart(committed: 12, metadata: clean?.encoded, end: 100))
        #expect(verdict == .init(suspects: nil, poison: nil))
    }

    @Test func noMarkMeansNoSuspects() {
        var g = PoisonGuard<Int64>(window: 8)
        #expect(g.assign(tp, start: nil) == .init())
        #expect(g.assign(tp, start: PartitionStart(committed: 5, metadata: "", end: 50)) == .init())
        #expect(g.assign(tp, start: PartitionStart(committed: 5, metadata: "another tool's text", end: 50)) == .init())
    }

    @Test func afterADeathTheRecordsInFlightRunOneAtATimeAndInnocentsAreNotDeadLettered() {
        // Worker 1 reserves and starts records 0..<6, then dies with them in flight.
        var w1 = Harness()
        _ = w1.guardState.assign(tp, start: PartitionStart(committed: nil, metadata: nil, end: nil))
        for o in Int64(0)..<6 { w1.apply(w1.guardState.receive(tp, offset: o, item: o)) }
        #expect(w1.started == Array(0..<6))

        // Worker 2: suspects are 0..<6 (the reservation, bounded by the partition's end).
        var w2 = Harness()
        w2.marks = w1.marks
        let verdict = w2.guardState.assign(tp, start: w1.start(tp, end: 6))
        #expect(verdict == .init(suspects: 0..<6, poison: nil))
        for o in Int64(0)..<6 { w2.apply(w2.guardState.receive(tp, offset: o, item: o)) }
        #expect(w2.alone == [0])  // one at a time, after `a=0` was written
        #expect(w2.marks[tp]?.alone == 0)
        // A new record past the suspects runs next to the quarantine slot.
        w2.apply(w2.guardState.receive(tp, offset: 6, item: 6))
        #expect(w2.started == [6])
        // Suspect 0 ends and is published: its mark is cleared, then suspect 1 goes, and so on.
        for o in Int64(0)..<3 {
            w2.progress(tp, o + 1)
            w2.apply(w2.guardState.finishedAlone(tp, offset: o))
        }
        #expect(w2.alone == [0, 1, 2, 3])
        #expect(w2.deadLettered.isEmpty)
        #expect(w2.marks[tp]?.alone == 3)
        #expect(w2.marks[tp]?.suspectEnd == 6)

        // Worker 2 dies while 3 runs alone: worker 3 dead-letters 3 without running it; the
        // other suspects (4, 5 and the new record 6 that was in flight) still run one at a time.
        var w3 = Harness()
        w3.marks = w2.marks
        w3.committed = w2.committed
        let second = w3.guardState.assign(tp, start: w2.start(tp, end: 7))
        #expect(second == .init(suspects: 4..<7, poison: 3))
        for o in Int64(3)..<8 { w3.apply(w3.guardState.receive(tp, offset: o, item: o)) }
        #expect(w3.deadLettered == [3])
        #expect(w3.alone.isEmpty)  // waits until the poison record's answer is published
        #expect(w3.started == [7])  // a new record runs next to the quarantine
        #expect(w3.marks[tp]?.poison == 3)  // the verdict is kept until it is done
        w3.progress(tp, 4)
        #expect(w3.alone == [4])
        #expect(w3.marks[tp]?.poison == nil)
        for o in Int64(4)..<7 {
            w3.progress(tp, o + 1)
            w3.apply(w3.guardState.finishedAlone(tp, offset: o))
        }
        #expect(w3.alone == [4, 5, 6])
        #expect(w3.deadLettered == [3])
        #expect(w3.guardState.waiting == 0)
        #expect(w3.marks[tp]?.alone == nil)
    }

    @Test func aSuspectThatFinishedIsNotBlamedEvenIfTheCommitLags() {
        // The suspect ran alone and finished; the mark without `a=` was written; the worker dies
        // before auto-commit caught up. The next owner must not call it poison.
        var h = Harness()
        _ = h.guardState.assign(tp, start: PartitionStart(committed: 0, metadata: "exocheck/1 r=2", end: 2))
        h.apply(h.guardState.receive(tp, offset: 0, item: 0))
        h.apply(h.guardState.progress(tp, next: 1))  // not committed (h.committed stays empty)
        h.apply(h.guardState.finishedAlone(tp, offset: 0))
        #expect(h.marks[tp]?.alone == nil)
        var next = PoisonGuard<Int64>(window: 8)
        #expect(next.assign(tp, start: PartitionStart(committed: 0, metadata: h.marks[tp]?.encoded, end: 2)).poison == nil)
    }

    @Test func theSlotIsFreeOnlyOnceTheClearedMarkIsWritten() {
        var h = Harness()
        _ = h.guardState.assign(tp, start: PartitionStart(committed: 0, metadata: "exocheck/1 r=2", end: nil))
        h.apply(h.guardState.receive(tp, offset: 0, item: 0))
        h.apply(h.guardState.receive(tp, offset: 1, item: 1))
        h.progress(tp, 1)
        h.confirm = false
        h.apply(h.guardState.finishedAlone(tp, offset: 0))
        #expect(h.alone == [0])
        h.confirmPending()  // the mark without a=0 is written…
        #expect(h.alone == [0])  // …then a=1 is asked for
        h.confirmPending()
        #expect(h.alone == [0, 1])
    }

    @Test func aKnownPoisonRecordIsNotRunEvenIfTheOwnerDiesBeforeDeadLetteringIt() {
        var h = Harness()
        _ = h.guardState.assign(tp, start: PartitionStart(committed: 3, metadata: "exocheck/1 r=10 a=3", end: nil))
        h.apply(h.guardState.receive(tp, offset: 3, item: 3))
        #expect(h.deadLettered == [3])
        h.apply(h.guardState.receive(tp, offset: 10, item: 10))  // a normal record: its reservation carries p=3
        #expect(h.marks[tp]?.poison == 3)
        // The next owner after a death (or an orderly hand-over) still knows.
        var next = PoisonGuard<Int64>(window: 8)
        #expect(next.assign(tp, start: PartitionStart(committed: 3, metadata: h.marks[tp]?.encoded, end: nil)).poison == 3)
        var afterClean = PoisonGuard<Int64>(window: 8)
        #expect(afterClean.assign(tp, start: PartitionStart(committed: 3, metadata: h.guardState.cleanMark(tp)?.encoded, end: nil)).poison == 3)
    }

    @Test func anOrderlyRevocationWhileASuspectRunsDoesNotMakeItPoison() {
        var h = Harness()
        _ = h.guardState.assign(tp, start: PartitionStart(committed: 0, metadata: "exocheck/1 r=2", end: nil))
        h.apply(h.guardState.receive(tp, offset: 0, item: 0))
        #expect(h.alone == [0])
        let clean = h.guardState.cleanMark(tp)
        #expect(clean == PartitionMark(clean: true, epoch: 1, suspectEnd: 2))
        var next = PoisonGuard<Int64>(window: 8)
        #expect(next.assign(tp, start: PartitionStart(committed: 0, metadata: clean?.encoded, end: nil)) == .init(suspects: 0..<2, poison: nil))
    }

    @Test func theQuarantineSlotIsWorkerWideAcrossPartitions() {
        var h = Harness()
        h.assignWithSuspects([tp, other], reserved: 2)
        h.apply(h.guardState.receive(tp, offset: 0, item: 100))
        h.apply(h.guardState.receive(other, offset: 0, item: 200))
        #expect(h.alone == [100])
        #expect(h.guardState.suspectCount == 1)
        h.apply(h.guardState.finishedAlone(tp, offset: 0))
        #expect(h.alone == [100, 200])
        // The slot waits for a suspect's own partition to reach it.
        h.apply(h.guardState.receive(tp, offset: 1, item: 101))
        h.apply(h.guardState.finishedAlone(other, offset: 0))
        #expect(h.alone == [100, 200])  // 101 waits: 100's answer is not published yet
        h.progress(tp, 1)
        #expect(h.alone == [100, 200, 101])
    }

    @Test func aFailedWriteIsRetriedAtTheNextTick() {
        var h = Harness()
        h.confirm = false
        _ = h.guardState.assign(tp, start: PartitionStart(committed: 0, metadata: "exocheck/1 r=3", end: nil))
        h.apply(h.guardState.receive(tp, offset: 0, item: 0))
        #expect(h.alone.isEmpty)
        h.pending = []  // lost
        h.guardState.writeFailed(tp, PartitionMark(epoch: 1))
        h.apply(h.guardState.tick())
        #expect(h.pending.first?.1.alone == 0)
        h.confirmPending()
        #expect(h.alone == [0])
    }

    @Test func offsetsThatAreNotRecordsDoNotBlockTheQuarantine() {
        // Committed 10, but 10 and 11 no longer exist (retention, compaction, transaction
        // markers): the first suspect that arrives is 12, and it must still run.
        var h = Harness()
        _ = h.guardState.assign(tp, start: PartitionStart(committed: 10, metadata: "exocheck/1 r=20", end: 20))
        h.apply(h.guardState.receive(tp, offset: 12, item: 12))
        #expect(h.alone == [12])
        h.apply(h.guardState.receive(tp, offset: 15, item: 15))
        h.progress(tp, 13)
        h.apply(h.guardState.finishedAlone(tp, offset: 12))
        #expect(h.alone == [12, 15])
        // A poison record whose offset is gone does not block the others.
        var g = Harness()
        _ = g.guardState.assign(tp, start: PartitionStart(committed: 3, metadata: "exocheck/1 r=9 a=3", end: 9))
        g.apply(g.guardState.receive(tp, offset: 5, item: 5))
        #expect(g.alone == [5])
    }

    @Test func suspectsAreBoundedByThePartitionsEndAndRevocationFreesAWaitingSlot() {
        var g = PoisonGuard<Int64>(window: 8)
        #expect(g.assign(tp, start: PartitionStart(committed: 10, metadata: "exocheck/1 r=138", end: 12)).suspects == 10..<12)
        _ = g.receive(tp, offset: 10, item: 10)
        _ = g.receive(tp, offset: 11, item: 11)
        #expect(g.slot?.offset == 10)
        _ = g.revoke(tp)
        #expect(g.slot == nil)
        #expect(g.waiting == 0)
    }

    @Test func aRunningSuspectOfARevokedPartitionKeepsTheSlotUntilItEnds() {
        var h = Harness()
        h.assignWithSuspects([tp, other], reserved: 1)
        h.apply(h.guardState.receive(tp, offset: 0, item: 100))
        h.apply(h.guardState.receive(other, offset: 0, item: 200))
        h.apply(h.guardState.revoke(tp))
        #expect(h.alone == [100])
        h.apply(h.guardState.tick())
        #expect(h.alone == [100])
        h.apply(h.guardState.finishedAlone(tp, offset: 0))
        #expect(h.alone == [100, 200])
    }

    @Test func whenMarksCannotBeWrittenEverythingRunsAsUsual() {
        var h = Harness()
        h.confirm = false
        _ = h.guardState.assign(tp, start: PartitionStart(committed: 0, metadata: "exocheck/1 r=3", end: nil))
        h.apply(h.guardState.receive(tp, offset: 0, item: 0))
        h.apply(h.guardState.receive(tp, offset: 1, item: 1))
        h.apply(h.guardState.receive(tp, offset: 5, item: 5))
        #expect(h.started.isEmpty && h.alone.isEmpty)
        h.apply(h.guardState.disable())
        #expect(Set(h.started) == [0, 1, 5])
        h.apply(h.guardState.receive(tp, offset: 6, item: 6))
        #expect(h.started.last == 6)
        #expect(h.guardState.waiting == 0)
        var off = PoisonGuard<Int64>(window: 8, enabled: false)
        // Off: no suspects, but a verdict stands (a known poison record is never run).
        #expect(off.assign(tp, start: PartitionStart(committed: 0, metadata: "exocheck/1 r=3 a=0", end: nil)) == .init(suspects: nil, poison: 0))
    }
    @Test func theCurrentMarkIsTheNewestEpochThenCleanThenTheHighestSequence() {
        let m = { (text: String) in PartitionMark(decoding: text)! }
        // Stored out of order: sequence 3 before 2; a previous owner's late write after the new
        // owner's; a clean mark followed by a write that raced it.
        #expect(PartitionMark.latest([m("exocheck/1 e=1 s=3 r=30"), m("exocheck/1 e=1 s=2 r=20")]) == m("exocheck/1 e=1 s=3 r=30"))
        #expect(PartitionMark.latest([m("exocheck/1 e=2 s=1 r=8"), m("exocheck/1 e=1 s=9 r=90 a=5")]) == m("exocheck/1 e=2 s=1 r=8"))
        #expect(PartitionMark.latest([m("exocheck/1 clean e=1"), m("exocheck/1 e=1 s=7 a=4")])?.clean == true)
        #expect(PartitionMark.latest([m("exocheck/1 r=5")]) == m("exocheck/1 r=5"))  // no epoch: 0
        #expect(PartitionMark.latest([]) == nil)
    }

    @Test func aNewOwnerWritesANewerEpochThanTheMarkItFound() {
        var h = Harness()
        _ = h.guardState.assign(tp, start: PartitionStart(committed: 0, metadata: "exocheck/1 clean e=4", end: nil))
        h.apply(h.guardState.receive(tp, offset: 0, item: 0))
        #expect(h.marks[tp]?.epoch == 5)
        #expect(h.guardState.cleanMark(tp)?.epoch == 5)
        // Never an epoch this worker used before, and at least the floor (the worker's clock).
        _ = h.guardState.assign(other, start: PartitionStart(committed: 0, metadata: "exocheck/1 clean e=2", end: nil))
        #expect(h.guardState.cleanMark(other)?.epoch == 6)
        _ = h.guardState.assign(other, start: nil, epochFloor: 1_800_000_000_000)
        #expect(h.guardState.cleanMark(other)?.epoch == 1_800_000_000_000)
    }

    @Test func revokingTheSlotsPartitionGivesTheSlotToAnotherPartition() {
        var h = Harness()
        h.confirm = false
        h.assignWithSuspects([tp, other], reserved: 2)
        h.apply(h.guardState.receive(tp, offset: 0, item: 100))  // the slot: a=0 asked for
        h.apply(h.guardState.receive(other, offset: 0, item: 200))  // waits
        h.apply(h.guardState.revoke(tp))
        h.confirmPending()  // tp's write is ignored (not ours any more); other's a=0 is written
        #expect(h.alone == [200])
    }

    @Test func anAcknowledgementFromAnEarlierAssignmentIsIgnored() {
        var h = Harness()
        h.confirm = false
        _ = h.guardState.assign(tp, start: PartitionStart(committed: 0, metadata: nil, end: nil))
        h.apply(h.guardState.receive(tp, offset: 0, item: 0))  // r=8, unacknowledged
        let stale = h.pending
        h.pending = []
        _ = h.guardState.revoke(tp)
        _ = h.guardState.assign(tp, start: PartitionStart(committed: 0, metadata: "exocheck/1 r=2", end: 2))
        h.apply(h.guardState.receive(tp, offset: 0, item: 0))  // a=0 asked for, in a new epoch
        for (t, mark) in stale { h.apply(h.guardState.written(t, mark)) }
        #expect(h.alone.isEmpty)  // a=0 is not written yet
        h.apply(h.guardState.receive(tp, offset: 2, item: 2))
        #expect(h.started.isEmpty)  // r=8 belonged to the earlier assignment
    }

    @Test func aKnownPoisonRecordIsNeverRunEvenWithTheQuarantineOff() {
        var h = Harness()
        _ = h.guardState.assign(tp, start: PartitionStart(committed: 3, metadata: "exocheck/1 r=10 a=3", end: 10))
        h.apply(h.guardState.disable())
        h.apply(h.guardState.receive(tp, offset: 3, item: 3))
        #expect(h.deadLettered == [3])
        h.apply(h.guardState.receive(tp, offset: 4, item: 4))
        #expect(h.started == [4])
        var off = PoisonGuard<Int64>(window: 8, enabled: false)
        #expect(off.assign(tp, start: PartitionStart(committed: 3, metadata: "exocheck/1 p=3", end: nil)).poison == 3)
        #expect(off.receive(tp, offset: 3, item: 3).count == 1)
    }

    @Test func suspectsDoNotCountAsWaitingForThePause() {
        var g = PoisonGuard<Int64>(window: 8)
        _ = g.assign(tp, start: PartitionStart(committed: 0, metadata: "exocheck/1 r=100", end: 100))
        for o in Int64(0)..<50 { _ = g.receive(tp, offset: o, item: o) }
        #expect(g.waiting == 0)
        #expect(g.suspectCount == 50)
    }
    @Test func aProcessThatGetsItsOwnPartitionBackDidNotDie() {
        // Lost (session timeout, broker outage) and assigned again to the same process: its own
        // unclean mark is not a death; another process's is.
        var h = Harness()
        h.guardState = PoisonGuard<Int64>(window: 8, owner: "abc123")
        _ = h.guardState.assign(tp, start: PartitionStart(committed: 0, metadata: nil, end: nil))
        for o in Int64(0)..<4 { h.apply(h.guardState.receive(tp, offset: o, item: o)) }
        #expect(h.marks[tp]?.owner == "abc123")
        _ = h.guardState.revoke(tp)
        #expect(h.guardState.assign(tp, start: h.start(tp, end: 4)) == .init())
        var stranger = PoisonGuard<Int64>(window: 8, owner: "def456")
        #expect(stranger.assign(tp, start: h.start(tp, end: 4)).suspects == 0..<4)
        #expect(PartitionMark(decoding: "exocheck/1 o=a;b r=3")?.owner == nil)
    }
}

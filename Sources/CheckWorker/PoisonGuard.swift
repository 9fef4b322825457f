import Kafka

/// What a worker writes about a partition of the requests topic in the state topic: enough for
/// the next owner to tell an orderly hand-over from a death, and which records were in flight.
///
/// Encoded as `exocheck/1` followed by space-separated fields (unknown fields are ignored, so a
/// newer worker may add some):
/// - `clean`: written on an orderly revocation or shutdown; without it, the owner died.
/// - `r=N` (reserved): the owner may have started records below N. Written before it starts them.
/// - `q=N` (suspects): records from the committed offset up to N were in flight during an earlier
///   death and still have to run one at a time.
/// - `a=N` (alone): record N is running alone in the quarantine slot.
/// - `p=N` (poison): record N was in flight during two deaths; the owner must dead-letter it.
/// - `e=N` (epoch): one more than the epoch of the mark the owner found when it was assigned the
///   partition; `s=N` (sequence): the owner's write counter. Marks can be stored out of order (a
///   previous owner's late write, two writes racing), so the current mark is not the last record
///   but the one `latest(_:)` picks.
public struct PartitionMark: Equatable, Sendable {
    /// `clean`: the owner gave the partition up in order (revocation or shutdown).
    public var clean = false
    /// `o=`: the writing worker process (a random token): a process that gets a partition back
    /// after losing it (session timeout, broker outage) did not die.
    public var owner: String?
    /// `e=`: the epoch of the ownership that wrote the mark; the highest is current (`latest`).
    public var epoch: Int64?
    /// `s=`: the owner's write counter within its epoch; the highest is current.
    public var sequence: Int64?
    /// `r=`: the owner may have started records below this offset.
    public var reserved: Int64?
    /// `q=`: records from the committed offset up to, not including, this offset are suspects.
    public var suspectEnd: Int64?
    /// `a=`: the offset of the record running alone in the quarantine slot.
    public var alone: Int64?
    /// `p=`: the offset of the record in flight during two deaths, to be dead-lettered unrun.
    public var poison: Int64?

    /// The first field of every mark (format and version); text without it is not a mark.
    public static let prefix = "exocheck/1"
    /// The largest offset a mark may name (2^62).
    public static let maxOffset: Int64 = 1 << 62

    /// A mark with these fields; nil fields are left out of `encoded`.
    public init(
        clean: Bool = false, owner: String? = nil, epoch: Int64? = nil, sequence: Int64? = nil, reserved: Int64? = nil,
        suspectEnd: Int64? = nil, alone: Int64? = nil, poison: Int64? = nil
    ) {
        self.clean = clean
        self.owner = owner
        self.epoch = epoch
        self.sequence = sequence
        self.reserved = reserved
        self.suspectEnd = suspectEnd
        self.alone = alone
        self.poison = poison
    }

    /// The mark as stored in the state topic: `prefix`, then the fields that are set,
    /// space-separated.
    public var encoded: String {
        var fields = [Self.prefix]
        if clean { fields.append("clean") }
        if let owner { fields.append("o=\(owner)") }
        if let epoch { fields.append("e=\(epoch)") }
        if let sequence { fields.append("s=\(sequence)") }
        if let reserved { fields.append("r=\(reserved)") }
        if let suspectEnd { fields.append("q=\(suspectEnd)") }
        if let alone { fields.append("a=\(alone)") }
        if let poison { fields.append("p=\(poison)") }
        return fields.joined(separator: " ")
    }

    /// nil for metadata that is not exocheck's (none, another tool's, or too long to be ours).
    public init?(decoding text: String?) {
        guard let text, text.utf8.count <= 256 else { return nil }
        let fields = text.split(separator: " ")
        guard fields.first == Substring(Self.prefix) else { return nil }
        for field in fields.dropFirst() {
            if field == "clean" { clean = true; continue }
            if field.hasPrefix("o="), field.count <= 34, field.dropFirst(2).allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) {
                owner = String(field.dropFirst(2))
                continue
            }
            // Offsets stay far below Int64.max, so arithmetic on them (`+ 1`, `+ window`) cannot
            // trap whatever a mark says.
            guard field.count > 2, field.dropFirst().first == "=", let value = Int64(field.dropFirst(2)),
                value >= 0, value <= Self.maxOffset
            else { continue }
            switch field.first {
            case "r": reserved = value
            case "q": suspectEnd = value
            case "a": alone = value
            case "p": poison = value
            case "e": epoch = value
            case "s": sequence = value
            default: continue
            }
        }
    }

    /// The current mark among a key's stored marks (in storage order): the highest epoch; within
    /// it, a clean mark (the owner's last word), else the highest sequence, else the last stored.
    public static func latest(_ marks: [PartitionMark]) -> PartitionMark? {
        guard let epoch = marks.map({ $0.epoch ?? 0 }).max() else { return nil }
        let current = marks.filter { ($0.epoch ?? 0) == epoch }
        if let clean = current.last(where: \.clean) { return clean }
        let top = current.map { $0.sequence ?? 0 }.max() ?? 0
        return current.last { ($0.sequence ?? 0) == top }
    }
}

/// The poison-record quarantine of one worker, as a pure state machine: records in, actions out.
///
/// Normal records start only below the partition's *confirmed reservation*: before it starts
/// records past it, the worker writes (asynchronously) a mark `r=` a window ahead, so the group
/// always knows which records a worker may have had in flight. With a window of twice the
/// concurrency that costs one small write per `window/2` records, never a synchronous round trip
/// per check.
///
/// A new owner reads the last mark (`assign`). After an orderly hand-over nothing is suspect.
/// After a death, every record from the committed offset up to the reservation (bounded by the
/// partition's end) is a *suspect*: suspects run one at a time, worker-wide, in the *quarantine
/// slot*, each only after a mark `a=` naming it has been written; normal records go on next to
/// it. When it ends, a mark without `a=` is written before the slot takes the next suspect. If
/// the worker dies while a suspect runs alone, the next owner finds `a=` naming a record that is
/// not committed yet: it was in flight during two deaths and is dead-lettered (`p=` keeps that
/// verdict until it is done) instead of being run a third time. Suspects that finish are innocent
/// and are never dead-lettered.
///
/// Limits of the proof: the reservation covers records that were fetched but not started, and a
/// suspect running alone shares the process with normal records; so an innocent suspect can be
/// dead-lettered only when two different records each killed a worker (the first time while the
/// suspect was in flight, the second time while it ran alone).
struct PoisonGuard<Item> {
    enum Action {
        /// Run as usual (subject to the worker's concurrency).
        case run(Item)
        /// Run now, alone in the quarantine slot; report its end with `finishedAlone`.
        case runAlone(Item)
        /// Do not run: answer UNKNOWN and dead-letter it (it was in flight during two deaths).
        case deadLetter(Item)
        /// Write this mark for the partition (asynchronously); report the outcome with
        /// `written` or `writeFailed`, quoting the mark.
        case write(TopicPartition, PartitionMark)
    }

    /// What `assign` found, for the log.
    struct Verdict: Equatable {
        var suspects: Range<Int64>?
        var poison: Int64?
    }

    struct Partition {
        /// The next offset after everything received and done (from the offset tracker).
        var next: Int64?
        var requested: Int64 = 0
        var reserved: Int64 = 0
        var suspectEnd: Int64 = 0
        var poison: Int64?
        /// Suspects and the poison record received and not yet behind `next`, in offset order.
        var quarantined: [Int64] = []
        var held: [(offset: Int64, item: Item)] = []
        var epoch: Int64 = 1
        var sequence: Int64 = 0
        var dirty = false
    }

    struct Slot {
        enum Phase { case marking(Item), running, clearing }
        var partition: TopicPartition
        var offset: Int64
        var phase: Phase
        /// The write that must be confirmed to leave `marking` or `clearing`.
        var sequence: Int64
    }

    let window: Int64
    private(set) var enabled: Bool
    private(set) var partitions: [TopicPartition: Partition] = [:]
    private var suspects: [(partition: TopicPartition, offset: Int64, item: Item)] = []
    private(set) var slot: Slot?
    private var lastEpoch: Int64 = 0
    /// Partitions whose hand-over mark (`cleanMark`) may have changed since `drainChanged`.
    private var changed: Set<TopicPartition> = []

    /// This worker process's token in its marks.
    let owner: String?

    init(window: Int64, enabled: Bool = true, owner: String? = nil) {
        self.window = max(2, window)
        self.enabled = enabled
        self.owner = owner
    }

    /// Normal records waiting for their reservation (suspects are counted by `suspectCount`:
    /// they wait for the slot, and must not pause the partitions whose records can run).
    var waiting: Int { partitions.values.reduce(0) { $0 + $1.held.count } }
    var suspectCount: Int { suspects.count + (slot.map { if case .marking = $0.phase { 1 } else { 0 } } ?? 0) }

    /// Whether a suspect still waits (for the slot, or in it for its mark) below
    /// `limits[partition]`: stopping waits for those (WorkerLoop), since records above them were
    /// answered and the commit cannot pass a suspect without an answer.
    func hasSuspect(below limits: [TopicPartition: Int64]) -> Bool {
        if let s = slot, case .marking = s.phase, s.offset < (limits[s.partition] ?? -1) { return true }
        return suspects.contains { $0.offset < (limits[$0.partition] ?? -1) }
    }

    /// The partition whose suspect runs alone right now, if any.
    var runningAlone: TopicPartition? {
        guard let s = slot, case .running = s.phase else { return nil }
        return s.partition
    }

    /// A partition is ours, starting from what the group knows of it: the committed offset,
    /// the partition's end and the last mark (`start.metadata`).
    ///
    /// The epoch of this ownership is above the mark's, above every epoch this worker used, and
    /// at least `epochFloor` (the worker passes the time in milliseconds, so that an owner that
    /// could not see its predecessor's last marks still writes a newer epoch).
    mutating func assign(_ tp: TopicPartition, start: PartitionStart?, epochFloor: Int64 = 0) -> Verdict {
        var state = Partition()
        var verdict = Verdict()
        let committed = start?.committed ?? 0
        state.next = start?.committed
        let mark = PartitionMark(decoding: start?.metadata)
        lastEpoch = min(PartitionMark.maxOffset, max(Self.plus(mark?.epoch ?? 0, 1), Self.plus(lastEpoch, 1), epochFloor))
        state.epoch = lastEpoch
        if let mark {
            // Our own mark: this process lost the partition and got it back; nobody died.
            let clean = mark.clean || (owner != nil && mark.owner == owner)
            // A verdict stands even when the quarantine is off: a known poison record never runs.
            if let p = mark.poison, p >= committed {
                state.poison = p
            } else if !clean, let a = mark.alone, a >= committed {
                state.poison = a
            }
            verdict.poison = state.poison
            if enabled {
                var end = mark.suspectEnd ?? 0
                if !clean { end = max(end, mark.reserved ?? 0) }
                if let last = start?.end { end = min(end, last) }
                if let p = state.poison, end <= p { end = Self.plus(p, 1) }
                state.suspectEnd = end
                let from = state.poison.map { max(committed, Self.plus($0, 1)) } ?? committed
                if end > from { verdict.suspects = from..<end }
            }
        }
        partitions[tp] = state
        changed.insert(tp)
        return verdict
    }

    /// The partitions whose `cleanMark` may differ from the last time this was called.
    mutating func drainChanged() -> Set<TopicPartition> {
        defer { changed.removeAll(keepingCapacity: true) }
        return changed
    }

    /// The partition is no longer ours: forget it and what waits for it. A suspect of it that
    /// runs keeps the slot until it ends (it still runs in this process); otherwise the slot goes
    /// to another partition's suspect.
    mutating func revoke(_ tp: TopicPartition) -> [Action] {
        partitions[tp] = nil
        suspects.removeAll { $0.partition == tp }
        if let s = slot, s.partition == tp {
            switch s.phase {
            case .marking, .clearing: slot = nil
            case .running: break
            }
        }
        return schedule()
    }

    /// A record was fetched.
    mutating func receive(_ tp: TopicPartition, offset: Int64, item: Item) -> [Action] {
        guard enabled else { return offset == partitions[tp]?.poison ? [.deadLetter(item)] : [.run(item)] }
        if partitions[tp] == nil { _ = assign(tp, start: nil) }  // a record before its assignment: nothing known
        guard var state = partitions[tp] else { return [] }
        if state.next == nil {
            state.next = offset
            changed.insert(tp)
        }
        if offset == state.poison {
            state.quarantined.append(offset)
            partitions[tp] = state
            return [.deadLetter(item)]
        }
        if offset < state.suspectEnd {
            state.quarantined.append(offset)
            partitions[tp] = state
            suspects.append((tp, offset, item))
            return schedule()
        }
        var actions: [Action] = []
        if offset < state.reserved {
            actions.append(.run(item))
        } else {
            state.held.append((offset, item))
        }
        let ask = Self.plus(offset, window / 2) >= state.requested
        if ask { state.requested = Self.plus(offset, window) }
        partitions[tp] = state
        if ask { actions.append(write(tp)) }
        return actions
    }

    /// Everything received below `next` is done on this partition (results published).
    mutating func progress(_ tp: TopicPartition, next: Int64) -> [Action] {
        guard var state = partitions[tp] else { return [] }
        if let current = state.next, next <= current { return [] }
        state.next = next
        changed.insert(tp)
        if let p = state.poison, next > p { state.poison = nil }
        if let done = state.quarantined.firstIndex(where: { $0 >= next }) {
            state.quarantined.removeFirst(done)
        } else {
            state.quarantined.removeAll()
        }
        partitions[tp] = state
        return schedule()
    }

    /// The suspect that ran alone has ended (published or not): a mark without `a=` is written,
    /// and the slot is free once it is confirmed.
    mutating func finishedAlone(_ tp: TopicPartition, offset: Int64) -> [Action] {
        guard var s = slot, s.partition == tp, s.offset == offset, case .running = s.phase else { return [] }
        guard partitions[tp] != nil else {
            slot = nil  // revoked meanwhile: the next owner writes its own marks
            return schedule()
        }
        s.phase = .clearing
        slot = s
        return [slotWrite(tp)]
    }

    /// A mark was written (as in its `.write` action). Acknowledgements of an earlier
    /// assignment of the partition (another epoch) are ignored.
    mutating func written(_ tp: TopicPartition, _ mark: PartitionMark) -> [Action] {
        guard var state = partitions[tp], mark.epoch == state.epoch else { return [] }
        let sequence = mark.sequence ?? 0
        var actions: [Action] = []
        if let r = mark.reserved, r > state.reserved {
            state.reserved = r
            var still: [(offset: Int64, item: Item)] = []
            for h in state.held {
                if h.offset < r { actions.append(.run(h.item)) } else { still.append(h) }
            }
            state.held = still
        }
        partitions[tp] = state
        if let s = slot, s.partition == tp, sequence >= s.sequence {
            switch s.phase {
            case .marking(let item):
                slot?.phase = .running
                actions.append(.runAlone(item))
            case .clearing:
                slot = nil
                actions += schedule()
            case .running:
                break
            }
        }
        return actions
    }

    /// A write failed: the partition's mark is written again at the next `tick`.
    mutating func writeFailed(_ tp: TopicPartition, _ mark: PartitionMark) {
        guard partitions[tp]?.epoch == mark.epoch else { return }
        partitions[tp]?.dirty = true
    }

    /// Writes again the marks whose writes failed.
    mutating func tick() -> [Action] {
        var actions: [Action] = []
        for tp in partitions.keys where partitions[tp]?.dirty == true {
            actions.append(slotWrite(tp))
        }
        return actions
    }

    /// The quarantine cannot work (its marks cannot be written): everything waiting runs as usual,
    /// except a known poison record, which is still dead-lettered when it arrives.
    mutating func disable() -> [Action] {
        guard enabled else { return [] }
        enabled = false
        var actions: [Action] = suspects.map { .run($0.item) }
        suspects = []
        if let s = slot, case .marking(let item) = s.phase { actions.append(.run(item)) }
        slot = nil
        for tp in partitions.keys {
            actions += partitions[tp]?.held.map { .run($0.item) } ?? []
            partitions[tp]?.held = []
        }
        return actions
    }

    /// `a + b` for offsets from the broker or a mark, saturating instead of trapping.
    static func plus(_ a: Int64, _ b: Int64) -> Int64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? Int64.max : sum
    }

    /// A new write of the partition's mark that the slot, when it waits on this partition
    /// (`marking` or `clearing`), must see acknowledged before it moves on.
    private mutating func slotWrite(_ tp: TopicPartition) -> Action {
        let action = write(tp)
        if case .write(_, let mark) = action, let s = slot, s.partition == tp {
            switch s.phase {
            case .marking, .clearing: slot?.sequence = mark.sequence ?? 0
            case .running: break
            }
        }
        return action
    }

    /// The mark that describes the partition now (a new write).
    private mutating func write(_ tp: TopicPartition) -> Action {
        partitions[tp]?.sequence += 1
        partitions[tp]?.dirty = false
        let state = partitions[tp] ?? Partition()
        let next = state.next ?? 0
        var alone: Int64? = nil
        if let s = slot, s.partition == tp {
            switch s.phase {
            case .marking, .running: alone = s.offset
            case .clearing: alone = nil
            }
        }
        let mark = PartitionMark(
            owner: owner, epoch: state.epoch, sequence: state.sequence, reserved: state.requested > 0 ? state.requested : nil,
            suspectEnd: state.suspectEnd > next ? state.suspectEnd : nil, alone: alone, poison: state.poison)
        return .write(tp, mark)
    }

    /// The mark for an orderly hand-over: suspects still to quarantine and a known poison record
    /// travel on; what was in flight here is not suspect (nobody died).
    func cleanMark(_ tp: TopicPartition) -> PartitionMark? {
        guard let state = partitions[tp] else { return nil }
        let next = state.next ?? 0
        return PartitionMark(clean: true, owner: owner, epoch: state.epoch, suspectEnd: state.suspectEnd > next ? state.suspectEnd : nil, poison: state.poison)
    }

    /// Starts the next suspect whose partition has reached it (every record received before it
    /// is done), when the slot is free.
    private mutating func schedule() -> [Action] {
        guard slot == nil else { return [] }
        guard
            let index = suspects.firstIndex(where: { s in
                guard let state = partitions[s.partition] else { return false }
                let next = state.next ?? s.offset
                return next >= s.offset || state.quarantined.first(where: { $0 >= next }) == s.offset
            })
        else { return [] }
        let s = suspects.remove(at: index)
        slot = Slot(partition: s.partition, offset: s.offset, phase: .marking(s.item), sequence: 0)
        return [slotWrite(s.partition)]
    }
}

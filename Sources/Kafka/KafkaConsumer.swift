import CRdKafka
import Foundation
import Synchronization

/// A consumed record, copied out of librdkafka (the C message is destroyed at once).
public struct KafkaMessage: Sendable {
    /// Topic the record was read from.
    public var topic: String
    /// Partition the record was read from.
    public var partition: Int32
    /// Offset of the record in its partition (pass `offset + 1` to `store(_:offset:)` once done with it).
    public var offset: Int64
    /// Record key; nil when the record has none.
    public var key: [UInt8]?
    /// Record payload; empty when the payload is null.
    public var value: [UInt8]
    /// Record headers in their order in the record (repeated keys kept).
    public var headers: [KafkaHeader]
    /// Milliseconds since the epoch, when the record has a timestamp.
    public var timestamp: Int64?

    /// A record with these fields (for tools and tests that build records to read back).
    public init(
        topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader], timestamp: Int64?
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
    }

    /// The record's topic and partition.
    public var topicPartition: TopicPartition { TopicPartition(topic, partition) }
    /// The key decoded as UTF-8 (invalid bytes replaced); nil without a key.
    public var keyString: String? { key.map { String(decoding: $0, as: UTF8.self) } }
    /// The value of the last header named `name`, decoded as UTF-8; nil when there is none or its
    /// value is null.
    public func header(_ name: String) -> String? { headers.last { $0.name == name }?.stringValue }
}

/// What the consumer's poll loop reports, in order.
public enum KafkaConsumerEvent: Sendable {
    /// A record read from an assigned partition.
    case message(KafkaMessage)
    /// Partitions added to this member (the whole assignment with the eager protocol).
    case assigned([TopicPartition])
    /// Partitions taken away in an orderly rebalance: stop working on them, do not commit for
    /// unfinished work.
    case revoked([TopicPartition])
    /// Partitions lost (session timeout, fenced): another member may already own them.
    case lost([TopicPartition])
    /// With rebalance hooks only, just before `.assigned`: where each new partition starts,
    /// as completed by `RebalanceHooks.onAssign`.
    case starts([TopicPartition: PartitionStart])
    /// An error from librdkafka's error callback or from consuming.
    case error(KafkaError)
    /// The reader reached the end of a partition (only with `enable.partition.eof=true`, which
    /// tools that read a topic to its end set): the last offset may be a transaction marker or
    /// deleted, so waiting for it is no way to know the end was reached.
    case partitionEnd(TopicPartition)
}

/// What is known about a partition when it is assigned: its committed offset (nil when nothing
/// was committed or it could not be read), its end offset (nil if unknown), and whatever the
/// application adds (`metadata`).
public struct PartitionStart: Sendable, Equatable {
    /// The group's committed offset (the next record to read); nil when nothing was committed or it
    /// could not be read.
    public var committed: Int64?
    /// What the application attached in `RebalanceHooks.onAssign`; the consumer itself leaves it nil.
    public var metadata: String?
    /// The partition's end offset (the offset of its next record) at assignment; nil when unknown.
    public var end: Int64?
    /// Builds a start from its committed offset, metadata and end offset.
    public init(committed: Int64?, metadata: String?, end: Int64?) {
        self.committed = committed
        self.metadata = metadata
        self.end = end
    }
}

/// The application's part in a rebalance, run on the consumer's poll thread inside librdkafka's
/// rebalance callback (so they may block: heartbeats run on librdkafka's own threads).
public struct RebalanceHooks: Sendable {
    /// Before partitions are assigned: receives their committed offsets and end offsets and
    /// returns them completed with what the application knows (`metadata`); the result arrives
    /// as a `.starts` event just before `.assigned`.
    public var onAssign: @Sendable ([TopicPartition: PartitionStart]) -> [TopicPartition: PartitionStart]
    /// On an orderly revocation (and on close), before the partitions go. Not called when they
    /// are lost.
    public var onRevoke: @Sendable ([TopicPartition]) -> Void
    /// How long the assignment may wait for the committed offsets and end offsets.
    public var lookupTimeout: Duration
    /// Builds hooks; `lookupTimeout` (default 10 s) bounds the offset lookups made before `onAssign`.
    public init(
        lookupTimeout: Duration = .seconds(10),
        onAssign: @escaping @Sendable ([TopicPartition: PartitionStart]) -> [TopicPartition: PartitionStart],
        onRevoke: @escaping @Sendable ([TopicPartition]) -> Void
    ) {
        self.onAssign = onAssign
        self.onRevoke = onRevoke
        self.lookupTimeout = lookupTimeout
    }
}

final class ConsumerContext: CallbackContext, @unchecked Sendable {
    // @unchecked: `continuation`, `sink` and `hooks` are immutable and Sendable; `assignment`
    // is a Mutex.
    let continuation: AsyncStream<KafkaConsumerEvent>.Continuation
    /// Where events go instead of `continuation` (see `KafkaConsumer.init(…, sink:)`).
    let sink: KafkaEventSink?
    let assignment = Mutex<Set<TopicPartition>>([])
    let hooks: RebalanceHooks?

    init(log: KafkaLogHandler?, continuation: AsyncStream<KafkaConsumerEvent>.Continuation, sink: KafkaEventSink?, hooks: RebalanceHooks?) {
        self.continuation = continuation
        self.sink = sink
        self.hooks = hooks
        super.init(log: log)
        if sink != nil { continuation.finish() }
    }

    /// Hands an event to the application: to the sink when there is one, else on `events`.
    func emit(_ event: KafkaConsumerEvent) {
        if let sink { sink(event) } else { continuation.yield(event) }
    }

    override func emitError(_ error: KafkaError) {
        emit(.error(error))
    }
}

/// A group consumer. Messages and rebalance events arrive on `events`, fed by a dedicated poll
/// thread; the application applies backpressure with `pause`. With a `handOffLimit`, at most that
/// many messages are on their way to the application (given out and not yet `handled()`): the
/// poll thread waits for room instead of filling an unbounded buffer, and if the application
/// stops handling messages for `max.poll.interval.ms`, the member leaves the group and its
/// partitions go to a live one.
///
/// Offsets are never stored automatically (`enable.auto.offset.store=false`): the application
/// stores the next offset to read with `store(_:)` once it is done with a record; stored offsets
/// are committed by auto-commit (if enabled), `commit()` or `close()`.
public final class KafkaConsumer: Sendable {
    private let handle: ClientHandle
    private let context: ConsumerContext
    private let poller: PollThread
    private let closed = Atomic<Bool>(false)
    private let handOff: HandOff?
    /// Messages, rebalance events and errors, in the order the poll thread met them (unbounded
    /// buffer; `handOffLimit` bounds the messages); finishes on `close()`.
    public let events: AsyncStream<KafkaConsumerEvent>

    /// A group member subscribed to `topics`.
    /// `rebalanceHooks` let the application look up and leave state as partitions come and go.
    /// `handOffLimit`: messages given out on `events` and not yet `handled()` at most (nil: no limit).
    /// `sink`: when given, every event goes to it instead of `events` (which then finishes at
    /// once), called on the poll thread in the same order: it must not block. It spares a
    /// reader of many small records an `AsyncStream` hand-off and a task wake-up per record
    /// (the worker posts them into its loop's `InputQueue`, which it drains a batch at a time).
    public convenience init(
        configuration: KafkaConfiguration, topics: [String], rebalanceHooks: RebalanceHooks? = nil,
        handOffLimit: Int? = nil, log: KafkaLogHandler? = nil, sink: KafkaEventSink? = nil
    ) throws(KafkaError) {
        guard configuration.groupId?.isEmpty == false else {
            throw KafkaError(message: "a group consumer needs group.id", isConfiguration: true)
        }
        try self.init(
            configuration: configuration, source: .subscribe(topics), hooks: rebalanceHooks,
            handOff: handOffLimit.map(HandOff.init), log: log, sink: sink)
    }

    /// A reader of explicit partitions from explicit offsets, outside any group (no commits):
    /// for tools that follow a topic from "now", the beginning, or a time.
    /// `handOffLimit`: messages given out on `events` and not yet `handled()` at most (nil: no
    /// limit; a reader slower than the broker then buffers without bound).
    public convenience init(
        configuration: KafkaConfiguration, assignment: [TopicPartition: Int64], handOffLimit: Int? = nil, log: KafkaLogHandler? = nil
    ) throws(KafkaError) {
        var config = configuration
        if config.groupId == nil { config.groupId = "exocheck-reader-\(UUID().uuidString.prefix(8))" }
        config.properties["enable.auto.commit"] = "false"
        try self.init(
            configuration: config, source: .assign(assignment), hooks: nil, handOff: handOffLimit.map(HandOff.init), log: log, sink: nil)
    }

    enum Source {
        case subscribe([String])
        case assign([TopicPartition: Int64])
    }

    private init(
        configuration: KafkaConfiguration, source: Source, hooks: RebalanceHooks?, handOff: HandOff?,
        log: KafkaLogHandler?, sink: KafkaEventSink?
    ) throws(KafkaError) {
        var config = configuration
        config.properties["enable.auto.offset.store"] = "false"
        if config.properties["auto.offset.reset"] == nil { config.properties["auto.offset.reset"] = "earliest" }
        let conf = try config.makeConf()
        let (stream, continuation) = AsyncStream<KafkaConsumerEvent>.makeStream(bufferingPolicy: .unbounded)
        let context = ConsumerContext(log: log, continuation: continuation, sink: sink, hooks: hooks)
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(context).toOpaque())
        CallbackInstall.log(conf)
        CallbackInstall.error(conf)
        rd_kafka_conf_set_rebalance_cb(conf) { rk, err, partitions, opaque in
            guard let rk, let opaque else { return }
            let context = Unmanaged<ConsumerContext>.fromOpaque(opaque).takeUnretainedValue()
            let list = KafkaConsumer.partitions(partitions)
            let cooperative = String(cString: rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE"
            if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
                if let hooks = context.hooks, let partitions, partitions.pointee.cnt > 0 {
                    context.emit(.starts(hooks.onAssign(KafkaConsumer.starts(rk, partitions, timeout: hooks.lookupTimeout))))
                }
                if cooperative {
                    if let e = rd_kafka_incremental_assign(rk, partitions) { rd_kafka_error_destroy(e) }
                } else {
                    rd_kafka_assign(rk, partitions)
                }
                context.assignment.withLock { $0.formUnion(list) }
                context.emit(.assigned(list))
            } else {
                let lost = rd_kafka_assignment_lost(rk) != 0
                if !lost, let hooks = context.hooks { hooks.onRevoke(list) }
                if cooperative {
                    if let e = rd_kafka_incremental_unassign(rk, partitions) { rd_kafka_error_destroy(e) }
                } else {
                    rd_kafka_assign(rk, nil)
                }
                context.assignment.withLock { $0.subtract(list) }
                context.emit(lost ? .lost(list) : .revoked(list))
            }
        }
        var errstr = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(message: "cannot create the Kafka consumer: \(cString(errstr))", isConfiguration: true)
        }
        rd_kafka_poll_set_consumer(rk)
        switch source {
        case .subscribe(let topics):
            let list = rd_kafka_topic_partition_list_new(Int32(topics.count))
            for t in topics { rd_kafka_topic_partition_list_add(list, t, exo_partition_ua()) }
            let err = rd_kafka_subscribe(rk, list)
            rd_kafka_topic_partition_list_destroy(list)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                rd_kafka_destroy(rk)
                throw KafkaError(err, context: "cannot subscribe to \(topics.joined(separator: ", "))")
            }
        case .assign(let offsets):
            let err = Self.withList(offsets.map { ($0.key, $0.value) }) { rd_kafka_assign(rk, $0) }
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                rd_kafka_destroy(rk)
                throw KafkaError(err, context: "cannot assign partitions")
            }
            context.assignment.withLock { $0 = Set(offsets.keys) }
        }
        let handle = ClientHandle(pointer: rk)
        self.handle = handle
        self.context = context
        self.events = stream
        self.handOff = handOff
        self.poller = PollThread(name: "kafka-consumer-poll", wake: { wakeQueue(rd_kafka_queue_get_consumer(handle.pointer)) }) { shouldStop in
            // When the gate has been shut for `maxGateWait`, poll anyway (at most one record per
            // poll): rebalance callbacks come only through polls, and a member that does not
            // poll for max.poll.interval.ms leaves its group. The application bounds what it
            // then holds by pausing (WorkerLoop pauses at twice its gate).
            var gatedSince: ContinuousClock.Instant? = nil
            while !shouldStop() {
                if let handOff {
                    if handOff.waitForRoom(timeout: 0.1) {
                        gatedSince = nil
                    } else {
                        let since = gatedSince ?? .now
                        gatedSince = since
                        if since.duration(to: .now) < KafkaConsumer.maxGateWait { continue }
                    }
                }
                guard let m = rd_kafka_consumer_poll(handle.pointer, 100) else { continue }
                let event = KafkaConsumer.copy(m)
                rd_kafka_message_destroy(m)
                if let event {
                    if case .message = event { handOff?.gaveOut() }
                    context.emit(event)
                }
            }
            // Leave the group on this thread: close() serves the final rebalance callback.
            rd_kafka_consumer_close(handle.pointer)
        }
    }

    deinit {
        if !closed.load(ordering: .acquiring) {
            poller.stopSynchronously()
            rd_kafka_destroy(handle.pointer)
            context.continuation.finish()
        }
    }

    static func copy(_ pointer: UnsafeMutablePointer<rd_kafka_message_t>) -> KafkaConsumerEvent? {
        let m = pointer.pointee
        if m.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            if m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF {
                let topic = m.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
                return .partitionEnd(TopicPartition(topic, m.partition))
            }
            return .error(KafkaError(m.err, context: "consume"))
        }
        let topic = m.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
        let key = m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) }
        let value = m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? []
        var headers: [KafkaHeader] = []
        var hdrs: OpaquePointer? = nil
        if rd_kafka_message_headers(pointer, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs {
            var index = 0
            var name: UnsafePointer<CChar>? = nil
            var valuePointer: UnsafeRawPointer? = nil
            var size = 0
            while rd_kafka_header_get_all(hdrs, index, &name, &valuePointer, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                headers.append(
                    KafkaHeader(
                        name: name.map { String(cString: $0) } ?? "",
                        value: valuePointer.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }))
                index += 1
            }
        }
        var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let ts = rd_kafka_message_timestamp(pointer, &type)
        return .message(
            KafkaMessage(
                topic: topic, partition: m.partition, offset: m.offset, key: key, value: value,
                headers: headers, timestamp: type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : ts))
    }

    static func partitions(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> [TopicPartition] {
        guard let list else { return [] }
        return (0..<Int(list.pointee.cnt)).map { i in
            let e = list.pointee.elems[i]
            return TopicPartition(String(cString: e.topic), e.partition)
        }
    }

    /// Committed offsets and end offsets of newly assigned partitions: two batched round trips,
    /// once per assignment (on the poll thread, inside the callback).
    static func starts(
        _ rk: OpaquePointer, _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>,
        timeout: Duration
    ) -> [TopicPartition: PartitionStart] {
        let ms = timeout.kafkaMilliseconds
        var out: [TopicPartition: PartitionStart] = [:]
        guard let committed = rd_kafka_topic_partition_list_copy(partitions) else { return out }
        defer { rd_kafka_topic_partition_list_destroy(committed) }
        let known = rd_kafka_committed(rk, committed, ms) == RD_KAFKA_RESP_ERR_NO_ERROR
        guard let ends = rd_kafka_topic_partition_list_copy(partitions) else { return out }
        defer { rd_kafka_topic_partition_list_destroy(ends) }
        for i in 0..<Int(ends.pointee.cnt) { ends.pointee.elems[i].offset = -1 }  // "latest"
        let endsKnown = rd_kafka_offsets_for_times(rk, ends, ms) == RD_KAFKA_RESP_ERR_NO_ERROR
        for i in 0..<Int(committed.pointee.cnt) {
            let e = committed.pointee.elems[i]
            let tp = TopicPartition(String(cString: e.topic), e.partition)
            let end =
                endsKnown && ends.pointee.elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR && ends.pointee.elems[i].offset >= 0
                ? ends.pointee.elems[i].offset : nil
            if known, e.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                out[tp] = PartitionStart(committed: e.offset >= 0 ? e.offset : nil, metadata: nil, end: end)
            } else {
                // Unknown: the application must not assume a clean start.
                out[tp] = PartitionStart(committed: nil, metadata: nil, end: end)
            }
        }
        return out
    }

    static func withList<T>(_ items: [(TopicPartition, Int64?)], _ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> T) -> T {
        // librdkafka allocates with rd_malloc, which aborts the process rather than return NULL.
        guard let list = rd_kafka_topic_partition_list_new(Int32(clamping: items.count)) else {
            preconditionFailure("rd_kafka_topic_partition_list_new returned NULL")
        }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for (tp, offset) in items {
            let e = rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition)
            if let offset { e?.pointee.offset = offset }
        }
        return body(list)
    }

    /// The partitions currently assigned to this member.
    public var assignment: Set<TopicPartition> { context.assignment.withLock { $0 } }

    /// How long the poll thread waits at a full hand-off before it polls anyway: 5 s. Rebalance
    /// callbacks come only through polls (a rebalance waits at most this long for a gated
    /// member); any record the application starts resets it, so a busy worker whose checks
    /// finish never reaches it.
    public static let maxGateWait: Duration = .seconds(5)

    /// The application is done with one message from `events` (with a `handOffLimit`).
    public func handled() { handOff?.handled(1) }

    /// The application is done with `count` messages (with a `handOffLimit`).
    public func handled(_ count: Int) { handOff?.handled(count) }

    /// With a `handOffLimit`: the application holds `records` messages it has taken (`handled()`)
    /// but not yet dealt with (a backlog); they count against the limit, so the poll thread stops
    /// polling while messages in transit plus `records` reach it. Backpressure without `pause`,
    /// which makes librdkafka drop what it prefetched and fetch it again.
    public func holding(_ records: Int) { handOff?.hold(records) }

    /// Messages given out on `events` and not yet `handled()` (0 without a `handOffLimit`).
    public var unhandled: Int { handOff?.count ?? 0 }

    /// Stores `offset` (the next one to read, i.e. last processed + 1) for commit.
    public func store(_ partition: TopicPartition, offset: Int64) throws(KafkaError) {
        let err = Self.withList([(partition, offset)]) { rd_kafka_offsets_store(handle.pointer, $0) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "cannot store offset \(offset) for \(partition)") }
    }

    /// Commits the stored offsets and waits for the broker's answer.
    public func commit() async throws(KafkaError) {
        let handle = self.handle
        let err = await blocking { rd_kafka_commit(handle.pointer, nil, 0) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR, err != RD_KAFKA_RESP_ERR__NO_OFFSET {
            throw KafkaError(err, context: "commit failed")
        }
    }

    /// Commits the stored offsets without waiting.
    public func commitAsync() throws(KafkaError) {
        let err = rd_kafka_commit(handle.pointer, nil, 1)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR, err != RD_KAFKA_RESP_ERR__NO_OFFSET { throw KafkaError(err, context: "commit failed") }
    }

    /// The committed offsets of `partitions` (nil where none), asked from the group coordinator.
    public func committed(_ partitions: [TopicPartition], timeout: Duration = .seconds(10)) async throws(KafkaError) -> [TopicPartition: Int64] {
        let handle = self.handle
        let ms = timeout.kafkaMilliseconds
        let result: Result<[TopicPartition: Int64], KafkaError> = await blocking {
            Self.withList(partitions.map { ($0, nil) }) { list in
                let err = rd_kafka_committed(handle.pointer, list, ms)
                if err != RD_KAFKA_RESP_ERR_NO_ERROR { return .failure(KafkaError(err, context: "committed")) }
                var out: [TopicPartition: Int64] = [:]
                for i in 0..<Int(list.pointee.cnt) {
                    let e = list.pointee.elems[i]
                    if e.offset >= 0 { out[TopicPartition(String(cString: e.topic), e.partition)] = e.offset }
                }
                return .success(out)
            }
        }
        return try result.get()
    }

    /// Stops fetching from `partitions` (the poll loop goes on); already fetched records of
    /// those partitions are dropped by librdkafka and fetched again after `resume`.
    public func pause(_ partitions: [TopicPartition]) throws(KafkaError) {
        guard !partitions.isEmpty else { return }
        let err = Self.withList(partitions.map { ($0, nil) }) { rd_kafka_pause_partitions(handle.pointer, $0) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "pause") }
    }

    /// Resumes fetching from `partitions` stopped by `pause` (`rd_kafka_resume_partitions`); an
    /// empty list does nothing.
    public func resume(_ partitions: [TopicPartition]) throws(KafkaError) {
        guard !partitions.isEmpty else { return }
        let err = Self.withList(partitions.map { ($0, nil) }) { rd_kafka_resume_partitions(handle.pointer, $0) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "resume") }
    }

    /// Messages not yet consumed on the assigned partitions (high watermark − position), from
    /// librdkafka's cached watermarks; nil before the first fetch.
    public func lag() -> Int64? {
        let parts = Array(assignment)
        guard !parts.isEmpty else { return nil }
        return Self.withList(parts.map { ($0, nil) }) { list -> Int64? in
            guard rd_kafka_position(handle.pointer, list) == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
            var total: Int64 = 0
            var known = false
            for i in 0..<Int(list.pointee.cnt) {
                let e = list.pointee.elems[i]
                var low: Int64 = 0
                var high: Int64 = 0
                guard rd_kafka_get_watermark_offsets(handle.pointer, e.topic, e.partition, &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR,
                    high >= 0
                else { continue }
                let position = e.offset >= 0 ? e.offset : low
                total += max(0, high - position)
                known = true
            }
            return known ? total : nil
        }
    }

    /// Commits stored offsets, leaves the group, stops the poll thread and frees the handle.
    /// The event stream finishes.
    public func close() async {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        try? await commit()
        await poller.stop()  // the loop ends with rd_kafka_consumer_close
        let handle = self.handle
        await blocking { rd_kafka_destroy(handle.pointer) }
        context.continuation.finish()
    }
}

/// The bound between the poll thread and the application: a count of messages given out and
/// not yet handled, and a condition the poll thread waits on while the count is at the limit.
final class HandOff: Sendable {
    let limit: Int
    private let state: NSCondition
    /// Messages given out and not handled; messages the application reports holding.
    private let counter = Mutex((given: 0, held: 0))

    init(limit: Int) {
        self.limit = max(1, limit)
        self.state = NSCondition()
    }

    /// Messages given out and not yet handled.
    var count: Int { counter.withLock { $0.given } }
    private var used: Int { counter.withLock { $0.given + $0.held } }

    func gaveOut() { counter.withLock { $0.given += 1 } }

    func handled(_ count: Int) {
        guard count > 0 else { return }
        let wasFull = counter.withLock { c in
            let full = c.given + c.held >= limit
            c.given = max(0, c.given - count)
            return full
        }
        if wasFull { wake() }
    }

    /// The application holds `records` taken messages (see `KafkaConsumer.holding`).
    func hold(_ records: Int) {
        let freed = counter.withLock { c in
            let full = c.given + c.held >= limit
            c.held = max(0, records)
            return full && c.given + c.held < limit
        }
        if freed { wake() }
    }

    private func wake() {
        state.lock()
        state.signal()
        state.unlock()
    }

    /// True when a message may be given out; otherwise waits up to `timeout` seconds for room
    /// (false if there is still none, so that the poll thread can check whether to stop).
    func waitForRoom(timeout: TimeInterval) -> Bool {
        if used < limit { return true }
        state.lock()
        defer { state.unlock() }
        if used < limit { return true }
        _ = state.wait(until: Date().addingTimeInterval(timeout))
        return used < limit
    }
}

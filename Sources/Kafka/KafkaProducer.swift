import CRdKafka
import Foundation
import Synchronization

/// A record to send.
public struct OutgoingMessage: Sendable {
    /// Topic the record is sent to.
    public var topic: String
    /// Record key (nil: no key); when `partition` is nil the partitioner chooses by it.
    public var key: [UInt8]?
    /// Record payload bytes.
    public var value: [UInt8]
    /// Record headers, sent in this order.
    public var headers: [KafkaHeader]
    /// nil = the partitioner chooses (by key).
    public var partition: Int32?

    /// Builds a record from bytes; by default without key or headers, on the partitioner's choice
    /// of partition.
    public init(topic: String, key: [UInt8]? = nil, value: [UInt8], headers: [KafkaHeader] = [], partition: Int32? = nil) {
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
        self.partition = partition
    }

    /// Builds a record whose key and value are UTF-8 text; the partitioner chooses the partition.
    public init(topic: String, key: String?, value: String, headers: [KafkaHeader] = []) {
        self.init(topic: topic, key: key.map { Array($0.utf8) }, value: Array(value.utf8), headers: headers)
    }
}

/// Where a record landed.
public struct DeliveryReport: Sendable, Equatable {
    /// Topic the record was written to.
    public var topic: String
    /// Partition the record was written to.
    public var partition: Int32
    /// Offset the broker gave the record in that partition.
    public var offset: Int64
}

/// One send's outcome, delivered once: by the delivery report, or earlier by cancellation (the
/// record may still be delivered later; its report is then ignored).
final class DeliveryBox: Sendable {
    typealias Outcome = Result<DeliveryReport, KafkaError>
    private struct State {
        var continuation: CheckedContinuation<Outcome, Never>?
        var early: Outcome?
        var done = false
    }
    private let state = Mutex(State())
    /// Called with the outcome instead of a waiting caller (`KafkaProducer.send(_:onDelivery:)`).
    private let callback: (@Sendable (Outcome) -> Void)?

    init(callback: (@Sendable (Outcome) -> Void)? = nil) {
        self.callback = callback
    }

    /// Attaches the waiting caller; false when the outcome is already known (cancelled before
    /// the record was enqueued: it must then not be enqueued).
    func attach(_ continuation: CheckedContinuation<Outcome, Never>) -> Bool {
        let early: Outcome? = state.withLock {
            if let e = $0.early {
                $0.early = nil
                return e
            }
            $0.continuation = continuation
            return nil
        }
        if let early {
            continuation.resume(returning: early)
            return false
        }
        return true
    }

    /// Delivers the outcome to the caller, once; later calls are ignored.
    func resume(_ outcome: Outcome) {
        if let callback {
            let first = state.withLock { s in
                defer { s.done = true }
                return !s.done
            }
            if first { callback(outcome) }
            return
        }
        let continuation: CheckedContinuation<Outcome, Never>? = state.withLock {
            guard !$0.done else { return nil }
            $0.done = true
            guard let c = $0.continuation else {
                $0.early = outcome
                return nil
            }
            $0.continuation = nil
            return c
        }
        continuation?.resume(returning: outcome)
    }
}

final class ProducerContext: CallbackContext, @unchecked Sendable {
    // @unchecked: `fatal` is a Mutex; the rest is immutable.
    let fatal = Mutex<KafkaError?>(nil)
    let onError: (@Sendable (KafkaError) -> Void)?

    init(log: KafkaLogHandler?, onError: (@Sendable (KafkaError) -> Void)?) {
        self.onError = onError
        super.init(log: log)
    }

    override func emitError(_ error: KafkaError) {
        if error.isFatal { fatal.withLock { $0 = error } }
        onError?(error)
    }
}

/// An idempotent producer whose `send` returns when the broker acknowledged the record.
///
/// Delivery reports are served by a dedicated poll thread (`rd_kafka_poll` with a 100 ms
/// timeout: no busy wait). Call `close()` once when done: it flushes, purges what is left (every
/// waiting caller gets an error), stops the thread and destroys the handle.
public final class KafkaProducer: Sendable {
    private let handle: ClientHandle
    /// Reached by the C callbacks through the opaque pointer until `rd_kafka_destroy` returned:
    /// held here for the producer's whole life.
    private let context: ProducerContext
    private let poller: PollThread
    private let closed = Atomic<Bool>(false)

    /// `enable.idempotence=true` unless the configuration says otherwise.
    public init(
        configuration: KafkaConfiguration, log: KafkaLogHandler? = nil,
        onError: (@Sendable (KafkaError) -> Void)? = nil
    ) throws(KafkaError) {
        var config = configuration
        if config.properties["enable.idempotence"] == nil { config.properties["enable.idempotence"] = "true" }
        let conf = try config.makeConf()
        let context = ProducerContext(log: log, onError: onError)
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(context).toOpaque())
        CallbackInstall.log(conf)
        CallbackInstall.error(conf)
        rd_kafka_conf_set_dr_msg_cb(conf) { _, message, _ in
            guard let message, let opaque = message.pointee._private else { return }
            let box = Unmanaged<DeliveryBox>.fromOpaque(opaque).takeRetainedValue()
            let m = message.pointee
            if m.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                box.resume(.failure(KafkaError(m.err, context: "delivery failed")))
            } else {
                let topic = m.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
                box.resume(.success(DeliveryReport(topic: topic, partition: m.partition, offset: m.offset)))
            }
        }
        var errstr = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(message: "cannot create the Kafka producer: \(cString(errstr))", isConfiguration: true)
        }
        let handle = ClientHandle(pointer: rk)
        self.handle = handle
        self.context = context
        self.poller = PollThread(name: "kafka-producer-poll", wake: { wakeQueue(rd_kafka_queue_get_main(handle.pointer)) }) { shouldStop in
            while !shouldStop() { rd_kafka_poll(handle.pointer, 100) }
        }
    }

    deinit {
        if !closed.load(ordering: .acquiring) {
            // Not closed: stop serving callbacks, drop what is queued, free the handle.
            rd_kafka_purge(handle.pointer, 0x1 | 0x2)
            poller.stopSynchronously()
            rd_kafka_poll(handle.pointer, 0)
            rd_kafka_destroy(handle.pointer)
        }
    }

    /// The error of a send whose task was cancelled before its delivery report arrived.
    public static let cancelledCode: Int32 = RD_KAFKA_RESP_ERR__INTR.rawValue  // "operation interrupted"

    /// Sends one record and waits for its delivery report. Cancelling the calling task ends the
    /// wait at once with an error (`cancelledCode`); the record may still be delivered.
    @discardableResult
    public func send(_ message: OutgoingMessage) async throws(KafkaError) -> DeliveryReport {
        if closed.load(ordering: .acquiring) { throw KafkaError(message: "the producer is closed") }
        if let fatal = context.fatal.withLock({ $0 }) { throw fatal }
        let handle = self.handle
        let delivery = DeliveryBox()
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<DeliveryReport, KafkaError>, Never>) in
                guard delivery.attach(continuation) else { return }
                Self.enqueue(message, handle: handle, delivery: delivery)
            }
        } onCancel: {
            delivery.resume(.failure(KafkaError(code: Self.cancelledCode, message: "the send was cancelled before its delivery report")))
        }
        return try result.get()
    }

    /// Sends one record without waiting: `onDelivery` gets its outcome once, on the producer's
    /// poll thread (at once, on the caller's thread, when it cannot be enqueued), and must not
    /// block. No task waits for the report, which spares a busy worker a continuation and a task
    /// resumption per record. Nothing cancels it: `close()` purges what is left, which then
    /// reports an error.
    public func send(_ message: OutgoingMessage, onDelivery: @escaping @Sendable (Result<DeliveryReport, KafkaError>) -> Void) {
        if closed.load(ordering: .acquiring) { return onDelivery(.failure(KafkaError(message: "the producer is closed"))) }
        if let fatal = context.fatal.withLock({ $0 }) { return onDelivery(.failure(fatal)) }
        Self.enqueue(message, handle: handle, delivery: DeliveryBox(callback: onDelivery))
    }

    /// Hands the record to librdkafka with `delivery` as its opaque (resumed by the delivery
    /// report callback), or resumes it with the error when the record cannot be enqueued.
    private static func enqueue(_ message: OutgoingMessage, handle: ClientHandle, delivery: DeliveryBox) {
        let box = Unmanaged.passRetained(delivery)
        var headers: OpaquePointer? = nil
        if !message.headers.isEmpty {
            headers = rd_kafka_headers_new(message.headers.count)
            for h in message.headers {
                if let v = h.value {
                    _ = v.withUnsafeBytes { rd_kafka_header_add(headers, h.name, -1, $0.baseAddress, $0.count) }
                } else {
                    _ = rd_kafka_header_add(headers, h.name, -1, nil, 0)
                }
            }
        }
        let keyBytes = message.key ?? []
        let err = keyBytes.withUnsafeBytes { key in
            message.value.withUnsafeBytes { value in
                exo_produce(
                    handle.pointer, message.topic, message.partition ?? exo_partition_ua(),
                    message.key == nil ? nil : key.baseAddress, message.key == nil ? 0 : key.count,
                    value.baseAddress, value.count, headers, box.toOpaque())
            }
        }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            // Not enqueued: librdkafka did not take the headers or the opaque.
            if let headers { rd_kafka_headers_destroy(headers) }
            box.release()
            delivery.resume(.failure(KafkaError(err, context: "cannot enqueue the message")))
        }
    }

    /// Learns `topic`'s partitions now, before the first send. A record for a topic whose
    /// metadata is not known yet waits unpartitioned, and librdkafka (2.0) sometimes leaves it
    /// there until the broker thread's next periodic wake-up, a second later: measured on every
    /// other `submit`. A one-off sender calls this first; a long-lived one need not.
    public func prepare(topic: String, timeout: Duration = .seconds(5)) async throws(KafkaError) {
        let handle = self.handle
        let ms = timeout.kafkaMilliseconds
        let err = await blocking { () -> rd_kafka_resp_err_t in
            guard let rkt = rd_kafka_topic_new(handle.pointer, topic, nil) else { return RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC }
            defer { rd_kafka_topic_destroy(rkt) }
            var metadata: UnsafePointer<rd_kafka_metadata>? = nil
            let err = rd_kafka_metadata(handle.pointer, 0, rkt, &metadata, ms)
            if let metadata { rd_kafka_metadata_destroy(metadata) }
            return err
        }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "metadata of \(topic)") }
    }

    /// Waits until every queued record is delivered or `timeout` passes; true when all were.
    public func flush(timeout: Duration = .seconds(10)) async -> Bool {
        let handle = self.handle
        let ms = timeout.kafkaMilliseconds
        return await blocking { rd_kafka_flush(handle.pointer, ms) == RD_KAFKA_RESP_ERR_NO_ERROR }
    }

    /// Records still queued or in flight.
    public var outstanding: Int { Int(rd_kafka_outq_len(handle.pointer)) }

    /// Flush (up to `timeout`), purge the rest (their callers get an error), stop, destroy.
    public func close(timeout: Duration = .seconds(10)) async {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        _ = await flush(timeout: timeout)
        let handle = self.handle
        rd_kafka_purge(handle.pointer, 0x1 | 0x2)  // RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT
        await poller.stop()
        await blocking {
            // Serve the purged records' delivery reports, then free the handle.
            rd_kafka_poll(handle.pointer, 0)
            _ = rd_kafka_flush(handle.pointer, 100)
            rd_kafka_destroy(handle.pointer)
        }
    }
}

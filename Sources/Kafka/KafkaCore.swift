import CRdKafka
import Foundation
import Synchronization

/// librdkafka properties, passed through verbatim (so every security and tuning property works
/// as operators know it), with typed conveniences for the common ones.
public struct KafkaConfiguration: Sendable, Equatable {
    /// librdkafka property name → value (e.g. `bootstrap.servers`, `security.protocol`), applied with
    /// `rd_kafka_conf_set` when a client is created.
    public var properties: [String: String]

    /// A configuration of these librdkafka properties (default: none).
    public init(_ properties: [String: String] = [:]) {
        self.properties = properties
    }

    /// The `bootstrap.servers` property (comma-separated `host:port` list); nil when unset, and
    /// setting nil removes it.
    public var bootstrapServers: String? {
        get { properties["bootstrap.servers"] }
        set { properties["bootstrap.servers"] = newValue }
    }

    /// The `group.id` property (the consumer group); nil when unset, and setting nil removes it.
    public var groupId: String? {
        get { properties["group.id"] }
        set { properties["group.id"] = newValue }
    }

    /// Builds an `rd_kafka_conf_t`; an unknown property or bad value fails with librdkafka's message.
    func makeConf() throws(KafkaError) -> OpaquePointer {
        guard let conf = rd_kafka_conf_new() else { throw KafkaError(message: "rd_kafka_conf_new failed") }
        var errstr = [CChar](repeating: 0, count: 512)
        for (name, value) in properties.sorted(by: { $0.key < $1.key }) {
            if rd_kafka_conf_set(conf, name, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw KafkaError(message: "Kafka property '\(name)': \(cString(errstr))", isConfiguration: true)
            }
        }
        return conf
    }
}

/// A librdkafka error: its code, librdkafka's message, and whether retrying can help.
public struct KafkaError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `rd_kafka_resp_err_t` (negative: client-side errors, positive: broker errors).
    public let code: Int32
    /// Human-readable text: librdkafka's message (`rd_kafka_err2str` or its error string), after the
    /// context when one was given.
    public let message: String
    /// The condition is transient (transport error, timeout, full queue, all brokers down, leader or
    /// coordinator change, not enough replicas, rebalance): retrying may help.
    public let isRetriable: Bool
    /// librdkafka raised a fatal error (`rd_kafka_fatal_error`): the client cannot go on.
    public let isFatal: Bool
    /// A property was rejected, or the client could not be created from the configuration.
    public let isConfiguration: Bool

    /// Builds an error; `code` defaults to -1 (`RD_KAFKA_RESP_ERR_UNKNOWN`) and every flag to false.
    public init(code: Int32 = -1, message: String, isRetriable: Bool = false, isFatal: Bool = false, isConfiguration: Bool = false) {
        self.code = code
        self.message = message
        self.isRetriable = isRetriable
        self.isFatal = isFatal
        self.isConfiguration = isConfiguration
    }

    init(_ err: rd_kafka_resp_err_t, context: String? = nil) {
        let text = String(cString: rd_kafka_err2str(err))
        self.init(
            code: err.rawValue, message: context.map { "\($0): \(text)" } ?? text,
            isRetriable: KafkaError.retriableCodes.contains(err.rawValue))
    }

    /// An error that no retry of the same record can fix: fatal, a configuration error, a topic
    /// or partition that does not exist, or a denied authorization. A producer that meets one
    /// stops (its records cannot be answered), and so does anything that writes to that topic.
    public var isPermanent: Bool {
        isFatal || isConfiguration || KafkaError.permanentCodes.contains(code)
    }

    /// The topic or partition is not known (yet): permanent for a record, maybe transient for
    /// a topic whose leader moves.
    public static let unknownTopicCodes: Set<Int32> = [
        RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART.rawValue, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC.rawValue,
        RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION.rawValue,
    ]

    static let permanentCodes: Set<Int32> = [
        RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART.rawValue, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC.rawValue,
        RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION.rawValue, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED.rawValue,
        RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED.rawValue, RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION.rawValue,
    ]

    /// Codes librdkafka or the broker report for transient conditions.
    static let retriableCodes: Set<Int32> = [
        RD_KAFKA_RESP_ERR__TRANSPORT.rawValue, RD_KAFKA_RESP_ERR__TIMED_OUT.rawValue, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT.rawValue,
        RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN.rawValue,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION.rawValue, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE.rawValue,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT.rawValue, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS.rawValue,
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR.rawValue, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE.rawValue,
        RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS.rawValue,
    ]

    /// `<message> (Kafka error <code>)`.
    public var description: String { "\(message) (Kafka error \(code))" }

    /// `RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE` (10): the record is larger than the client or the
    /// broker accepts.
    public static let messageTooLarge = RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE.rawValue
}

/// A topic and one of its partitions.
public struct TopicPartition: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Name of the topic the partition belongs to.
    public var topic: String
    /// Partition id within the topic (0-based).
    public var partition: Int32

    /// Names partition `partition` of `topic`.
    public init(_ topic: String, _ partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    /// `topic[partition]`, e.g. `checks[3]`.
    public var description: String { "\(topic)[\(partition)]" }

    /// Orders by topic name, then by partition id.
    public static func < (a: TopicPartition, b: TopicPartition) -> Bool {
        (a.topic, a.partition) < (b.topic, b.partition)
    }
}

/// One record header.
public struct KafkaHeader: Sendable, Equatable {
    /// The header key (a record may carry several headers with the same key).
    public var name: String
    /// The header's bytes; nil for a header with a null value.
    public var value: [UInt8]?

    /// A header whose value is `value` encoded as UTF-8.
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = Array(value.utf8)
    }

    /// A header with raw bytes (nil: a null value).
    public init(name: String, value: [UInt8]?) {
        self.name = name
        self.value = value
    }

    /// The value decoded as UTF-8 (invalid bytes replaced); nil for a null value.
    public var stringValue: String? { value.map { String(decoding: $0, as: UTF8.self) } }
}

/// A librdkafka client handle shared by the owner and its poll thread.
///
/// `@unchecked Sendable`: librdkafka documents `rd_kafka_t` as thread-safe for the calls made
/// through this wrapper (produce, poll, flush, commit, offsets_store, pause/resume, assign), and
/// the pointer is destroyed exactly once, by the owner, after its poll thread has exited.
struct ClientHandle: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// A dedicated OS thread running `body` until `stop()`; Swift's cooperative pool never blocks
/// on librdkafka.
final class PollThread: Sendable {
    private let stopFlag = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    /// Ends the loop's current blocking poll early (for librdkafka, `rd_kafka_queue_yield` on the polled queue), so that
    /// `stop()` does not wait out the poll timeout.
    private let wake: @Sendable () -> Void

    init(name: String, wake: @escaping @Sendable () -> Void = {}, body: @escaping @Sendable (_ shouldStop: () -> Bool) -> Void) {
        self.wake = wake
        // The thread keeps this object alive until the loop has returned.
        let thread = Thread { [self] in
            body { self.stopFlag.load(ordering: .acquiring) }
            self.finished.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Asks the loop to stop and waits (off the cooperative pool) until it has.
    func stop() async {
        stopFlag.store(true, ordering: .releasing)
        wake()
        await blocking { self.finished.wait() }
    }

    /// Synchronous variant for deinitialisers.
    func stopSynchronously() {
        stopFlag.store(true, ordering: .releasing)
        wake()
        finished.wait()
    }
}

/// Ends a poll blocked on `queue` now, from any thread (`rd_kafka_queue_yield`), and releases the
/// queue reference that `rd_kafka_queue_get_*` returned.
func wakeQueue(_ queue: OpaquePointer?) {
    guard let queue else { return }
    rd_kafka_queue_yield(queue)
    rd_kafka_queue_destroy(queue)
}

/// Runs a blocking call on its own thread and awaits it.
func blocking<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: body()) }.start()
    }
}

/// `blocking`, except that a cancelled caller stops waiting at once and gets `cancelled`; the
/// thread finishes `body` in the background (it must clean up after itself).
func blocking<T: Sendable>(orWhenCancelled cancelled: T, _ body: @escaping @Sendable () -> T) async -> T {
    let waiting = Mutex<CheckedContinuation<T, Never>?>(nil)
    return await withTaskCancellationHandler {
        await withCheckedContinuation { continuation in
            waiting.withLock { $0 = continuation }
            // Cancelled before the continuation was stored: the handler found nothing to resume.
            if Task.isCancelled, let c = waiting.withLock({ $0.take() }) {
                c.resume(returning: cancelled)
                return
            }
            Thread {
                let value = body()
                waiting.withLock { $0.take() }?.resume(returning: value)
            }.start()
        }
    } onCancel: {
        waiting.withLock { $0.take() }?.resume(returning: cancelled)
    }
}

/// A NUL-terminated C buffer as a String.
func cString(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// librdkafka log lines → an optional Swift handler.
public typealias KafkaLogHandler = @Sendable (_ level: Int32, _ facility: String, _ message: String) -> Void

/// Receives a consumer's events on its poll thread, in order, instead of `KafkaConsumer.events`.
/// It must return quickly and never block: the poll thread serves rebalances too.
public typealias KafkaEventSink = @Sendable (KafkaConsumerEvent) -> Void

/// Context reachable from C callbacks through `rd_kafka_conf_set_opaque`.
class CallbackContext: @unchecked Sendable {
    // @unchecked: the only stored property is an immutable Sendable closure; subclasses
    // document their own state.
    let log: KafkaLogHandler?
    init(log: KafkaLogHandler?) { self.log = log }

    func emitError(_ error: KafkaError) {}
}

enum CallbackInstall {
    static func log(_ conf: OpaquePointer) {
        rd_kafka_conf_set_log_cb(conf) { rk, level, facility, message in
            guard let rk, let opaque = rd_kafka_opaque(rk) else { return }
            let context = Unmanaged<CallbackContext>.fromOpaque(opaque).takeUnretainedValue()
            let fac = facility.map { String(cString: $0) } ?? ""
            let msg = message.map { String(cString: $0) } ?? ""
            if let log = context.log {
                log(level, fac, msg)
            } else if level <= 3 {
                FileHandle.standardError.write(Data("kafka: \(fac): \(msg)\n".utf8))
            }
        }
    }

    static func error(_ conf: OpaquePointer) {
        rd_kafka_conf_set_error_cb(conf) { rk, err, reason, opaque in
            guard let opaque else { return }
            let context = Unmanaged<CallbackContext>.fromOpaque(opaque).takeUnretainedValue()
            let text = reason.map { String(cString: $0) } ?? ""
            if err == RD_KAFKA_RESP_ERR__FATAL.rawValue, let rk {
                var buffer = [CChar](repeating: 0, count: 512)
                let code = rd_kafka_fatal_error(rk, &buffer, buffer.count)
                context.emitError(KafkaError(code: code.rawValue, message: cString(buffer), isFatal: true))
                return
            }
            context.emitError(KafkaError(code: err, message: text, isRetriable: KafkaError.retriableCodes.contains(err)))
        }
    }
}

extension Duration {
    /// This duration as a librdkafka timeout argument (`int timeout_ms`): whole milliseconds,
    /// a partial millisecond rounded up (500 ms stays 500, 0.1 ms becomes 1), clamped to
    /// 0...Int32.max (about 24.8 days), never trapping whatever the duration.
    var kafkaMilliseconds: Int32 {
        let (s, a) = (components.seconds, components.attoseconds)
        if s < 0 || (s == 0 && a <= 0) { return 0 }
        let (millis, overflow) = s.multipliedReportingOverflow(by: 1000)
        if overflow || millis > Int64(Int32.max) { return Int32.max }
        let partial = (a + 999_999_999_999_999) / 1_000_000_000_000_000  // attoseconds → ms, rounded up
        return Int32(clamping: millis + partial)
    }
}

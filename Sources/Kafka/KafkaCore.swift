import CRdKafka
import Foundation
import Synchronization

/// librdkafka properties, passed through verbatim (so every security and tuning property works
/// as operators know it), with typed conveniences for the common ones.
public struct KafkaConfiguration: Sendable, Equatable {
    public var properties: [String: String]

    public init(_ properties: [String: String] = [:]) {
        self.properties = properties
    }

    public var bootstrapServers: String? {
        get { properties["bootstrap.servers"] }
        set { properties["bootstrap.servers"] = newValue }
    }

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
    public let message: String
    public let isRetriable: Bool
    public let isFatal: Bool
    public let isConfiguration: Bool

    public init(code: Int32 = -1, message: String, isRetriable: Bool = false, isFatal: Bool = false, isConfiguration: Bool = false) {
        self.code = code
        self.message = message
        self.isRetriable = isRetriable
        self.isFatal = isFatal
        self.isConfiguration = isConfiguration
    }

    init(_ err: rd_kafka_resp_err_t, context: String? = nil) {
        let text = String(cString: rd_kafka_err2str(err))
        self.init(code: err.rawValue, message: context.map { "\($0): \(text)" } ?? text,
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

    public var description: String { "\(message) (Kafka error \(code))" }

    public static let messageTooLarge = RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE.rawValue
}

/// A topic partition (and an offset where it matters).
public struct TopicPartition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32

    public init(_ topic: String, _ partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public var description: String { "\(topic)[\(partition)]" }

    public static func < (a: TopicPartition, b: TopicPartition) -> Bool {
        (a.topic, a.partition) < (b.topic, b.partition)
    }
}

/// One record header.
public struct KafkaHeader: Sendable, Equatable {
    public var name: String
    public var value: [UInt8]?

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = Array(value.utf8)
    }

    public init(name: String, value: [UInt8]?) {
        self.name = name
        self.value = value
    }

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

    init(name: String, body: @escaping @Sendable (_ shouldStop: () -> Bool) -> Void) {
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
        await blocking { self.finished.wait() }
    }

    /// Synchronous variant for deinitialisers.
    func stopSynchronously() {
        stopFlag.store(true, ordering: .releasing)
        finished.wait()
    }
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

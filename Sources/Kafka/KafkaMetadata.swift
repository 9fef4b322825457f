import CRdKafka
import Foundation

/// An `rd_kafka_conf_t` moved to another thread.
///
/// `@unchecked Sendable`: ownership moves with it — the creating task never touches the conf
/// again, and the receiving thread consumes it (rd_kafka_new) or destroys it exactly once.
struct ConfHandle: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// One-off cluster queries (partitions of a topic, offsets) through a short-lived client.
public enum KafkaMetadata {
    /// Runs `body` with a temporary consumer handle (no group), off the cooperative pool.
    static func withClient<T: Sendable>(
        _ configuration: KafkaConfiguration,
        _ body: @escaping @Sendable (OpaquePointer) -> Result<T, KafkaError>
    ) async throws(KafkaError) -> T {
        var config = configuration
        config.properties["group.id"] = nil
        if config.properties["log_level"] == nil { config.properties["log_level"] = "3" }
        // The conf is handed to the helper thread and used there only (rd_kafka_new takes it).
        let holder = ConfHandle(pointer: try config.makeConf())
        let result: Result<T, KafkaError> = await blocking(orWhenCancelled: .failure(KafkaError(message: "cancelled while waiting for the broker"))) {
            var errstr = [CChar](repeating: 0, count: 512)
            guard let rk = rd_kafka_new(RD_KAFKA_CONSUMER, holder.pointer, &errstr, errstr.count) else {
                rd_kafka_conf_destroy(holder.pointer)
                return .failure(KafkaError(message: "cannot create a Kafka client: \(cString(errstr))", isConfiguration: true))
            }
            defer { rd_kafka_destroy(rk) }
            return body(rk)
        }
        return try result.get()
    }

    /// The partition ids of `topic`.
    public static func partitions(of topic: String, configuration: KafkaConfiguration, timeout: Duration = .seconds(10)) async throws(KafkaError) -> [Int32] {
        let ms = timeout.kafkaMilliseconds
        return try await withClient(configuration) { rk in partitionIDs(rk, topic, ms) }
    }

    /// The partition ids of `topic` through an existing handle (so that one client answers both
    /// the metadata and the offsets of a query).
    private static func partitionIDs(_ rk: OpaquePointer, _ topic: String, _ ms: Int32) -> Result<[Int32], KafkaError> {
        guard let rkt = rd_kafka_topic_new(rk, topic, nil) else { return .failure(KafkaError(message: "cannot open topic \(topic)")) }
        defer { rd_kafka_topic_destroy(rkt) }
        var metadata: UnsafePointer<rd_kafka_metadata>? = nil
        let err = rd_kafka_metadata(rk, 0, rkt, &metadata, ms)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else { return .failure(KafkaError(err, context: "metadata of \(topic)")) }
        defer { rd_kafka_metadata_destroy(metadata) }
        guard metadata.pointee.topic_cnt > 0 else { return .failure(KafkaError(message: "topic \(topic) not found")) }
        let t = metadata.pointee.topics[0]
        if t.err != RD_KAFKA_RESP_ERR_NO_ERROR { return .failure(KafkaError(t.err, context: "topic \(topic)")) }
        return .success((0..<Int(t.partition_cnt)).map { t.partitions[$0].id }.sorted())
    }

    /// Where to start reading each partition.
    public enum StartPosition: Sendable {
        /// The oldest record each partition still holds (librdkafka's logical `OFFSET_BEGINNING`).
        case beginning
        /// Only what is produced from now on (the current high watermark).
        case end
        /// The first record at or after this time.
        case time(Date)
    }

    /// Offsets to start reading `topic` at `position`, per partition.
    public static func startOffsets(
        topic: String, position: StartPosition, configuration: KafkaConfiguration,
        timeout: Duration = .seconds(10)
    ) async throws(KafkaError) -> [TopicPartition: Int64] {
        let ms = timeout.kafkaMilliseconds
        return try await withClient(configuration) { rk in
            let parts: [Int32]
            switch partitionIDs(rk, topic, ms) {
            case .success(let p): parts = p
            case .failure(let e): return .failure(e)
            }
            var out: [TopicPartition: Int64] = [:]
            switch position {
            case .beginning:
                for p in parts { out[TopicPartition(topic, p)] = exo_offset_beginning() }
            case .end:
                for p in parts {
                    switch queryWatermarks(rk, TopicPartition(topic, p), ms) {
                    case .success(let w): out[TopicPartition(topic, p)] = w.high
                    case .failure(let e): return .failure(e)
                    }
                }
            case .time(let date):
                // Milliseconds since 1970, clamped (a date far out of range cannot trap).
                let seconds = date.timeIntervalSince1970
                let millis = seconds.isNaN ? 0 : Int64(max(0, min(seconds, 9e12)) * 1000)
                let err = KafkaConsumer.withList(parts.map { (TopicPartition(topic, $0), millis) }) { list in
                    let err = rd_kafka_offsets_for_times(rk, list, ms)
                    guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { return err }
                    for i in 0..<Int(list.pointee.cnt) {
                        let e = list.pointee.elems[i]
                        out[TopicPartition(topic, e.partition)] = e.offset >= 0 ? e.offset : exo_offset_end()
                    }
                    return err
                }
                if err != RD_KAFKA_RESP_ERR_NO_ERROR { return .failure(KafkaError(err, context: "offsets for time")) }
            }
            return .success(out)
        }
    }

    /// The first offset a partition still holds (`low`: records before it were deleted by
    /// retention) and the offset its next record will get (`high`).
    public struct Watermarks: Sendable, Equatable {
        /// The first offset the partition still holds (older records were deleted by retention).
        public let low: Int64
        /// The high watermark: the offset the partition's next record will get.
        public let high: Int64
    }

    /// The watermarks of every partition of `topic`, as its leaders report them now.
    public static func watermarks(
        of topic: String, configuration: KafkaConfiguration,
        timeout: Duration = .seconds(10)
    ) async throws(KafkaError) -> [TopicPartition: Watermarks] {
        let ms = timeout.kafkaMilliseconds
        return try await withClient(configuration) { rk in
            let parts: [Int32]
            switch partitionIDs(rk, topic, ms) {
            case .success(let p): parts = p
            case .failure(let e): return .failure(e)
            }
            var out: [TopicPartition: Watermarks] = [:]
            for p in parts {
                switch queryWatermarks(rk, TopicPartition(topic, p), ms) {
                case .success(let w): out[TopicPartition(topic, p)] = w
                case .failure(let e): return .failure(e)
                }
            }
            return .success(out)
        }
    }

    private static func queryWatermarks(_ rk: OpaquePointer, _ tp: TopicPartition, _ ms: Int32) -> Result<Watermarks, KafkaError> {
        var low: Int64 = 0
        var high: Int64 = 0
        let err = rd_kafka_query_watermark_offsets(rk, tp.topic, tp.partition, &low, &high, ms)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { return .failure(KafkaError(err, context: "watermarks of \(tp.topic)[\(tp.partition)]")) }
        return .success(Watermarks(low: low, high: high))
    }
}

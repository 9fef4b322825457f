import CRdKafka
import Foundation

/// Reads the last records of some partitions with a short-lived consumer outside any group.
public enum KafkaTail {
    /// The last `count` records (fewer when the partition holds fewer) of each of `partitions`
    /// of `topic`, oldest first. **Blocking**: meant for a dedicated thread (e.g. a rebalance
    /// callback on the consumer's poll thread), never for Swift's cooperative pool.
    public static func read(
        configuration: KafkaConfiguration, topic: String, partitions: [Int32], count: Int,
        timeout: Duration
    ) throws(KafkaError) -> [Int32: [KafkaMessage]] {
        guard !partitions.isEmpty else { return [:] }
        var config = configuration
        config.groupId = "exocheck-tail-\(UUID().uuidString.prefix(8))"
        config.properties["enable.auto.commit"] = "false"
        config.properties["enable.auto.offset.store"] = "false"
        config.properties["enable.partition.eof"] = "true"
        config.properties["auto.offset.reset"] = "earliest"  // a tail longer than the partition
        let conf = try config.makeConf()
        var errstr = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(message: "cannot create a reader: \(cString(errstr))", isConfiguration: true)
        }
        defer {
            rd_kafka_consumer_close(rk)
            rd_kafka_destroy(rk)
        }
        rd_kafka_poll_set_consumer(rk)
        // RD_KAFKA_OFFSET_TAIL(n) is the C macro (-2000 - n): "n records before the end".
        let tail = -2000 - Int64(max(1, count))
        let err = KafkaConsumer.withList(partitions.map { (TopicPartition(topic, $0), tail) }) { rd_kafka_assign(rk, $0) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "cannot read \(topic)") }
        var remaining = Set(partitions)
        var out: [Int32: [KafkaMessage]] = [:]
        let end = ContinuousClock.now.advanced(by: timeout)
        while !remaining.isEmpty, ContinuousClock.now < end {
            guard let m = rd_kafka_consumer_poll(rk, 100) else { continue }
            defer { rd_kafka_message_destroy(m) }
            let partition = m.pointee.partition
            if m.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                // The end, or an error of that partition (e.g. it does not exist): nothing more.
                if m.pointee.err == RD_KAFKA_RESP_ERR__PARTITION_EOF || remaining.contains(partition) { remaining.remove(partition) }
                continue
            }
            if case .message(let message)? = KafkaConsumer.copy(m) { out[partition, default: []].append(message) }
        }
        guard remaining.isEmpty else {
            throw KafkaError(message: "reading the end of \(topic) took longer than \(timeout)", isRetriable: true)
        }
        return out
    }
}

import Foundation
import Kafka

/// Where the quarantine's marks live: the state topic (`kafka.stateTopic`), one record per mark,
/// keyed by requests topic, partition and group, in the state partition chosen by a hash of the
/// key. The current mark of a key is `PartitionMark.latest` of its stored marks; compaction keeps
/// the last records only, which is all the reader needs (the newest epoch is written last).
struct QuarantineStore: Sendable {
    let topic: String
    let group: String
    /// Partitions of the state topic (read at start).
    let partitions: Int32
    /// Client settings for the tail reader (the worker's, without group settings).
    let kafka: KafkaConfiguration
    /// Records read back from the end of a state partition to find a key's last mark.
    static let tailRecords = 512
    static let readTimeout: Duration = .seconds(10)
    static let writeTimeout: Duration = .seconds(10)

    func key(_ tp: TopicPartition) -> String { "\(tp.topic)/\(tp.partition)/\(group)" }

    /// FNV-1a of the key: stable across processes and versions (Swift's `hashValue` is not).
    func statePartition(_ tp: TopicPartition) -> Int32 {
        var hash: UInt32 = 2_166_136_261
        for byte in key(tp).utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return Int32(hash % UInt32(max(1, partitions)))
    }

    func record(_ tp: TopicPartition, _ mark: PartitionMark) -> OutgoingMessage {
        OutgoingMessage(topic: topic, key: Array(key(tp).utf8), value: Array(mark.encoded.utf8), partition: statePartition(tp))
    }

    /// The last mark of each partition (blocking: called in the rebalance callback). A partition
    /// whose mark cannot be read gets none, and starts without quarantine (logged by the caller).
    func read(_ tps: [TopicPartition]) -> Result<[TopicPartition: String], KafkaError> {
        let wanted = Set(tps.map(statePartition))
        let records: [Int32: [KafkaMessage]]
        do {
            records = try KafkaTail.read(
                configuration: kafka, topic: topic, partitions: wanted.sorted(), count: Self.tailRecords,
                timeout: Self.readTimeout)
        } catch {
            return .failure(error)
        }
        var out: [TopicPartition: String] = [:]
        for tp in tps {
            let k = key(tp)
            let marks = (records[statePartition(tp)] ?? []).filter { $0.keyString == k }
                .compactMap { PartitionMark(decoding: String(decoding: $0.value.prefix(1024), as: UTF8.self)) }
            if let current = PartitionMark.latest(marks) { out[tp] = current.encoded }
        }
        return .success(out)
    }
}

import CRdKafka
import Foundation
import Synchronization

/// librdkafka's in-process Kafka-protocol cluster: real brokers on 127.0.0.1 (random ports)
/// that any client in any process can reach while this object lives. Used as the test broker,
/// by `exocheck dev-broker` and by the demo.
///
/// It answers Produce, Fetch, Metadata, groups and offsets, but not CreateTopics: create topics
/// with `createTopic` (or let them auto-create with 4 partitions on first use).
public final class MockCluster: Sendable {
    private let host: ClientHandle
    private let cluster: ClusterHandle
    private let destroyed = Atomic<Bool>(false)
    /// Number of brokers in the cluster, as given to `init`.
    public let brokerCount: Int
    /// `127.0.0.1:p1,127.0.0.1:p2,…`
    public let bootstrapServers: String

    /// `@unchecked Sendable`: the mock API posts every operation to the cluster's own thread
    /// (thread-safe by design); the pointer is destroyed once, in `close()`/deinit.
    struct ClusterHandle: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    /// Starts a mock cluster of `brokers` brokers (default 3) with `rd_kafka_mock_cluster_new`,
    /// hosted by an internal producer handle.
    public init(brokers: Int = 3) throws(KafkaError) {
        let conf = try KafkaConfiguration(["log_level": "3"]).makeConf()
        var errstr = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(message: "cannot create the mock cluster's host handle: \(cString(errstr))")
        }
        guard let mc = rd_kafka_mock_cluster_new(rk, Int32(brokers)) else {
            rd_kafka_destroy(rk)
            throw KafkaError(message: "cannot create a mock cluster with \(brokers) brokers")
        }
        host = ClientHandle(pointer: rk)
        cluster = ClusterHandle(pointer: mc)
        brokerCount = brokers
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(mc))
    }

    deinit { close() }

    /// Destroys the cluster, then its host handle (clients should be closed before).
    public func close() {
        guard !destroyed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        rd_kafka_mock_cluster_destroy(cluster.pointer)
        rd_kafka_destroy(host.pointer)
    }

    /// Creates topic `name` with `partitions` partitions (`rd_kafka_mock_topic_create`); the
    /// replication factor is capped at `brokerCount`.
    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int = 1) throws(KafkaError) {
        try check(
            rd_kafka_mock_topic_create(cluster.pointer, name, Int32(partitions), Int32(min(replicationFactor, brokerCount))),
            "create topic \(name)")
    }

    /// Takes broker `id` (1-based; -1 = all) down or up.
    public func setBroker(_ id: Int32, up: Bool) throws(KafkaError) {
        try check(
            up ? rd_kafka_mock_broker_set_up(cluster.pointer, id) : rd_kafka_mock_broker_set_down(cluster.pointer, id),
            "set broker \(id) \(up ? "up" : "down")")
    }

    /// Adds `milliseconds` of round-trip time to broker `id`.
    public func setRTT(broker id: Int32, milliseconds: Int) throws(KafkaError) {
        try check(rd_kafka_mock_broker_set_rtt(cluster.pointer, id, Int32(milliseconds)), "set rtt")
    }

    /// The next requests of `apiKey` (0 Produce, 1 Fetch, 8 OffsetCommit, 12 Heartbeat…) fail
    /// with these error codes, one each.
    public func pushRequestErrors(apiKey: Int16, _ codes: [Int32]) {
        let errors = codes.map { rd_kafka_resp_err_t(rawValue: $0) }
        errors.withUnsafeBufferPointer { rd_kafka_mock_push_request_errors_array(cluster.pointer, apiKey, $0.count, $0.baseAddress) }
    }

    /// Metadata requests for `topic` answer `code` from now on (3 = UNKNOWN_TOPIC_OR_PART makes
    /// it look missing; 0 brings it back), so that clients see a deleted or forbidden topic.
    public func setTopicError(_ topic: String, code: Int32) {
        rd_kafka_mock_topic_set_error(cluster.pointer, topic, rd_kafka_resp_err_t(rawValue: code))
    }

    /// Makes broker `broker` the leader of partition `partition` of `topic`
    /// (`rd_kafka_mock_partition_set_leader`).
    public func setPartitionLeader(topic: String, partition: Int32, broker: Int32) throws(KafkaError) {
        try check(rd_kafka_mock_partition_set_leader(cluster.pointer, topic, partition, broker), "set leader")
    }

    private func check(_ err: rd_kafka_resp_err_t, _ what: String) throws(KafkaError) {
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: what) }
    }
}

import Foundation
import Kafka
import Synchronization
import Testing
import ExocheckTestSupport

/// The Kafka layer against librdkafka's mock cluster: the real wire protocol over TCP on loopback.
@Suite("Kafka layer on the mock cluster", .serialized)
struct KafkaTests {
    @Test("round trip with keys and headers; per-key order kept")
    func roundTrip() async throws {
        let cluster = try MockCluster(brokers: 3)
        defer { cluster.close() }
        let topic = uniqueName("roundtrip")
        try cluster.createTopic(topic, partitions: 3)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster.bootstrapServers))
        for i in 0..<30 {
            let report = try await producer.send(OutgoingMessage(
                topic: topic, key: "tenant-\(i % 3)", value: "value-\(i)",
                headers: [KafkaHeader("exocheck-id", "id-\(i)"), KafkaHeader("content-type", "application/json")]))
            #expect(report.topic == topic && report.offset >= 0)
        }
        await producer.close()

        let consumer = try KafkaConsumer(configuration: consumerConfiguration(cluster.bootstrapServers, group: uniqueName("g")), topics: [topic])
        let (log, task) = collect(consumer)
        #expect(await eventually { await log.messages.count == 30 })
        let messages = await log.messages
        for m in messages {
            let i = Int(String(decoding: m.value, as: UTF8.self).dropFirst("value-".count)) ?? -1
            #expect(m.keyString == "tenant-\(i % 3)")
            #expect(m.header("exocheck-id") == "id-\(i)")
            #expect(m.header("content-type") == "application/json")
        }
        for k in 0..<3 {
            let values = messages.filter { $0.keyString == "tenant-\(k)" }.map { Int(String(decoding: $0.value, as: UTF8.self).dropFirst(6)) ?? -1 }
            #expect(values == values.sorted(), "per-key order")
            #expect(Set(messages.filter { $0.keyString == "tenant-\(k)" }.map(\.partition)).count == 1)
        }
        await consumer.close()
        await task.value
    }

    @Test("a reader with enable.partition.eof reports each partition's end after its last record (dlq reads a topic to its end this way); without it, no end events")
    func partitionEnd() async throws {
        let cluster = try MockCluster(brokers: 1)
        defer { cluster.close() }
        let topic = uniqueName("eof")
        try cluster.createTopic(topic, partitions: 2)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster.bootstrapServers))
        for i in 0..<5 { _ = try await producer.send(OutgoingMessage(topic: topic, value: Array("v\(i)".utf8), partition: 0)) }
        await producer.close()
        var config = KafkaConfiguration(["bootstrap.servers": cluster.bootstrapServers, "log_level": "3"])
        config.properties["enable.partition.eof"] = "true"
        let starts = try await KafkaMetadata.startOffsets(topic: topic, position: .beginning, configuration: config)
        let consumer = try KafkaConsumer(configuration: config, assignment: starts, handOffLimit: 2)
        var order: [String] = []
        var ended = Set<Int32>()
        for await event in consumer.events {
            switch event {
            case .message(let m):
                order.append("m\(m.partition):\(m.offset)")
                consumer.handled()
            case .partitionEnd(let tp):
                order.append("end\(tp.partition)")
                ended.insert(tp.partition)
            default: break
            }
            if ended.count == 2 { break }
        }
        await consumer.close()
        #expect(order.filter { $0.hasPrefix("m0:") } == (0..<5).map { "m0:\($0)" })
        #expect(order.firstIndex(of: "end0").map { $0 > (order.lastIndex { $0.hasPrefix("m0:") } ?? -1) } == true, "\(order)")
        #expect(ended == [0, 1], "an empty partition ends too")
    }

    @Test("10,000 messages with every broker down for 4 s: all delivered exactly once")
    func brokerDown() async throws {
        let cluster = try MockCluster(brokers: 3)
        defer { cluster.close() }
        let topic = uniqueName("outage")
        try cluster.createTopic(topic, partitions: 4)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster.bootstrapServers, extra: ["message.timeout.ms": "60000"]))
        let outage = Task {
            try await Task.sleep(for: .milliseconds(300))
            try cluster.setBroker(-1, up: false)
            try await Task.sleep(for: .seconds(4))
            try cluster.setBroker(-1, up: true)
        }
        let failures = try await withThrowingTaskGroup(of: Int.self) { group in
            for batch in 0..<10 {
                group.addTask {
                    var failed = 0
                    for i in 0..<1000 {
                        do {
                            try await producer.send(OutgoingMessage(topic: topic, key: "k\(i % 50)", value: "\(batch * 1000 + i)"))
                        } catch {
                            failed += 1
                        }
                        if i % 100 == 0 { try await Task.sleep(for: .milliseconds(20)) }
                    }
                    return failed
                }
            }
            return try await group.reduce(0, +)
        }
        try await outage.value
        #expect(failures == 0)
        await producer.close()

        let consumer = try KafkaConsumer(configuration: consumerConfiguration(cluster.bootstrapServers, group: uniqueName("g")), topics: [topic])
        let (log, task) = collect(consumer)
        #expect(await eventually(timeout: .seconds(60)) { await log.messages.count >= 10_000 })
        try await Task.sleep(for: .milliseconds(500))
        let values = await log.messages.map { String(decoding: $0.value, as: UTF8.self) }
        #expect(values.count == 10_000)
        #expect(Set(values).count == 10_000, "no duplicates (idempotent producer)")
        await consumer.close()
        await task.value
    }

    @Test("send(onDelivery:): each record's report is called back exactly once with where it landed; a broker error reaches the callback; a closed producer answers at once")
    func sendWithCallback() async throws {
        let cluster = try MockCluster(brokers: 1)
        defer { cluster.close() }
        let topic = uniqueName("callback")
        try cluster.createTopic(topic, partitions: 2)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster.bootstrapServers))
        try await producer.send(OutgoingMessage(topic: topic, key: nil, value: "warm-up"))
        let reports = Mutex<[Int: [Result<DeliveryReport, KafkaError>]]>([:])
        for i in 0..<200 {
            producer.send(OutgoingMessage(topic: topic, key: "k\(i % 2)", value: "\(i)")) { outcome in
                reports.withLock { $0[i, default: []].append(outcome) }
            }
        }
        #expect(await eventually(timeout: .seconds(20)) { reports.withLock { $0.count } == 200 })
        try await Task.sleep(for: .milliseconds(200))
        let all = reports.withLock { $0 }
        #expect(all.values.allSatisfy { $0.count == 1 }, "once per record")
        let landed = all.values.compactMap { try? $0.first?.get() }
        #expect(landed.count == 200)
        #expect(Set(landed.map { "\($0.partition)/\($0.offset)" }).count == 200, "each at its own offset")
        // A broker error goes to the callback, not to a waiting task.
        cluster.pushRequestErrors(apiKey: 0, [KafkaError.messageTooLarge])
        let failure = Mutex<KafkaError?>(nil)
        producer.send(OutgoingMessage(topic: topic, key: nil, value: "too big")) { outcome in
            if case .failure(let error) = outcome { failure.withLock { $0 = error } }
        }
        #expect(await eventually(timeout: .seconds(20)) { failure.withLock { $0 } != nil })
        #expect(failure.withLock { $0?.code } == KafkaError.messageTooLarge)
        await producer.close()
        let afterClose = Mutex<Bool?>(nil)
        producer.send(OutgoingMessage(topic: topic, key: nil, value: "late")) { outcome in
            afterClose.withLock { $0 = (try? outcome.get()) == nil }
        }
        #expect(afterClose.withLock { $0 } == true, "answered at once with an error")
    }

    @Test("a non-retriable broker error (message too large) reaches the caller")
    func messageTooLarge() async throws {
        let cluster = try MockCluster(brokers: 1)
        defer { cluster.close() }
        let topic = uniqueName("large")
        try cluster.createTopic(topic, partitions: 1)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster.bootstrapServers))
        try await producer.send(OutgoingMessage(topic: topic, key: nil, value: "warm-up"))
        cluster.pushRequestErrors(apiKey: 0, [KafkaError.messageTooLarge])
        await #expect {
            try await producer.send(OutgoingMessage(topic: topic, key: nil, value: "too big"))
        } throws: { error in
            (error as? KafkaError).map { $0.code == KafkaError.messageTooLarge && !$0.isRetriable } ?? false
        }
        // The producer keeps working afterwards.
        try await producer.send(OutgoingMessage(topic: topic, key: nil, value: "after"))
        await producer.close()
    }

    @Test("a message over message.max.bytes fails locally with a clear error")
    func localTooLarge() async throws {
        let cluster = try MockCluster(brokers: 1)
        defer { cluster.close() }
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster.bootstrapServers, extra: ["message.max.bytes": "1000"]))
        await #expect(throws: KafkaError.self) {
            try await producer.send(OutgoingMessage(topic: uniqueName("t"), key: nil, value: [UInt8](repeating: 65, count: 5000)))
        }
        await producer.close()
    }

    @Test("a send whose task is cancelled returns at once, even with every broker down (was: waited for message.timeout.ms)")
    func cancellableSend() async throws {
        let cluster = try MockCluster(brokers: 1)
        defer { cluster.close() }
        let topic = uniqueName("cancel")
        try cluster.createTopic(topic, partitions: 1)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster.bootstrapServers))
        try await producer.send(OutgoingMessage(topic: topic, key: nil, value: "warm"))
        try cluster.setBroker(-1, up: false)
        let send = Task { () -> KafkaError? in
            do throws(KafkaError) {
                try await producer.send(OutgoingMessage(topic: topic, key: nil, value: "stuck"))
                return nil
            } catch {
                return error
            }
        }
        try await Task.sleep(for: .milliseconds(300))
        let cancelledAt = ContinuousClock.now
        send.cancel()
        let error = await send.value
        #expect(cancelledAt.duration(to: .now) < .seconds(2))
        #expect(error?.code == KafkaProducer.cancelledCode)
        // Cancelled before it starts: it never enqueues.
        let early = Task { () -> KafkaError? in
            withUnsafeCurrentTask { $0?.cancel() }
            do throws(KafkaError) {
                try await producer.send(OutgoingMessage(topic: topic, key: nil, value: "never"))
                return nil
            } catch {
                return error
            }
        }
        #expect(await early.value?.code == KafkaProducer.cancelledCode)
        try cluster.setBroker(-1, up: true)
        await producer.close()
    }

    @Test("an invalid property fails at construction with librdkafka's message")
    func invalidProperty() {
        #expect {
            _ = try KafkaProducer(configuration: KafkaConfiguration(["no.such.property": "1"]))
        } throws: { error in
            (error as? KafkaError).map { $0.isConfiguration && $0.message.contains("no.such.property") } ?? false
        }
        #expect(throws: KafkaError.self) {
            _ = try KafkaConsumer(configuration: KafkaConfiguration(["bootstrap.servers": "127.0.0.1:1"]), topics: ["t"])
        }
    }

    @Test("two consumers split the partitions; after one leaves cleanly the other owns everything",
          arguments: ["range", "cooperative-sticky"])
    func groupSplitAndLeave(strategy: String) async throws {
        let cluster = try MockCluster(brokers: 1)
        defer { cluster.close() }
        let topic = uniqueName("group")
        try cluster.createTopic(topic, partitions: 4)
        let group = uniqueName("g")
        let a = try KafkaConsumer(configuration: consumerConfiguration(cluster.bootstrapServers, group: group, strategy: strategy), topics: [topic])
        let (logA, taskA) = collect(a)
        #expect(await eventually { await logA.assigned.count == 4 })
        let b = try KafkaConsumer(configuration: consumerConfiguration(cluster.bootstrapServers, group: group, strategy: strategy), topics: [topic])
        let (logB, taskB) = collect(b)
        let split = await eventually(timeout: .seconds(40)) {
            let x = await logA.assigned, y = await logB.assigned
            return x.count + y.count == 4 && !x.isEmpty && !y.isEmpty && x.isDisjoint(with: y)
        }
        #expect(split)
        if strategy == "cooperative-sticky" {
            // Incremental: A never gave up everything at once.
            #expect(await logA.revocations.allSatisfy { $0.count < 4 })
        }
        await b.close()
        await taskB.value
        #expect(await eventually(timeout: .seconds(40)) { await logA.assigned.count == 4 })
        #expect(a.assignment.count == 4)
        await a.close()
        await taskA.value
    }

    @Test("committed offsets survive a consumer restart: nothing re-read, nothing skipped")
    func committedOffsets() async throws {
        let cluster = try MockCluster(brokers: 1)
        defer { cluster.close() }
        let topic = uniqueName("offsets")
        try cluster.createTopic(topic, partitions: 1)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster.bootstrapServers))
        for i in 0..<20 { try await producer.send(OutgoingMessage(topic: topic, key: nil, value: "\(i)")) }
        await producer.close()
        let group = uniqueName("g")

        let first = try KafkaConsumer(configuration: consumerConfiguration(cluster.bootstrapServers, group: group), topics: [topic])
        var processed = 0
        for await event in first.events {
            guard case .message(let m) = event else { continue }
            #expect(m.offset == Int64(processed))
            try first.store(m.topicPartition, offset: m.offset + 1)
            processed += 1
            if processed == 10 { break }
        }
        try await first.commit()
        #expect(try await first.committed([TopicPartition(topic, 0)])[TopicPartition(topic, 0)] == 10)
        await first.close()

        let second = try KafkaConsumer(configuration: consumerConfiguration(cluster.bootstrapServers, group: group), topics: [topic])
        var offsets: [Int64] = []
        for await event in second.events {
            guard case .message(let m) = event else { continue }
            offsets.append(m.offset)
            if offsets.count == 10 { break }
        }
        #expect(offsets == Array(10..<20))
        await second.close()
    }

    @Test("pause stops delivery and resume brings it back, nothing lost")
    func pauseResume() async throws {
        let cluster = try MockCluster(brokers: 1)
        defer { cluster.close() }
        let topic = uniqueName("pause")
        try cluster.createTopic(topic, partitions: 2)
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(cluster.bootstrapServers, group: uniqueName("g")), topics: [topic])
        let (log, task) = collect(consumer)
        #expect(await eventually { await log.assigned.count == 2 })
        try consumer.pause(Array(consumer.assignment))
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster.bootstrapServers))
        for i in 0..<10 { try await producer.send(OutgoingMessage(topic: topic, key: "k\(i)", value: "\(i)")) }
        try await Task.sleep(for: .seconds(2))
        #expect(await log.messages.isEmpty)
        try consumer.resume(Array(consumer.assignment))
        #expect(await eventually { await log.messages.count == 10 })
        try await Task.sleep(for: .milliseconds(300))
        #expect(await log.messages.count == 10)
        await producer.close()
        await consumer.close()
        await task.value
    }

    @Test("the hand-off from the poll thread is bounded: at most handOffLimit messages given out and not handled; handled() makes room (was: an unbounded buffer)",
          arguments: [nil, 5] as [Int?])
    func boundedHandOff(limit: Int?) async throws {
        let cluster = try MockCluster(brokers: 1)
        defer { cluster.close() }
        let topic = uniqueName("handoff")
        try cluster.createTopic(topic, partitions: 1)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster.bootstrapServers))
        for i in 0..<50 { try await producer.send(OutgoingMessage(topic: topic, key: "k", value: "\(i)")) }
        await producer.close()
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(cluster.bootstrapServers, group: uniqueName("g")),
                                         topics: [topic], handOffLimit: limit)
        let received = Mutex<[String]>([])
        // A slow application: it reads messages but handles none until told.
        let reader = Task {
            for await event in consumer.events {
                if case .message(let m) = event { received.withLock { $0.append(String(decoding: m.value, as: UTF8.self)) } }
            }
        }
        _ = await eventually(timeout: .seconds(15)) { received.withLock { $0.count } >= (limit ?? 50) }
        try await Task.sleep(for: .seconds(1))
        let before = received.withLock { $0.count }
        if let limit {
            #expect(before == limit, "\(before) messages given out with a hand-off limit of \(limit)")
            #expect(consumer.unhandled == limit)
            // Now the application handles each message it got: the rest follow.
            var handled = 0
            #expect(await eventually(timeout: .seconds(20)) {
                let got = received.withLock { $0.count }
                while handled < got { consumer.handled(); handled += 1 }
                return got == 50
            })
            #expect(received.withLock { $0 } == (0..<50).map(String.init), "in order, none lost or repeated")
        } else {
            #expect(before == 50, "without a limit every message is given out at once")
        }
        await consumer.close()
        await reader.value
    }

    @Test("a sink receives every event on the poll thread in order (assigned before the messages), events finishes at once, and handled(n) makes room for n at a time")
    func sinkDelivery() async throws {
        let cluster = try MockCluster(brokers: 1)
        defer { cluster.close() }
        let topic = uniqueName("sink")
        try cluster.createTopic(topic, partitions: 2)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster.bootstrapServers))
        for i in 0..<40 { try await producer.send(OutgoingMessage(topic: topic, key: "k\(i % 2)", value: "\(i)")) }
        await producer.close()
        let seen = Mutex<(events: [String], values: [String])>(([], []))
        let consumer = try KafkaConsumer(
            configuration: consumerConfiguration(cluster.bootstrapServers, group: uniqueName("g")), topics: [topic], handOffLimit: 10,
            sink: { event in
                seen.withLock { s in
                    switch event {
                    case .message(let m):
                        s.events.append("message")
                        s.values.append(String(decoding: m.value, as: UTF8.self))
                    case .assigned: s.events.append("assigned")
                    default: break
                    }
                }
            })
        // Nothing goes to `events` when there is a sink: the stream ends at once.
        var onStream = 0
        for await _ in consumer.events { onStream += 1 }
        #expect(onStream == 0)
        // The hand-off limit holds with a sink too; handled(n) releases n at a time.
        for round in 1...4 {
            _ = await eventually(timeout: .seconds(15)) { seen.withLock { $0.values.count } >= 10 * round }
            try await Task.sleep(for: .milliseconds(300))
            #expect(seen.withLock { $0.values.count } == 10 * round, "round \(round)")
            #expect(consumer.unhandled == 10)
            consumer.handled(10)
        }
        let (events, values) = seen.withLock { ($0.events, $0.values) }
        #expect(events.first == "assigned", "the assignment comes before its partitions' messages")
        #expect(Set(values) == Set((0..<40).map(String.init)), "none lost or repeated")
        #expect(values.count == 40)
        for k in 0..<2 {
            let ofKey = values.compactMap(Int.init).filter { $0 % 2 == k }
            #expect(ofKey == ofKey.sorted(), "per-partition order")
        }
        await consumer.close()
    }

    @Test("holding(n): records the application holds count against the hand-off limit; the poll thread stops at the limit and goes on when they drop, without pausing (no re-fetch)")
    func holdingGate() async throws {
        let cluster = try MockCluster(brokers: 1)
        defer { cluster.close() }
        let topic = uniqueName("holding")
        try cluster.createTopic(topic, partitions: 1)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster.bootstrapServers))
        for i in 0..<30 { try await producer.send(OutgoingMessage(topic: topic, key: "k", value: "\(i)")) }
        await producer.close()
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(cluster.bootstrapServers, group: uniqueName("g")),
                                         topics: [topic], handOffLimit: 10)
        let received = Mutex<[String]>([])
        let held = Mutex(0)
        // The application takes each message at once (handled) and keeps it in a backlog.
        let reader = Task {
            for await event in consumer.events {
                guard case .message(let m) = event else { continue }
                received.withLock { $0.append(String(decoding: m.value, as: UTF8.self)) }
                // Held first, then handled: the count never dips while the message changes hands.
                consumer.holding(held.withLock { h in
                    h += 1
                    return h
                })
                consumer.handled()
            }
        }
        #expect(await eventually(timeout: .seconds(15)) { received.withLock { $0.count } >= 10 })
        try await Task.sleep(for: .seconds(1))
        #expect(received.withLock { $0.count } == 10, "held records count against the limit")
        // The application works its backlog off: ten more follow, then it stops again.
        held.withLock { $0 = 0 }
        consumer.holding(0)
        #expect(await eventually(timeout: .seconds(15)) { received.withLock { $0.count } >= 20 })
        try await Task.sleep(for: .milliseconds(500))
        #expect(received.withLock { $0.count } == 20)
        held.withLock { $0 = 0 }
        consumer.holding(0)
        #expect(await eventually(timeout: .seconds(15)) { received.withLock { $0.count } == 30 })
        #expect(received.withLock { $0 } == (0..<30).map(String.init))
        await consumer.close()
        await reader.value
    }

    @Test("a shut gate still serves rebalances: a member whose application holds everything polls again after maxGateWait, so a new member gets partitions within seconds (was: no poll at all while gated, so the rebalance waited for max.poll.interval.ms)")
    func gateServesRebalance() async throws {
        let cluster = try MockCluster(brokers: 1)
        defer { cluster.close() }
        let topic = uniqueName("gate")
        try cluster.createTopic(topic, partitions: 4)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster.bootstrapServers))
        for i in 0..<40 { try await producer.send(OutgoingMessage(topic: topic, key: "k\(i)", value: "\(i)")) }
        await producer.close()
        let group = uniqueName("g")
        let a = try KafkaConsumer(configuration: consumerConfiguration(cluster.bootstrapServers, group: group), topics: [topic], handOffLimit: 1)
        // A stuck application: it takes what it gets and says it holds all of it.
        let readerA = Task {
            var held = 0
            for await event in a.events {
                guard case .message = event else { continue }
                held += 1
                a.holding(held)
                a.handled()
            }
        }
        #expect(await eventually(timeout: .seconds(20)) { a.assignment.count == 4 })
        try await Task.sleep(for: .seconds(2))
        let b = try KafkaConsumer(configuration: consumerConfiguration(cluster.bootstrapServers, group: group), topics: [topic])
        let readerB = Task { for await _ in b.events {} }
        #expect(await eventually(timeout: .seconds(25)) { !b.assignment.isEmpty }, "the new member got no partition while the other was gated")
        await b.close()
        await a.close()
        await readerB.value
        await readerA.value
    }

    @Test("close() leaves no librdkafka thread running")
    func noThreadsAfterClose() async throws {
        let cluster = try MockCluster(brokers: 1)
        defer { cluster.close() }
        let topic = uniqueName("threads")
        try cluster.createTopic(topic, partitions: 1)
        try await Task.sleep(for: .milliseconds(200))
        let before = threadCount()
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster.bootstrapServers))
        try await producer.send(OutgoingMessage(topic: topic, key: nil, value: "x"))
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(cluster.bootstrapServers, group: uniqueName("g")), topics: [topic])
        let (log, task) = collect(consumer)
        #expect(await eventually { await log.messages.count == 1 })
        #expect(threadCount() > before)
        await producer.close()
        await consumer.close()
        await task.value
        #expect(await eventually(timeout: .seconds(5)) { threadCount() <= before }, "threads: before \(before), after \(threadCount())")
    }

    @Test("send after close fails; close is idempotent")
    func closedProducer() async throws {
        let cluster = try MockCluster(brokers: 1)
        defer { cluster.close() }
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster.bootstrapServers))
        await producer.close()
        await producer.close()
        await #expect(throws: KafkaError.self) { try await producer.send(OutgoingMessage(topic: "t", key: nil, value: "x")) }
    }
}

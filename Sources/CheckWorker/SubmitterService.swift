import ExchangeChecks
import Foundation
import Kafka
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Settings of `exocheck submitter`.
public struct SubmitterConfiguration: Sendable {
    /// The Unix socket it listens on.
    public var socketPath: String
    /// The socket file's permissions (default 0600: only the owner may submit; 0660 lets a group,
    /// such as the poller's, submit too).
    public var socketMode: UInt16 = 0o600
    /// Connections served at once (each waiting submit holds one); more are told at once to send
    /// their check themselves. Well below the usual 1,024 open files a process may have.
    public var maxConnections = 256
    /// How long a client may take to send its request after connecting.
    public var requestReadTimeout: Duration = .seconds(5)

    /// Settings for a submitter listening on `socketPath`; the rest are defaults.
    public init(socketPath: String) { self.socketPath = socketPath }
}

/// What went wrong starting the submitter; each names what to change.
public struct SubmitterError: Error, CustomStringConvertible, Sendable {
    /// What to change, in words.
    public let description: String
    /// An error whose text names what to change.
    public init(_ description: String) { self.description = description }
}

/// Ids of submits waiting for their result, each with the stream its result arrives on.
final class ResultWaiters: Sendable {
    private let table = Mutex<[String: AsyncStream<[UInt8]>.Continuation]>([:])

    /// A stream for `id`'s result; nil when `id` already waits here or `limit` ids wait.
    func register(_ id: String, limit: Int) -> AsyncStream<[UInt8]>? {
        let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self, bufferingPolicy: .bufferingNewest(1))
        let added = table.withLock { t -> Bool in
            guard t[id] == nil, t.count < limit else { return false }
            t[id] = continuation
            return true
        }
        if !added { continuation.finish() }
        return added ? stream : nil
    }

    func remove(_ id: String) {
        table.withLock { $0.removeValue(forKey: id) }?.finish()
    }

    func isWaiting(_ id: String) -> Bool { table.withLock { $0[id] != nil } }

    func deliver(_ id: String, _ value: [UInt8]) {
        _ = table.withLock { $0[id] }?.yield(value)
    }

    var count: Int { table.withLock { $0.count } }
}

/// `exocheck submitter`: a long-lived local process that sends the checks of `exocheck submit
/// --socket` with one producer and answers them from one results reader, so that a submit costs
/// a process start and a socket exchange instead of several Kafka clients and their fetch waits.
///
/// It reads the results topic from its end at start-up (no group, nothing committed) and the
/// heartbeat topic for orphan answers, exactly as `submit` does on its own; see SubmitterWire for
/// the protocol and its limits. Stops on graceful shutdown: waiting clients get a refusal.
public final class SubmitterService: Service, Sendable {
    let configuration: SubmitterConfiguration
    let kafka: KafkaConfiguration
    let topics: WorkerConfiguration.KafkaSection
    let waiters = ResultWaiters()
    /// The latest heartbeat time that vouched for the requests topic and group.
    let lastVouch = Mutex<Date?>(nil)
    /// False when the heartbeat topic cannot be read: then nobody can tell an orphan.
    let heartbeatsReadable = Mutex<Bool>(false)
    let connections = Atomic<Int>(0)
    let onReady: @Sendable () -> Void

    /// A submitter for `topics` on `kafka`; `onReady` is called once the socket listens.
    public init(
        configuration: SubmitterConfiguration, kafka: KafkaConfiguration, topics: WorkerConfiguration.KafkaSection,
        onReady: @escaping @Sendable () -> Void = {}
    ) {
        self.configuration = configuration
        var readers = kafka
        readers.groupId = nil
        self.kafka = readers
        self.topics = topics
        self.onReady = onReady
    }

    /// Listens until graceful shutdown (ServiceLifecycle), then closes its Kafka clients and removes the socket.
    public func run() async throws {
        let path = configuration.socketPath
        try Self.clearStaleSocket(path)
        let producer = try KafkaProducer(configuration: kafka)
        let start = try await KafkaMetadata.startOffsets(topic: topics.results, position: .end, configuration: kafka)
        let results = try KafkaConsumer(configuration: kafka, assignment: start)
        var heartbeats: KafkaConsumer? = nil
        if !topics.heartbeatTopic.isEmpty,
            let marks = try? await KafkaMetadata.watermarks(of: topics.heartbeatTopic, configuration: kafka, timeout: .seconds(5))
        {
            heartbeats = try? KafkaConsumer(
                configuration: kafka, assignment: marks.mapValues { Swift.max($0.low, $0.high - WorkerHeartbeat.readBack) })
        }
        heartbeatsReadable.withLock { $0 = heartbeats != nil }
        let server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
        do {
            server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.backlog, value: 256)
                .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: false) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            await producer.close()
            await results.close()
            await heartbeats?.close()
            throw SubmitterError("cannot listen on \(path): \(error)")
        }
        defer { unlink(path) }
        guard chmod(path, mode_t(configuration.socketMode)) == 0 else {
            await producer.close()
            await results.close()
            await heartbeats?.close()
            throw SubmitterError("cannot set the permissions of \(path): \(String(cString: strerror(errno)))")
        }
        onReady()
        var listenerFailure: (any Error)? = nil
        await withDiscardingTaskGroup { group in
            group.addTask { await self.follow(results: results) }
            if let heartbeats { group.addTask { await self.follow(heartbeats: heartbeats) } }
            do {
                try await cancelWhenGracefulShutdown {
                    try await server.executeThenClose { inbound in
                        try await withThrowingDiscardingTaskGroup { connections in
                            for try await connection in inbound {
                                connections.addTask { await self.serve(connection, producer: producer) }
                            }
                        }
                    }
                }
            } catch is CancellationError {
            } catch {
                listenerFailure = error
            }
            // Shut down (or the listener failed): the readers stop with it.
            group.cancelAll()
        }
        await producer.close()
        await results.close()
        await heartbeats?.close()
        // A failed listener is an error (exit 1, so that a supervisor restarts the submitter).
        if let listenerFailure { throw SubmitterError("the socket \(path) stopped accepting: \(listenerFailure)") }
    }

    /// How far ahead of this clock a heartbeat may be dated, in seconds.
    static let heartbeatSkew: Double = 60

    /// A socket file left by a submitter that is gone is removed; one that answers, or a path
    /// that is not a socket, is an error (never deleted).
    static func clearStaleSocket(_ path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard (st.st_mode & S_IFMT) == S_IFSOCK else { throw SubmitterError("\(path) exists and is not a socket: choose another --socket") }
        switch SubmitterClient.connect(path, timeout: .seconds(1)) {
        case .success(let fd):
            close(fd)
            throw SubmitterError("another submitter listens on \(path)")
        case .failure(let f) where f.code != ECONNREFUSED:
            // Busy, or not ours to use: never delete a socket that may be alive.
            throw SubmitterError("\(path) exists and cannot be checked (\(f.message)): remove it if no submitter uses it")
        case .failure:
            unlink(path)
        }
    }

    func follow(results: KafkaConsumer) async {
        for await event in results.events {
            // Only records someone waits for are decoded; the id inside must match the header's.
            guard case .message(let m) = event, let id = m.header("exocheck-id"), waiters.isWaiting(id),
                let r = CheckResultMessage.decode(m.value), r.id == id
            else { continue }
            waiters.deliver(id, m.value)
        }
    }

    func follow(heartbeats: KafkaConsumer) async {
        for await event in heartbeats.events {
            guard case .message(let m) = event, let beat = WorkerHeartbeat.decode(m.value),
                beat.vouches(for: topics.requests, group: topics.group, since: .distantPast)
            else { continue }
            let at = Date(timeIntervalSince1970: Double(beat.at) / 1000)
            // A heartbeat dated ahead of this clock (beyond skew) would vouch forever: ignored.
            guard at.timeIntervalSinceNow < SubmitterService.heartbeatSkew else { continue }
            lastVouch.withLock { last in if last.map({ $0 < at }) ?? true { last = at } }
        }
    }

    private enum ConnectionEvent: Sendable {
        case frame(SubmitterWire.Submission, [UInt8])
        case invalid(String)
        case ended(String)
        case readTimedOut
        case answered([UInt8])
        case lingerOver
    }

    /// How long a reply may take to be read by its client before the connection is closed.
    static let replyLinger: Duration = .seconds(10)

    /// One client: read its frame (within the read timeout), answer it, and give up on it if it
    /// goes away while waiting (its waiter is removed).
    func serve(_ channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>, producer: KafkaProducer) async {
        let open = connections.add(1, ordering: .relaxed).newValue
        defer { connections.subtract(1, ordering: .relaxed) }
        try? await channel.executeThenClose { inbound, outbound in
            guard open <= self.configuration.maxConnections else {
                try await outbound.write(
                    ByteBuffer(
                        bytes: SubmitterWire.reply(
                            .notSent, message: "the submitter serves \(self.configuration.maxConnections) connections at once")))
                // The client closes after reading; the linger bounds one that does not.
                _ = try? await withThrowingTaskGroup(of: Void.self) { g in
                    g.addTask { for try await _ in inbound {} }
                    g.addTask { try await Task.sleep(for: SubmitterService.replyLinger) }
                    try await g.next()
                    g.cancelAll()
                }
                return
            }
            let (events, sink) = AsyncStream.makeStream(of: ConnectionEvent.self)
            let readTimeout = self.configuration.requestReadTimeout
            await withDiscardingTaskGroup { group in
                group.addTask {
                    var reader = SubmitterFrameReader.submission()
                    var framed = false
                    var iterator = inbound.makeAsyncIterator()
                    do {
                        reading: while !framed, let buffer = try await iterator.next() {
                            switch reader.feed(buffer.readableBytesView) {
                            case .needMore: continue
                            case .frame(let header, let payload):
                                framed = true
                                sink.yield(.frame(header, payload))
                            case .invalid(let reason):
                                sink.yield(.invalid(reason))
                                break reading
                            }
                        }
                        // Then read on only to notice the client closing (after it read the
                        // reply, or giving up while waiting); what it sends is dropped.
                        while try await iterator.next() != nil {}
                    } catch {}
                    sink.yield(.ended(framed ? "gone" : reader.endedEarly))
                }
                group.addTask {
                    try? await Task.sleep(for: readTimeout)
                    sink.yield(.readTimedOut)
                }
                var framed = false
                var replied = false
                loop: for await event in events {
                    var reply: [UInt8]? = nil
                    switch event {
                    case .frame(let header, let payload):
                        framed = true
                        group.addTask { sink.yield(.answered(await self.answer(header, payload, producer: producer))) }
                    case .invalid(let reason):
                        reply = SubmitterWire.reply(.refused, message: "bad request frame: \(reason)")
                    case .readTimedOut:
                        if !framed, !replied { reply = SubmitterWire.reply(.refused, message: "no whole request within \(readTimeout)") }
                    case .ended:
                        // Before a frame: nothing to answer. After the reply: the client has read
                        // it. While waiting: the client left, and its wait ends.
                        break loop
                    case .answered(let bytes):
                        reply = bytes
                    case .lingerOver:
                        break loop
                    }
                    if let reply, !replied {
                        // NIO drops what the socket has not taken when the channel closes: keep it
                        // open until the client closes after reading, for at most `replyLinger`.
                        replied = true
                        group.addTask { try? await outbound.write(ByteBuffer(bytes: reply)) }
                        group.addTask {
                            try? await Task.sleep(for: SubmitterService.replyLinger)
                            sink.yield(.lingerOver)
                        }
                    }
                }
                sink.finish()
                group.cancelAll()
            }
        }
    }

    /// The reply to one submission: refused, sent, or the result / timeout / orphan answer.
    func answer(_ header: SubmitterWire.Submission, _ payload: [UInt8], producer: KafkaProducer) async -> [UInt8] {
        if let problem = header.problem { return SubmitterWire.reply(.refused, message: problem) }
        let request: CheckRequest
        switch CheckRequestDecoder.decode(payload, maxBytes: SubmitterWire.maxRequestBytes) {
        case .success(let r): request = r
        case .failure(let rejection): return SubmitterWire.reply(.refused, message: "the request is refused: \(rejection.reason)")
        }
        // The check as the worker will build it: a bad one is refused here, not by a worker.
        do { _ = try CheckSpec(mode: request.mode, options: CentreonArguments(request.arguments)) } catch {
            return SubmitterWire.reply(.refused, message: error.message)
        }
        let submitted = Date()
        var stream: AsyncStream<[UInt8]>? = nil
        if header.wait {
            guard let s = waiters.register(request.id, limit: configuration.maxConnections) else {
                return SubmitterWire.reply(.refused, message: "check \(request.id) is already waiting in this submitter")
            }
            stream = s
        }
        defer { if header.wait { waiters.remove(request.id) } }
        do {
            _ = try await producer.send(
                OutgoingMessage(
                    topic: topics.requests, key: Array(request.tenant.utf8), value: payload,
                    headers: [KafkaHeader("exocheck-id", request.id), KafkaHeader("content-type", "application/json")]))
        } catch {
            // Not delivered: the client may send it itself.
            return SubmitterWire.reply(.notSent, message: "Kafka: \(error.message)")
        }
        guard let stream else { return SubmitterWire.reply(.sent) }
        let timeout = header.timeoutSeconds
        let orphanTimeout = header.orphanTimeoutSeconds
        let watchOrphans = orphanTimeout > 0 && orphanTimeout < timeout && heartbeatsReadable.withLock { $0 }
        return await withTaskGroup(of: [UInt8]?.self) { group in
            group.addTask {
                for await value in stream { return SubmitterWire.reply(.result, payload: value) }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: Duration(clampedSeconds: timeout))
                if Task.isCancelled { return nil }
                return SubmitterWire.reply(
                    .timedOut, message: SubmitWording.timedOut(id: request.id, seconds: timeout, requests: self.topics.requests))
            }
            if watchOrphans {
                group.addTask {
                    let since = submitted.addingTimeInterval(-orphanTimeout)
                    if self.vouched(since: since) { return nil }
                    try? await Task.sleep(for: Duration(clampedSeconds: orphanTimeout))
                    if Task.isCancelled || self.vouched(since: since) { return nil }
                    return SubmitterWire.reply(
                        .orphaned,
                        message: SubmitWording.orphaned(
                            id: request.id, seconds: orphanTimeout, group: self.topics.group, requests: self.topics.requests,
                            heartbeats: self.topics.heartbeatTopic))
                }
            }
            var reply = SubmitterWire.reply(.refused, message: "the submitter is stopping")
            while let next = await group.next() {
                if let next {
                    reply = next
                    break
                }
            }
            group.cancelAll()
            return reply
        }
    }

    func vouched(since: Date) -> Bool { lastVouch.withLock { $0.map { $0 >= since } ?? false } }
}

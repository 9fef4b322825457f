import ExchangeChecks
import Foundation

/// The local protocol between `exocheck submit --socket` and `exocheck submitter`, a long-lived
/// process that keeps one producer and one results reader open for every submit of a poller (as
/// Mod-Gearman's `send_gearman` pairs with its workers).
///
/// One exchange per connection. A frame is a header (one JSON object and `\n`, at most
/// `maxHeaderBytes`) followed by exactly `bytes` bytes of payload:
/// - client → submitter: a `Submission` header and the check request's JSON (the record value
///   `submit` would produce itself);
/// - submitter → client: a `Reply` header and, for `result`, the result record's value.
///
/// Both sides treat the other as hostile: sizes are bounded before anything is buffered, and the
/// submitter decodes the request with the worker's own decoder before producing it.
public enum SubmitterWire {
    /// Protocol version in every header.
    public static let version = 1
    /// The largest header line, newline included.
    public static let maxHeaderBytes = 1_024
    /// The largest request payload (the worker's own request limit).
    public static let maxRequestBytes = 65_536
    /// The largest reply payload: a result record as large as a worker may publish, plus room.
    public static let maxReplyBytes = ResultSizePolicy.defaultMessageMaxBytes + 65_536

    /// What the client asks.
    public struct Submission: Codable, Sendable, Equatable {
        /// Protocol version (`SubmitterWire.version`).
        public var v: Int
        /// Whether to wait for the result (`submit --wait`); otherwise the reply is `sent`.
        public var wait: Bool
        /// `--timeout`, seconds.
        public var timeoutSeconds: Double
        /// `--orphan-timeout`, seconds (0: off).
        public var orphanTimeoutSeconds: Double
        /// Bytes of the request that follow the header.
        public var bytes: Int

        /// A submission header for a request of `bytes` bytes.
        public init(wait: Bool, timeoutSeconds: Double, orphanTimeoutSeconds: Double, bytes: Int) {
            self.v = SubmitterWire.version
            self.wait = wait
            self.timeoutSeconds = timeoutSeconds
            self.orphanTimeoutSeconds = orphanTimeoutSeconds
            self.bytes = bytes
        }

        /// The bounds a header must respect to be served (the same as `submit`'s options).
        public var problem: String? {
            guard v == SubmitterWire.version else { return "protocol version \(v) is not served (this submitter speaks \(SubmitterWire.version))" }
            guard timeoutSeconds.isFinite, timeoutSeconds > 0, timeoutSeconds <= 86_400 else { return "timeoutSeconds must be above 0 and at most 86400" }
            guard orphanTimeoutSeconds.isFinite, orphanTimeoutSeconds >= 0, orphanTimeoutSeconds <= 86_400 else {
                return "orphanTimeoutSeconds must be from 0 to 86400"
            }
            guard bytes >= 0, bytes <= SubmitterWire.maxRequestBytes else { return "a request is at most \(SubmitterWire.maxRequestBytes) bytes" }
            return nil
        }
    }

    /// How a submission ended, as the submitter tells it.
    public enum Outcome: String, Codable, Sendable, Equatable {
        /// The request was produced (without `wait`).
        case sent
        /// The result follows as the payload.
        case result
        /// No result within the timeout; `message` says so.
        case timedOut
        /// No worker consumes the requests topic; `message` says so.
        case orphaned
        /// The submitter would not send it (a bad request); `message` says why.
        case refused
        /// The submitter did not send it (too many connections, Kafka failing): the client may
        /// send it itself; `message` says why.
        case notSent
    }

    /// What the submitter answers.
    public struct Reply: Codable, Sendable, Equatable {
        /// Protocol version (`SubmitterWire.version`).
        public var v: Int
        /// How the submission ended.
        public var outcome: Outcome
        /// For everything but `result` and `sent`: the text `submit` prints after `UNKNOWN: `.
        public var message: String?
        /// Bytes of payload that follow (the result record for `result`, else 0).
        public var bytes: Int

        /// A reply header; `bytes` of payload follow it.
        public init(_ outcome: Outcome, message: String? = nil, bytes: Int = 0) {
            self.v = SubmitterWire.version
            self.outcome = outcome
            self.message = message
            self.bytes = bytes
        }
    }

    /// A header and its payload as bytes on the wire.
    public static func frame<Header: Encodable>(_ header: Header, payload: [UInt8] = []) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var out = Array((try? encoder.encode(header)) ?? Data("{}".utf8))
        out.append(UInt8(ascii: "\n"))
        out += payload
        return out
    }

    /// A reply frame; a payload too large for the protocol becomes a refusal instead.
    public static func reply(_ outcome: Outcome, message: String? = nil, payload: [UInt8] = []) -> [UInt8] {
        guard payload.count <= maxReplyBytes else {
            return frame(Reply(.refused, message: "the result is larger than the submitter protocol's \(maxReplyBytes) bytes"))
        }
        return frame(Reply(outcome, message: message, bytes: payload.count), payload: payload)
    }
}

/// Reads one frame from a byte stream fed in pieces: a state machine with no I/O, used by both
/// sides (`maxPayload` differs: requests are small, replies can hold a large result).
public struct SubmitterFrameReader<Header: Decodable & Sendable>: Sendable {
    /// What one `feed` found.
    public enum Step: Sendable {
        /// Feed more bytes.
        case needMore
        /// A whole frame. Bytes after it are ignored (one exchange per connection).
        case frame(Header, [UInt8])
        /// The stream cannot hold a valid frame; the reason names what was wrong.
        case invalid(String)
    }

    private enum State: Sendable {
        case header([UInt8])
        case payload(Header, [UInt8], Int)
        case done
    }

    private var state: State = .header([])
    private let maxPayload: Int
    private let payloadSize: @Sendable (Header) -> Int

    /// `payloadSize` reads the payload length from a decoded header.
    public init(maxPayload: Int, payloadSize: @escaping @Sendable (Header) -> Int) {
        self.maxPayload = maxPayload
        self.payloadSize = payloadSize
    }

    /// Adds bytes that arrived.
    public mutating func feed(_ bytes: some Collection<UInt8>) -> Step {
        var rest = ArraySlice(bytes)
        while true {
            switch state {
            case .done:
                return .invalid("the frame was already read")
            case .header(var line):
                guard let nl = rest.firstIndex(of: UInt8(ascii: "\n")) else {
                    guard line.count + rest.count < SubmitterWire.maxHeaderBytes else {
                        state = .done
                        return .invalid("the header is longer than \(SubmitterWire.maxHeaderBytes) bytes")
                    }
                    line += rest
                    state = .header(line)
                    return .needMore
                }
                line += rest[rest.startIndex..<nl]
                rest = rest[rest.index(after: nl)...]
                guard line.count < SubmitterWire.maxHeaderBytes else {
                    state = .done
                    return .invalid("the header is longer than \(SubmitterWire.maxHeaderBytes) bytes")
                }
                guard let header = try? JSONDecoder().decode(Header.self, from: Data(line)) else {
                    state = .done
                    return .invalid("the header is not a JSON object of the expected fields")
                }
                let size = payloadSize(header)
                guard size >= 0, size <= maxPayload else {
                    state = .done
                    return .invalid("the payload of \(size) bytes is outside 0…\(maxPayload)")
                }
                var payload: [UInt8] = []
                payload.reserveCapacity(min(size, 65_536))
                state = .payload(header, payload, size)
            case .payload(let header, var payload, let size):
                state = .done  // drop the enum's reference first: appending must not copy the buffer
                let take = min(size - payload.count, rest.count)
                payload += rest.prefix(take)
                if payload.count == size {
                    state = .done
                    return .frame(header, payload)
                }
                state = .payload(header, payload, size)
                return .needMore
            }
        }
    }

    /// What to say when the stream ended before a whole frame.
    public var endedEarly: String {
        switch state {
        case .header(let line): line.isEmpty ? "the connection closed before any header" : "the connection closed inside the header"
        case .payload(_, let p, let size): "the connection closed after \(p.count) of \(size) payload bytes"
        case .done: "the connection closed"
        }
    }
}

extension SubmitterFrameReader where Header == SubmitterWire.Submission {
    /// The submitter's reader of a request.
    public static func submission() -> Self { Self(maxPayload: SubmitterWire.maxRequestBytes) { $0.bytes } }
}

extension SubmitterFrameReader where Header == SubmitterWire.Reply {
    /// `submit`'s reader of a reply.
    public static func reply() -> Self { Self(maxPayload: SubmitterWire.maxReplyBytes) { $0.bytes } }
}

/// The words `submit` prints when no result comes, whether it waited itself or through a
/// submitter: decided once here.
public enum SubmitWording {
    /// No result within `seconds`.
    public static func timedOut(id: String, seconds: Double, requests: String) -> String {
        "No result for check \(id) within \(Int(seconds)) s: are workers running and consuming '\(requests)'? The request stays queued."
    }

    /// No worker heartbeat vouched for the requests topic within `seconds`.
    public static func orphaned(id: String, seconds: Double, group: String, requests: String, heartbeats: String) -> String {
        "Check \(id) is orphaned: no worker of group '\(group)' has said within \(Int(seconds)) s that it consumes '\(requests)' (heartbeats on '\(heartbeats)'). Start a worker; the request stays queued and expires at its deadline."
    }
}

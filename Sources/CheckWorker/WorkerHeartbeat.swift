import Foundation

/// A worker's sign of life on `kafka.heartbeatTopic`: which requests topic it consumes for which
/// group, and when. `exocheck submit --wait` reads them to answer at once when no worker consumes
/// the requests (an orphaned check, as Mod-Gearman's `orphan_return`), instead of after its full
/// timeout. Mixed fleets: readers ignore fields they do not know.
public struct WorkerHeartbeat: Codable, Sendable, Equatable {
    /// The worker's name (`worker.name`, else host and process id).
    public var worker: String
    /// The consumer group it belongs to (`kafka.group`).
    public var group: String
    /// The requests topic it consumes (`kafka.requests`).
    public var requests: String
    /// When it was written, in milliseconds since 1970.
    public var at: Int64

    /// Heartbeat records a reader (submit, the submitter) reads back per partition before the
    /// new ones: a fleet of 100 workers writes 250 in 5 s.
    public static let readBack: Int64 = 1_000

    /// Seconds between two heartbeats of a worker.
    public static let interval: Duration = .seconds(2)

    /// A heartbeat written now.
    public init(worker: String, group: String, requests: String, at: Date = Date()) {
        self.worker = worker
        self.group = group
        self.requests = requests
        self.at = Int64((at.timeIntervalSince1970 * 1000).rounded())
    }

    /// The record value (JSON).
    public func encoded() -> [UInt8] {
        Array((try? JSONEncoder().encode(self)) ?? Data())
    }

    /// A heartbeat from a record value; nil when it is not one (at most 4 KB are read).
    public static func decode(_ bytes: [UInt8]) -> WorkerHeartbeat? {
        guard bytes.count <= 4096 else { return nil }
        return try? JSONDecoder().decode(WorkerHeartbeat.self, from: Data(bytes))
    }

    /// Whether this heartbeat says that a worker consumes `requests` for `group`, written at or
    /// after `since`.
    public func vouches(for requests: String, group: String, since: Date) -> Bool {
        self.requests == requests && self.group == group && Double(at) / 1000 >= since.timeIntervalSince1970
    }
}

import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `submit`'s side of SubmitterWire: blocking POSIX calls on one Unix socket (a one-off command
/// needs no event loop). Used only when `--socket` or `EXOCHECK_SUBMITTER_SOCKET` names one.
public enum SubmitterClient {
    /// Why no answer came.
    public enum Failure: Error, Sendable, Equatable {
        /// Nothing was sent: the submitter is not there or not trusted. `submit` sends the check
        /// itself instead.
        case unreachable(String)
        /// The request was sent (it may run) but no whole reply came back.
        case broken(String)
    }

    /// Sends `request` (the check request's JSON) and reads the reply, within `limit`.
    public static func exchange(
        socket path: String, submission: SubmitterWire.Submission, request: [UInt8], limit: Duration
    ) -> Result<(SubmitterWire.Reply, [UInt8]), Failure> {
        exchange(socket: path, bytes: SubmitterWire.frame(submission, payload: request), limit: limit)
    }

    /// Sends `bytes` as they are (a frame, or anything a test wants to try) and reads the reply.
    public static func exchange(socket path: String, bytes: [UInt8], limit: Duration) -> Result<(SubmitterWire.Reply, [UInt8]), Failure> {
        if let distrust = ownershipProblem(path) { return .failure(.unreachable(distrust)) }
        let fd: Int32
        switch connect(path, timeout: limit) {
        case .success(let f): fd = f
        case .failure(let reason): return .failure(.unreachable(reason.message))
        }
        defer { close(fd) }
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else {
                // Nothing was taken at all: the submitter did not get the check.
                let reason = "cannot send to the submitter at \(path): \(String(cString: strerror(errno)))"
                return .failure(sent == 0 ? .unreachable(reason) : .broken(reason))
            }
            sent += n
        }
        let deadline = ContinuousClock.now.advanced(by: limit)
        var reader = SubmitterFrameReader.reply()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while ContinuousClock.now < deadline {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0, errno == EINTR { continue }
            if n < 0, errno == EAGAIN || errno == EWOULDBLOCK { continue }
            guard n > 0 else {
                return .failure(.broken(n == 0 ? reader.endedEarly : "cannot read from the submitter: \(String(cString: strerror(errno)))"))
            }
            switch reader.feed(buffer[0..<n]) {
            case .needMore: continue
            case .frame(let reply, let payload): return .success((reply, payload))
            case .invalid(let reason): return .failure(.broken("the submitter's reply is not valid: \(reason)"))
            }
        }
        return .failure(.broken("no reply from the submitter within \(limit)"))
    }

    /// A socket that another user (not root) owns could answer anything: it is not used.
    static func ownershipProblem(_ path: String) -> String? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return "no submitter socket at \(path)" }
        guard (st.st_mode & S_IFMT) == S_IFSOCK else { return "\(path) is not a socket" }
        guard st.st_uid == getuid() || st.st_uid == 0 else {
            return "\(path) belongs to another user (uid \(st.st_uid)), so its answers cannot be trusted"
        }
        return nil
    }

    struct ConnectFailure: Error {
        let message: String
    }

    /// A connected stream socket to `path`, reads and writes bounded by `timeout` each.
    static func connect(_ path: String, timeout: Duration) -> Result<Int32, ConnectFailure> {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path), !pathBytes.contains(0) else {
            return .failure(ConnectFailure(message: "the socket path is longer than \(MemoryLayout.size(ofValue: address.sun_path) - 1) bytes"))
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return .failure(ConnectFailure(message: "cannot open a socket: \(String(cString: strerror(errno)))")) }
        let seconds = max(1, min(timeout.components.seconds, 86_400 * 2))
        var tv = timeval(tv_sec: Int(seconds), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            return .failure(ConnectFailure(message: "cannot connect to the submitter at \(path): \(reason)"))
        }
        return .success(fd)
    }
}

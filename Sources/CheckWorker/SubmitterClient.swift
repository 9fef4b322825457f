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
    /// `trustedUID`: a user besides this one and root whose submitter may answer.
    public static func exchange(
        socket path: String, submission: SubmitterWire.Submission, request: [UInt8], limit: Duration, trustedUID: UInt32? = nil
    ) -> Result<(SubmitterWire.Reply, [UInt8]), Failure> {
        exchange(socket: path, bytes: SubmitterWire.frame(submission, payload: request), limit: limit, trustedUID: trustedUID)
    }

    /// Sends `bytes` as they are (a frame, or anything a test wants to try) and reads the reply.
    public static func exchange(
        socket path: String, bytes: [UInt8], limit: Duration, trustedUID: UInt32? = nil
    ) -> Result<(SubmitterWire.Reply, [UInt8]), Failure> {
        let fd: Int32
        switch connect(path, timeout: connectTimeout) {
        case .success(let f): fd = f
        case .failure(let reason): return .failure(.unreachable(reason.message))
        }
        defer { close(fd) }
        // Who is at the other end, from the kernel (not the file's owner, which can be swapped
        // between a check and the connect): only this user, root or `trustedUID` is believed.
        if let distrust = peerProblem(fd, path: path, trustedUID: trustedUID) { return .failure(.unreachable(distrust)) }
        setTimeouts(fd, limit)
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

    /// How long connecting may take (a submitter whose queue is full): then submit sends itself.
    static let connectTimeout: Duration = .seconds(2)

    /// Why the process at the other end of `fd` is not trusted; nil when it is.
    static func peerProblem(_ fd: Int32, path: String, trustedUID: UInt32?) -> String? {
        var credentials = PeerCredentials()
        var size = socklen_t(MemoryLayout<PeerCredentials>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &size) == 0 else {
            return "cannot tell who answers on \(path): \(String(cString: strerror(errno)))"
        }
        let uid = credentials.uid
        guard uid == getuid() || uid == 0 || uid == trustedUID else {
            return
                "the submitter on \(path) runs as another user (uid \(uid)), so its answers cannot be trusted (set EXOCHECK_SUBMITTER_UID=\(uid) to trust it)"
        }
        return nil
    }

    /// Linux's `struct ucred` (glibc declares it only under _GNU_SOURCE, which Swift's Glibc
    /// module does not set): pid, uid and gid of the peer, as `SO_PEERCRED` fills it.
    struct PeerCredentials {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    static func setTimeouts(_ fd: Int32, _ timeout: Duration) {
        let seconds = max(1, min(timeout.components.seconds, 86_400 * 2))
        var tv = timeval(tv_sec: Int(seconds), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    struct ConnectFailure: Error {
        let message: String
        /// The `errno` of the failure (0 when it was not a system call).
        var code: Int32 = 0
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
        setTimeouts(fd, timeout)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let code = errno
            close(fd)
            let reason = code == ENOENT ? "no submitter socket at \(path)" : "cannot connect to the submitter at \(path): \(String(cString: strerror(code)))"
            return .failure(ConnectFailure(message: reason, code: code))
        }
        return .success(fd)
    }
}

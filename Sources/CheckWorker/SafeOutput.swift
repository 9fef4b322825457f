#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif
import Synchronization

/// Standard output and standard error writes that never kill the process.
///
/// `FileHandle.write(_:)` traps on any error and a write to a pipe without a reader raises
/// SIGPIPE, so `exocheck run … | head -c 5` or a worker whose stderr was closed used to crash.
/// Here SIGPIPE is ignored, bytes go out with write(2) (partial writes and EINTR are retried), and
/// a stream whose reader is gone (EPIPE) or that is not open (EBADF) is marked closed: later writes
/// to it are silently dropped and the command finishes with its normal exit code.
public enum SafeOutput {
    /// Standard output (file descriptor 1).
    public static let standardOutput = SafeStream(fileDescriptor: STDOUT_FILENO)
    /// Standard error (file descriptor 2), where JSONLogHandler writes the log.
    public static let standardError = SafeStream(fileDescriptor: STDERR_FILENO)

    /// Call first thing in `main`: ignores SIGPIPE and, for a standard descriptor that is not open
    /// (`2>&-`), marks the stream closed and parks /dev/null on the descriptor number, so that a
    /// file or socket opened later cannot become fd 1 or 2 and receive log lines.
    public static func prepareProcess() {
        ignoreSIGPIPE()
        for fd in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] where fcntl(fd, F_GETFD) == -1 && errno == EBADF {
            switch fd {
            case STDOUT_FILENO: standardOutput.markClosed()
            case STDERR_FILENO: standardError.markClosed()
            default: break
            }
            POSIXIO.parkDevNull(on: fd)
        }
    }

    /// Ignores SIGPIPE for the whole process (once; later calls do nothing). A write to a pipe
    /// without a reader then fails with EPIPE, which every writer here handles.
    public static func ignoreSIGPIPE() { _ = sigpipeIgnored }

    private static let sigpipeIgnored: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

    /// `text` and a newline on standard output, like `print(text)` but unbuffered and safe.
    public static func print(_ text: String) { standardOutput.write(text + "\n") }

    /// `text` and a newline on standard error.
    public static func printError(_ text: String) { standardError.write(text + "\n") }

    /// `text` for a terminal line when it comes from others (a topic anyone may write): control
    /// characters, format characters (bidi overrides, zero-width) and line or paragraph
    /// separators, which could make a line read as something else, become spaces; past `limit`
    /// characters it is cut with `…`.
    public static func printable(_ text: String, limit: Int = .max) -> String {
        var out = String.UnicodeScalarView()
        var count = 0
        for scalar in text.unicodeScalars {
            guard count < limit else {
                out.append("…")
                break
            }
            let category = scalar.properties.generalCategory
            let hidden = category == .control || category == .format || category == .lineSeparator || category == .paragraphSeparator
            out.append(hidden ? " " : scalar)
            count += 1
        }
        return String(out)
    }
}

/// One standard stream. Writes are serialised (one line is never split by another thread's line)
/// and stop for good after EPIPE or EBADF.
///
/// Sendable without `@unchecked`: the only state is the `Mutex`-protected closed flag; the
/// descriptor number is immutable.
public final class SafeStream: Sendable {
    /// The descriptor this stream writes to (STDOUT_FILENO or STDERR_FILENO).
    public let fileDescriptor: Int32
    private let closed = Mutex(false)

    init(fileDescriptor: Int32) { self.fileDescriptor = fileDescriptor }

    /// Whether an earlier write found the stream gone (EPIPE/EBADF); writes are then no-ops.
    public var isClosed: Bool { closed.withLock { $0 } }

    func markClosed() { closed.withLock { $0 = true } }

    /// Writes the UTF-8 bytes of `text` exactly. Returns false when nothing more can be written
    /// (the stream is closed) or the write failed; never traps.
    @discardableResult
    public func write(_ text: String) -> Bool { write(bytes: Array(text.utf8)) }

    /// Writes all of `bytes` with write(2) (partial writes and EINTR are retried), never interleaved
    /// with another write to this stream. Returns false when the stream is closed or the write failed;
    /// EPIPE or EBADF closes the stream for good, other errors lose this write only.
    @discardableResult
    public func write(bytes: [UInt8]) -> Bool {
        SafeOutput.ignoreSIGPIPE()
        let fd = fileDescriptor
        return closed.withLock { isClosed in
            if isClosed { return false }
            switch POSIXIO.writeAll(fd, bytes) {
            case .success: return true
            case .failure(let error):
                // Reader gone or descriptor not open: give up quietly from now on. Anything else
                // (EIO, ENOSPC on a redirected file) loses this write only.
                if error.code == EPIPE || error.code == EBADF { isClosed = true }
                return false
            }
        }
    }
}

/// An errno value with its text, for messages.
public struct ErrnoError: Error, Equatable, CustomStringConvertible {
    /// The errno value (e.g. EPIPE).
    public let code: Int32
    /// Wraps an errno value.
    public init(_ code: Int32) { self.code = code }
    /// strerror(3)'s text followed by the number, e.g. `Broken pipe (errno 32)`.
    public var description: String { String(cString: strerror(code)) + " (errno \(code))" }
}

/// Thin wrappers over the system calls (kept apart so their names do not clash with methods).
enum POSIXIO {
    /// Writes every byte with write(2): continues after partial writes, retries on EINTR, and
    /// waits with poll(2) when a non-blocking descriptor is full (EAGAIN).
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Result<Void, ErrnoError> {
        bytes.withUnsafeBytes { buffer -> Result<Void, ErrnoError> in
            guard let base = buffer.baseAddress else { return .success(()) }
            var offset = 0
            while offset < buffer.count {
                let n = write(fd, base + offset, buffer.count - offset)
                if n > 0 { offset += n; continue }
                if n == 0 { return .failure(ErrnoError(EIO)) }
                let error = errno
                switch error {
                case EINTR: continue
                case EAGAIN, EWOULDBLOCK:
                    var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&p, 1, 1000)
                default: return .failure(ErrnoError(error))
                }
            }
            return .success(())
        }
    }

    static func closeDescriptor(_ fd: Int32) { _ = close(fd) }

    /// Opens /dev/null on exactly `fd` (which is not open).
    static func parkDevNull(on fd: Int32) {
        let null = open("/dev/null", O_RDWR)
        guard null >= 0, null != fd else { return }
        _ = dup2(null, fd)
        _ = close(null)
    }
}

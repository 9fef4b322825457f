#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes external commands to the Nagios/Naemon/Icinga command file, which is normally a FIFO
/// that Nagios creates when it starts (and recreates after a restart).
///
/// - A FIFO is opened with `O_WRONLY|O_APPEND|O_NONBLOCK`: while nobody reads it the open fails
///   with ENXIO and the writer waits (polling, with a progress message every few seconds);
///   once open, O_NONBLOCK is cleared so that a full pipe applies back-pressure. Nothing seeks.
/// - A missing path is waited for (Nagios creates it); a regular file is only created with
///   `createIfMissing`. An existing regular file (or character device) is appended to.
/// - A write failing with EPIPE (the reader went away) reopens and writes the command again; so
///   does a path whose device/inode changed (the pipe was replaced by a restart), checked with
///   stat(2) before a write at most once per `recheckInterval`.
///
/// Each command goes out in one write(2) (only continued if the kernel accepts part of it).
/// Linux makes pipe writes atomic only up to PIPE_BUF, 4,096 bytes: a command between 4 and 8 KiB
/// can be interleaved with bytes that *another* process writes to the same pipe at the same
/// moment. Our own commands never interleave (one writer, one command at a time). Accepted: the
/// usual submitters (send_nsca, NRDP, shell scripts) share that limit.
///
/// Not Sendable: it holds an open descriptor and counters; use it from one task.
public final class NagiosCommandPipe {
    /// How the writer waits for the command file, rechecks it and reports progress.
    public struct Options: Sendable {
        /// Create a regular file when the path does not exist, instead of waiting for it.
        public var createIfMissing: Bool
        /// How often to retry while the path is missing or the FIFO has no reader.
        public var pollInterval: Duration
        /// How often to repeat the "waiting" message.
        public var progressInterval: Duration
        /// At most how often the path is checked for a replaced pipe before a write.
        public var recheckInterval: Duration
        /// Where the waiting/reopening messages go (standard error by default).
        public var progress: @Sendable (String) -> Void
        /// Polled while waiting; true ends the wait with `Failure.stopped` (as does task cancellation).
        public var shouldStop: @Sendable () -> Bool

        /// Options with these values. The defaults wait for a missing path, retry every 200 ms, repeat
        /// the waiting message every 5 s, recheck the path at most once a second, report on standard error
        /// and never stop on their own.
        public init(
            createIfMissing: Bool = false, pollInterval: Duration = .milliseconds(200),
            progressInterval: Duration = .seconds(5), recheckInterval: Duration = .seconds(1),
            progress: @escaping @Sendable (String) -> Void = { SafeOutput.printError($0) },
            shouldStop: @escaping @Sendable () -> Bool = { false }
        ) {
            self.createIfMissing = createIfMissing
            self.pollInterval = pollInterval
            self.progressInterval = progressInterval
            self.recheckInterval = recheckInterval
            self.progress = progress
            self.shouldStop = shouldStop
        }
    }

    /// Why commands cannot be written (`write` throws only these).
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case stopped(path: String)
        case cannotOpen(path: String, ErrnoError)
        case notACommandFile(path: String, kind: String)
        case writeFailed(path: String, ErrnoError)

        /// A message for the operator naming the path and what to check.
        public var description: String {
            switch self {
            case .stopped(let path):
                "stopped while waiting for the Nagios command file \(path)"
            case .cannotOpen(let path, let error):
                "cannot open the Nagios command file \(path): \(error); check the path (command_file in nagios.cfg) "
                    + "and that this user may write it (the pipe usually belongs to the nagios or nagcmd group)"
            case .notACommandFile(let path, let kind):
                "\(path) is \(kind): give the Nagios command file (command_file in nagios.cfg), a FIFO or a regular file"
            case .writeFailed(let path, let error):
                "cannot write to the Nagios command file \(path): \(error)"
            }
        }
    }

    /// Counts of what this writer has done since it was created.
    public struct Statistics: Sendable, Equatable {
        /// Commands written completely.
        public var written = 0
        /// Reopens after EPIPE or a replaced/removed path.
        public var reopened = 0
    }

    /// The command file's path (`command_file` in nagios.cfg), as given.
    public let path: String
    /// Commands written and reopens so far.
    public private(set) var statistics = Statistics()
    private let options: Options
    private var file: OpenFile?
    private var lastCheck = ContinuousClock.now

    /// A writer for the command file at `path`; nothing is opened before the first `write`. Ignores
    /// SIGPIPE for the whole process.
    public init(path: String, options: Options = Options()) {
        self.path = path
        self.options = options
        // A reader closing the FIFO must give EPIPE, not kill the process.
        SafeOutput.ignoreSIGPIPE()
    }

    deinit { close() }

    /// Writes one command, first waiting for the command file to exist and (for a FIFO) to have
    /// a reader. Throws only when stopped or when the file cannot be used at all.
    public func write(_ command: NagiosExternalCommand) async throws(Failure) {
        let bytes = command.bytes
        while true {
            let fd = try await openDescriptor()
            switch POSIXIO.writeAll(fd, bytes) {
            case .success:
                statistics.written += 1
                return
            case .failure(let error) where error.code == EPIPE:
                options.progress("\(label): the reader went away; reopening")
                closeFile()
                statistics.reopened += 1
            case .failure(let error):
                closeFile()
                throw .writeFailed(path: path, error)
            }
        }
    }

    /// Closes the descriptor (the next write reopens).
    public func close() { closeFile() }

    // MARK: - Opening

    private struct Identity: Equatable {
        let device: UInt64
        let inode: UInt64

        init(_ info: stat) {
            device = UInt64(truncatingIfNeeded: info.st_dev)
            inode = UInt64(truncatingIfNeeded: info.st_ino)
        }
    }

    private struct OpenFile {
        let fd: Int32
        let identity: Identity
    }

    private enum WaitReason { case missing, noReader, interrupted }

    private enum Attempt {
        case opened(OpenFile)
        case wait(WaitReason)
        case failed(Failure)
    }

    private var label: String { "nagios command file \(path)" }

    private func closeFile() {
        if let file { POSIXIO.closeDescriptor(file.fd) }
        file = nil
    }

    /// The open descriptor, after checking (at most once per recheckInterval) that the path still
    /// names the same file; otherwise opens, waiting as long as needed.
    private func openDescriptor() async throws(Failure) -> Int32 {
        if let file {
            let now = ContinuousClock.now
            if lastCheck.duration(to: now) < options.recheckInterval { return file.fd }
            lastCheck = now
            if Self.identity(atPath: path) == file.identity { return file.fd }
            options.progress("\(label): was replaced or removed; reopening")
            closeFile()
            statistics.reopened += 1
        }
        let started = ContinuousClock.now
        var lastMessage: ContinuousClock.Instant? = nil
        var waited = false
        while true {
            if options.shouldStop() || Task.isCancelled { throw .stopped(path: path) }
            switch attemptOpen() {
            case .opened(let opened):
                file = opened
                lastCheck = .now
                if waited { options.progress("\(label): open; writing commands") }
                return opened.fd
            case .failed(let failure):
                throw failure
            case .wait(let reason):
                waited = true
                let now = ContinuousClock.now
                if reason != .interrupted, lastMessage.map({ $0.duration(to: now) >= options.progressInterval }) ?? true {
                    options.progress(waitingMessage(reason, waited: started.duration(to: now)))
                    lastMessage = now
                }
                do { try await Task.sleep(for: options.pollInterval) } catch { throw .stopped(path: path) }
            }
        }
    }

    private func waitingMessage(_ reason: WaitReason, waited: Duration) -> String {
        let seconds = "waited \(waited.components.seconds) s"
        switch reason {
        case .missing:
            return "\(label): does not exist yet, waiting for it (Nagios, Naemon and Icinga create the command pipe "
                + "when they start; --create-command-file writes a regular file instead); \(seconds)"
        case .noReader, .interrupted:
            return "\(label): nobody reads the pipe, waiting (is Nagios running, with check_external_commands=1?); \(seconds)"
        }
    }

    private func attemptOpen() -> Attempt {
        var info = stat()
        guard stat(path, &info) == 0 else {
            let error = errno
            guard error == ENOENT else { return .failed(.cannotOpen(path: path, ErrnoError(error))) }
            guard options.createIfMissing else { return .wait(.missing) }
            return opened(open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644), creating: true)
        }
        switch info.st_mode & S_IFMT {
        case S_IFIFO:
            // Without O_NONBLOCK this open would block until a reader comes; with it, ENXIO.
            return opened(open(path, O_WRONLY | O_APPEND | O_NONBLOCK | O_CLOEXEC), creating: false)
        case S_IFREG, S_IFCHR:
            return opened(open(path, O_WRONLY | O_APPEND | O_CLOEXEC), creating: false)
        case S_IFDIR:
            return .failed(.notACommandFile(path: path, kind: "a directory"))
        default:
            return .failed(.notACommandFile(path: path, kind: "neither a FIFO nor a regular file"))
        }
    }

    /// Turns open(2)'s result into an attempt: blocking mode for writes, identity from fstat(2).
    private func opened(_ fd: Int32, creating: Bool) -> Attempt {
        guard fd >= 0 else {
            let error = errno
            switch error {
            case ENXIO: return .wait(.noReader)
            case ENOENT where !creating: return .wait(.missing)  // removed between stat and open
            case EINTR: return .wait(.interrupted)
            default: return .failed(.cannotOpen(path: path, ErrnoError(error)))
            }
        }
        let flags = fcntl(fd, F_GETFL)
        var info = stat()
        guard flags != -1, fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != -1, fstat(fd, &info) == 0 else {
            let error = errno
            POSIXIO.closeDescriptor(fd)
            return .failed(.cannotOpen(path: path, ErrnoError(error)))
        }
        return .opened(OpenFile(fd: fd, identity: Identity(info)))
    }

    private static func identity(atPath path: String) -> Identity? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Identity(info)
    }
}

import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reading the files that hold credentials (client secret, certificate, private key, federated
/// token), one rule for all: a regular file (a FIFO, a device such as /dev/zero or a directory is
/// refused without blocking), at most a given size. And naming such a file in an error without
/// showing a secret pasted where a path was expected.
public enum CredentialFile {
    /// Why a credential file could not be read.
    public enum Problem: Error, Sendable, Equatable {
        /// It does not exist or cannot be opened (permissions).
        case unreadable
        /// It is not a regular file (a FIFO, a device, a directory).
        case notRegularFile
        /// It holds more than the allowed bytes.
        case tooLarge(maxBytes: Int)

        /// The problem in words, after the file's name.
        public var description: String {
            switch self {
            case .unreadable: return "cannot be read (missing, or no permission)"
            case .notRegularFile: return "is not a regular file"
            case .tooLarge(let max): return "holds more than \(max / 1024) KiB"
            }
        }
    }

    /// The file's bytes: a regular file of at most `maxBytes`.
    public static func read(_ path: String, maxBytes: Int) -> Result<Data, Problem> {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return .failure(.unreadable) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return .failure(.unreadable) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { return .failure(.notRegularFile) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(.unreadable)
            }
            if n == 0 { break }
            data.append(contentsOf: buffer[0..<n])
            if data.count > maxBytes { return .failure(.tooLarge(maxBytes: maxBytes)) }
        }
        return .success(data)
    }

    /// `path` quoted for an error message, or a placeholder when it does not look like a path
    /// (a line break, a PEM marker, over 256 bytes): a secret pasted where a path was expected
    /// must not be echoed into a check's output or a log.
    public static func shown(_ path: String) -> String {
        let looksLikePath =
            path.utf8.count <= 256 && !path.unicodeScalars.contains { $0.properties.generalCategory == .control }
            && !path.contains("-----") && !path.uppercased().contains("PRIVATE KEY")
        return looksLikePath ? "'\(path)'" : "(a value that is not a file path: not shown)"
    }
}

import Foundation
import Synchronization

/// What the test targets share: where the `exocheck` binary under test is, and polling a
/// condition. One copy, used by KafkaTests, IntegrationTests and CheckWorkerTests.
public enum ExocheckBinary {
    /// The `exocheck` binary the suites run: `EXOCHECK_BIN` when set (to run the suites against
    /// another build, e.g. an older commit to show that a test fails there), else the binary of
    /// the same build as the running test bundle (it sits next to it in `.build/<config>/`), else
    /// the package's debug build (the AddressSanitizer pass declares only the Kafka targets, so
    /// it has no `exocheck` of its own).
    public static var path: String {
        if let bin = ProcessInfo.processInfo.environment["EXOCHECK_BIN"], !bin.isEmpty { return bin }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("exocheck").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return packageRoot.appendingPathComponent(".build/debug/exocheck").path
    }

    /// True when the suites run against another build (`EXOCHECK_BIN`), which may not know
    /// the newest configuration keys.
    public static var isOverridden: Bool { !(ProcessInfo.processInfo.environment["EXOCHECK_BIN"] ?? "").isEmpty }

    /// The package's root folder.
    public static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }
}

/// Polls `condition` every `interval` until it holds or `timeout` passes; returns whether it held.
public func eventually(timeout: Duration = .seconds(30), interval: Duration = .milliseconds(100),
                       _ condition: () async -> Bool) async -> Bool {
    let end = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < end {
        if await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return await condition()
}

/// What a finished process printed and its exit status.
public struct ProcessOutput: Sendable {
    public var exitCode: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs `path` with `arguments` (and `stdin`, then closed), waiting for it off the cooperative
/// pool; stopped after `timeout` seconds.
public func runProcess(_ path: String, _ arguments: [String], stdin: String? = nil, environment: [String: String]? = nil,
                       timeout: Double = 120) async throws -> ProcessOutput {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = arguments
    if let environment { p.environment = environment }
    let out = Pipe()
    let err = Pipe()
    let input = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = input
    try p.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try? input.fileHandleForWriting.close()
    return await withCheckedContinuation { c in
        Thread {
            // Past the timeout: SIGTERM, and SIGKILL 5 s later (a child may block SIGTERM).
            let killer = DispatchWorkItem {
                guard p.isRunning else { return }
                p.terminate()
                DispatchQueue.global().asyncAfter(deadline: .now() + 5) { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
            // Both pipes are drained at once, so a chatty stderr cannot block the process.
            let errData = ErrBuffer()
            let reader = Thread { errData.data = err.fileHandleForReading.readDataToEndOfFile() }
            reader.start()
            let o = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            while !errData.done { usleep(1_000) }
            killer.cancel()
            c.resume(returning: ProcessOutput(exitCode: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                                              stderr: String(decoding: errData.data ?? Data(), as: UTF8.self)))
        }.start()
    }
}

/// The stderr bytes of `runProcess`, written once by its reader thread.
private final class ErrBuffer: Sendable {
    private let value = Mutex<Data?>(nil)
    var data: Data? {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
    var done: Bool { value.withLock { $0 != nil } }
}

import Foundation
import GraphSimulator
import ExocheckTestSupport

/// Runs the built `exocheck` binary (ExocheckBinary.path, from ExocheckTestSupport).
extension ExocheckBinary {

    struct Output: Sendable {
        var stdout: String
        var stderr: String
        var exitCode: Int32
    }

    /// Runs `exocheck <arguments>` and waits for it (off the cooperative pool).
    static func run(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 90) async throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        // A dedicated thread per process: blocking reads on Dispatch's global queue would starve
        // the Swift concurrency pool that serves the in-process simulator.
        return try await withCheckedThrowingContinuation { continuation in
            Thread {
                do {
                    try process.run()
                } catch {
                    continuation.resume(throwing: error)
                    return
                }
                let killer = DispatchWorkItem { if process.isRunning { process.terminate() } }
                DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
                let stdout = out.fileHandleForReading.readDataToEndOfFile()
                let stderr = err.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                killer.cancel()
                continuation.resume(returning: Output(
                    stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self),
                    exitCode: process.terminationStatus))
            }.start()
        }
    }
}

/// A fresh temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init(_ prefix: String = "exocheck-test") throws {
        let p = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        path = p
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Starts a simulator, runs `body`, stops it (also when `body` throws).
func withSimulator<T>(_ configuration: SimulatorConfiguration = .standard(),
                      _ body: (RunningGraphSimulator) async throws -> T) async throws -> T {
    let sim = try await GraphSimulator(configuration: configuration).start()
    do {
        let value = try await body(sim)
        await sim.stop()
        return value
    } catch {
        await sim.stop()
        throw error
    }
}

import Foundation
import Synchronization

/// A child process (a real hub or node) whose output is collected, stopped at the end.
public final class ChildProcess: @unchecked Sendable {
    public let process = Process()
    private let output = Mutex("")
    private let errors = Mutex("")

    /// Starts `executable` with `arguments`; output is collected line by line.
    private var input: Pipe?

    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], stdinText: String? = nil) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        if stdinText != nil {
            let i = Pipe()
            process.standardInput = i
            input = i
        }
        out.fileHandleForReading.readabilityHandler = { [weak self] h in
            let d = h.availableData
            if !d.isEmpty { self?.output.withLock { $0 += String(decoding: d, as: UTF8.self) } }
        }
        err.fileHandleForReading.readabilityHandler = { [weak self] h in
            let d = h.availableData
            if !d.isEmpty { self?.errors.withLock { $0 += String(decoding: d, as: UTF8.self) } }
        }
        try process.run()
        if let stdinText { input?.fileHandleForWriting.write(Data(stdinText.utf8)) }
    }

    /// Closes the child's standard input (a shell then finishes and exits).
    public func closeInput() { try? input?.fileHandleForWriting.close() }

    public var stdout: String { output.withLock { $0 } }
    public var stderr: String { errors.withLock { $0 } }

    /// Waits until stdout matches `pattern` (a regex with one capture group) and returns the group.
    public func waitFor(_ pattern: String, timeout: Double = 30) throws -> String {
        let regex = try NSRegularExpression(pattern: pattern)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let text = stdout
            if let m = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)), let r = Range(m.range(at: 1), in: text) {
                return String(text[r])
            }
            if !process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "no output matching \(pattern) within \(timeout) s; stdout: \(stdout) stderr: \(stderr)"])
    }

    /// SIGTERM, then SIGKILL after `grace` seconds.
    public func stop(grace: Double = 5) {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(grace)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// kill -9: no chance to clean up.
    public func crash() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// Runs a command to completion and returns its status and output.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

public func runCommand(_ executable: String, _ arguments: [String], environment: [String: String] = [:], input: String? = nil) throws -> CommandResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    p.environment = env
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    let inp = Pipe()
    p.standardInput = inp
    try p.run()
    if let input { inp.fileHandleForWriting.write(Data(input.utf8)) }
    try? inp.fileHandleForWriting.close()
    let collected = Mutex((Data(), Data()))
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        let d = out.fileHandleForReading.readDataToEndOfFile()
        collected.withLock { $0.0 = d }
        group.leave()
    }
    let e = err.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    p.waitUntilExit()
    let o = collected.withLock { $0.0 }
    return CommandResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

/// The built `ferry` executable next to the test bundle (or `FERRY_BIN`).
public enum FerryBinary {
    public static var path: String {
        if let p = ProcessInfo.processInfo.environment["FERRY_BIN"] { return p }
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ferry").path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        for dir in [".build/debug", ".build/release"] {
            let p = Repository.path("\(dir)/ferry")
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return Repository.path(".build/debug/ferry")
    }
}

/// The size of `data` compressed by `gzip -6`: the baseline compressor benchmarks compare with.
public func gzipSize(_ data: [UInt8]) throws -> Int {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/gzip")
    p.arguments = ["-6", "-c"]
    let inp = Pipe()
    let out = Pipe()
    p.standardInput = inp
    p.standardOutput = out
    try p.run()
    let writer = Thread {
        inp.fileHandleForWriting.write(Data(data))
        try? inp.fileHandleForWriting.close()
    }
    writer.start()
    let result = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return result.count
}

/// Peak resident memory (VmHWM) of process `pid` so far, KiB; nil when it is gone (the
/// kernel forgets the figure with the process).
public func peakResidentKiB(of pid: Int32) -> Int? {
    guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
    }
    return nil
}

extension ChildProcess {
    /// Waits for the process to exit, sampling its peak resident memory while it lives;
    /// returns the last figure seen, KiB.
    public func waitSamplingPeak(every interval: Double = 0.01) -> Int {
        var peak = 0
        while process.isRunning {
            peak = max(peak, peakResidentKiB(of: process.processIdentifier) ?? 0)
            Thread.sleep(forTimeInterval: interval)
        }
        process.waitUntilExit()
        return peak
    }
}

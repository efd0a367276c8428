import Foundation

/// The package's root folder (this file is Tests/KCTestSupport/ChildProcess.swift).
public let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The built `node` binary: `KC_NODE_BINARY`, or `.build/debug/node` in this package.
public func nodeBinary() -> String {
    ProcessInfo.processInfo.environment["KC_NODE_BINARY"] ?? packageRoot.appendingPathComponent(".build/debug/node").path
}

/// The `node` binary as a child process whose output is collected as it arrives, for tests
/// that watch, signal and kill it.
public final class ChildProcess: @unchecked Sendable {
    // @unchecked: `buffer` is only touched under `lock`.
    public let process = Process()
    private let output = Pipe()
    private let lock = NSLock()
    private var buffer = ""

    /// Starts `node arguments` (or, with `launcher`, `launcher... node arguments`, e.g. to run
    /// it inside a network namespace); stderr joins stdout unless `discardStandardError`.
    public init(_ arguments: [String], discardStandardError: Bool = false, environment: [String: String] = [:],
                launcher: [String] = []) throws {
        if let program = launcher.first {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = Array(launcher.dropFirst()) + [nodeBinary()] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: nodeBinary())
            process.arguments = arguments
        }
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.standardOutput = output
        process.standardError = discardStandardError ? FileHandle.nullDevice : output
        output.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.append(data)
        }
        try process.run()
    }

    private func append(_ data: Data) {
        lock.lock()
        buffer += String(decoding: data, as: UTF8.self)
        lock.unlock()
    }

    public var text: String {
        lock.lock()
        defer { lock.unlock() }
        return buffer
    }

    /// Resident memory of the process in bytes (Linux `/proc/PID/status`), or nil.
    public var residentBytes: Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
        return kilobytes * 1_024
    }

    /// CPU time the process used so far (user and system), in seconds (Linux `/proc/PID/stat`).
    public var cpuSeconds: Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command name: state is field 3; utime and stime are fields 14 and 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Complete lines so far (a line still being written is left out).
    public var lines: [String] {
        text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    /// Waits until `condition` holds, the process exits, or `seconds` pass; returns `condition()`.
    public func wait(seconds: Double, until condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            if !process.isRunning { return condition() }
            usleep(2_000)
        }
        return condition()
    }

    /// Sends `signal`; a process still running 15 s later is killed (the caller's checks of
    /// its exit then fail). Collects whatever it printed before it died.
    public func stop(signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
        let deadline = Date().addingTimeInterval(15)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        output.fileHandleForReading.readabilityHandler = nil
        append(output.fileHandleForReading.readDataToEndOfFile())
    }
}

/// Runs a tool to its end (promtool, systemd-analyze): its exit status and its standard
/// output and error together, after writing `input` to its standard input.
public func runTool(_ path: String, _ arguments: [String], input: String? = nil, in directory: URL? = nil) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    let feed = Pipe()
    process.standardInput = input == nil ? FileHandle.nullDevice : feed
    try process.run()
    if let input {
        feed.fileHandleForWriting.write(Data(input.utf8))
        try feed.fileHandleForWriting.close()
    }
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, text)
}

import Foundation
import KCTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `Scripts/devnet.sh` tells the truth: heights come from each node's live `/status`, a busy
/// port is named with what holds it before anything starts, and a node that dies is reported
/// with the end of its log. Run with the debug binary, in a private folder and port block.
@Suite(.serialized)
struct DevnetScriptTests {
    final class Devnet {
        let directory = temporaryPath("kc-devnet")

        func run(_ arguments: [String]) throws -> RunResult {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = [packageRoot.appendingPathComponent("Scripts/devnet.sh").path] + arguments
            var environment = ProcessInfo.processInfo.environment
            environment["DEVNET_DIR"] = directory
            environment["DEVNET_BINARY"] = nodeBinary()
            environment["DEVNET_PORT_BASE"] = "\(TestPorts.devnetBase)"
            environment["DEVNET_CONTENT_PORT"] = "\(TestPorts.devnetContent)"
            process.environment = environment
            // Files, not pipes: the nodes the script leaves running would hold a pipe open.
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let outPath = directory + "/script.out", errPath = directory + "/script.err"
            FileManager.default.createFile(atPath: outPath, contents: nil)
            FileManager.default.createFile(atPath: errPath, contents: nil)
            process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
            process.standardInput = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            return RunResult(status: process.terminationStatus, standardOutput: try String(contentsOfFile: outPath, encoding: .utf8),
                             standardError: try String(contentsOfFile: errPath, encoding: .utf8))
        }

        func pid(_ index: Int) -> Int32? {
            (try? String(contentsOfFile: directory + "/node\(index).pid", encoding: .utf8))
                .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }

        /// Stops what the script started (by its PID files) and removes the folder.
        func remove() {
            _ = try? run(["down"])
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    @Test func aBusyPortIsNamedBeforeAnythingStarts() throws {
        let devnet = Devnet()
        defer { devnet.remove() }
        // Hold node 2's RPC port the way a stray process would: a socket of this test process.
        let holder = try listenLoopback(port: TestPorts.devnetBase + 1 + 20)
        defer { close(holder.descriptor) }
        let result = try devnet.run(["up"])
        #expect(result.status != 0)
        #expect(result.standardError.contains("port \(TestPorts.devnetBase + 21) (node2 RPC) is in use by"), "\(result.standardError)")
        #expect(result.standardError.contains("pid \(getpid())") || result.standardError.contains("ss -ltnp"), "\(result.standardError)")
        #expect(!result.standardOutput.contains("started"), "nothing may start: \(result.standardOutput)")
        #expect((0..<5).allSatisfy { devnet.pid($0) == nil })
    }

    @Test func heightsAreLiveAndADeadNodeIsReportedWithItsLog() throws {
        let devnet = Devnet()
        defer { devnet.remove() }
        let up = try devnet.run(["up"])
        #expect(up.status == 0, "\(up.standardError)")
        #expect((0..<5).allSatisfy { up.standardOutput.contains("node\($0): running") }, "\(up.standardOutput)")
        // A node killed outright is seen as stopped at once (its log still ends on commits).
        let killed = try #require(devnet.pid(3))
        kill(killed, SIGKILL)
        usleep(300_000)
        let status = try devnet.run(["status"])
        #expect(status.standardOutput.contains("node3: stopped"), "\(status.standardOutput)")
        // A node that dies while starting (here a broken config) fails the start, with its log.
        let config = devnet.directory + "/node3/config.toml"
        let good = try String(contentsOfFile: config, encoding: .utf8)
        try (good + "\nnot_a_key = 1\n").write(toFile: config, atomically: true, encoding: .utf8)
        let broken = try devnet.run(["start", "3"])
        #expect(broken.status != 0)
        #expect(broken.standardError.contains("node3 is not running; the last lines of"), "\(broken.standardError)")
        #expect(broken.standardError.contains("not_a_key (see the template"), "\(broken.standardError)")
        // Restarted: ready only once its own /status answers at height 3 or more, whatever the
        // old log lines say; the heights status prints are the nodes' live ones.
        try good.write(toFile: config, atomically: true, encoding: .utf8)
        let restarted = try devnet.run(["start", "3"])
        #expect(restarted.status == 0, "\(restarted.standardError)")
        let after = try devnet.run(["status"])
        let heights = after.standardOutput.split(separator: "\n").compactMap { line -> Int? in
            guard let range = line.range(of: ", height ") else { return nil }
            return Int(line[range.upperBound...].prefix { $0.isNumber })
        }
        #expect(heights.count == 5 && heights.allSatisfy { $0 >= 3 }, "\(after.standardOutput)")
    }
}

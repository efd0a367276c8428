import Foundation
import KCNode
import KCTestSupport
import Testing

/// The container entrypoint, run outside a container (no Docker engine here) with the built
/// binary standing in for /usr/local/bin/membria-node: it creates the home from the devnet
/// genesis with the given index and peers, opens the listeners to all interfaces, turns on the
/// fetch attester, and starts the node; a second start reuses the home.
struct DockerEntrypointTests {
    @Test func theEntrypointInitialisesOnceAndStartsTheNode() throws {
        let root = temporaryPath("kc-entrypoint")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let bin = root + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: bin + "/membria-node", withDestinationPath: nodeBinary())
        let peer = String(repeating: "ab", count: 32) + "@node1:26656"
        let port = TestPorts.entrypoint
        func run() throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = [packageRoot.appendingPathComponent("Docker/entrypoint.sh").path]
            process.environment = ProcessInfo.processInfo.environment.merging([
                "PATH": bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
                "MEMBRIA_HOME": root + "/home", "NODE_INDEX": "2", "PEERS": peer,
                "P2P_PORT": "\(port)", "RPC_PORT": "\(port + 1)",
                "GENESIS": packageRoot.appendingPathComponent("Genesis/devnet.json").path,
                "ARWEAVE_GATEWAY": "http://content:1984",
            ]) { $1 }
            // Output goes to a file, shown when an expectation fails.
            FileManager.default.createFile(atPath: root + "/output.txt", contents: nil)
            let output = FileHandle(forWritingAtPath: root + "/output.txt")!
            output.seekToEndOfFile()
            process.standardOutput = output
            process.standardError = output
            try process.run()
            return process
        }
        func output() -> String { (try? String(contentsOfFile: root + "/output.txt", encoding: .utf8)) ?? "" }
        let first = try run()
        // The node runs (it waits for its peers); give it time to write its home and start.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && !FileManager.default.fileExists(atPath: root + "/home/data/consensus.wal") { usleep(50_000) }
        #expect(first.isRunning, "the entrypoint must exec the node, which keeps running")
        let config = try String(contentsOfFile: root + "/home/config.toml", encoding: .utf8)
        #expect(config.contains("listen_address = \"0.0.0.0:\(port)\""))
        #expect(config.contains("listen_address = \"0.0.0.0:\(port + 1)\""))
        #expect(config.contains("mode = \"fetch\""))
        #expect(config.contains("gateway = \"http://content:1984\""))
        #expect(config.contains(peer))
        let keys = try runNode(["keys", "show", "--home", root + "/home"]).standardOutput
        #expect(keys.contains(DevnetKeys.key(.node, index: 2).publicKey.hex), "the devnet keys of NODE_INDEX")
        kill(first.processIdentifier, SIGTERM)
        first.waitUntilExit()
        #expect(first.terminationStatus == 0 && first.terminationReason == .exit,
                "SIGTERM stops the node cleanly; its output:\n\(output())")
        // A second start keeps the existing home (and its keys).
        let before = try String(contentsOfFile: root + "/home/config.toml", encoding: .utf8)
        let second = try run()
        usleep(1_500_000)
        #expect(second.isRunning)
        kill(second.processIdentifier, SIGTERM)
        second.waitUntilExit()
        #expect(try String(contentsOfFile: root + "/home/config.toml", encoding: .utf8) == before)
    }
}

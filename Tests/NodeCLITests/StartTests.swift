import Foundation
import KCCrypto
import KCNode
import KCStorage
import KCTestSupport
import KCTypes
import Testing

extension ChildProcess {
    /// Heights from `node start`'s "committed height=N" log lines, in order.
    var committedHeights: [UInt64] {
        lines.compactMap { line in
            guard line.contains(" info committed ") else { return nil }
            return logField("height", in: Substring(line)).flatMap { UInt64($0) }
        }
    }
}

/// The stored height of a stopped node's home, after checking that every block up to it is
/// there with its certificate and chained to its parent.
func storedHeight(_ home: String) throws -> UInt64 {
    let blocks = BlockStore(store: try RocksDBStore(path: home + "/data/store"))
    let height = try blocks.height()
    var previous = Hash256.zero
    for h in 1...max(height, 1) where height > 0 {
        let block = try #require(try blocks.block(at: h), "block \(h) missing")
        #expect(block.header.previousBlockID == previous, "block \(h) does not chain to block \(h - 1)")
        #expect(try blocks.certificate(at: h)?.blockID == block.id, "certificate \(h) missing or wrong")
        previous = block.id
    }
    return height
}

@Suite(.serialized)
struct StartTests {
    func makeHome() throws -> String {
        let home = temporaryPath("kc-start")
        #expect(try runNode(["init", "--home", home, "--moniker", "solo"]).status == 0)
        let configPath = home + "/config.toml"
        let config = try String(contentsOfFile: configPath, encoding: .utf8)
            .replacingOccurrences(of: "timeout_commit_ms = 1000", with: "timeout_commit_ms = 50")
            // Any free port: tests must not depend on the standard one being unused.
            .replacingOccurrences(of: "listen_address = \"127.0.0.1:26656\"", with: "listen_address = \"127.0.0.1:0\"")
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        return home
    }

    /// A one-validator chain commits blocks; killed with SIGKILL at random moments it restarts
    /// from its store and WAL and carries on at exactly the next height, every time.
    @Test func survivesRepeatedSIGKILLAndContinuesAtTheNextHeight() throws {
        let home = try makeHome()
        defer { try? FileManager.default.removeItem(atPath: home) }
        var lastHeight: UInt64 = 0
        var generator = SystemRandomNumberGenerator()
        for round in 0..<6 {
            let node = try ChildProcess(["start", "--home", home])
            let started = node.wait(seconds: 60) { (node.committedHeights.last ?? 0) >= lastHeight + 2 }
            #expect(started, "round \(round): no progress; output: \(node.lines.suffix(5))")
            usleep(UInt32.random(in: 0...120_000, using: &generator))
            node.stop(signal: SIGKILL)
            let heights = node.committedHeights
            // The store is the truth: a kill can land after a block is durable but before its
            // log line is written.
            let stored = try storedHeight(home)
            #expect(stored >= (heights.last ?? lastHeight), "round \(round): a logged block is missing from the store")
            #expect(heights.first == lastHeight + 1, "round \(round): restarted at \(heights.first ?? 0) after \(lastHeight)")
            #expect(heights == Array((lastHeight + 1)...(heights.last ?? lastHeight)), "round \(round): heights skipped or repeated")
            // Signer refusals after a restart are expected (the WAL replay re-asks for signed steps); errors are not.
            #expect(!node.lines.contains { $0.contains(" error ") || $0.contains(" critical ") }, "round \(round): \(node.lines.suffix(5))")
            lastHeight = stored
        }
        #expect(lastHeight >= 12)
    }

    @Test func sigtermStopsCleanly() throws {
        let home = try makeHome()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let node = try ChildProcess(["start", "--home", home])
        #expect(node.wait(seconds: 60) { (node.committedHeights.last ?? 0) >= 2 })
        node.stop(signal: SIGTERM)
        #expect(node.process.terminationStatus == 0)
        #expect(node.lines.last?.contains("info node stopped height=") == true)
    }

    /// `--log-format json` makes every line a JSON object, the RPC library's too; a level
    /// or format the node does not know is refused before anything starts.
    @Test func logFormatAndLevelFlags() throws {
        let home = try makeHome()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let node = try ChildProcess(["start", "--home", home, "--log-format", "json", "--log-level", "info"])
        #expect(node.wait(seconds: 60) { node.lines.contains { $0.contains(#""msg":"committed""#) } })
        node.stop(signal: SIGTERM)
        #expect(!node.lines.isEmpty)
        for line in node.lines {
            let value = try StrictJSON.parse(line)
            #expect(value["time"] != nil && value["level"] != nil && value["msg"] != nil, "\(line)")
        }
        #expect(node.lines.contains { $0.contains(#""module":"rpc""#) }, "Hummingbird's start line goes through the node's handler")
        let loud = try runNode(["start", "--home", home, "--log-level", "loud"])
        #expect(loud.status != 0 && loud.standardError.contains("--log-level loud is not one of trace, debug, info, notice, warning, error, critical"))
        let xml = try runNode(["start", "--home", home, "--log-format", "xml"])
        #expect(xml.status != 0 && xml.standardError.contains("--log-format xml is not one of text, json"))
    }

    /// A port held by another program is named, with the setting that moves it, whether it
    /// is the RPC's or the P2P one; the node exits with an error instead of hanging.
    @Test func aBusyPortIsNamedWithTheSettingToChange() throws {
        let home = try makeHome()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let holder = try listenLoopback()
        defer { close(holder.descriptor) }
        let path = home + "/config.toml"
        let original = try String(contentsOfFile: path, encoding: .utf8)
        let busyRPC = original.replacingOccurrences(of: "listen_address = \"127.0.0.1:26657\"", with: "listen_address = \"127.0.0.1:\(holder.port)\"")
        #expect(busyRPC != original)
        try busyRPC.write(toFile: path, atomically: true, encoding: .utf8)
        let rpc = try runNode(["start", "--home", home])
        #expect(rpc.status != 0)
        #expect(rpc.standardError.contains("cannot serve the RPC on 127.0.0.1:\(holder.port): the port is already in use"), "\(rpc.standardError)")
        #expect(rpc.standardError.contains("rpc.listen_address in config.toml"))
        let busyP2P = original.replacingOccurrences(of: "listen_address = \"127.0.0.1:0\"", with: "listen_address = \"127.0.0.1:\(holder.port)\"")
            .replacingOccurrences(of: "listen_address = \"127.0.0.1:26657\"", with: "listen_address = \"127.0.0.1:0\"")
        try busyP2P.write(toFile: path, atomically: true, encoding: .utf8)
        let p2p = try runNode(["start", "--home", home])
        #expect(p2p.status != 0)
        #expect(p2p.standardError.contains("cannot listen for peers on 127.0.0.1:\(holder.port): the port is already in use"), "\(p2p.standardError)")
        #expect(p2p.standardError.contains("p2p.listen_address in config.toml"))
    }

    @Test func aDataDirectoryInUseIsRefused() throws {
        let home = try makeHome()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let first = try ChildProcess(["start", "--home", home])
        defer { first.stop(signal: SIGKILL) }
        #expect(first.wait(seconds: 60) { !first.committedHeights.isEmpty })
        let second = try runNode(["start", "--home", home])
        #expect(second.status == 1)
        #expect(second.standardError.contains("in use by another process"))
    }
}

import Foundation
import KCCrypto
import KCNetwork
import KCNode
import KCStorage
import KCTestSupport
import KCTypes
import Testing

/// Validators as separate `node start` processes over loopback TCP.
@Suite(.serialized)
struct NetworkTests {
    /// Four validators commit 100 heights under a transfer load; one is killed with SIGKILL
    /// and restarted: it catches up, every store agrees block by block, nothing committed is
    /// lost, and no validator ever signs two conflicting votes (no evidence anywhere).
    @Test func fourValidatorsSurviveASIGKILLUnderLoad() throws {
        let network = try TestNetwork(validators: 4)
        defer { network.stopAll(); network.remove() }
        for index in 0..<4 { try network.start(index) }
        #expect(network.waitHeight(5, seconds: 60), "no start: \(network.describe())")
        let client = try TestPeer(network: network, seed: 201, connectTo: [0])
        defer { client.stop() }
        #expect(client.waitConnected(1))
        let load = TransferLoad(peer: client, chainID: network.genesis.chainID)
        load.start()
        #expect(network.waitHeight(30, seconds: 60), "\(network.describe())")
        network.stop(3, signal: SIGKILL)
        let atKill = network.height(0)
        #expect(network.waitHeight(atKill + 10, nodes: [0, 1, 2], seconds: 60), "three of four must go on: \(network.describe())")
        try network.start(3)
        #expect(network.waitHeight(100, seconds: 120), "\(network.describe())")
        let target = network.height(0)
        #expect(network.waitHeight(target, nodes: [3], seconds: 60), "the restarted node must catch up: \(network.describe())")
        load.stop()
        network.stopAll()
        let heights = try network.checkStoresAgree()
        #expect(heights.allSatisfy { $0 >= 100 })
        for index in 0..<4 {
            #expect(!network.output(index).contains("double-sign evidence"), "node \(index) saw a double sign")
        }
        // Transactions went through: blocks carried them.
        let committed = network.commits(0).map(\.transactions).reduce(0, +)
        #expect(committed > 100, "only \(committed) transactions committed")
    }

    /// What an operator must see in the log, played on real processes: a validator that goes
    /// down is jailed (its peers log it at warning with the release time); when a second one
    /// goes down the chain halts and the others log the failed rounds, the stall and the lost
    /// quorum of peers; the quorum's return is logged too and commits resume.
    @Test func faultsAreLoggedAsWarningsWithTheirFigures() throws {
        let network = try TestNetwork(validators: 4)
        defer { network.stopAll(); network.remove() }
        for index in 0..<4 { try network.start(index) }
        #expect(network.waitHeight(3, seconds: 60), "no start: \(network.describe())")
        network.stop(3)
        let down = DevnetKeys.key(.account, index: 3).publicKey.hex
        // Jailed once the 50-block window is filled with more than 25 misses.
        #expect(network.wait(seconds: 90) { network.output(0).contains(" warning validator jailed address=\(down) ") },
                "no jailing logged: \(network.describe())")
        #expect(network.output(0).contains(" warning validator slashed address=\(down) "))
        #expect(!network.output(0).contains("lost a quorum of peers"), "three of four are a quorum")
        network.stop(2)
        for line in ["warning round failed; consensus moves to the next round", "warning height is stalled: no commit",
                     "warning lost a quorum of peers"] {
            #expect(network.wait(seconds: 60) { network.output(0).contains(line) }, "missing '\(line)': \(network.describe())")
        }
        // The failed rounds are counted for dashboards too.
        let metrics = EndToEndTests.get(network.rpc(0) + "/metrics").text
        let failedRounds = metrics.split(separator: "\n").first { $0.hasPrefix("membria_failed_rounds_total ") }
            .flatMap { Double($0.split(separator: " ").last ?? "") }
        #expect((failedRounds ?? 0) >= 1, "\(metrics.split(separator: "\n").filter { $0.contains("failed_rounds") })")
        let lost = network.output(0).split(separator: "\n").first { $0.contains("lost a quorum of peers") }.map(String.init) ?? ""
        #expect(logField("reached_power", in: Substring(lost)) != nil && logField("total_power", in: Substring(lost)) != nil, "\(lost)")
        let halted = network.height(0)
        try network.start(2)
        #expect(network.waitHeight(halted + 3, nodes: [0, 1, 2], seconds: 60), "no commits after the quorum returned: \(network.describe())")
        #expect(network.wait(seconds: 30) { network.output(0).contains(" notice quorum of peers restored ") })
    }

    /// The node is killed at each persistence step of a commit (KC_CRASH_POINT); each restart
    /// reconciles store and WAL and ends on the same blocks and state roots as its peers.
    @Test func crashAtEachPersistenceStepRecovers() throws {
        let network = try TestNetwork(validators: 4)
        defer { network.stopAll(); network.remove() }
        for index in 0..<4 { try network.start(index) }
        #expect(network.waitHeight(3, seconds: 60), "\(network.describe())")
        // (restore-written is a step of state sync: StateSyncNetworkTests.)
        for step in CrashPoint.Step.allCases where step != .restoreWritten {
            network.stop(3)
            let at = network.height(0) + 3
            try network.start(3, environment: ["KC_CRASH_POINT": step.rawValue, "KC_CRASH_HEIGHT": "\(at)"])
            #expect(network.waitExit(3, seconds: 60), "\(step.rawValue): the crash point was never reached: \(network.describe())")
            #expect(network.output(3).contains("crash point \(step.rawValue) reached"))
            try network.start(3)
            let target = network.height(0) + 3
            #expect(network.waitHeight(target, seconds: 60), "\(step.rawValue): no recovery: \(network.describe())")
        }
        // A WAL cut at a random offset, then one with flipped bytes: the node starts, cuts the
        // damage with a warning, and rejoins.
        var generator = SystemRandomNumberGenerator()
        for damage in ["cut", "flip"] {
            let path = network.home(3) + "/data/consensus.wal"
            var bytes: [UInt8] = []
            // A kill right after a height starts can find the WAL nearly empty: kill again.
            for _ in 0..<10 where bytes.count <= 20 {
                if network.nodes[3] == nil { try network.start(3); usleep(300_000) }
                network.stop(3, signal: SIGKILL)
                bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            }
            #expect(bytes.count > 20, "the WAL stayed nearly empty")
            if damage == "cut" {
                bytes.removeLast(Int.random(in: 1..<bytes.count, using: &generator))
            } else {
                for _ in 0..<3 { bytes[Int.random(in: 10..<bytes.count, using: &generator)] ^= 0xA5 }
            }
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            try network.start(3)
            let target = network.height(0) + 3
            #expect(network.waitHeight(target, seconds: 60), "\(damage): no recovery: \(network.describe())")
        }
        #expect(network.output(3).contains("cut damaged bytes from the end of the consensus WAL"))

        // The same key on a "new machine" (an empty data directory) with the look-back check on.
        network.stopAll()
        _ = try network.checkStoresAgree()
        let configPath = network.home(3) + "/config.toml"
        let config = try String(contentsOfFile: configPath, encoding: .utf8)
            .replacingOccurrences(of: "double_sign_check_heights = 0", with: "double_sign_check_heights = 100")
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        // First starved: its peers are down, so its start-up hold ends with nobody heard, at
        // height 0, and it may sign at heights long decided. When the peers come up, sync brings
        // the blocks the key signed on the old machine: it holds again, and refuses at the tip.
        try FileManager.default.removeItem(atPath: network.home(3) + "/data")
        let starved = try ChildProcess(["start", "--home", network.home(3)])
        #expect(starved.wait(seconds: 30) { starved.text.contains("caught up: this validator starts signing height=0 ") },
                "\(starved.lines.suffix(3))")
        for index in 0..<3 { try network.start(index) }
        #expect(starved.wait(seconds: 60) { !starved.process.isRunning })
        starved.stop(signal: SIGKILL)
        #expect(starved.process.terminationStatus == 1)
        #expect(starved.text.contains("refusing to sign"), "\(starved.lines.suffix(3))")
        // Started again at once (its WAL is no longer empty): the watch goes on, and it refuses again.
        let again = try ChildProcess(["start", "--home", network.home(3)])
        #expect(again.wait(seconds: 60) { !again.process.isRunning })
        again.stop(signal: SIGKILL)
        #expect(again.process.terminationStatus == 1)
        #expect(again.text.contains("refusing to sign"), "\(again.lines.suffix(3))")
        // Then with its peers up: it syncs, finds the key's recent signatures, and refuses.
        try FileManager.default.removeItem(atPath: network.home(3) + "/data")
        let moved = try ChildProcess(["start", "--home", network.home(3)])
        #expect(moved.wait(seconds: 60) { !moved.process.isRunning })
        moved.stop(signal: SIGKILL)
        #expect(moved.process.terminationStatus == 1)
        #expect(moved.text.contains("refusing to sign"), "\(moved.lines.suffix(3))")
        network.stopAll()
        #expect(!network.output(0).contains("double-sign evidence"))
    }

    /// A node started far behind fetches the blocks from its peers and then votes; a peer
    /// that claims a height it cannot serve is banned, and the sync still finishes. A peer
    /// that floods invalid transactions is banned while the chain goes on.
    @Test func aNodeFarBehindSyncsDespiteALyingPeer() throws {
        let network = try TestNetwork(validators: 4, commitMilliseconds: 0)
        defer { network.stopAll(); network.remove() }
        let behind: UInt64 = ProcessInfo.processInfo.environment["KC_SYNC_HEIGHTS"].flatMap { UInt64($0) } ?? 1_000
        for index in 0..<4 { try network.start(index) }
        #expect(network.waitHeight(behind, seconds: 300), "\(network.describe())")
        // Node 3 loses its data and starts again from genesis, `behind` heights back.
        network.stop(3)
        try FileManager.default.removeItem(atPath: network.home(3) + "/data")
        try network.start(3)
        let restarted = try #require(network.nodes[3])
        #expect(restarted.wait(seconds: 30) { restarted.text.contains("node started") })

        // The liar connects and claims a height far ahead, then has no blocks.
        let liar = try TestPeer(network: network, seed: 202, connectTo: [3])
        defer { liar.stop() }
        #expect(liar.waitConnected(1))
        liar.host.send(.status(height: 1_000_000), to: network.nodeID(3))
        let deadline = Date().addingTimeInterval(30)
        var banned = false
        while Date() < deadline && !banned {
            for event in liar.host.events!.drain(waitingMilliseconds: 20) {
                if case .message(.blockRequest(let height), let from) = event { liar.host.send(.noBlock(height: height), to: from) }
                if case .disconnected = event { banned = true }
            }
        }
        #expect(banned, "the lying peer was not dropped")
        // The log line may reach us a moment after the disconnect does.
        #expect(restarted.wait(seconds: 10) { network.output(3).contains("banning peer for_ms=60000 peer=\(liar.id.hex)") })
        let target = network.height(0)
        #expect(network.waitHeight(target, nodes: [3], seconds: 240), "no catch-up: \(network.describe())")
        #expect(network.output(3).contains("catching up by block sync"))
        // Caught up, it takes part: a height after the catch-up is committed by all four.
        #expect(network.waitHeight(network.height(0) + 5, seconds: 60), "\(network.describe())")

        // A flood of transactions with bad signatures: the sender is banned, the chain goes on.
        let flooder = try TestPeer(network: network, seed: 203, connectTo: [0])
        defer { flooder.stop() }
        #expect(flooder.waitConnected(1))
        let user = DevnetKeys.user(index: 0)
        let forged = (0..<500).map { nonce in
            let body = TransactionBody(chainID: network.genesis.chainID, sender: user.publicKey, nonce: UInt64(nonce),
                                       fee: Amount(units: 1_000_000_000_000), call: .transfer(to: user.publicKey, amount: Amount(units: 1)))
            return SignedTransaction(body: body, signature: DevnetKeys.user(index: 1).sign(rawMessage: body.canonicalBytes))
        }
        flooder.host.broadcast(.transactions(forged))
        var dropped = false
        let floodDeadline = Date().addingTimeInterval(10)
        while Date() < floodDeadline && !dropped {
            for event in flooder.host.events!.drain(waitingMilliseconds: 20) { if case .disconnected = event { dropped = true } }
        }
        #expect(dropped, "the flooding peer was not dropped")
        let node0 = try #require(network.nodes[0])
        #expect(node0.wait(seconds: 10) { network.output(0).contains("invalid transaction") })
        #expect(network.waitHeight(network.height(0) + 3, seconds: 60), "the chain stalled after the flood: \(network.describe())")
        network.stopAll()
        _ = try network.checkStoresAgree()
    }

    /// A node whose key is not in the validator set follows the chain as a full node: it
    /// never votes, and stores exactly the validators' blocks.
    /// Four validators in a line (0-1-2-3): no quorum without relays, since the ends reach
    /// one peer each. Votes cross the middle by the relays of the validators linked to both
    /// ends of a hop and, two hops away, by stall reports; every validator's precommits reach
    /// the certificates.
    @Test func votesCrossAPartialMeshByRelays() throws {
        let network = try TestNetwork(validators: 4, peers: [[1], [0, 2], [1, 3], [2]])
        defer { network.stopAll(); network.remove() }
        // No peer exchange: the line must stay a line.
        for index in 0..<4 { try network.editConfig(index) { $0.replacingOccurrences(of: "pex = true", with: "pex = false") } }
        for index in 0..<4 { try network.start(index) }
        #expect(network.waitHeight(15, seconds: 90), "\(network.describe())")
        network.stopAll()
        let heights = try network.checkStoresAgree()
        #expect(heights.allSatisfy { $0 >= 15 })
        // Each end only ever had its one neighbour (a reconnection to it may log twice).
        for (end, neighbour) in [(0, 1), (3, 2)] {
            let peers = Set(network.output(end).split(separator: "\n").compactMap { line in
                line.contains(" peer connected ") ? logField("peer", in: line) : nil
            })
            #expect(peers == [network.nodeID(neighbour).hex], "node \(end) connected to \(peers)")
        }
        let blocks = BlockStore(store: try RocksDBStore(path: network.home(1) + "/data/store"))
        var signedBy = [Int](repeating: 0, count: 4)
        for height in 2...heights[1] {
            let signers = try #require(try blocks.certificate(at: height)).signers
            for index in 0..<4 where signers.contains(DevnetKeys.key(.validator, index: index).publicKey) { signedBy[index] += 1 }
        }
        #expect(signedBy.allSatisfy { $0 > 0 }, "certificates signed per validator: \(signedBy)")
    }

    /// Four validators that know only a seed node (in seed mode) find each other through it,
    /// connect and commit; each keeps its address book on disk.
    @Test func validatorsGivenOnlyASeedDiscoverEachOther() throws {
        let network = try TestNetwork(validators: 4, fullNodes: 1, peers: [[], [], [], [], []])
        defer { network.stopAll(); network.remove() }
        let seed = 4
        for index in 0..<5 {
            try network.editConfig(index) { config in
                index == seed
                    ? config.replacingOccurrences(of: "seed_mode = false", with: "seed_mode = true")
                    : config.replacingOccurrences(of: "seeds = []", with: "seeds = [\"\(network.address(seed))\"]")
            }
        }
        for index in 0..<5 { try network.start(index) }
        func validatorsReached(_ index: Int) -> [Int] {
            (0..<4).filter { $0 != index && network.output(index).contains("peer connected peer=\(network.nodeID($0).hex)") }
        }
        // Each validator reaches the three others (through the seed's addresses, then its peers').
        #expect(network.wait(seconds: 40) { (0..<4).allSatisfy { validatorsReached($0).count == 3 } },
                "\((0..<4).map { validatorsReached($0) })")
        let reached = (0..<4).map { network.height($0) }.max() ?? 0
        #expect(network.waitHeight(max(10, reached + 5), nodes: [0, 1, 2, 3], seconds: 60), "\(network.describe())")
        network.stopAll()
        for index in 0..<4 {
            let bytes = try #require(FileManager.default.contents(atPath: network.home(index) + "/data/addrbook"), "node \(index) saved no book")
            let book = try AddressBook.decode(exactly: Array(bytes))
            #expect(book.count >= 3, "node \(index) knows \(book.count) addresses")
        }
    }

    /// A node with `storage.retain_blocks = 20` keeps only the last 20 blocks while it runs
    /// and after a restart; it says so in /status and answers older heights with 410 pruned;
    /// the archive nodes still serve a node catching up from height 0.
    @Test func aPruningNodeKeepsABoundedStore() throws {
        let network = try TestNetwork(validators: 4, fullNodes: 1)
        defer { network.stopAll(); network.remove() }
        let pruning = 3, late = 4
        try network.editConfig(pruning) { $0.replacingOccurrences(of: "retain_blocks = 0", with: "retain_blocks = 20") }
        for index in 0..<4 { try network.start(index) }
        #expect(network.waitHeight(60, nodes: [0, 1, 2, 3], seconds: 90), "\(network.describe())")
        let status = EndToEndTests.get(network.rpc(pruning) + "/status")
        #expect(status.text.contains("\"earliest_block_height\":") && !status.text.contains("\"earliest_block_height\":1,"), "\(status.text)")
        let old = EndToEndTests.get(network.rpc(pruning) + "/blocks/1")
        #expect(old.status == 410 && old.text.contains("pruned") && old.text.contains("archive node"), "\(old)")
        #expect(EndToEndTests.get(network.rpc(0) + "/blocks/1").status == 200)
        // A full node starting from nothing catches up from the archive nodes.
        try network.start(late)
        #expect(network.waitHeight(network.height(0), nodes: [late], seconds: 60), "\(network.describe())")
        network.stop(pruning)
        try network.start(pruning)
        let restartedAt = network.height(0)
        #expect(network.waitHeight(restartedAt + 10, nodes: [pruning], seconds: 60), "\(network.describe())")
        network.stopAll()
        let blocks = BlockStore(store: try RocksDBStore(path: network.home(pruning) + "/data/store"))
        let top = try blocks.height(), base = try blocks.base()
        #expect(top >= 70 && base == top - 19, "base \(base) top \(top)")
        #expect(try blocks.block(at: base - 1) == nil && blocks.block(at: base) != nil && blocks.certificate(at: top) != nil)
    }

    /// A lone validator with no commit pause decides a height as soon as it starts one; its
    /// loop must still hear its peers between heights. (It ran timers back to back: a load
    /// generator's transactions were never read while 31,824 empty heights went by.)
    @Test func aLoneValidatorWithoutACommitPauseStillHearsItsPeers() throws {
        let (network, peer) = try TestNetwork.loneValidatorWithPeer(commitMilliseconds: 0, height: 50, seed: 77)
        defer { peer.stop(); network.stopAll(); network.remove() }
        let load = TransferLoad(peer: peer, chainID: network.genesis.chainID)
        load.start(perBatch: 5, intervalMilliseconds: 100, limit: 100)
        defer { load.stop() }
        #expect(network.wait(seconds: 20) { network.commits(0).reduce(0) { $0 + $1.transactions } >= 100 },
                "committed \(network.commits(0).reduce(0) { $0 + $1.transactions }) of 100 transfers by height \(network.height(0))")
    }

    @Test func aFullNodeFollowsWithoutVoting() throws {
        let network = try TestNetwork(validators: 3, fullNodes: 1)
        defer { network.stopAll(); network.remove() }
        for index in 0..<4 { try network.start(index) }
        #expect(network.waitHeight(20, seconds: 60), "\(network.describe())")
        #expect(network.output(3).contains("role=\"full node\""))
        network.stopAll()
        let heights = try network.checkStoresAgree()
        #expect(heights[3] >= 20)
        // Its validator key signed nothing: no certificate holds it.
        let key = DevnetKeys.key(.validator, index: 3).publicKey
        let blocks = BlockStore(store: try RocksDBStore(path: network.home(0) + "/data/store"))
        for height in 1...heights[0] {
            #expect(try blocks.certificate(at: height)?.signers.contains(key) == false)
        }
    }

    /// Nodes run by an unprivileged user (as in the container image, uid 10001) connect and
    /// commit: no socket option the P2P layer sets may need privileges. (It once set SO_DEBUG
    /// by asking for TCP_NODELAY at the socket level, which only root may do: every dial failed
    /// inside the container.) Needs root to switch users; skipped otherwise.
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")))
    func unprivilegedNodesConnectAndCommit() throws {
        let network = try TestNetwork(validators: 2)
        defer { network.stopAll(); network.remove() }
        let nobody = "65534"
        #expect(chownRecursively(network.root, uid: 65534, gid: 65534), "could not hand the homes to uid 65534")
        network.launchers = Array(repeating: ["/usr/bin/setpriv", "--reuid=\(nobody)", "--regid=\(nobody)", "--clear-groups"], count: 2)
        for index in 0..<2 { try network.start(index) }
        // Two validators: every block needs both, so a height means the two are connected.
        #expect(network.waitHeight(3, seconds: 60), "\(network.describe())")
    }
}

/// `chown -R`, without following symbolic links.
func chownRecursively(_ path: String, uid: uid_t, gid: gid_t) -> Bool {
    guard lchown(path, uid, gid) == 0 else { return false }
    guard let children = try? FileManager.default.contentsOfDirectory(atPath: path) else { return true }
    return children.allSatisfy { chownRecursively(path + "/" + $0, uid: uid, gid: gid) }
}

import Foundation
import KCCrypto
import KCConsensus
import KCNetwork
import KCNode
import KCStorage
import KCTestSupport
import KCTypes
import Synchronization
import Testing

/// Listening ports of the multi-process tests. All stay below the kernel's ephemeral range
/// (32768-60999 on Debian): any outgoing connection may hold a port there, and a node whose
/// RPC port was taken that way once failed to start. Each test process gets its own block
/// of 340 ports (by pid), inside it each network a slot of 10 P2P and 10 RPC ports.
enum TestPorts {
    /// Each test process its own block of 390 ports, below Linux's ephemeral range (32768).
    static let processBase = 10_000 + Int(getpid() % 56) * 390
    static let slots = 16

    static func p2p(slot: Int) -> Int {
        precondition(slot < slots, "more test networks in one process than port slots")
        return processBase + slot * 10
    }

    static func rpc(slot: Int) -> Int { p2p(slot: slot) + slots * 10 }

    /// Two ports for the container entrypoint test.
    static let entrypoint = processBase + 2 * slots * 10
    /// The end-to-end tests' dev content server.
    static let contentServer = entrypoint + 2
    /// `Scripts/devnet.sh` under test: node i on devnetBase + 10 i (P2P) and + 1 (RPC), i < 5.
    static let devnetBase = contentServer + 1
    static let devnetContent = devnetBase + 50
}

/// A network of `node start` processes on loopback, built from the devnet keys: homes in a
/// temporary folder, distinct ports, every node a persistent peer of every other.
final class TestNetwork {
    let root: String
    let count: Int
    let ports: [Int]
    /// Node i's RPC port.
    let rpcPorts: [Int]
    let genesis: Genesis
    var nodes: [ChildProcess?]
    /// Everything each node printed, across restarts.
    var pastOutput: [String]

    /// Port slots in use by live networks of this process; `remove()` gives its slot back.
    static let slotsInUse = Mutex<Set<Int>>([])
    let slot: Int

    /// `validators` validators, then `fullNodes` nodes whose validator keys are not in the set.
    /// Where node i is reached (127.0.0.1 unless the nodes live in network namespaces).
    let hosts: [String]
    /// Prefix of node i's command line (e.g. `ip netns exec NS`).
    var launchers: [[String]]

    /// With `attesterGateway`, every node runs the fetch attester against that content server.
    /// With `hosts`, node i listens on all interfaces and peers dial hosts[i].
    /// With `peers`, node i lists only peers[i] as persistent peers (a partial mesh).
    init(validators: Int, fullNodes: Int = 0, commitMilliseconds: Int = 50, attesterGateway: String? = nil,
         hosts: [String]? = nil, peers: [[Int]]? = nil) throws {
        count = validators + fullNodes
        root = temporaryPath("kc-net")
        let slot = Self.slotsInUse.withLock { used -> Int in
            guard let free = (1..<TestPorts.slots).first(where: { !used.contains($0) }) else {
                preconditionFailure("more live test networks in one process than port slots")
            }
            used.insert(free)
            return free
        }
        self.slot = slot
        precondition(count <= 10, "a test network has at most 10 nodes")
        ports = (0..<count).map { TestPorts.p2p(slot: slot) + $0 }
        rpcPorts = (0..<count).map { TestPorts.rpc(slot: slot) + $0 }
        self.hosts = hosts ?? Array(repeating: "127.0.0.1", count: count)
        launchers = Array(repeating: [], count: count)
        nodes = Array(repeating: nil, count: count)
        pastOutput = Array(repeating: "", count: count)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let genesisText = try runNode(["devnet-genesis", "--validators", "\(validators)"]).standardOutput
        try genesisText.write(toFile: root + "/genesis.json", atomically: true, encoding: .utf8)
        genesis = try NodeHome.loadGenesis(file: root + "/genesis.json")
        for index in 0..<count {
            var arguments = ["init", "--home", home(index), "--genesis", root + "/genesis.json", "--devnet-index", "\(index)",
                             "--p2p-port", "\(ports[index])", "--rpc-port", "\(rpcPorts[index])"]
            for peer in peers?[index] ?? Array(0..<count) where peer != index { arguments += ["--peer", address(peer)] }
            let result = try runNode(arguments)
            #expect(result.status == 0, "init \(index): \(result.standardError)")
            let path = home(index) + "/config.toml"
            var config = try String(contentsOfFile: path, encoding: .utf8)
                .replacingOccurrences(of: "timeout_commit_ms = 1000", with: "timeout_commit_ms = \(commitMilliseconds)")
            if hosts != nil {
                config = config.replacingOccurrences(of: "listen_address = \"127.0.0.1:", with: "listen_address = \"0.0.0.0:")
            }
            if let attesterGateway {
                config = config.replacingOccurrences(of: "mode = \"off\"", with: "mode = \"fetch\"")
                    .replacingOccurrences(of: "gateway = \"https://arweave.net\"", with: "gateway = \"\(attesterGateway)\"")
            }
            try config.write(toFile: path, atomically: true, encoding: .utf8)
        }
    }

    func home(_ index: Int) -> String { root + "/node\(index)" }

    /// Rewrites node `index`'s config.toml; the change must take (the text must differ).
    func editConfig(_ index: Int, _ change: (String) -> String) throws {
        let path = home(index) + "/config.toml"
        let before = try String(contentsOfFile: path, encoding: .utf8)
        let after = change(before)
        #expect(after != before, "the config edit of node \(index) changed nothing")
        try after.write(toFile: path, atomically: true, encoding: .utf8)
    }
    func rpc(_ index: Int) -> String { "http://\(hosts[index]):\(rpcPorts[index])" }
    func nodeID(_ index: Int) -> PublicKey { DevnetKeys.key(.node, index: index).publicKey }
    func address(_ index: Int) -> String { "\(nodeID(index).hex)@\(hosts[index]):\(ports[index])" }

    func start(_ index: Int, environment: [String: String] = [:]) throws {
        precondition(nodes[index] == nil, "node \(index) is running")
        nodes[index] = try ChildProcess(["start", "--home", home(index)], environment: environment, launcher: launchers[index])
    }

    func stop(_ index: Int, signal: Int32 = SIGTERM) {
        guard let node = nodes[index] else { return }
        node.stop(signal: signal)
        pastOutput[index] += node.text
        nodes[index] = nil
    }

    func stopAll() { for index in 0..<count { stop(index) } }

    /// Waits until a running node exits by itself (a crash point); true if it did.
    func waitExit(_ index: Int, seconds: Double) -> Bool {
        guard let node = nodes[index] else { return true }
        _ = node.wait(seconds: seconds) { !node.process.isRunning }
        guard !node.process.isRunning else { return false }
        stop(index)
        return true
    }

    func output(_ index: Int) -> String { pastOutput[index] + (nodes[index]?.text ?? "") }

    /// The last height each node logged as committed (0 if none).
    func height(_ index: Int) -> UInt64 {
        commits(index).last?.height ?? 0
    }

    /// The node's "committed" log lines, as (height, transactions).
    func commits(_ index: Int) -> [(height: UInt64, transactions: Int)] {
        output(index).split(separator: "\n").compactMap { line in
            guard line.contains(" info committed "), let height = logField("height", in: line).flatMap({ UInt64($0) }),
                  let count = logField("txs", in: line).flatMap({ Int($0) }) else { return nil }
            return (height, count)
        }
    }

    /// Waits until `condition` holds (polled every 50 ms); false on timeout.
    func wait(seconds: Double, until condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(50_000)
        }
        return condition()
    }

    /// Waits until every node in `indices` logged `height`; false on timeout.
    func waitHeight(_ height: UInt64, nodes indices: [Int]? = nil, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        let which = indices ?? Array(0..<count)
        while Date() < deadline {
            if which.allSatisfy({ self.height($0) >= height }) { return true }
            usleep(50_000)
        }
        return false
    }

    func describe() -> String {
        (0..<count).map { "node\($0): height \(height($0)); last lines: \(output($0).split(separator: "\n").suffix(6).joined(separator: " | "))" }
            .joined(separator: "\n")
    }

    /// With every node stopped: each store chains, every pair agrees on the block id and
    /// state root at every common height, and no node stored less than it logged as
    /// committed. Returns the stored heights.
    func checkStoresAgree() throws -> [UInt64] {
        var chains: [[(Hash256, Hash256)]] = []
        for index in 0..<count {
            let blocks = BlockStore(store: try RocksDBStore(path: home(index) + "/data/store"))
            let top = try blocks.height()
            #expect(top >= height(index), "node \(index) stored \(top) but logged a commit of \(height(index))")
            var chain: [(Hash256, Hash256)] = []
            var previous = Hash256.zero
            for h in stride(from: UInt64(1), through: top, by: 1) {
                let block = try #require(try blocks.block(at: h), "node \(index): block \(h) missing")
                #expect(block.header.previousBlockID == previous, "node \(index): block \(h) does not chain")
                #expect(try blocks.certificate(at: h)?.blockID == block.id, "node \(index): certificate \(h)")
                previous = block.id
                chain.append((block.id, block.header.stateRoot))
            }
            chains.append(chain)
        }
        for a in 0..<count {
            for b in (a + 1)..<count {
                for h in 0..<min(chains[a].count, chains[b].count) {
                    #expect(chains[a][h] == chains[b][h], "nodes \(a) and \(b) differ at height \(h + 1)")
                }
            }
        }
        return chains.map { UInt64($0.count) }
    }

    /// Removes the homes; with KC_TEST_VERBOSE=1 first prints every node's log lines other
    /// than commits, for debugging.
    func remove() {
        if ProcessInfo.processInfo.environment["KC_TEST_VERBOSE"] == "1" {
            for index in 0..<count {
                for line in output(index).split(separator: "\n") where !line.contains(" info committed ") {
                    print("node\(index)> \(line)")
                }
            }
        }
        try? FileManager.default.removeItem(atPath: root)
        Self.slotsInUse.withLock { _ = $0.remove(slot) }
    }
}

/// The value of `key=value` in a log line.
func logField(_ key: String, in line: Substring) -> String? {
    guard let range = line.range(of: " \(key)=") else { return nil }
    return String(line[range.upperBound...].prefix { $0 != " " })
}

/// A P2P peer inside the test process: it dials nodes, sends them transactions, and can lie.
extension TestNetwork {
    /// One validator past `height` and a raw peer (`seed`) connected to it; the caller stops
    /// both (`peer.stop()`, `network.stopAll()`, `network.remove()`).
    static func loneValidatorWithPeer(commitMilliseconds: Int, height: UInt64, seed: UInt8) throws -> (network: TestNetwork, peer: TestPeer) {
        let network = try TestNetwork(validators: 1, commitMilliseconds: commitMilliseconds)
        do {
            try network.start(0)
            #expect(network.waitHeight(height, seconds: 30), "\(network.describe())")
            let peer = try TestPeer(network: network, seed: seed, connectTo: [0])
            #expect(peer.waitConnected(1))
            return (network, peer)
        } catch {
            network.stopAll()
            network.remove()
            throw error
        }
    }
}

final class TestPeer {
    let host: P2PHost

    convenience init(network: TestNetwork, seed: UInt8, connectTo indices: [Int]) throws {
        try self.init(network: network, key: SigningKey(seed: Bytes32([UInt8](repeating: seed, count: 32))), connectTo: indices)
    }

    init(network: TestNetwork, key: SigningKey, connectTo indices: [Int]) throws {
        let settings = P2PSettings(chainID: network.genesis.chainID, genesisHash: network.genesis.hash, nodeKey: key)
        host = P2PHost(settings: settings, events: Inbox(capacity: 100_000), log: .silent)
        try host.start()
        for index in indices { host.dial(PeerAddress(nodeID: network.nodeID(index), host: "127.0.0.1", port: network.ports[index])) }
    }

    var id: PublicKey { host.nodeID }

    func waitConnected(_ count: Int, seconds: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            _ = host.events!.drain(waitingMilliseconds: 20)
            if host.connectedPeers.count >= count { return true }
        }
        return false
    }

    func stop() { host.stop() }
}

/// Transfers between the devnet users, nonces in order, sent in small batches from a thread.
final class TransferLoad: @unchecked Sendable {
    let peer: TestPeer
    let chainID: String
    let running = Mutex(true)
    let sent = Mutex(0)
    var thread: Thread? = nil

    init(peer: TestPeer, chainID: String) {
        self.peer = peer
        self.chainID = chainID
    }

    func start(perBatch: Int = 10, intervalMilliseconds: UInt32 = 100, limit: Int = 20_000) {
        let thread = Thread { [self] in
            let users = (0..<4).map { DevnetKeys.user(index: $0) }
            var nonces = [UInt64](repeating: 0, count: users.count)
            var total = 0
            while running.withLock({ $0 }) && total < limit {
                var batch: [SignedTransaction] = []
                for (index, user) in users.enumerated() {
                    for _ in 0..<perBatch {
                        let body = TransactionBody(chainID: chainID, sender: user.publicKey, nonce: nonces[index],
                                                   fee: Amount(units: 1_000_000_000_000),
                                                   call: .transfer(to: users[(index + 1) % users.count].publicKey, amount: Amount(units: 1)))
                        batch.append(body.signed(with: user))
                        nonces[index] += 1
                    }
                }
                peer.host.broadcast(.transactions(batch))
                total += batch.count
                sent.withLock { $0 = total }
                usleep(intervalMilliseconds * 1_000)
            }
        }
        self.thread = thread
        thread.start()
    }

    func stop() {
        running.withLock { $0 = false }
        usleep(300_000)
    }
}

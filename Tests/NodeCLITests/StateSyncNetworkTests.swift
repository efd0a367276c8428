import Foundation
import KCCodec
import KCConsensus
import KCCrypto
import KCNetwork
import KCNode
import KCStorage
import KCTestSupport
import Testing

/// State sync between real node processes (specs/p2p.md, "State sync"): validators that prune
/// their blocks (so nobody can replay from genesis) take snapshots; a new node restores one,
/// syncs the rest and follows the chain. A peer inside the test offers a snapshot above
/// theirs whose header is real but whose chunks are not the state: it is banned and the node
/// finishes from the honest ones. Killed once its restore is written but not marked done, it
/// starts the restore over; killed and restarted later, it carries on from its store.
@Suite(.serialized)
struct StateSyncNetworkTests {
    @Test func aNewNodeRestoresASnapshotAndFollowsTheChainDespiteALiar() throws {
        let network = try TestNetwork(validators: 4, fullNodes: 1)
        defer { network.stopAll(); network.remove() }
        let joiner = 4
        for index in 0..<4 {
            try network.editConfig(index) {
                $0.replacingOccurrences(of: "retain_blocks = 0", with: "retain_blocks = 150")
                    .replacingOccurrences(of: "snapshot_interval = 0", with: "snapshot_interval = 100")
            }
        }
        try network.editConfig(joiner) { $0.replacingOccurrences(of: "enable = false", with: "enable = true") }
        for index in 0..<4 { try network.start(index) }
        // Past the snapshot at 200 and the pruning of height 1, and far from the next snapshot
        // (300): the liar's offer at the tip is then above every honest one. The validators
        // keep 150 blocks, so the blocks after the newest snapshot are still there when the
        // joiner has restored it (it restores twice, below).
        #expect(network.waitHeight(215, nodes: [0], seconds: 120), "\(network.describe())")
        #expect(EndToEndTests.get(network.rpc(0) + "/blocks/1").status == 410, "the validators pruned height 1")

        // The liar: connected to node 0, it offers the joiner a snapshot at node 0's tip (above
        // every honest snapshot), passes the joiner's light-block requests to node 0 and its
        // real answers back, and serves chunks of a state that is not the chain's (they decode
        // and match its offer, and rebuild another root).
        let liar = try TestPeer(network: network, key: SigningKey(seed: Blake2b.hash256(Array("state-sync-liar".utf8))), connectTo: [0])
        defer { liar.stop() }
        #expect(liar.waitConnected(1))
        var writer = CanonicalWriter()
        writer.writeLength(1)
        writer.writeBytes(Array("acct/forged".utf8)); writer.writeBytes([1, 2, 3])
        let chunk = writer.bytes
        var offered: UInt64 = 0

        // Its first run is killed once the restored state is written in full, before the
        // restore is marked done (the last moment a crash can cut it short).
        try network.start(joiner, environment: ["KC_CRASH_POINT": CrashPoint.Step.restoreWritten.rawValue])
        #expect(network.wait(seconds: 20) { network.output(joiner).contains("node started") })
        liar.host.dial(PeerAddress(nodeID: network.nodeID(joiner), host: "127.0.0.1", port: network.ports[joiner]))
        let joinerID = network.nodeID(joiner), validatorID = network.nodeID(0)
        var banned = false
        let deadline = Date().addingTimeInterval(30)
        while !banned && Date() < deadline {
            for event in liar.host.events!.drain(waitingMilliseconds: 20) {
                guard case .message(let message, let peer) = event else { continue }
                switch (message, peer) {
                case (.snapshotsRequest, joinerID):
                    var tip = network.height(0)
                    if tip % 100 == 0 { tip -= 1 }  // never tie with an honest snapshot
                    offered = tip
                    liar.host.send(.snapshots([SnapshotOffer(height: tip, chunkHashes: [Blake2b.hash256(chunk)])]), to: peer)
                case (.lightBlockRequest, joinerID): liar.host.send(message, to: validatorID)
                case (.lightBlock, validatorID): liar.host.send(message, to: joinerID)
                case (.chunkRequest(let height, let index), joinerID):
                    liar.host.send(.chunk(height: height, index: index, bytes: chunk), to: peer)
                default: break
                }
            }
            banned = network.output(joiner).contains("banning peer for_ms=60000 peer=\(liar.id.hex)")
        }
        let tip = offered
        let output = network.output(joiner)
        let banLine = output.split(separator: "\n").first { $0.contains("banning peer") && $0.contains(liar.id.hex) }
        #expect(banLine?.contains("offered a snapshot at height \(tip) that is false") == true
                    && banLine?.contains("is not the verified header's") == true, "\(banLine ?? "no ban")\n\(output.split(separator: "\n").filter { !$0.contains("committed") }.joined(separator: "\n"))")

        // The honest snapshot is written, and the node killed before the restore is done: its
        // store holds the restoring marker. Started again, it drops what it wrote, says so, and
        // restores from the start.
        #expect(network.waitExit(joiner, seconds: 60), "the crash point was never reached: \(network.output(joiner).suffix(3_000))")
        #expect(network.output(joiner).contains("crash point restore-written reached"))
        #expect(!network.output(joiner).contains("state restored by state sync"))
        do {
            let store = try RocksDBStore(path: network.home(joiner) + "/data/store")
            #expect(try store.get(BlockStore.restoringKey) != nil, "killed mid-restore, the store is marked as restoring")
        }
        try network.start(joiner)
        #expect(network.wait(seconds: 20) { network.output(joiner).contains("a restore by state sync was stopped before it finished") },
                "\(network.output(joiner).suffix(3_000))")

        // The honest snapshot is restored, the rest comes by block sync, and the node follows.
        #expect(network.wait(seconds: 60) { network.output(joiner).contains("state restored by state sync") }, "\(network.output(joiner).suffix(3_000))")
        let restoredLine = try #require(network.output(joiner).split(separator: "\n").first { $0.contains("state restored by state sync") })
        let restoredAt = UInt64(logField("height", in: restoredLine) ?? "") ?? 0
        #expect(restoredAt >= 200 && restoredAt % 100 == 0, "\(restoredLine)")
        #expect(network.waitHeight(network.height(0) + 5, nodes: [joiner], seconds: 60), "\(network.describe())")
        // Killed and restarted, it opens its restored store and carries on (no second restore).
        network.stop(joiner, signal: SIGKILL)
        try network.start(joiner)
        #expect(network.waitHeight(network.height(0) + 5, nodes: [joiner], seconds: 60), "\(network.describe())")
        #expect(network.output(joiner).components(separatedBy: "state restored by state sync").count == 2, "restored once")
        network.stopAll()
        let blocks = BlockStore(store: try RocksDBStore(path: network.home(joiner) + "/data/store"))
        #expect(try blocks.block(at: restoredAt) == nil && blocks.block(at: restoredAt + 1) != nil,
                "the joiner holds no block below the snapshot: it never replayed from genesis")
        // Its blocks are the validators' blocks (where both still keep them).
        let validator = BlockStore(store: try RocksDBStore(path: network.home(0) + "/data/store"))
        let top = min(try blocks.height(), try validator.height())
        var compared = 0
        let lowest = max(restoredAt + 1, try validator.base())
        for height in lowest..<max(lowest, top + 1) {
            #expect(try blocks.block(at: height)?.id == validator.block(at: height)?.id, "height \(height)")
            compared += 1
        }
        #expect(compared >= 5)
    }
}

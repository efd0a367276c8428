import Foundation
import KCCrypto
import KCNetwork
import KCNode
import KCTypes
import Testing

/// The signature stage in a running node: a peer that sends more transactions than its share
/// of the stage has some batches dropped (counted in the metrics), is not banned for it, and
/// the chain goes on.
struct SignatureStageNetworkTests {
    @Test func batchesOverAPeersShareAreDroppedAndCounted() throws {
        let (network, peer) = try TestNetwork.loneValidatorWithPeer(commitMilliseconds: 20, height: 2, seed: 91)
        defer { peer.stop(); network.stopAll(); network.remove() }
        // Three whole messages of validly signed transfers, back to back: the first fills this
        // peer's share (10,000) while it is being checked, so the next ones are dropped.
        let user = DevnetKeys.user(index: 0)
        let batches = (0..<3).map { part in
            (0..<WireMessage.maxTransactionsPerMessage).map { index in
                TransactionBody(chainID: network.genesis.chainID, sender: user.publicKey,
                                nonce: UInt64(part * WireMessage.maxTransactionsPerMessage + index),
                                fee: network.genesis.parameters.fees.minFee,
                                call: .transfer(to: DevnetKeys.user(index: 1).publicKey, amount: Amount(units: 1))).signed(with: user)
            }
        }
        for batch in batches { peer.host.broadcast(.transactions(batch)) }
        func refused() -> Int? {
            let text = EndToEndTests.get(network.rpc(0) + "/metrics").text
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("membria_signature_stage_refused_batches_total ") }) else { return nil }
            return Int(line.split(separator: " ").last ?? "")
        }
        #expect(refused() != nil, "the metric is exported")
        guard Cores.available() > 1 else { return }  // one core: no stage, the node's thread checks them
        #expect(network.wait(seconds: 15) { (refused() ?? 0) >= 1 }, "refused batches: \(refused() ?? -1)")
        // Dropping is not misbehaviour: the peer is still connected, and the chain goes on.
        let height = network.height(0)
        #expect(network.waitHeight(height + 5, seconds: 20))
        _ = peer.host.events!.drain(waitingMilliseconds: 10)
        #expect(peer.host.connectedPeers.count == 1)
    }
}

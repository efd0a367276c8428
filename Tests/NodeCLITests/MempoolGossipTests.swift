import Foundation
import KCCodec
import KCCrypto
import KCNetwork
import KCNode
import KCTypes
import Testing

/// A transaction that waits in a node's mempool for an earlier nonce of its sender stays on
/// that node (one that never can go into a block costs its peers nothing) and is passed on
/// once it joins the line, after the one it waited for.
struct MempoolGossipTests {
    @Test func aWaitingTransactionIsPassedOnOnlyOnceItJoinsTheLine() throws {
        let (network, peer) = try TestNetwork.loneValidatorWithPeer(commitMilliseconds: 20, height: 2, seed: 92)
        defer { peer.stop(); network.stopAll(); network.remove() }
        let user = DevnetKeys.user(index: 0)
        let transfers = (0..<2).map { nonce in
            TransactionBody(chainID: network.genesis.chainID, sender: user.publicKey, nonce: UInt64(nonce),
                            fee: network.genesis.parameters.fees.minFee,
                            call: .transfer(to: DevnetKeys.user(index: 1).publicKey, amount: .acti(1))).signed(with: user)
        }
        func submit(_ transaction: SignedTransaction) -> (status: Int, text: String) {
            EndToEndTests.post(network.rpc(0) + "/txs", "{\"tx\":\"\(Hex.encode(transaction.canonicalBytes))\"}")
        }
        /// The transactions the node passed to the peer within `seconds` (until `enough` of them).
        func relayed(seconds: Double, enough: Int = .max) -> [Hash256] {
            var hashes: [Hash256] = []
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline && hashes.count < enough {
                for event in peer.host.events!.drain(waitingMilliseconds: 20) {
                    if case .message(.transactions(let list), _) = event { hashes += list.map(\.hash) }
                }
            }
            return hashes
        }
        let later = submit(transfers[1])
        #expect(later.status == 202 && later.text.contains("\"queued\""), "\(later.status) \(later.text)")
        #expect(relayed(seconds: 1.5).isEmpty, "a waiting transaction is not passed on")
        let earlier = submit(transfers[0])
        #expect(earlier.status == 202 && earlier.text.contains("\"pending\""), "\(earlier.status) \(earlier.text)")
        #expect(relayed(seconds: 10, enough: 2) == transfers.map(\.hash), "both passed on, in nonce order")
    }
}

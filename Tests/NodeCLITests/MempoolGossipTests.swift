import Foundation
import KCCodec
import KCCrypto
import KCNetwork
import KCNode
import KCTypes
import Testing

/// A transaction that waits in a node's mempool for an earlier nonce of its sender stays on
/// that node (one that never can go into a block costs its peers nothing) and is passed on
/// once it joins the line, after the one it waited for, to every peer that lacks it.
struct MempoolGossipTests {
    /// A validator with a raw peer, two transfers of one sender (nonces 0 and 1), and how to
    /// submit one through the RPC and to read what the node passes to the peer.
    struct Setup {
        let network: TestNetwork
        let peer: TestPeer
        let transfers: [SignedTransaction]

        init(seed: UInt8) throws {
            let pair = try TestNetwork.loneValidatorWithPeer(commitMilliseconds: 20, height: 2, seed: seed)
            network = pair.network
            peer = pair.peer
            let user = DevnetKeys.user(index: 0)
            let genesis = network.genesis
            transfers = (0..<2).map { nonce in
                TransactionBody(chainID: genesis.chainID, sender: user.publicKey, nonce: UInt64(nonce), fee: genesis.parameters.fees.minFee,
                                call: .transfer(to: DevnetKeys.user(index: 1).publicKey, amount: .acti(1))).signed(with: user)
            }
        }

        func stop() { peer.stop(); network.stopAll(); network.remove() }

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
    }

    @Test func aWaitingTransactionIsPassedOnOnlyOnceItJoinsTheLine() throws {
        let setup = try Setup(seed: 92)
        defer { setup.stop() }
        let later = setup.submit(setup.transfers[1])
        #expect(later.status == 202 && later.text.contains("\"queued\""), "\(later.status) \(later.text)")
        #expect(setup.relayed(seconds: 1.5).isEmpty, "a waiting transaction is not passed on")
        let earlier = setup.submit(setup.transfers[0])
        #expect(earlier.status == 202 && earlier.text.contains("\"pending\""), "\(earlier.status) \(earlier.text)")
        #expect(setup.relayed(seconds: 10, enough: 2) == setup.transfers.map(\.hash), "both passed on, in nonce order")
    }

    /// The peer sends the nonce a client's transaction waits for. The peer's own transaction is
    /// not sent back to it, but the waiting one it let in came from the client: the peer does
    /// not have it and must get it (it was passed only to the source's targets before, which
    /// leave the source out, so here no one).
    @Test func aWaitingTransactionLetInByAPeerIsPassedToThatPeerToo() throws {
        let setup = try Setup(seed: 93)
        defer { setup.stop() }
        let later = setup.submit(setup.transfers[1])
        #expect(later.status == 202 && later.text.contains("\"queued\""), "\(later.status) \(later.text)")
        setup.peer.host.send(.transactions([setup.transfers[0]]), to: setup.network.nodeID(0))
        #expect(setup.relayed(seconds: 10, enough: 1) == [setup.transfers[1].hash], "the waiting one, and only it, comes to the peer")
        #expect(setup.relayed(seconds: 1).isEmpty, "the peer's own transaction is not sent back")
    }
}

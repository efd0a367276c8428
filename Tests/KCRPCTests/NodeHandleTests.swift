import Foundation
import KCCrypto
import KCNode
import KCTypes
import Synchronization
import Testing

/// `NodeHandle.send`: submissions made without waiting reach the mempool in the order they
/// were sent, each answered once on the node's thread (the attester relies on it).
@Suite(.serialized) struct NodeHandleTests {
    @Test func sendsWithoutWaitingAreAdmittedInTheOrderSent() throws {
        let node = try LiveNode()
        defer { node.stop() }
        let user = DevnetKeys.user(index: 0)
        let count = 300
        // Consecutive nonces, sent back to back: the mempool refuses a nonce ahead of the next
        // one it expects, so any reordering shows as a refusal.
        let sent = (0..<count).map { nonce in
            TransactionBody(chainID: node.genesis.chainID, sender: user.publicKey, nonce: UInt64(nonce),
                            fee: node.genesis.parameters.fees.minFee,
                            call: .transfer(to: LiveNode.validatorAccount.publicKey, amount: .acti(1))).signed(with: user)
        }
        let answers = Mutex<[Result<Hash256, MempoolRejection>]>([])
        for transaction in sent {
            node.driver.handle.send(transaction.canonicalBytes) { result in answers.withLock { $0.append(result) } }
        }
        for _ in 0..<1_000 where answers.withLock({ $0.count }) < count { usleep(10_000) }
        let received = answers.withLock { $0 }
        #expect(received.count == count, "every submission answered once")
        let admitted = received.compactMap { try? $0.get() }
        #expect(admitted == sent.map(\.hash), "admitted in the order sent: \(received.first { (try? $0.get()) == nil }.map { "\($0)" } ?? "")")
    }
}

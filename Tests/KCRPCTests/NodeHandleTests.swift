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
        // Consecutive nonces, sent back to back: a nonce ahead of the next one the mempool
        // expects waits (queued), so any reordering shows as a queued answer or one out of order.
        let sent = (0..<count).map { nonce in
            TransactionBody(chainID: node.genesis.chainID, sender: user.publicKey, nonce: UInt64(nonce),
                            fee: node.genesis.parameters.fees.minFee,
                            call: .transfer(to: LiveNode.validatorAccount.publicKey, amount: .acti(1))).signed(with: user)
        }
        let answers = Mutex<[Result<Admission, MempoolRejection>]>([])
        for transaction in sent {
            node.driver.handle.send(transaction.canonicalBytes) { result in answers.withLock { $0.append(result) } }
        }
        for _ in 0..<1_000 where answers.withLock({ $0.count }) < count { usleep(10_000) }
        let received = answers.withLock { $0 }
        #expect(received.count == count, "every submission answered once")
        let admitted = received.compactMap { try? $0.get() }
        #expect(admitted.map(\.hash) == sent.map(\.hash) && admitted.allSatisfy { !$0.queued },
                "admitted in the order sent, each in line: \(received.first { (try? $0.get())?.queued != false }.map { "\($0)" } ?? "")")
    }

    /// Decoding and the signature check run on the sender's thread; what they refuse is still
    /// answered in turn among the others, in the mempool's words.
    @Test func refusalsFoundBeforeTheNodeAreAnsweredInTurn() throws {
        let node = try LiveNode()
        defer { node.stop() }
        let user = DevnetKeys.user(index: 1)
        func transfer(_ nonce: UInt64) -> SignedTransaction {
            TransactionBody(chainID: node.genesis.chainID, sender: user.publicKey, nonce: nonce, fee: node.genesis.parameters.fees.minFee,
                            call: .transfer(to: LiveNode.validatorAccount.publicKey, amount: .acti(1))).signed(with: user)
        }
        var forged = transfer(1).canonicalBytes
        forged[forged.count - 1] ^= 0x01  // the signature's last byte
        let oversized = [UInt8](repeating: 0, count: Int(node.genesis.parameters.block.maxTransactionBytes) + 1)
        let answers = Mutex<[Result<Admission, MempoolRejection>]>([])
        let record: @Sendable (Result<Admission, MempoolRejection>) -> Void = { result in answers.withLock { $0.append(result) } }
        node.driver.handle.send(transfer(0).canonicalBytes, reply: record)
        node.driver.handle.send([1, 2, 3], reply: record)
        node.driver.handle.send(forged, reply: record)
        node.driver.handle.send(oversized, reply: record)
        node.driver.handle.send(transfer(1), reply: record)
        node.driver.handle.send(transfer(1), reply: record)
        for _ in 0..<1_000 where answers.withLock({ $0.count }) < 6 { usleep(10_000) }
        let received = answers.withLock { $0 }
        #expect(received.count == 6)
        guard received.count == 6 else { return }
        #expect(try received[0].get().ready.map(\.hash) == [transfer(0).hash])
        guard case .failure(.malformed) = received[1] else { Issue.record("garbage: \(received[1])"); return }
        guard case .failure(.invalid) = received[2] else { Issue.record("forged signature: \(received[2])"); return }
        guard case .failure(.malformed(let reason)) = received[3], reason.contains("exceed the limit") else {
            Issue.record("oversized: \(received[3])"); return
        }
        #expect(try received[4].get().ready.map(\.hash) == [transfer(1).hash], "the forged copy of nonce 1 took nothing")
        #expect(received[5] == .failure(.duplicate))
    }
}

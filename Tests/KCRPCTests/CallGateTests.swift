import Foundation
import KCCodec
import KCNode
import KCRuntime
import KCTypes
import Synchronization
import Testing
@testable import KCRPC

/// Dry runs on the node's thread are bounded over all clients together.
struct CallGateTests {
    @Test func slotsAreTakenUpToTheLimitAndGivenBack() {
        let gate = CallGate(limit: 2)
        #expect(gate.enter() && gate.enter())
        #expect(!gate.enter(), "a third caller waits for no slot: it is refused")
        gate.leave()
        #expect(gate.enter())
        gate.leave(); gate.leave()
        #expect(gate.current == 0)
    }

    @Test func manyThreadsNeverHoldMoreThanTheLimit() async {
        final class Peak: Sendable { let value = Mutex(0) }
        let gate = CallGate(limit: 3)
        let peak = Peak()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<64 {
                group.addTask {
                    for _ in 0..<200 where gate.enter() {
                        peak.value.withLock { $0 = max($0, gate.current) }
                        gate.leave()
                    }
                }
            }
        }
        #expect(peak.value.withLock { $0 } <= 3)
        #expect(gate.current == 0)
    }

    /// Through the API: with no slot (`rpc.max_concurrent_checks = 0`) every check is
    /// answered 503 `busy`, naming the limit, and nothing reaches the node's thread.
    @Test func aFullGateAnswers503Busy() throws {
        let node = try LiveNode(maxConcurrentChecks: 0)
        defer { node.stop() }
        #expect(node.waitHeight(1))
        let body = TransactionBody(chainID: node.genesis.chainID, sender: LiveNode.validatorAccount.publicKey, nonce: 0,
                                   fee: node.genesis.parameters.fees.minFee, call: .bond(amount: .acti(10_000)))
        let answer = node.request("POST", "/txs/check", body: "{\"body\":\"\(Hex.encode(body.canonicalBytes))\"}")
        #expect(answer.status == 503 && answer.json?["code"]?.stringValue == "busy", "\(answer.text)")
        #expect(answer.json?["message"]?.stringValue?.contains("0 checks are already running") == true)
    }
}

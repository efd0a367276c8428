import Foundation
import KCAttester
import KCCodec
import KCCrypto
import KCNode
import KCRPC
import KCRuntime
import KCTestSupport
import KCTypes
import Testing

/// A node with `storage.indexes = false` (ADR 0027): the queries that read the indexes answer
/// 501 `index_disabled` naming the setting, `wait=true` is refused before anything is sent,
/// and the pending list, the blocks and the state still answer; its attester still votes.
struct QueryIndexRPCTests {
    @Test func aNodeWithoutQueryIndexesSaysSoAndStillAttests() throws {
        let node = try LiveNode(attester: Attester.Settings(mode: .format, gateway: "http://127.0.0.1:9",
                                                            timeoutMilliseconds: 500, maxPayloadBytes: 1 << 20),
                                queryIndexes: false)
        defer { node.stop() }
        #expect(node.waitHeight(1))
        let author = DevnetKeys.user(index: 0)
        func disabled(_ answer: LiveNode.Answer, _ what: String) {
            #expect(answer.status == 501 && answer.json?["code"]?.stringValue == "index_disabled", "\(what): \(answer.status) \(answer.text)")
            #expect(answer.json?["message"]?.stringValue?.contains("storage.indexes = false") == true, "\(what): \(answer.text)")
        }

        // Waiting for a commit reads the transaction index: refused, and nothing was sent.
        disabled(node.send(.bond(amount: node.genesis.parameters.staking.minGatewayStake), from: author), "wait=true")
        let heightAfterRefusal = node.height
        #expect(node.waitHeight(heightAfterRefusal + 2))
        #expect(node.get("/accounts/\(author.publicKey.hex)").json?["nonce"]?.numberText == "0", "a refused wait sends nothing")

        // The same transaction without waiting (nonce 0 again), then a gateway and an event.
        let resend = TransactionBody(chainID: node.genesis.chainID, sender: author.publicKey, nonce: 0, fee: node.genesis.parameters.fees.minFee,
                                     call: .bond(amount: node.genesis.parameters.staking.minGatewayStake)).signed(with: author)
        #expect(node.request("POST", "/txs", body: "{\"tx\":\"\(Hex.encode(resend.canonicalBytes))\"}").status == 202)
        for (nonce, call) in [(UInt64(1), Call.registerGateway),
                              (2, .proposeEvent(parents: [], arTxID: ContentServer.arTxID(for: [7]), contentHash: SHA256.hash([7]), kind: "test"))] {
            let transaction = TransactionBody(chainID: node.genesis.chainID, sender: author.publicKey, nonce: nonce,
                                              fee: node.genesis.parameters.fees.minFee, call: call).signed(with: author)
            let answer = node.request("POST", "/txs", body: "{\"tx\":\"\(Hex.encode(transaction.canonicalBytes))\"}")
            #expect(answer.status == 202, "\(answer.text)")
        }
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline && node.get("/accounts/\(author.publicKey.hex)").json?["nonce"]?.numberText != "3" { usleep(50_000) }
        #expect(node.get("/accounts/\(author.publicKey.hex)").json?["nonce"]?.numberText == "3")

        // The event's id, from the blocks (they are not an index).
        var eventID: String? = nil
        for height in 1...node.height where eventID == nil {
            let changes = node.get("/blocks/\(height)").json?["event_changes"]?.arrayValue ?? []
            eventID = changes.first { $0["from"] == .null }?["event_id"]?.stringValue
        }
        let id = try #require(eventID)
        // The attester finds it through the pending list and the validator's vote accepts it.
        func status() -> String? { node.get("/events/\(id)").json?["status"]?.stringValue }
        while Date() < deadline && status() == "pending" { usleep(50_000) }
        #expect(status() == "accepted" || status() == "finalized", "\(status() ?? "none")")
        #expect(node.get("/events?status=pending").status == 200)

        disabled(node.get("/txs/\(resend.hash.hex)"), "GET /txs")
        disabled(node.get("/events?status=accepted"), "status list")
        disabled(node.get("/events?status=pending&author=\(author.publicKey.hex)"), "author list")
        disabled(node.get("/events?kind=test"), "kind list")
        disabled(node.get("/events/\(id)/children"), "children")
        disabled(node.get("/events/\(id)/descendants"), "descendants")
        #expect(node.get("/events/\(id)/ancestors").status == 200, "parents are in the record")
    }
}

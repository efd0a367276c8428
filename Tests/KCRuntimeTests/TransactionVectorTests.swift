import Foundation
import KCCodec
import KCCrypto
import KCTypes
import Testing

/// The transaction vector in specs/runtime.md: a client library that reproduces these bytes,
/// signature and hash encodes and signs exactly as the node does.
struct TransactionVectorTests {
    static func specValue(_ name: String) throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("specs/runtime.md"), encoding: .utf8)
        let start = try #require(text.range(of: "```transaction-vector\n"))
        let block = text[start.upperBound...].prefix { $0 != "`" }
        for line in block.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2 && parts[0] == name { return parts[1] }
        }
        throw VectorError.missing(name)
    }

    enum VectorError: Error { case missing(String) }

    static func vector() -> SignedTransaction {
        let sender = SigningKey(seed: Blake2b.hash256(Array("membria/vector/sender".utf8)))
        let recipient = SigningKey(seed: Blake2b.hash256(Array("membria/vector/recipient".utf8))).publicKey
        return TransactionBody(chainID: "membria-devnet-1", sender: sender.publicKey, nonce: 7,
                               fee: Amount(units: 1_000_000_000_000), call: .transfer(to: recipient, amount: .acti(25)))
            .signed(with: sender)
    }

    @Test func specVectorMatchesTheCode() throws {
        let transaction = Self.vector()
        #expect(try Self.specValue("sender_seed") == SigningKey(seed: Blake2b.hash256(Array("membria/vector/sender".utf8))).seed.hex)
        #expect(try Self.specValue("body") == Hex.encode(transaction.body.canonicalBytes))
        #expect(try Self.specValue("signature") == transaction.signature.hex)
        #expect(try Self.specValue("transaction") == Hex.encode(transaction.canonicalBytes))
        #expect(try Self.specValue("hash") == transaction.hash.hex)
        let decoded = try SignedTransaction.decode(exactly: try #require(Hex.decode(try Self.specValue("transaction"))))
        #expect(decoded == transaction)
        #expect(throws: Never.self) { try decoded.verified(chainID: "membria-devnet-1") }
    }
}

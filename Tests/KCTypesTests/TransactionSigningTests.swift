import KCCrypto
import KCTypes
import Testing

struct TransactionSigningTests {
    static let key = SigningKey(seed: Blake2b.hash256(Array("signing-test".utf8)))

    static func body(nonce: UInt64) -> TransactionBody {
        TransactionBody(chainID: "membria-test-1", sender: key.publicKey, nonce: nonce, fee: .acti(1),
                        call: .transfer(to: key.publicKey, amount: .acti(2)))
    }

    /// Signing through a cache gives the same signature as plain signing, and checking the
    /// transaction against that cache then runs no Ed25519 verification; another cache, or a
    /// changed transaction, still verifies for real.
    @Test func signingThroughACacheRemembersTheSignature() throws {
        let cache = SignatureCache()
        let body = Self.body(nonce: 3)
        let remembered = body.signed(with: Self.key, remembering: cache)
        #expect(remembered == body.signed(with: Self.key))
        let verified = try remembered.verified(chainID: "membria-test-1", cache: cache)
        #expect(verified.hash == remembered.hash)
        #expect(cache.verifications == 0)

        let fresh = SignatureCache()
        _ = try remembered.verified(chainID: "membria-test-1", cache: fresh)
        #expect(fresh.verifications == 1)

        let tampered = SignedTransaction(body: Self.body(nonce: 4), signature: remembered.signature)
        #expect(throws: SignedTransaction.VerificationError.badSignature) {
            try tampered.verified(chainID: "membria-test-1", cache: cache)
        }
        #expect(cache.verifications == 1)
    }
}

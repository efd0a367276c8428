import KCConsensus
import KCCrypto
import KCNode
import KCStorage
import KCTypes
import Testing

/// The look-back of a validator key new to this machine, played as the operator's mistake
/// happens: the same key signing on another machine (its own signer, its own store).
struct LookBackTests {
    let peer = SigningKey(seed: Blake2b.hash256(Array("look-back-peer".utf8)))

    /// A certificate for `height` holding the peer's precommit and, if given, the key's.
    func certificate(_ height: UInt64, with keyVote: SignedVote?) throws -> CommitCertificate {
        let block = Blake2b.hash256([UInt8(truncatingIfNeeded: height)])
        let peerVote = Vote(kind: .precommit, height: height, round: 0, blockID: block, timestampMilliseconds: 7,
                            validator: peer.publicKey)
        let peerSigned = try PersistentSigner(key: peer, chainID: chain, store: MemoryStore()).signVote(peerVote)
        let votes = ([peerSigned] + (keyVote.map { [$0] } ?? [])).sorted { $0.vote.validator < $1.vote.validator }
        return CommitCertificate(height: height, round: 0, blockID: block, precommits: votes)
    }

    func precommit(_ signer: PersistentSigner, _ height: UInt64, time: UInt64) throws -> SignedVote {
        try signer.signVote(Vote(kind: .precommit, height: height, round: 0,
                                 blockID: Blake2b.hash256([UInt8(truncatingIfNeeded: height)]),
                                 timestampMilliseconds: time, validator: signerKey.publicKey))
    }

    /// Another machine's precommit forbids signing for N heights after it, not longer.
    @Test func anotherMachinesPrecommitRefusesForTheWindow() throws {
        let elsewhere = try PersistentSigner(key: signerKey, chainID: chain, store: MemoryStore())
        var lookBack = LookBack(heights: 10, watching: true)
        try lookBack.committed(certificate(39, with: nil), key: signerKey.publicKey)
        #expect(lookBack.refusal(tip: 39) == nil, "a commit without the key")
        try lookBack.committed(certificate(40, with: precommit(elsewhere, 40, time: 5)), key: signerKey.publicKey)
        try lookBack.committed(certificate(41, with: nil), key: signerKey.publicKey)
        #expect(lookBack.foreignAt == 40)
        #expect(lookBack.refusal(tip: 41) == 40)
        #expect(lookBack.refusal(tip: 49) == 40, "heights 40...49 are the last ten below 50")
        #expect(lookBack.refusal(tip: 50) == nil, "ten heights passed without it")
        #expect(lookBack.watching)
    }

    /// The starved start-up hold: this machine signed first, at a height long decided (its peers
    /// were silent), then sync brought the blocks the other machine signed. Signing once did not
    /// end the watch: the refusal comes at the tip.
    @Test func signingAtAStaleHeightDoesNotEndTheWatch() throws {
        let here = try PersistentSigner(key: signerKey, chainID: chain, store: MemoryStore())
        let elsewhere = try PersistentSigner(key: signerKey, chainID: chain, store: MemoryStore())
        var lookBack = LookBack(heights: 100, watching: true)
        lookBack.signed(try precommit(here, 1, time: 900))
        for height in 1...42 as ClosedRange<UInt64> {
            // The same block at height 1, signed at another time: another signature.
            try lookBack.committed(certificate(height, with: precommit(elsewhere, height, time: height)), key: signerKey.publicKey)
        }
        #expect(lookBack.watching)
        #expect(lookBack.refusal(tip: 42) == 42)
    }

    /// A certificate carrying the precommit this machine signed ends the watch: the key's
    /// signatures in the chain are its own from there, and the signer guards each step.
    @Test func ownPrecommitInACertificateEndsTheWatch() throws {
        let here = try PersistentSigner(key: signerKey, chainID: chain, store: MemoryStore())
        var lookBack = LookBack(heights: 100, watching: true)
        lookBack.signed(try here.signVote(Vote(kind: .prevote, height: 43, round: 0, blockID: nil, timestampMilliseconds: 3,
                                               validator: signerKey.publicKey)))
        let mine = try precommit(here, 43, time: 4)
        lookBack.signed(mine)
        try lookBack.committed(certificate(43, with: mine), key: signerKey.publicKey)
        #expect(!lookBack.watching)
        #expect(lookBack.refusal(tip: 43) == nil)
        // Off: nothing is watched, nothing refused.
        var off = LookBack(heights: 0, watching: true)
        let elsewhere = try PersistentSigner(key: signerKey, chainID: chain, store: MemoryStore())
        try off.committed(certificate(5, with: precommit(elsewhere, 5, time: 1)), key: signerKey.publicKey)
        #expect(!off.watching && off.refusal(tip: 5) == nil)
    }
}

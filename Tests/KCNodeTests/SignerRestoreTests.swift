import KCCodec
import KCConsensus
import KCCrypto
import KCNode
import KCStorage
import KCTypes
import Testing

/// A store that models a power cut at its worst: unsynced writes never reach the disk.
final class SyncedOnlyStore: KeyValueStore, @unchecked Sendable {
    let inner = MemoryStore()
    private(set) var syncFlags: [Bool] = []

    func get(_ key: [UInt8]) throws(StoreError) -> [UInt8]? { try inner.get(key) }
    func scan(_ range: KeyRange, limit: Int, reverse: Bool) throws(StoreError) -> [KeyValuePair] {
        try inner.scan(range, limit: limit, reverse: reverse)
    }
    func write(_ batch: WriteBatch, sync: Bool) throws(StoreError) {
        syncFlags.append(sync)
        if sync { try inner.write(batch, sync: true) }
    }
    func snapshot() -> any KeyValueSnapshot { inner.snapshot() }
}

/// The node's arrangement: the signer writes unsynced, the consensus WAL holds every own
/// signature durably, and a restarted signer takes the latest one back from the WAL.
struct SignerRestoreTests {
    static func proposal(height: UInt64, round: UInt32) -> Proposal<Block> {
        let header = BlockHeader(chainID: chain, height: height, timeMilliseconds: height, previousBlockID: .zero,
                                 lastCommitHash: .zero, transactionsHash: .zero, evidenceHash: .zero, stateRoot: .zero,
                                 validatorsHash: .zero, proposer: signerKey.publicKey)
        return Proposal(height: height, round: round, value: Block(header: header, transactions: [], evidence: [], lastCommit: nil),
                        validRound: nil, proposer: signerKey.publicKey)
    }

    @Test func unsyncedSignerWritesOnlyWhenRestoring() throws {
        let store = SyncedOnlyStore()
        let signer = try PersistentSigner(key: signerKey, chainID: chain, store: store, syncWrites: false)
        let signed = try signer.signVote(vote(.prevote, 3, 0, 1))
        #expect(store.syncFlags == [false])
        let restarted = try PersistentSigner(key: signerKey, chainID: chain, store: store, syncWrites: false)
        #expect(restarted.lastSigned == nil, "the unsynced record was lost in the power cut")
        #expect(try restarted.restore(LastSigned.latest(signedBy: signerKey.publicKey, in: [.vote(signed)])!))
        #expect(store.syncFlags == [false, true])
        #expect(try PersistentSigner(key: signerKey, chainID: chain, store: store).lastSigned?.height == 3)
    }

    @Test func aRestoredSignerRefusesWhatTheLostRecordWouldHaveRefused() throws {
        let store = SyncedOnlyStore()
        let signer = try PersistentSigner(key: signerKey, chainID: chain, store: store, syncWrites: false)
        let precommit = try signer.signVote(vote(.precommit, 7, 2, 1))
        let wal: [WALRecord] = [.height(7), .vote(precommit)]

        // Without the WAL the restarted signer would sign a conflicting precommit: the hazard.
        let careless = try PersistentSigner(key: signerKey, chainID: chain, store: SyncedOnlyStore(), syncWrites: false)
        #expect((try? careless.signVote(vote(.precommit, 7, 2, 2))) != nil)

        let restarted = try PersistentSigner(key: signerKey, chainID: chain, store: store, syncWrites: false)
        try restarted.restore(LastSigned.latest(signedBy: signerKey.publicKey, in: wal)!)
        #expect(throws: SignerError.conflict(at: "height 7 round 2 step 2")) { try restarted.signVote(vote(.precommit, 7, 2, 2)) }
        #expect(throws: SignerError.self) { try restarted.signVote(vote(.prevote, 7, 2, 1)) }
        // The same vote with a later clock gets the signature that already left.
        #expect(try restarted.signVote(vote(.precommit, 7, 2, 1, time: 50)) == precommit)
    }

    @Test func restoreNeverMovesTheSignerBack() throws {
        let signer = try PersistentSigner(key: signerKey, chainID: chain, store: MemoryStore(), syncWrites: false)
        let early = try signer.signVote(vote(.prevote, 4, 0, 1))
        _ = try signer.signVote(vote(.precommit, 4, 1, 1))
        #expect(try signer.restore(LastSigned.latest(signedBy: signerKey.publicKey, in: [.vote(early)])!) == false)
        #expect(signer.lastSigned?.round == 1)
    }

    @Test func latestPicksTheHighestStepOfThisKeyOnly() throws {
        let signer = try PersistentSigner(key: signerKey, chainID: chain, store: MemoryStore())
        let other = SigningKey(seed: Blake2b.hash256(Array("someone else".utf8)))
        let proposal = Self.proposal(height: 9, round: 1)
        let proposalSignature = try signer.signProposal(height: 9, round: 1, bytes: ProposalSigning.bytes(proposal))
        let prevote = try signer.signVote(vote(.prevote, 9, 1, 1))
        let theirs = Vote(kind: .precommit, height: 9, round: 5, blockID: nil, timestampMilliseconds: 1, validator: other.publicKey)
        let theirVote = SignedVote(vote: theirs, signature: other.sign(domain: .vote, chainID: chain, message: theirs.canonicalBytes))

        #expect(LastSigned.latest(signedBy: signerKey.publicKey, in: [.height(9), .vote(theirVote)]) == nil)
        let onlyProposal = LastSigned.latest(signedBy: signerKey.publicKey,
                                             in: [.proposal(SignedProposal(proposal: proposal, signature: proposalSignature))])
        #expect(onlyProposal == signer.lastSigned.map { _ in
            LastSigned(height: 9, round: 1, step: 0, signedBytes: ProposalSigning.bytes(proposal), signature: proposalSignature)
        })
        // Order in the log does not matter: the prevote (step 1) is later than the proposal.
        let latest = LastSigned.latest(signedBy: signerKey.publicKey,
                                       in: [.vote(prevote), .vote(theirVote), .proposal(SignedProposal(proposal: proposal, signature: proposalSignature))])
        #expect(latest == signer.lastSigned)
    }
}

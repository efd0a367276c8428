import KCCodec
import KCConsensus
import KCCrypto
import KCNode
import KCRuntime
import KCTypes
import Testing

/// The evidence pool and the block builder take exactly the evidence the runtime slashes:
/// an outsider's double sign (case 1 of the hardening issue: one such message made every
/// proposer build a block its own runtime refused, and the node exit) is refused with a ban
/// reason, and a builder handed it anyway leaves it out.
struct EvidencePoolTests {
    static let runtime = MempoolTests.runtime
    static let validator = BlockFactoryTests.validator
    static let chainID = runtime.chainID

    static func doubleSign(_ key: SigningKey, height: UInt64, round: UInt32 = 0) -> DoubleSignEvidence {
        let a = Vote(kind: .precommit, height: height, round: round, blockID: Blake2b.hash256([1]), timestampMilliseconds: 5,
                     validator: key.publicKey)
        let b = Vote(kind: .precommit, height: height, round: round, blockID: nil, timestampMilliseconds: 5, validator: key.publicKey)
        return DoubleSignEvidence(a.signed(with: key, chainID: chainID), b.signed(with: key, chainID: chainID))!
    }

    /// Commits `count` empty blocks, 1 s apart.
    static func advance(_ state: inout ChainState, blocks count: Int) throws {
        for _ in 0..<count {
            let context = BlockContext(height: state.global.height + 1, timeMilliseconds: state.global.timeMilliseconds + 1_000)
            state.commit(try runtime.execute([], context: context, on: state))
        }
    }

    @Test func anOutsidersEvidenceIsInvalidAndNeverPooled() throws {
        var state = Self.runtime.genesisState()
        try Self.advance(&state, blocks: 2)
        var pool = EvidencePool()
        let stranger = Self.doubleSign(SigningKey(seed: Blake2b.hash256(Array("stranger".utf8))), height: 2)
        guard case .invalid(let reason) = pool.add(stranger, runtime: Self.runtime, state: state) else {
            Issue.record("an outsider's evidence was not refused as invalid")
            return
        }
        #expect(reason.contains("was not a validator at height 2"))
        #expect(pool.count == 0)
        // Not conflicting (one vote twice cannot even form a pair), a forged half: invalid too.
        let real = Self.doubleSign(Self.validator, height: 2)
        let forgedSecond = SignedVote(vote: real.second.vote, signature: real.first.signature)
        if let forged = DoubleSignEvidence(real.first, forgedSecond) {
            guard case .invalid = pool.add(forged, runtime: Self.runtime, state: state) else {
                Issue.record("evidence with a forged signature was not invalid")
                return
            }
        }
        #expect(pool.add(real, runtime: Self.runtime, state: state) == .added)
        #expect(pool.add(Self.doubleSign(Self.validator, height: 1), runtime: Self.runtime, state: state) == .known,
                "one piece per validator: the first tombstones it")
    }

    @Test func theBuilderLeavesOutWhatTheRuntimeWouldRefuse() throws {
        var state = Self.runtime.genesisState()
        try Self.advance(&state, blocks: 2)
        let factory = BlockFactory(runtime: Self.runtime, signatures: SignatureCache())
        let stranger = Self.doubleSign(SigningKey(seed: Blake2b.hash256(Array("stranger".utf8))), height: 1)
        let future = Self.doubleSign(Self.validator, height: 3)
        let real = Self.doubleSign(Self.validator, height: 2)
        let built = try #require(factory.build(on: BlockFactoryTests.tip(state), proposer: Self.validator.publicKey, candidates: [],
                                               maxTransactions: 10, evidence: [stranger, future, real, real]),
                                 "the builder must always produce a block")
        #expect(built.block.evidence == [real])
        #expect(built.executed.outcome.slashes.count == 1)
        // Handed only evidence its runtime refuses, it still builds (an empty block).
        let empty = try #require(factory.build(on: BlockFactoryTests.tip(state), proposer: Self.validator.publicKey,
                                               candidates: [], maxTransactions: 10, evidence: [stranger]))
        #expect(empty.block.evidence.isEmpty)
    }

    @Test func evidenceAboutTheHeightInProgressWaitsForItsCommit() throws {
        var state = Self.runtime.genesisState()
        try Self.advance(&state, blocks: 1)
        var pool = EvidencePool()
        // The vote keeper reports equivocations at the height being decided (2).
        let current = Self.doubleSign(Self.validator, height: 2)
        #expect(pool.add(current, runtime: Self.runtime, state: state) == .added)
        let stranger = Self.doubleSign(SigningKey(seed: Blake2b.hash256(Array("stranger".utf8))), height: 2)
        guard case .invalid = pool.add(stranger, runtime: Self.runtime, state: state) else {
            Issue.record("an outsider's evidence about the height in progress was not invalid")
            return
        }
        var other = EvidencePool()
        guard case .ignored = other.add(Self.doubleSign(Self.validator, height: 3), runtime: Self.runtime, state: state) else {
            Issue.record("evidence about a height two ahead was not ignored")
            return
        }
        try Self.advance(&state, blocks: 1)
        pool.update(after: state, runtime: Self.runtime)
        #expect(pool.items == [current], "slashable now that its height is committed")
        // Once a block carried it (the validator is tombstoned), it leaves the pool.
        let context = BlockContext(height: 3, timeMilliseconds: state.global.timeMilliseconds + 1_000, evidence: [current])
        state.commit(try Self.runtime.execute([], context: context, on: state))
        pool.update(after: state, runtime: Self.runtime)
        #expect(pool.count == 0)
    }
}

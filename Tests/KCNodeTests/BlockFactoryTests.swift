import KCCodec
import KCConsensus
import KCCrypto
import KCNode
import KCRuntime
import KCTypes
import Testing

/// Shared executions (`ExecutionMemo`): one validator's execution of a block serves another
/// whose state has the same root, while each still checks the header against its own tip.
struct BlockFactoryTests {
    static let runtime = MempoolTests.runtime
    static let validator = SigningKey(seed: Blake2b.hash256(Array("mempool-validator".utf8)))

    static func tip(_ state: ChainState) -> BlockFactory.Tip {
        let sets = state.validatorSets()
        return BlockFactory.Tip(state: state, previous: nil, previousValidators: nil,
                                validators: ValidatorSet(sets.current.map { .init(key: $0.consensusKey, power: $0.power) }))
    }

    static func firstBlock(_ factory: BlockFactory, _ state: ChainState) throws -> (Block, ExecutedBlock) {
        let transfer = try MempoolTests.transfer(MempoolTests.alice, nonce: 0).verified(chainID: runtime.chainID)
        return try #require(factory.build(on: tip(state), proposer: validator.publicKey, candidates: [transfer],
                                          maxTransactions: 10, evidence: []))
    }

    @Test func aBuiltBlockIsSharedByStateRootAndBlockID() throws {
        let memo = ExecutionMemo()
        let proposer = BlockFactory(runtime: Self.runtime, signatures: SignatureCache(), executions: memo)
        let other = BlockFactory(runtime: Self.runtime, signatures: SignatureCache(), executions: memo)
        let genesis = Self.runtime.genesisState()
        let (block, built) = try Self.firstBlock(proposer, genesis)
        let shared = try #require(memo.execution(of: block.id, on: genesis.root))
        #expect(shared.outcome.stateRoot == built.outcome.stateRoot)
        #expect(memo.execution(of: block.id, on: block.header.stateRoot) == nil, "another base root is another entry")

        // A second validator on its own copy of the same state accepts the block with the
        // same result, and can commit it.
        let validated = try #require(other.validate(block, on: Self.tip(Self.runtime.genesisState())))
        #expect(validated.outcome.stateRoot == block.header.stateRoot)
        var state = Self.runtime.genesisState()
        state.commit(validated)
        #expect(state.root == block.header.stateRoot)
    }

    @Test func sharedExecutionsDoNotSkipTheHeaderChecks() throws {
        let memo = ExecutionMemo()
        let factory = BlockFactory(runtime: Self.runtime, signatures: SignatureCache(), executions: memo)
        let genesis = Self.runtime.genesisState()
        let (block, _) = try Self.firstBlock(factory, genesis)
        // The same block against a tip whose validator set differs: refused, memo or not.
        let stranger = SigningKey(seed: Blake2b.hash256(Array("stranger".utf8)))
        let otherTip = BlockFactory.Tip(state: genesis, previous: nil, previousValidators: nil,
                                        validators: ValidatorSet([.init(key: stranger.publicKey, power: 1)]))
        #expect(factory.validate(block, on: otherTip) == nil)
        // A header that claims another state root is another block id: executed, and refused.
        let header = block.header
        let forged = Block(header: BlockHeader(chainID: header.chainID, height: header.height, timeMilliseconds: header.timeMilliseconds,
                                               previousBlockID: header.previousBlockID, lastCommitHash: header.lastCommitHash,
                                               transactionsHash: header.transactionsHash, evidenceHash: header.evidenceHash,
                                               stateRoot: Blake2b.hash256(Array("not the root".utf8)),
                                               validatorsHash: header.validatorsHash, proposer: header.proposer),
                           transactions: block.transactions, evidence: block.evidence, lastCommit: block.lastCommit)
        #expect(factory.validate(forged, on: Self.tip(genesis)) == nil)
    }

    /// A block whose transactions wait in the mempool is validated without a signature check
    /// (the mempool's are the same bytes, checked on entry); one it does not hold is checked,
    /// and a forged signature still refuses the block.
    @Test func validationReusesTheMempoolsCheckedTransactions() throws {
        let builder = BlockFactory(runtime: Self.runtime, signatures: SignatureCache())
        let genesis = Self.runtime.genesisState()
        let (block, _) = try Self.firstBlock(builder, genesis)
        let entryCache = SignatureCache()
        let pool = Mempool(runtime: Self.runtime, signatures: entryCache)
        try pool.add(block.transactions[0], from: "peer", state: genesis)
        #expect(entryCache.verifications == 1)

        let cache = SignatureCache()
        let validator = BlockFactory(runtime: Self.runtime, signatures: cache)
        #expect(validator.validate(block, on: Self.tip(genesis), known: pool.verified) != nil)
        #expect(cache.verifications == 0, "the mempool's check stood")
        #expect(validator.validate(block, on: Self.tip(genesis)) != nil)
        #expect(cache.verifications == 1, "without the mempool the signature is checked")

        let transaction = block.transactions[0]
        let forged = SignedTransaction(body: transaction.body, signature: try MempoolTests.transfer(MempoolTests.bob, nonce: 0).signature)
        let header = block.header
        let forgedBlock = Block(header: BlockHeader(chainID: header.chainID, height: header.height, timeMilliseconds: header.timeMilliseconds,
                                                    previousBlockID: header.previousBlockID, lastCommitHash: header.lastCommitHash,
                                                    transactionsHash: Block.transactionsHash([forged.hash]), evidenceHash: header.evidenceHash,
                                                    stateRoot: header.stateRoot, validatorsHash: header.validatorsHash, proposer: header.proposer),
                                transactions: [forged], evidence: block.evidence, lastCommit: block.lastCommit)
        #expect(validator.validate(forgedBlock, on: Self.tip(genesis), known: pool.verified) == nil, "other bytes are not the mempool's")
    }
}

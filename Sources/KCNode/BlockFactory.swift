import KCCodec
import KCConsensus
import KCCrypto
import KCRuntime
import KCTypes
import Synchronization

/// Builds a node's proposals and decides whether a proposed block is valid (the paper's
/// `valid(v)`). One implementation for the node and the simulator, so both follow exactly the
/// block rules of specs/consensus.md.
public struct BlockFactory: Sendable {
    public let runtime: Runtime
    /// Shared signature cache: each transaction and precommit signature is checked once.
    public let signatures: SignatureCache

    /// Executions shared by validators that run in one process (the simulator); nil in a node.
    public let executions: ExecutionMemo?

    public init(runtime: Runtime, signatures: SignatureCache, executions: ExecutionMemo? = nil) {
        self.runtime = runtime
        self.signatures = signatures
        self.executions = executions
    }

    /// The chain below the height being built or checked.
    public struct Tip: Sendable {
        /// State after the last decided block.
        public let state: ChainState
        /// The last decided block's header and its certificate (nil at genesis).
        public let previous: (header: BlockHeader, certificate: CommitCertificate)?
        /// The set that signed the last decided block (its certificate's signers).
        public let previousValidators: ValidatorSet?
        /// The set that signs the height being built.
        public let validators: ValidatorSet

        public init(state: ChainState, previous: (header: BlockHeader, certificate: CommitCertificate)?,
                    previousValidators: ValidatorSet?, validators: ValidatorSet) {
            self.state = state
            self.previous = previous
            self.previousValidators = previousValidators
            self.validators = validators
        }

        public var height: UInt64 { state.global.height + 1 }
    }

    /// A proposal for the next height: the previous certificate (without precommits timed
    /// before the block they commit, if the rest is still a quorum), the median block time,
    /// `candidates` in order where each is its sender's next nonce, can pay its fee and fits
    /// the size limits (at most `maxTransactions`), and the evidence the runtime would slash
    /// in this block (one piece per validator).
    ///
    /// The builder never proposes a block its own runtime refuses: whatever it includes passed
    /// the runtime's own admission checks, and should execution still fail, it tries again
    /// without the evidence, then without the transactions. Nil only if even an empty block
    /// does not execute (a broken state); the caller then does not propose.
    public func build(on tip: Tip, proposer: PublicKey, candidates: [VerifiedTransaction], maxTransactions: Int,
                      evidence: [DoubleSignEvidence]) -> (block: Block, executed: ExecutedBlock)? {
        let height = tip.height
        var lastCommit = tip.previous?.certificate
        if let commit = lastCommit, let previous = tip.previous, let previousSet = tip.previousValidators {
            let timely = commit.precommits.filter { $0.vote.timestampMilliseconds > previous.header.timeMilliseconds }
            let power = timely.reduce(UInt64(0)) { $0 + (previousSet.power(of: $1.vote.validator) ?? 0) }
            if timely.count < commit.precommits.count && previousSet.isQuorum(power) {
                lastCommit = CommitCertificate(height: commit.height, round: commit.round, blockID: commit.blockID, precommits: timely)
            }
        }
        let time: UInt64
        if let lastCommit, let previousSet = tip.previousValidators {
            time = lastCommit.medianTime(validators: previousSet)
        } else {
            time = tip.state.global.timeMilliseconds + 1
        }
        let limits = runtime.parameters.block
        var nextNonce: [PublicKey: UInt64] = [:]
        var chosen: [VerifiedTransaction] = []
        var bytes = 0
        for transaction in candidates where chosen.count < min(maxTransactions, Int(limits.maxTransactions)) {
            let sender = transaction.body.sender
            let expected = nextNonce[sender] ?? tip.state.account(sender).nonce
            let size = transaction.encodedSize
            guard transaction.body.nonce == expected, size <= Int(limits.maxTransactionBytes), bytes + size <= Int(limits.maxBytes),
                  runtime.admissionError(transaction, expectedNonce: expected, in: tip.state) == nil else { continue }
            nextNonce[sender] = expected + 1
            chosen.append(transaction)
            bytes += size
        }
        var included: [DoubleSignEvidence] = []
        for item in evidence where included.count < Block.maxEvidence && !included.contains(where: { $0.validator == item.validator }) {
            guard case .admissible = runtime.checkEvidence(item, height: height, timeMilliseconds: time, in: tip.state,
                                                           cache: signatures) else { continue }
            included.append(item)
        }
        for attempt in [(chosen, included), (chosen, []), ([], [])] {
            let context = BlockContext(height: height, timeMilliseconds: time, lastCommitSigners: lastCommit?.signers ?? [],
                                       evidence: attempt.1)
            guard let executed = try? runtime.execute(attempt.0, context: context, on: tip.state) else { continue }
            let header = BlockHeader(chainID: runtime.chainID, height: height, timeMilliseconds: time,
                                     previousBlockID: tip.previous?.header.id ?? .zero, lastCommitHash: Block.commitHash(lastCommit),
                                     transactionsHash: Block.transactionsHash(attempt.0.map(\.hash)),
                                     evidenceHash: Block.evidenceHash(attempt.1), stateRoot: executed.outcome.stateRoot,
                                     validatorsHash: tip.validators.hash, proposer: proposer)
            let block = Block(header: header, transactions: attempt.0.map(\.transaction), evidence: attempt.1, lastCommit: lastCommit)
            executions?.remember(executed, of: block.id)
            return (block, executed)
        }
        return nil
    }

    /// valid(v): every header field checks against the tip, the last commit verifies against
    /// the previous set and obeys the block-time rule, every signature verifies, and the
    /// runtime executes the block to the stated state root. Returns the execution, or nil.
    /// `known` gives transactions already checked by hash (the mempool's): the same bytes, so
    /// their signatures need no second look.
    public func validate(_ block: Block, on tip: Tip, known: (Hash256) -> VerifiedTransaction? = { _ in nil }) -> ExecutedBlock? {
        let header = block.header
        let hashes = block.transactions.map(\.hash)
        guard header.chainID == runtime.chainID, header.height == tip.height,
              header.validatorsHash == tip.validators.hash,
              header.transactionsHash == Block.transactionsHash(hashes),
              header.evidenceHash == Block.evidenceHash(block.evidence),
              header.lastCommitHash == Block.commitHash(block.lastCommit) else { return nil }
        if let previous = tip.previous {
            guard let lastCommit = block.lastCommit, lastCommit.height == header.height - 1,
                  lastCommit.blockID == previous.header.id, header.previousBlockID == previous.header.id,
                  let previousSet = tip.previousValidators,
                  (try? lastCommit.verify(validators: previousSet, chainID: runtime.chainID, cache: signatures)) != nil,
                  lastCommit.precommits.allSatisfy({ $0.vote.timestampMilliseconds > previous.header.timeMilliseconds }),
                  header.timeMilliseconds == lastCommit.medianTime(validators: previousSet) else { return nil }
        } else {
            guard block.lastCommit == nil, header.previousBlockID == .zero,
                  header.timeMilliseconds == tip.state.global.timeMilliseconds + 1 else { return nil }
        }
        var transactions: [VerifiedTransaction] = []
        transactions.reserveCapacity(block.transactions.count)
        for (index, transaction) in block.transactions.enumerated() {
            if let checked = known(hashes[index]) {
                transactions.append(checked)
                continue
            }
            guard let verified = try? transaction.verified(chainID: runtime.chainID, cache: signatures) else { return nil }
            transactions.append(verified)
        }
        if let shared = executions?.execution(of: block.id, on: tip.state.root) {
            return shared.outcome.stateRoot == header.stateRoot ? shared : nil
        }
        let context = BlockContext(height: header.height, timeMilliseconds: header.timeMilliseconds,
                                   lastCommitSigners: block.lastCommit?.signers ?? [], evidence: block.evidence)
        guard let executed = try? runtime.execute(transactions, context: context, on: tip.state) else { return nil }
        executions?.remember(executed, of: block.id)
        guard executed.outcome.stateRoot == header.stateRoot else { return nil }
        return executed
    }
}

/// Block executions shared between validators running in one process. Execution is a pure
/// function of the state and the block, the state root commits to the whole state, and the
/// block id to the whole block, so (root before, block id) names one result whoever computes
/// it. The header checks of `validate` still run for each validator against its own tip.
public final class ExecutionMemo: Sendable {
    private struct Key: Hashable {
        let baseRoot: Hash256
        let blockID: Hash256
    }

    private let entries = Mutex<[Key: ExecutedBlock]>([:])
    public let capacity: Int

    public init(capacity: Int = 256) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    public func execution(of blockID: Hash256, on baseRoot: Hash256) -> ExecutedBlock? {
        entries.withLock { $0[Key(baseRoot: baseRoot, blockID: blockID)] }
    }

    func remember(_ executed: ExecutedBlock, of blockID: Hash256) {
        entries.withLock { entries in
            // Bounded: when full, start again (a miss only costs an execution).
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[Key(baseRoot: executed.baseRoot, blockID: blockID)] = executed
        }
    }
}

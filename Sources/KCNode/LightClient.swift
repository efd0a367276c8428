import KCCodec
import KCConsensus
import KCCrypto
import KCNetwork
import KCRuntime

/// The light-client walk of state sync (specs/p2p.md, "State sync"): from the genesis
/// validator set to a verified header at a target height, through one commit certificate for
/// each validator-set change. No I/O and no trust in the peer that serves the light blocks:
/// each is checked against the set this walk already trusts.
///
/// A light block at height c is accepted when its header names the trusted set, its
/// certificate carries more than 2/3 of that set's power for that header, and, below the
/// target, when it proves (by a Merkle proof against its own state root) the different set
/// that signs from c + 1. Skipping the heights between two changes is as safe as checking each
/// one: a quorum of the trusted set signs a header only on the real chain, and that header's
/// state fixes the next set (the same quorum that could forge it could forge every step).
public struct LightClient: Sendable {
    public enum Refusal: Error, Equatable, CustomStringConvertible {
        case missing
        case outOfRange(height: UInt64)
        case wrongChain
        case wrongValidators(height: UInt64)
        case certificate(height: UInt64, String)
        case noSetChange(height: UInt64)
        case badSetProof(height: UInt64)

        public var description: String {
            switch self {
            case .missing: return "has no light block for a snapshot it offered"
            case .outOfRange(let height): return "sent a light block at height \(height), outside the range asked"
            case .wrongChain: return "sent a light block of another chain"
            case .wrongValidators(let height): return "sent a header at height \(height) that names another validator set than the verified one"
            case .certificate(let height, let problem): return "sent a light block at height \(height) whose certificate does not verify: \(problem)"
            case .noSetChange(let height): return "sent a light block at height \(height) below the target without a validator-set change"
            case .badSetProof(let height): return "sent a light block at height \(height) whose next validator set is not proven by its state root"
            }
        }
    }

    public let chainID: String
    /// The last verified height (0: genesis) and the set that signs the height after it.
    public private(set) var height: UInt64
    public private(set) var validators: ValidatorSet
    /// The verified light blocks after which the set changed, in height order (a state-synced
    /// node keeps them, to serve later walks).
    public private(set) var changes: [LightBlock] = []

    public init(chainID: String, genesisValidators: ValidatorSet) {
        self.chainID = chainID
        height = 0
        validators = genesisValidators
    }

    /// Checks the answer to `lightBlockRequest(after: height, target:)`. Returns the verified
    /// header once the target is reached, nil when the walk moved to the next set.
    public mutating func accept(_ block: LightBlock?, target: UInt64, cache: SignatureCache? = nil) throws(Refusal) -> LightBlock? {
        guard let block else { throw .missing }
        let header = block.header
        guard header.height > height, header.height <= target else { throw .outOfRange(height: header.height) }
        guard header.chainID == chainID else { throw .wrongChain }
        guard header.validatorsHash == validators.hash else { throw .wrongValidators(height: header.height) }
        do { try block.certificate.verify(validators: validators, chainID: chainID, cache: cache) } catch {
            throw .certificate(height: header.height, "\(error)")
        }
        if header.height == target {
            height = header.height
            return block
        }
        guard let proof = block.nextSets else { throw .noSetChange(height: header.height) }
        guard let next = Self.provenSet(proof, root: header.stateRoot) else { throw .badSetProof(height: header.height) }
        guard next.hash != validators.hash else { throw .noSetChange(height: header.height) }
        height = header.height
        validators = next
        changes.append(block)
        return nil
    }

    /// The set that signs the next height, if the record and its proof check against `root`.
    static func provenSet(_ setProof: LightBlock.SetProof, root: Hash256) -> ValidatorSet? {
        guard let proof = try? StateTrie.Proof.decode(exactly: setProof.proof),
              StateTrie.verify(proof: proof, root: root, path: Blake2b.hash256(StateKey.validatorSets),
                               valueHash: Blake2b.hash256(setProof.record)),
              let sets = try? ValidatorSets.decode(exactly: setProof.record),
              !sets.current.isEmpty else { return nil }
        return ValidatorSet(sets.current)
    }

    /// The light block a node stores with a block when the set changes after it: the new
    /// validator-sets record and its proof against the block's state root. Nil when the set
    /// that signs the next height is the one that signed this block.
    public static func changeRecord(header: BlockHeader, certificate: CommitCertificate, signedBy validators: ValidatorSet,
                                    executed: ExecutedBlock, on base: ChainState) -> LightBlock? {
        guard let changed = executed.changes[StateKey.validatorSets], let record = changed,
              let sets = try? ValidatorSets.decode(exactly: record), !sets.current.isEmpty else { return nil }
        guard ValidatorSet(sets.current).hash != validators.hash else { return nil }
        let proof = base.proof(key: StateKey.validatorSets, after: executed)
        return LightBlock(header: header, certificate: certificate, nextSets: .init(record: record, proof: proof.canonicalBytes))
    }

    /// The same, from a verified state after the block (a state-synced node, whose snapshot is
    /// the state after the header it verified).
    public static func changeRecord(header: BlockHeader, certificate: CommitCertificate, signedBy validators: ValidatorSet,
                                    after state: ChainState) -> LightBlock? {
        precondition(state.root == header.stateRoot, "a state that is not the header's")
        guard let record = state.get(StateKey.validatorSets), let sets = try? ValidatorSets.decode(exactly: record),
              !sets.current.isEmpty, ValidatorSet(sets.current).hash != validators.hash else { return nil }
        return LightBlock(header: header, certificate: certificate,
                          nextSets: .init(record: record, proof: state.proof(key: StateKey.validatorSets).canonicalBytes))
    }
}

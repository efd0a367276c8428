import KCConsensus
import KCCrypto
import KCRuntime
import KCTypes

/// Double-sign evidence waiting for a block (specs/p2p.md, "Evidence"). Pure bookkeeping: the
/// node (and the simulator) hands it evidence and the committed state; it answers what to
/// keep, what to gossip, and which sender to ban.
///
/// Only evidence the runtime would slash in the next block is kept (`Runtime.checkEvidence`),
/// at most one piece per validator (one tombstones it; any other is then settled), so the
/// pool never holds more than the validator sets of the evidence window can produce, and
/// never more than `capacity`.
public struct EvidencePool: Sendable {
    public enum Admission: Equatable, Sendable {
        /// New and slashable: keep it and pass it on.
        case added
        /// Already held, or evidence against the same validator is: nothing to do.
        case known
        /// True or possibly true, but useless now (settled, expired, or about a height not yet
        /// committed here): dropped without blame, since an honest peer may be ahead or behind.
        case ignored(String)
        /// Can never be valid on this chain: an honest peer checks before relaying, so the
        /// sender is to be banned.
        case invalid(String)
    }

    public let capacity: Int
    public private(set) var items: [DoubleSignEvidence] = []

    public init(capacity: Int = Block.maxEvidence) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    public var count: Int { items.count }

    /// Checks `evidence` against the committed `state` (for the next height, at the last block
    /// time: the next block's time can only be later, which `build` checks again).
    public mutating func add(_ evidence: DoubleSignEvidence, runtime: Runtime, state: ChainState,
                             cache: SignatureCache? = nil) -> Admission {
        if items.contains(where: { $0.validator == evidence.validator }) { return .known }
        let global = state.global
        switch runtime.checkEvidence(evidence, height: global.height + 1, timeMilliseconds: global.timeMilliseconds,
                                     in: state, cache: cache) {
        case .admissible:
            guard items.count < capacity else { return .ignored("the evidence pool is full") }
            items.append(evidence)
            return .added
        case .settled: return .ignored("already settled")
        case .notYet where evidence.height == global.height + 1:
            // About the height in progress (the core's own vote keeper reports these): checked
            // against the set that signs it now, and by the full rule once it is committed.
            guard state.validatorSets().current.contains(where: { $0.consensusKey == evidence.validator }) else {
                return .invalid("consensus key \(evidence.validator.hex) is not a validator at height \(evidence.height)")
            }
            guard evidence.first.verify(chainID: runtime.chainID, cache: cache),
                  evidence.second.verify(chainID: runtime.chainID, cache: cache) else {
                return .invalid(DoubleSignEvidence.Problem.badSignature.description)
            }
            guard items.count < capacity else { return .ignored("the evidence pool is full") }
            items.append(evidence)
            return .added
        case .notYet: return .ignored("about height \(evidence.height), not committed here yet")
        case .expired(let reason): return .ignored(reason)
        case .invalid(let reason): return .invalid(reason)
        }
    }

    /// After a commit: drops what the block carried and whatever is no longer slashable
    /// (evidence about the height in progress waits for it).
    public mutating func update(after state: ChainState, runtime: Runtime, cache: SignatureCache? = nil) {
        let global = state.global
        items.removeAll { evidence in
            switch runtime.checkEvidence(evidence, height: global.height + 1, timeMilliseconds: global.timeMilliseconds,
                                         in: state, cache: cache) {
            case .admissible: return false
            case .notYet: return evidence.height != global.height + 1
            case .settled, .expired, .invalid: return true
            }
        }
    }
}

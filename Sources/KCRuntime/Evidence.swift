import KCCodec
import KCCrypto
import KCTypes

/// Read access to state entries: the committed state (`ChainState`) or a block's overlay.
public protocol StateReading {
    func get(_ key: StoreKey) -> [UInt8]?
}

extension StateReading {
    /// The record at `key`. Entries were written by the runtime in canonical form; one that
    /// does not decode means the state is corrupt, and continuing would diverge from the network.
    func record<T: CanonicalDecodable>(_ type: T.Type, _ key: StoreKey) -> T? {
        guard let bytes = get(key) else { return nil }
        do { return try T.decode(exactly: bytes) } catch { preconditionFailure("corrupt state entry: \(error)") }
    }
}

extension ChainState: StateReading {}
extension ExecutionState: StateReading {}

/// The verdict on one piece of double-sign evidence for a block at a given height and time
/// (specs/runtime.md, "Evidence"). One rule serves the block (which refuses everything but
/// `admissible` and `settled`), the node's evidence pool and gossip (which keep only
/// `admissible` and ban the sender of `invalid`), and the block builder.
public enum EvidenceCheck: Equatable, Sendable {
    /// Slashable now: the validator's account and its power at the infraction height.
    case admissible(address: PublicKey, power: UInt64)
    /// True, but nothing is left to do: the validator is tombstoned, or this evidence was
    /// processed already. A block may carry it (it is ignored); a pool drops it.
    case settled
    /// About a height this chain has not committed below the block yet.
    case notYet
    /// Outside the evidence window (too many blocks or too much block time ago).
    case expired(String)
    /// Can never be valid on this chain: not a conflicting pair, not in canonical order, a
    /// bad signature, or a key that was not a validator at that height.
    case invalid(String)
}

extension Runtime {
    /// Checks `evidence` for inclusion in the block at `height` with block time
    /// `timeMilliseconds`, on the state after the previous block. Cheap checks come first;
    /// signatures (through `cache` when given) only once the pair could matter.
    public func checkEvidence(_ evidence: DoubleSignEvidence, height: UInt64, timeMilliseconds: UInt64,
                              in state: some StateReading, cache: SignatureCache? = nil) -> EvidenceCheck {
        guard evidence.first.vote.conflicts(with: evidence.second.vote) else {
            return .invalid(DoubleSignEvidence.Problem.notConflicting.description)
        }
        guard evidence.first.canonicalBytes.lexicographicallyPrecedes(evidence.second.canonicalBytes) else {
            return .invalid(DoubleSignEvidence.Problem.wrongOrder.description)
        }
        let infraction = evidence.height
        guard infraction >= 1 else { return .invalid("height 0 has no votes") }
        guard infraction < height else { return .notYet }
        let window = parameters.slashing
        guard height - infraction <= window.maxEvidenceAgeBlocks else {
            return .expired("height \(infraction) is more than \(window.maxEvidenceAgeBlocks) blocks below \(height)")
        }
        // Kept for every height of the window (specs/runtime.md, "Validator-set history");
        // a missing record can only mean the height is outside it.
        guard let record = state.record(HeightRecord.self, StateKey.heightRecord(infraction)) else {
            return .expired("height \(infraction) is outside the kept history")
        }
        let age = timeMilliseconds >= record.timeMilliseconds ? timeMilliseconds - record.timeMilliseconds : 0
        guard age <= window.maxEvidenceAgeMilliseconds else {
            return .expired("height \(infraction) is \(age) ms of block time old, over \(window.maxEvidenceAgeMilliseconds) ms")
        }
        guard let set = state.record(HistoricValidatorSet.self, StateKey.validatorSet(since: record.validatorSetSince)) else {
            preconditionFailure("height \(infraction) names validator set \(record.validatorSetSince), which is not kept")
        }
        guard let member = set.member(evidence.validator) else {
            return .invalid("consensus key \(evidence.validator.hex) was not a validator at height \(infraction)")
        }
        guard evidence.first.verify(chainID: chainID, cache: cache) && evidence.second.verify(chainID: chainID, cache: cache) else {
            return .invalid(DoubleSignEvidence.Problem.badSignature.description)
        }
        if state.get(StateKey.evidence(evidence.hash)) != nil { return .settled }
        if let validator = state.record(ValidatorRecord.self, StateKey.validator(member.address)), validator.tombstoned {
            return .settled
        }
        return .admissible(address: member.address, power: member.power)
    }
}

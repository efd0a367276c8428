import KCConsensus
import KCRuntime

extension ValidatorSet {
    /// The consensus view of a validator set kept in the state: each member's consensus key
    /// and power.
    public init(_ entries: [ValidatorSetEntry]) {
        self.init(entries.map { Member(key: $0.consensusKey, power: $0.power) })
    }
}

import KCCodec
import KCCrypto
import KCTypes

/// An independent witness of the fixed-electorate rule (specs/runtime.md, "Electorate"), for
/// the property tests and the simulator. It photographs every registered gateway's bonded
/// stake each time an epoch opens, as the rule is stated, instead of reading the runtime's lazy
/// history, and checks every event decided in a block against that photograph: the stored
/// total, each stored vote weight, and the threshold of the decision. A runtime that tallied
/// against anything else (the stake of the moment, a history entry written at the wrong time)
/// disagrees with the photograph.
public struct ElectorateWitness: Sendable {
    /// Epoch → each gateway's weight when it opened. Epochs no live event can use are dropped.
    public private(set) var photographs: [UInt64: [PublicKey: Amount]] = [:]

    /// Starts from the genesis state (or any committed state: it photographs the running
    /// epoch as the state shows it, which is exact only at the epoch's first block).
    public init(state: ChainState) { photograph(state) }

    /// `address`'s weight in the electorate of `epoch`, if that epoch's photograph is kept.
    public func weight(_ address: PublicKey, epoch: UInt64) -> Amount? {
        guard let photograph = photographs[epoch] else { return nil }
        return photograph[address] ?? .zero
    }

    /// The total of `epoch`'s photograph (nil once dropped; a total overflow is reported as nil).
    public func total(epoch: UInt64) -> Amount? {
        guard let photograph = photographs[epoch] else { return nil }
        var total = Amount.zero
        for weight in photograph.values {
            guard let sum = total.adding(weight) else { return nil }
            total = sum
        }
        return total
    }

    mutating func photograph(_ state: ChainState) {
        var weights: [PublicKey: Amount] = [:]
        for gateway in state.gatewayRegistry { weights[gateway] = state.stake(gateway).electoralStake }
        photographs[state.global.epoch] = weights
    }

    /// Checks the events `outcome` decided against the photographs, then photographs the epoch
    /// the block opened (if it closed one). Returns one sentence per problem.
    public mutating func observe(_ outcome: BlockOutcome, state: ChainState) -> [String] {
        var problems: [String] = []
        for change in outcome.eventChanges where change.from == nil || change.from == .pending {
            problems += check(change, state: state)
        }
        if photographs[state.global.epoch] == nil { photograph(state) }
        for epoch in photographs.keys where epoch < state.global.oldestLiveEpoch { photographs[epoch] = nil }
        return problems
    }

    func check(_ change: EventStatusChange, state: ChainState) -> [String] {
        let id = change.eventID.hex.prefix(12)
        guard let record = state.event(change.eventID) else { return ["event \(id) changed status but has no record"] }
        guard let photograph = photographs[record.electorateEpoch], let total = total(epoch: record.electorateEpoch) else {
            return ["event \(id) uses the electorate of epoch \(record.electorateEpoch), which was never photographed or was dropped too early"]
        }
        var problems: [String] = []
        if record.electorateTotal != total {
            problems.append("event \(id): stored electorate total \(record.electorateTotal) differs from epoch \(record.electorateEpoch)'s photograph \(total)")
        }
        func side(_ verdict: Verdict) -> Amount {
            var sum = Amount.zero
            for entry in state.voters(change.eventID, verdict) {
                let expected = photograph[entry.voter] ?? .zero
                if expected == .zero {
                    problems.append("event \(id): \(entry.voter.hex.prefix(8)) voted but was not a gateway when epoch \(record.electorateEpoch) opened")
                } else if entry.weight != expected {
                    problems.append("event \(id): \(entry.voter.hex.prefix(8))'s vote weighs \(entry.weight), its stake at the epoch's opening was \(expected)")
                }
                sum = sum.adding(expected) ?? sum
            }
            return sum
        }
        let valid = side(.valid)
        let invalid = side(.invalid)
        // Thresholds in exact integers: 3·part against numerator·total, in 256 bits.
        func above(_ part: Amount, _ numerator: UInt128) -> Bool {
            let left = part.units.multipliedFullWidth(by: 3)
            let right = total.units.multipliedFullWidth(by: numerator)
            return (left.high, left.low) > (right.high, right.low)
        }
        switch change.to {
        case .accepted where !above(valid, 2):
            problems.append("event \(id) accepted with valid weight \(valid), not above 2/3 of its electorate's \(total)")
        case .rejected where record.resolution == .attestation && !above(invalid, 1):
            problems.append("event \(id) rejected by attestation with invalid weight \(invalid), not above 1/3 of its electorate's \(total)")
        case .expired where above(valid, 2) || above(invalid, 1):
            problems.append("event \(id) expired although its votes (valid \(valid), invalid \(invalid) of \(total)) had decided it")
        default:
            break
        }
        return problems
    }
}

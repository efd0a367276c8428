import KCCodec
import KCCrypto
import KCTypes

// Slashing (specs/runtime.md, "Slashing"). A slash takes a fraction of the stake that backed
// the offence: the power a validator signed with at the infraction height, the weight a
// gateway voted with, the stake an author proposed with. It is taken from bonded stake first,
// then from unbonding entries from the newest, however the stake was unbonded since.
extension BlockExecutor {
    /// Takes up to `target` from `address`'s stake; returns what was taken (less only if the
    /// account holds less). The caller decides where it goes.
    @discardableResult
    mutating func slash(_ address: PublicKey, target: Amount, reason: SlashReason, inCall: Bool) -> Amount {
        guard target > .zero else { return .zero }
        var record = stake(address)
        var remaining = target
        let fromBonded = min(record.bonded, remaining)
        if fromBonded > .zero {
            if record.isGateway {
                // A decrease is always recorded or safely left out (`noteElectoralChange`).
                _ = noteElectoralChange(address, from: record.electoralStake, increase: false)
                global.gatewayStake = minus(global.gatewayStake, fromBonded)
            }
            record.bonded = minus(record.bonded, fromBonded)
            remaining = minus(remaining, fromBonded)
        }
        for index in record.unbonding.indices.reversed() where remaining > .zero {
            let cut = min(record.unbonding[index].amount, remaining)
            record.unbonding[index].amount = minus(record.unbonding[index].amount, cut)
            remaining = minus(remaining, cut)
        }
        record.unbonding.removeAll { $0.amount == .zero }
        state.write(StateKey.stake(address), record)
        let taken = minus(target, remaining)
        let entry = SlashRecord(address: address, reason: reason, amount: taken, height: height)
        // A registered validator's power follows its stake at the next set update.
        let validatorStakeChanged = fromBonded > .zero && state.read(ValidatorRecord.self, StateKey.validator(address))?.registryIndex != nil
        if inCall {
            pending.slashes.append(entry)
            if validatorStakeChanged { pending.validatorSetDirty = true }
        } else {
            effects.slashes.append(entry)
            if validatorStakeChanged { effects.validatorSetDirty = true }
        }
        return taken
    }

    /// The stake behind `power` (whole ACTI) of consensus power.
    static func stakeBehind(power: UInt64) -> Amount { Amount(units: UInt128(power) * Amount.unitsPerACTI) }
}

import KCCodec
import KCCrypto
import KCTypes

// The calls about money, stake and roles. Each either succeeds or throws a CallError before
// the caller undoes its writes; specs/runtime.md lists each call's checks, effects and error
// codes in this order.
extension BlockExecutor {
    // MARK: money

    /// Takes `amount` from an account's balance, or fails with `insufficient_balance`
    /// naming what the money was for.
    mutating func debit(_ address: PublicKey, _ amount: Amount, for purpose: String) throws(CallError) {
        var source = account(address)
        guard let remaining = source.balance.subtracting(amount) else {
            throw CallError(.insufficientBalance, "balance \(source.balance) is less than the \(purpose) of \(amount)")
        }
        source.balance = remaining
        state.write(StateKey.account(address), source)
    }

    /// Adds to a balance. The supply bounds every balance, so this cannot overflow.
    mutating func credit(_ address: PublicKey, _ amount: Amount) {
        guard amount > .zero else { return }
        var destination = account(address)
        destination.balance = plus(destination.balance, amount)
        state.write(StateKey.account(address), destination)
    }

    mutating func transfer(from sender: PublicKey, to recipient: PublicKey, amount: Amount) throws(CallError) {
        guard amount > .zero else { throw CallError(.invalidAmount, "transfer amount must be positive") }
        try debit(sender, amount, for: "transfer")
        var destination = account(recipient)
        guard let credited = destination.balance.adding(amount) else { throw CallError(.overflow, "recipient balance would overflow") }
        destination.balance = credited
        state.write(StateKey.account(recipient), destination)
    }

    // MARK: stake

    mutating func bond(_ sender: PublicKey, _ amount: Amount) throws(CallError) {
        guard amount > .zero else { throw CallError(.invalidAmount, "bond amount must be positive") }
        try debit(sender, amount, for: "bond")
        var record = stake(sender)
        let bonded = plus(record.bonded, amount)
        if record.isGateway { try changeElectoralStake(sender, &record, to: bonded) } else { record.bonded = bonded }
        state.write(StateKey.stake(sender), record)
    }

    mutating func unbond(_ sender: PublicKey, _ amount: Amount) throws(CallError) {
        guard amount > .zero else { throw CallError(.invalidAmount, "unbond amount must be positive") }
        var record = stake(sender)
        guard let remaining = record.bonded.subtracting(amount) else {
            throw CallError(.insufficientBonded, "bonded stake \(record.bonded) is less than the unbond of \(amount)")
        }
        guard record.unbonding.count < StakeRecord.maxUnbondingEntries else {
            throw CallError(.tooManyUnbondingEntries, "already \(StakeRecord.maxUnbondingEntries) unbonding entries; withdraw matured ones first")
        }
        let isRegisteredValidator = state.read(ValidatorRecord.self, StateKey.validator(sender))?.registryIndex != nil
        if remaining > .zero {
            // A role may not be kept on less than its minimum: unbond all to leave it.
            if record.isGateway && remaining < parameters.staking.minGatewayStake {
                throw CallError(.belowMinimumStake, "remaining stake \(remaining) would be below the minimum gateway stake \(parameters.staking.minGatewayStake); unbond everything to stop being a gateway")
            }
            if isRegisteredValidator && remaining < parameters.staking.minValidatorStake {
                throw CallError(.belowMinimumStake, "remaining stake \(remaining) would be below the minimum validator stake \(parameters.staking.minValidatorStake); unbond everything to stop validating")
            }
        }
        if record.isGateway { try changeElectoralStake(sender, &record, to: remaining) } else { record.bonded = remaining }
        record.unbonding.append(UnbondingEntry(amount: amount,
                                               completionTimeMilliseconds: now.addingSaturating(parameters.staking.unbondingPeriodMilliseconds),
                                               creationHeight: height))
        // Power follows stake at the next set update, partial unbonds included: power is
        // never backed by less stake than the set says for longer than the change delay.
        if isRegisteredValidator { pending.validatorSetDirty = true }
        if remaining == .zero {
            if record.isGateway {
                record.isGateway = false
                deregisterGateway(sender)
            }
            if isRegisteredValidator { deregisterValidator(sender) }
        }
        state.write(StateKey.stake(sender), record)
    }

    mutating func withdrawUnbonded(_ sender: PublicKey) throws(CallError) {
        var record = stake(sender)
        var matured = Amount.zero
        var kept: [UnbondingEntry] = []
        for entry in record.unbonding {
            if entry.completionTimeMilliseconds <= now { matured = plus(matured, entry.amount) } else { kept.append(entry) }
        }
        guard kept.count < record.unbonding.count else {
            let next = record.unbonding.map(\.completionTimeMilliseconds).min()
            throw CallError(.nothingToWithdraw, next.map { "no unbonding entry has matured; the next matures at block time \(blockTime($0))" }
                                                ?? "there is nothing unbonding")
        }
        guard now >= record.lockedUntilMilliseconds else {
            throw CallError(.stakeLocked, "stake is locked until block time \(blockTime(record.lockedUntilMilliseconds)) (it is now \(blockTime(now))): it voted on an event or judged a dispute not yet settled, or backed validator power that evidence can still name")
        }
        record.unbonding = kept
        state.write(StateKey.stake(sender), record)
        credit(sender, matured)
    }

    /// Keeps `address`'s stake from being withdrawn before `time`.
    mutating func lock(_ address: PublicKey, until time: UInt64) {
        var record = stake(address)
        guard record.lockedUntilMilliseconds < time else { return }
        record.lockedUntilMilliseconds = time
        state.write(StateKey.stake(address), record)
    }

    // MARK: roles

    mutating func registerValidator(_ sender: PublicKey, _ consensusKey: PublicKey) throws(CallError) {
        var record = stake(sender)
        let existing = state.read(ValidatorRecord.self, StateKey.validator(sender))
        if existing?.registryIndex != nil {
            throw CallError(.alreadyValidator, "account is already a registered validator")
        }
        if let registered = record.consensusKey, registered != consensusKey {
            throw CallError(.alreadyValidator, "account registered consensus key \(registered.hex) before; a validator's key cannot change")
        }
        guard record.bonded >= parameters.staking.minValidatorStake else {
            throw CallError(.belowMinimumStake, "stake \(record.bonded) is below the minimum \(parameters.staking.minValidatorStake)")
        }
        if let owner = state.read(PublicKey.self, StateKey.consensusKey(consensusKey)), owner != sender {
            throw CallError(.consensusKeyInUse, "consensus key \(consensusKey.hex) belongs to another validator")
        }
        if existing?.tombstoned == true {
            throw CallError(.tombstoned, "this validator double-signed and is jailed for good")
        }
        let position = try registryAppend(.validators, sender)
        if record.consensusKey == nil {
            record.consensusKey = consensusKey
            state.write(StateKey.stake(sender), record)
            state.write(StateKey.consensusKey(consensusKey), sender)
        }
        // A validator registering again starts with empty counters; its jail stays.
        let window = parameters.slashing.signedBlocksWindow
        var validator = existing?.reregistered(windowLength: window) ?? ValidatorRecord(consensusKey: consensusKey, windowLength: window)
        validator.registryIndex = position
        state.write(StateKey.validator(sender), validator)
    }

    /// Leaves the validator registry (its stake is all unbonding): counters restart, so it is
    /// neither paid for nor judged on an epoch it left.
    mutating func deregisterValidator(_ address: PublicKey) {
        guard let validator = state.read(ValidatorRecord.self, StateKey.validator(address)),
              let position = validator.registryIndex else { preconditionFailure("deregistering an unregistered validator") }
        if let moved = registryRemove(.validators, at: position, expected: address) {
            guard var record = state.read(ValidatorRecord.self, StateKey.validator(moved)) else { preconditionFailure("registry member without record") }
            record.registryIndex = position
            state.write(StateKey.validator(moved), record)
        }
        state.write(StateKey.validator(address), validator.reregistered(windowLength: parameters.slashing.signedBlocksWindow))
    }

    mutating func registerGateway(_ sender: PublicKey) throws(CallError) {
        var record = stake(sender)
        guard !record.isGateway else { throw CallError(.alreadyGateway, "account is already a registered gateway") }
        guard record.bonded >= parameters.staking.minGatewayStake else {
            throw CallError(.belowMinimumStake, "stake \(record.bonded) is below the minimum \(parameters.staking.minGatewayStake)")
        }
        let position = try registryAppend(.gateways, sender)
        guard noteElectoralChange(sender, from: .zero, increase: true) else {
            throw CallError(.electorateHistoryFull,
                            "this account's gateway stake changed in \(GatewayHistory.maxEntries) epochs that live events still use; register after epoch \(global.oldestLiveEpoch) is no longer used")
        }
        record.isGateway = true
        global.gatewayStake = plus(global.gatewayStake, record.bonded)
        state.write(StateKey.stake(sender), record)
        state.write(StateKey.gateway(sender), GatewayRecord(registryIndex: position))
    }

    /// Leaves the gateway registry; the caller has cleared the role and its electoral stake.
    mutating func deregisterGateway(_ address: PublicKey) {
        guard let gateway = state.read(GatewayRecord.self, StateKey.gateway(address)) else { preconditionFailure("deregistering an unregistered gateway") }
        if let moved = registryRemove(.gateways, at: gateway.registryIndex, expected: address) {
            guard var record = state.read(GatewayRecord.self, StateKey.gateway(moved)) else { preconditionFailure("registry member without record") }
            record.registryIndex = gateway.registryIndex
            state.write(StateKey.gateway(moved), record)
        }
        state.delete(StateKey.gateway(address))
    }

    mutating func unjail(_ sender: PublicKey) throws(CallError) {
        guard var validator = state.read(ValidatorRecord.self, StateKey.validator(sender)) else {
            throw CallError(.notValidator, "account has never registered as a validator")
        }
        guard !validator.tombstoned else { throw CallError(.tombstoned, "this validator double-signed and is jailed for good") }
        guard validator.jailed else { throw CallError(.notJailed, "validator is not jailed") }
        guard now >= validator.jailedUntilMilliseconds else {
            throw CallError(.jailNotExpired, "jailed until block time \(blockTime(validator.jailedUntilMilliseconds)); it is now \(blockTime(now))")
        }
        let bonded = stake(sender).bonded
        guard bonded >= parameters.staking.minValidatorStake else {
            throw CallError(.belowMinimumStake, "stake \(bonded) is below the minimum \(parameters.staking.minValidatorStake); bond more first")
        }
        validator.jailed = false
        state.write(StateKey.validator(sender), validator)
        pending.validatorSetDirty = true
    }
}

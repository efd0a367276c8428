import KCCodec
import KCCrypto
import KCTypes

// The user calls. Each either succeeds or throws a CallError before the caller undoes its
// writes; specs/runtime.md lists each call's checks, effects and error codes in this order.
extension BlockExecutor {
    // MARK: money and stake

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

    mutating func transfer(from sender: PublicKey, to recipient: PublicKey, amount: Amount) throws(CallError) {
        guard amount > .zero else { throw CallError(.invalidAmount, "transfer amount must be positive") }
        try debit(sender, amount, for: "transfer")
        var destination = account(recipient)
        guard let credited = destination.balance.adding(amount) else { throw CallError(.overflow, "recipient balance would overflow") }
        destination.balance = credited
        state.write(StateKey.account(recipient), destination)
    }

    mutating func bond(_ sender: PublicKey, _ amount: Amount) throws(CallError) {
        guard amount > .zero else { throw CallError(.invalidAmount, "bond amount must be positive") }
        try debit(sender, amount, for: "bond")
        var record = stake(sender)
        record.bonded = plus(record.bonded, amount)
        if record.isGateway { global.gatewayStake = plus(global.gatewayStake, amount) }
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
        let validators = registry(StateKey.validatorRegistry)
        let isRegisteredValidator = SortedKeys.contains(validators.keys, sender)
        if remaining > .zero {
            // A role may not be kept on less than its minimum: unbond all to leave it.
            if record.isGateway && remaining < parameters.staking.minGatewayStake {
                throw CallError(.belowMinimumStake, "remaining stake \(remaining) would be below the minimum gateway stake \(parameters.staking.minGatewayStake); unbond everything to stop being a gateway")
            }
            if isRegisteredValidator && remaining < parameters.staking.minValidatorStake {
                throw CallError(.belowMinimumStake, "remaining stake \(remaining) would be below the minimum validator stake \(parameters.staking.minValidatorStake); unbond everything to stop validating")
            }
        }
        if record.isGateway { global.gatewayStake = minus(global.gatewayStake, amount) }
        record.bonded = remaining
        record.unbonding.append(UnbondingEntry(amount: amount,
                                               completionTimeMilliseconds: now &+ parameters.staking.unbondingPeriodMilliseconds,
                                               creationHeight: height))
        if remaining == .zero {
            if record.isGateway {
                record.isGateway = false
                var gateways = registry(StateKey.gatewayRegistry)
                SortedKeys.remove(&gateways.keys, sender)
                state.write(StateKey.gatewayRegistry, gateways)
                state.delete(StateKey.gateway(sender))
            }
            if isRegisteredValidator {
                var list = validators
                SortedKeys.remove(&list.keys, sender)
                state.write(StateKey.validatorRegistry, list)
                pending.validatorSetDirty = true
            }
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
            throw CallError(.nothingToWithdraw, next.map { "no unbonding entry has matured; the next matures at block time \($0)" }
                                                ?? "there is nothing unbonding")
        }
        record.unbonding = kept
        state.write(StateKey.stake(sender), record)
        var destination = account(sender)
        destination.balance = plus(destination.balance, matured)
        state.write(StateKey.account(sender), destination)
    }

    // MARK: roles

    mutating func registerValidator(_ sender: PublicKey, _ consensusKey: PublicKey) throws(CallError) {
        var record = stake(sender)
        var validators = registry(StateKey.validatorRegistry)
        if SortedKeys.contains(validators.keys, sender) {
            throw CallError(.alreadyValidator, "account is already a registered validator")
        }
        if let existing = record.consensusKey, existing != consensusKey {
            throw CallError(.alreadyValidator, "account registered consensus key \(existing.hex) before; a validator's key cannot change")
        }
        guard record.bonded >= parameters.staking.minValidatorStake else {
            throw CallError(.belowMinimumStake, "stake \(record.bonded) is below the minimum \(parameters.staking.minValidatorStake)")
        }
        if let owner = state.read(PublicKey.self, StateKey.consensusKey(consensusKey)), owner != sender {
            throw CallError(.consensusKeyInUse, "consensus key \(consensusKey.hex) belongs to another validator")
        }
        if state.read(ValidatorRecord.self, StateKey.validator(sender))?.tombstoned == true {
            throw CallError(.tombstoned, "this validator double-signed and is jailed for good")
        }
        if record.consensusKey == nil {
            record.consensusKey = consensusKey
            state.write(StateKey.stake(sender), record)
            state.write(StateKey.validator(sender), ValidatorRecord(consensusKey: consensusKey, windowLength: parameters.slashing.signedBlocksWindow))
            state.write(StateKey.consensusKey(consensusKey), sender)
        }
        SortedKeys.insert(&validators.keys, sender)
        state.write(StateKey.validatorRegistry, validators)
    }

    mutating func registerGateway(_ sender: PublicKey) throws(CallError) {
        var record = stake(sender)
        guard !record.isGateway else { throw CallError(.alreadyGateway, "account is already a registered gateway") }
        guard record.bonded >= parameters.staking.minGatewayStake else {
            throw CallError(.belowMinimumStake, "stake \(record.bonded) is below the minimum \(parameters.staking.minGatewayStake)")
        }
        record.isGateway = true
        state.write(StateKey.stake(sender), record)
        var gateways = registry(StateKey.gatewayRegistry)
        SortedKeys.insert(&gateways.keys, sender)
        state.write(StateKey.gatewayRegistry, gateways)
        state.write(StateKey.gateway(sender), GatewayRecord())
        global.gatewayStake = plus(global.gatewayStake, record.bonded)
    }

    mutating func unjail(_ sender: PublicKey) throws(CallError) {
        guard var validator = state.read(ValidatorRecord.self, StateKey.validator(sender)) else {
            throw CallError(.notValidator, "account has never registered as a validator")
        }
        guard !validator.tombstoned else { throw CallError(.tombstoned, "this validator double-signed and is jailed for good") }
        guard validator.jailed else { throw CallError(.notJailed, "validator is not jailed") }
        guard now >= validator.jailedUntilMilliseconds else {
            throw CallError(.jailNotExpired, "jailed until block time \(validator.jailedUntilMilliseconds); it is now \(now)")
        }
        let bonded = stake(sender).bonded
        guard bonded >= parameters.staking.minValidatorStake else {
            throw CallError(.belowMinimumStake, "stake \(bonded) is below the minimum \(parameters.staking.minValidatorStake); bond more first")
        }
        validator.jailed = false
        state.write(StateKey.validator(sender), validator)
        pending.validatorSetDirty = true
    }

    // MARK: events

    func requireGateway(_ sender: PublicKey) throws(CallError) -> Amount {
        let record = stake(sender)
        guard record.isGateway else { throw CallError(.notGateway, "account is not a registered gateway") }
        return record.bonded
    }

    mutating func proposeEvent(_ sender: PublicKey, nonce: UInt64, parents: [Hash256], arTxID: ArTxID,
                               contentHash: Hash256, kind: String) throws(CallError) {
        _ = try requireGateway(sender)
        let limits = parameters.events
        guard parents.count <= Int(limits.maxParents) else {
            throw CallError(.tooManyParents, "\(parents.count) parents exceed the limit of \(limits.maxParents)")
        }
        let kindBytes = Array(kind.utf8)
        guard !kindBytes.isEmpty, kindBytes.count <= Int(limits.maxKindBytes),
              kindBytes.allSatisfy({ $0 >= 0x21 && $0 <= 0x7e }) else {
            throw CallError(.invalidKind, "kind must be 1 to \(limits.maxKindBytes) printable ASCII characters without spaces")
        }
        var seen = Set<Hash256>()
        for parent in parents {
            guard seen.insert(parent).inserted else { throw CallError(.duplicateParent, "parent \(parent.hex) is listed twice") }
            guard let record = event(parent) else { throw CallError(.unknownParent, "parent \(parent.hex) is not on chain") }
            guard record.status != .rejected else { throw CallError(.rejectedParent, "parent \(parent.hex) was rejected") }
        }
        let header = EventHeader(author: sender, nonce: nonce, height: height, parents: parents, arTxID: arTxID,
                                 contentHash: contentHash, kind: kind)
        let id = header.id
        guard event(id) == nil else { throw CallError(.eventExists, "event \(id.hex) already exists") }
        state.write(StateKey.event(id), EventRecord(header: header, proposedAtMilliseconds: now))
        push(.attestation, id)
        pending.eventChanges.append(EventStatusChange(eventID: id, from: nil, to: .pending, height: height))
        pending.eventsByAuthor.append((sender, id))
        pending.indexWrites.append((EventIndexKey.byArTxID(arTxID, event: id), []))
        for parent in parents { pending.indexWrites.append((EventIndexKey.child(parent: parent, child: id), [])) }
        pending.eventsByKind.append((kind, id))
    }

    /// Votes on events that are no longer open (decided or past their deadline earlier in the
    /// chain) are skipped rather than failing the batch: attesters race each other, and one
    /// late verdict must not void the rest. Structural mistakes fail the whole call.
    mutating func attest(_ sender: PublicKey, _ votes: [AttestationVote]) throws(CallError) {
        let weight = try requireGateway(sender)
        guard !votes.isEmpty else { throw CallError(.emptyAttestation, "an attestation needs at least one verdict") }
        var counted: UInt64 = 0
        for vote in votes {
            guard var record = event(vote.eventID) else { throw CallError(.unknownEvent, "event \(vote.eventID.hex) is not on chain") }
            guard record.header.author != sender else {
                throw CallError(.ownEvent, "a gateway may not attest its own event \(vote.eventID.hex)")
            }
            guard !record.hasVoted(sender) else {
                throw CallError(.alreadyVoted, "this gateway already attested event \(vote.eventID.hex)")
            }
            let deadline = record.proposedAtMilliseconds &+ parameters.events.attestationPeriodMilliseconds
            guard record.status == .pending && now < deadline else { continue }
            counted += 1
            switch vote.verdict {
            case .valid:
                record.validStake = plus(record.validStake, weight)
                SortedKeys.insert(&record.validVoters, sender)
            case .invalid:
                record.invalidStake = plus(record.invalidStake, weight)
                SortedKeys.insert(&record.invalidVoters, sender)
            }
            try tally(vote.eventID, &record)
            state.write(StateKey.event(vote.eventID), record)
        }
        var gateway = state.read(GatewayRecord.self, StateKey.gateway(sender)) ?? GatewayRecord()
        gateway.votesThisEpoch += counted
        state.write(StateKey.gateway(sender), gateway)
    }

    /// Accepted once valid stake exceeds 2/3 of active gateway stake; rejected once invalid
    /// stake exceeds 1/3. Compared as 3·valid > 2·total in full width: no rounding.
    mutating func tally(_ id: Hash256, _ record: inout EventRecord) throws(CallError) {
        if Self.exceeds(record.validStake, numerator: 2, of: global.gatewayStake) {
            moveEvent(id, &record, to: .accepted, inCall: true)
            push(.challenge, id)
        } else if Self.exceeds(record.invalidStake, numerator: 1, of: global.gatewayStake) {
            moveEvent(id, &record, to: .rejected, inCall: true)
        }
    }

    /// `part > numerator/3 · total`, exactly.
    static func exceeds(_ part: Amount, numerator: UInt128, of total: Amount) -> Bool {
        let left = part.units.multipliedFullWidth(by: 3)
        let right = total.units.multipliedFullWidth(by: numerator)
        return left.high != right.high ? left.high > right.high : left.low > right.low
    }

    mutating func dispute(_ sender: PublicKey, eventID: Hash256, bond: Amount, reason: ArTxID) throws(CallError) {
        guard var record = event(eventID) else { throw CallError(.unknownEvent, "event \(eventID.hex) is not on chain") }
        let closes = record.acceptedAtMilliseconds &+ parameters.events.challengeWindowMilliseconds
        guard record.status == .accepted && now < closes else {
            let detail: String
            switch record.status {
            case .accepted: detail = "its challenge window closed at block time \(closes)"
            case .finalized where record.acceptedAtMilliseconds != 0:
                detail = "its challenge window closed at block time \(closes); final since height \(record.statusChangedAtHeight)"
            default: detail = "it is \(record.status.name)"
            }
            throw CallError(.notInChallengeWindow, "event \(eventID.hex) is not in its challenge window (\(detail))")
        }
        guard bond >= parameters.events.minDisputeBond else {
            throw CallError(.bondTooSmall, "bond \(bond) is below the minimum dispute bond \(parameters.events.minDisputeBond)")
        }
        try debit(sender, bond, for: "dispute bond")
        global.disputeEscrow = plus(global.disputeEscrow, bond)
        let disputeID = DisputeRecord.id(forEvent: eventID)
        state.write(StateKey.dispute(disputeID), DisputeRecord(eventID: eventID, disputer: sender, bond: bond, reason: reason,
                                                               openedAtMilliseconds: now, openedAtHeight: height))
        record.disputeID = disputeID
        moveEvent(eventID, &record, to: .disputed, inCall: true)
        state.write(StateKey.event(eventID), record)
        push(.revote, disputeID)
    }

    mutating func voteDispute(_ sender: PublicKey, disputeID: Hash256, uphold: Bool) throws(CallError) {
        guard var dispute = state.read(DisputeRecord.self, StateKey.dispute(disputeID)) else {
            throw CallError(.unknownDispute, "dispute \(disputeID.hex) does not exist")
        }
        let weight = try requireGateway(sender)
        let closes = dispute.openedAtMilliseconds &+ parameters.events.revotePeriodMilliseconds
        guard dispute.status == .open && now < closes else {
            throw CallError(.disputeClosed, "dispute \(disputeID.hex) is closed (\(dispute.status == .open ? "re-vote ended at block time \(closes)" : dispute.status.name))")
        }
        guard SortedKeys.insert(&dispute.voters, sender) else {
            throw CallError(.alreadyVoted, "this gateway already voted on dispute \(disputeID.hex)")
        }
        if uphold { dispute.upholdStake = plus(dispute.upholdStake, weight) } else { dispute.rejectStake = plus(dispute.rejectStake, weight) }
        var gateway = state.read(GatewayRecord.self, StateKey.gateway(sender)) ?? GatewayRecord()
        gateway.votesThisEpoch += 1
        state.write(StateKey.gateway(sender), gateway)
        if Self.exceeds(dispute.upholdStake, numerator: 2, of: global.gatewayStake) {
            resolveUpheld(disputeID, &dispute, inCall: true)
        }
        state.write(StateKey.dispute(disputeID), dispute)
    }

    /// An upheld dispute: the event is rejected, every gateway that attested it valid loses
    /// `dispute_slash_bps`, the disputer gets the bond back plus `disputer_reward_bps` of what
    /// was slashed, and the rest of the slash is burned.
    mutating func resolveUpheld(_ disputeID: Hash256, _ dispute: inout DisputeRecord, inCall: Bool) {
        guard var record = event(dispute.eventID) else { preconditionFailure("dispute of a missing event") }
        var slashed = Amount.zero
        for voter in record.validVoters {
            let taken = slash(voter, basisPoints: parameters.slashing.disputeSlashBasisPoints,
                              infractionHeight: record.header.height, reason: .lostDispute, inCall: inCall)
            slashed = plus(slashed, taken)
        }
        let reward = slashed.fraction(basisPoints: parameters.events.disputerRewardBasisPoints)
        global.burned = plus(global.burned, minus(slashed, reward))
        global.disputeEscrow = minus(global.disputeEscrow, dispute.bond)
        var disputer = account(dispute.disputer)
        disputer.balance = plus(disputer.balance, plus(dispute.bond, reward))
        state.write(StateKey.account(dispute.disputer), disputer)
        dispute.status = .upheld
        dispute.slashedTotal = slashed
        dispute.disputerReward = reward
        moveEvent(dispute.eventID, &record, to: .rejected, inCall: inCall)
        state.write(StateKey.event(dispute.eventID), record)
    }
}

import KCCodec
import KCCrypto
import KCTypes

// What the runtime does around a block's transactions: downtime accounting and evidence
// before them; rewards, deadlines, epoch end and validator-set rotation after.
extension BlockExecutor {
    // MARK: begin block

    /// Records, for every validator of the set that signed the previous height, whether its
    /// precommit is in this block's last commit; jails and slashes those below `min_signed`.
    mutating func beginBlock() {
        guard height > 1 else { return }  // height 1 has no previous block to have signed
        let sets = state.read(ValidatorSets.self, StateKey.validatorSets)!
        let signers = Set(context.lastCommitSigners)
        let window = parameters.slashing.signedBlocksWindow
        let signedShare = UInt128(window) * UInt128(parameters.slashing.minSignedBasisPoints) / 10_000
        let maxMissed = UInt64(UInt128(window) - signedShare)
        for entry in sets.previous {
            guard var record = state.read(ValidatorRecord.self, StateKey.validator(entry.address)) else { continue }
            if record.jailed || record.tombstoned { continue }
            let signed = signers.contains(entry.consensusKey)
            let position = Int(record.windowCursor % window)
            let byte = position / 8, mask = UInt8(1) << UInt8(position % 8)
            let wasMissed = record.missedBits[byte] & mask != 0
            if wasMissed { record.missedCount -= 1 }  // the bit being overwritten leaves the window
            if signed {
                record.missedBits[byte] &= ~mask
                record.signedThisEpoch += 1
            } else {
                record.missedBits[byte] |= mask
                record.missedCount += 1
            }
            record.windowCursor = (record.windowCursor + 1) % window
            if record.windowFilled < window { record.windowFilled += 1 }
            // Jailing removes a validator that is not signing, so that the others keep a quorum:
            // if the signers of the previous block are a quorum of the set and this validator is
            // not among them, they are still a quorum of the set without it. A validator that
            // signed the previous block is back, and removing it (by a jail, or by a slash that
            // takes it below the minimum stake) could cost the others their quorum; a validator
            // jailed just after it caught up, with another one down, halted a network. So the
            // penalty waits for a block the validator misses while still over the threshold,
            // and lapses if it stays online until enough misses leave the window.
            if !signed && record.windowFilled >= window && record.missedCount > maxMissed {
                // One infraction, one slash: the window restarts empty after the jail.
                // The stake that backed the power it held at the missed height.
                let taken = slash(entry.address, target: Self.stakeBehind(power: entry.power).fraction(basisPoints: parameters.slashing.downtimeSlashBasisPoints),
                                  reason: .downtime, inCall: false)
                global.burned = plus(global.burned, taken)
                record.jailed = true
                record.jailedUntilMilliseconds = now &+ parameters.slashing.downtimeJailMilliseconds
                record.missedBits = [UInt8](repeating: 0, count: record.missedBits.count)
                record.missedCount = 0
                record.windowFilled = 0
                record.windowCursor = 0
                effects.validatorSetDirty = true
            }
            state.write(StateKey.validator(entry.address), record)
        }
    }

    /// Double-sign evidence: slash, tombstone, once per validator (`Runtime.checkEvidence`).
    /// Evidence that is not admissible makes the whole block invalid, except settled evidence
    /// (a tombstoned validator, or evidence processed before), which is ignored.
    mutating func processEvidence() throws(BlockError) {
        for (index, evidence) in context.evidence.enumerated() {
            let address: PublicKey, power: UInt64
            switch runtime.checkEvidence(evidence, height: height, timeMilliseconds: now, in: state) {
            case .admissible(let validator, let signedPower):
                address = validator
                power = signedPower
            case .settled:
                ignoredEvidence += 1
                continue
            case .notYet:
                throw .invalidEvidence(index: index, reason: "height \(evidence.height) is not below the block height \(height)")
            case .expired(let reason), .invalid(let reason):
                throw .invalidEvidence(index: index, reason: reason)
            }
            guard var record = state.read(ValidatorRecord.self, StateKey.validator(address)) else {
                preconditionFailure("a validator-set member has no validator record")
            }
            // The stake that backed the power it signed with, however much was unbonded since.
            let taken = slash(address, target: Self.stakeBehind(power: power).fraction(basisPoints: parameters.slashing.doubleSignSlashBasisPoints),
                              reason: .doubleSign, inCall: false)
            global.burned = plus(global.burned, taken)
            record.tombstoned = true
            record.jailed = true
            record.jailedUntilMilliseconds = .max
            state.write(StateKey.validator(address), record)
            state.write(StateKey.evidence(evidence.hash), height)
            effects.validatorSetDirty = true
        }
    }

    /// Records which set signs this height and its time, for evidence about it later.
    mutating func recordHeight() {
        let sets = state.read(ValidatorSets.self, StateKey.validatorSets)!
        state.write(StateKey.heightRecord(height), HeightRecord(validatorSetSince: sets.currentSince, timeMilliseconds: now))
    }

    /// Drops the history that evidence in the next block can no longer name: the record of
    /// the height leaving the window, and its validator set once no kept height names it.
    mutating func pruneHeightHistory() {
        let window = parameters.slashing.maxEvidenceAgeBlocks
        // The next block (height + 1) accepts evidence from height + 1 - window on.
        guard height >= window else { return }
        let leaving = height - window
        guard leaving >= 1, let record = state.read(HeightRecord.self, StateKey.heightRecord(leaving)) else { return }
        state.delete(StateKey.heightRecord(leaving))
        guard let next = state.read(HeightRecord.self, StateKey.heightRecord(leaving + 1)) else {
            preconditionFailure("height \(leaving + 1) has no history record")
        }
        if next.validatorSetSince != record.validatorSetSince {
            state.delete(StateKey.validatorSet(since: record.validatorSetSince))
        }
    }

    // MARK: end block

    mutating func endBlock() {
        let reward = parameters.rewards.blockReward
        global.rewardPot = plus(global.rewardPot, reward)
        global.minted = plus(global.minted, reward)

        // Events decided before their deadline leave their entries before the deadline pops.
        pruneAttestationQueue()
        expirePendingEvents()
        finalizeUnchallengedEvents()
        closeDisputes()
        // Children waiting on events that became final in this block, then the reward weight
        // of every event decided in it.
        processWakeups()
        processCredits()
        // After the due entries are gone: this block's pushes are due `period` later.
        flushQueuePushes()

        let epochEnds = height % parameters.staking.epochLengthBlocks == 0
        if epochEnds {
            distributeRewards()
            closeEpoch()
        }
        let stored = state.read(ValidatorSets.self, StateKey.validatorSets)!
        var sets = stored
        if epochEnds || effects.validatorSetDirty {
            let computed = computeValidatorSet()
            let latest = sets.scheduled.last?.validators ?? sets.current
            // An empty set would halt the chain: keep the old one and let operators react.
            if !computed.isEmpty && computed != latest {
                let effective = height + parameters.staking.validatorSetChangeDelayBlocks
                let scheduled = ScheduledValidatorSet(effectiveHeight: effective, validators: computed)
                sets.scheduled.removeAll { $0.effectiveHeight >= effective }
                sets.scheduled.append(scheduled)
                scheduledThisBlock = scheduled
            }
        }
        // Rotate: the set that signed this height becomes `previous`; the next height's set
        // becomes `current`.
        sets.previous = sets.current
        if let next = sets.scheduled.first, next.effectiveHeight == height + 1 {
            lockLostPower(from: sets.current, to: next.validators)
            sets.current = next.validators
            sets.currentSince = height + 1
            sets.scheduled.removeFirst()
            state.write(StateKey.validatorSet(since: height + 1), HistoricValidatorSet(validators: next.validators))
        }
        precondition(sets.scheduled.allSatisfy { $0.effectiveHeight > height + 1 }, "a scheduled validator set was skipped")
        // Most blocks change nothing here (previous and current are the same set): rewriting
        // the same bytes would cost an encoding, a trie path and a store write for no change.
        if sets != stored { state.write(StateKey.validatorSets, sets) }
        pruneHeightHistory()
        retireEpochs()
    }

    /// A validator whose power drops at this rotation signed this block with more power than
    /// its stake now backs: its stake stays until evidence about this block has expired.
    mutating func lockLostPower(from outgoing: [ValidatorSetEntry], to incoming: [ValidatorSetEntry]) {
        var powerNext: [PublicKey: UInt64] = [:]
        for entry in incoming { powerNext[entry.address] = entry.power }
        let until = now.addingSaturating(parameters.slashing.maxEvidenceAgeMilliseconds)
        for entry in outgoing where (powerNext[entry.address] ?? 0) < entry.power {
            lock(entry.address, until: until)
        }
    }

    /// Pops the entries whose deadline (push time + `period`) has come. Entries are pushed in
    /// block-time order and every id of a queue has the same period, so the due ones are
    /// always at the head. Returns their ids in push order.
    mutating func popDue(_ queue: StateKey.Queue, period: UInt64) -> [Hash256] {
        var bounds = queueBounds(queue)
        var due: [Hash256] = []
        while !bounds.isEmpty {
            let key = StateKey.queueEntry(queue, bounds.head)
            guard let entry = state.read(QueueEntry.self, key) else { preconditionFailure("queue entry missing") }
            guard entry.timeMilliseconds &+ period <= now else { break }
            due += entry.ids
            state.delete(key)
            bounds.head += 1
        }
        setQueueBounds(queue, bounds)
        return due
    }

    /// Pending events whose attestation deadline passed expire. The queue holds only pending
    /// events: those decided earlier left their entries first (`pruneAttestationQueue`).
    mutating func expirePendingEvents() {
        for id in popDue(.attestation, period: parameters.events.attestationPeriodMilliseconds) {
            guard var record = event(id) else { preconditionFailure("queued event \(id.hex) is missing") }
            if runtime.brokenRule == .decidedEventsStayQueued && record.status != .pending { continue }
            precondition(record.status == .pending, "event \(id.hex) is \(record.status.name) but still in the attestation queue")
            moveEvent(id, &record, to: .expired, resolution: .deadline, inCall: false)
            state.write(StateKey.event(id), record)
        }
    }

    /// Accepted events whose challenge window passed are settled (final, or waiting for a
    /// parent); one under dispute is settled when its dispute fails.
    mutating func finalizeUnchallengedEvents() {
        for id in popDue(.challenge, period: parameters.events.challengeWindowMilliseconds) {
            guard var record = event(id), record.status == .accepted, record.waitingOn == nil else { continue }
            settle(id, &record, inCall: false)
        }
    }

    /// Epoch end: `operators_share_bps` of the pot is shared by two pools. The gateway pool
    /// (`gateway_share_bps` of it) goes to gateways in proportion to the weight of their votes
    /// on the winning side of events decided this epoch; the validator pool (the rest) to
    /// validators in proportion to bonded stake (whole ACTI) × blocks signed this epoch. Each
    /// share is rounded down; the treasury receives the rest of the pot, so it is emptied
    /// exactly, and a pool nobody earned goes to the treasury whole.
    mutating func distributeRewards() {
        let pot = global.rewardPot
        let operatorsPot = pot.fraction(basisPoints: parameters.rewards.operatorsShareBasisPoints)
        let gatewayPool = operatorsPot.fraction(basisPoints: parameters.rewards.gatewayShareBasisPoints)
        let validatorPool = minus(operatorsPot, gatewayPool)

        var validatorWeights: [(PublicKey, UInt128)] = []
        for address in registryMembers(.validators) {
            guard var validator = state.read(ValidatorRecord.self, StateKey.validator(address)) else { continue }
            let signed = validator.signedThisEpoch
            if signed != 0 {
                validator.signedThisEpoch = 0
                state.write(StateKey.validator(address), validator)
            }
            let wholeStake = stake(address).bonded.units / Amount.unitsPerACTI
            let (product, overflow) = wholeStake.multipliedReportingOverflow(by: UInt128(signed))
            validatorWeights.append((address, overflow ? .max : product))
        }
        var gatewayWeights: [(PublicKey, UInt128)] = []
        for address in registryMembers(.gateways) {
            guard var gateway = state.read(GatewayRecord.self, StateKey.gateway(address)) else { continue }
            let weight = gateway.rewardWeightThisEpoch
            if weight != 0 || gateway.winningVotesThisEpoch != 0 {
                gateway.rewardWeightThisEpoch = 0
                gateway.winningVotesThisEpoch = 0
                state.write(StateKey.gateway(address), gateway)
            }
            gatewayWeights.append((address, weight))
        }
        let paid = plus(payPool(validatorPool, validatorWeights), payPool(gatewayPool, gatewayWeights))
        precondition(paid <= operatorsPot, "rewards paid exceed the operators' share")
        global.treasury = plus(global.treasury, minus(pot, paid))
        global.rewardPot = .zero
    }

    /// Pays `floor(pool × weight / Σ weight)` to each; returns the total paid (zero if Σ weight = 0).
    mutating func payPool(_ pool: Amount, _ weights: [(PublicKey, UInt128)]) -> Amount {
        var weights = weights
        var total: UInt128 = 0
        // A sum past 2^128 (unreachable with any real supply) is never a trap: every weight is
        // scaled down alike until the sum fits, so the shares still sum to at most the pool.
        while true {
            var overflowed = false
            total = 0
            for (_, weight) in weights {
                let (sum, overflow) = total.addingReportingOverflow(weight)
                if overflow { overflowed = true; break }
                total = sum
            }
            if !overflowed { break }
            weights = weights.map { ($0.0, $0.1 >> 32) }
        }
        guard total > 0 else { return .zero }
        var paid = Amount.zero
        for (address, weight) in weights where weight > 0 {
            guard let share = pool.multiplied(by: weight, dividedBy: total) else { preconditionFailure("a reward share cannot exceed its pool") }
            credit(address, share)
            paid = plus(paid, share)
        }
        precondition(paid <= pool, "a pool paid more than it holds")
        return paid
    }

    /// The top `max_validators` registered validators by bonded stake that are neither jailed
    /// nor tombstoned and hold the minimum stake; ties broken by consensus key. Power is
    /// bonded stake in whole ACTI. Returned sorted by consensus key.
    func computeValidatorSet() -> [ValidatorSetEntry] {
        var candidates: [ValidatorSetEntry] = []
        for address in registryMembers(.validators) {
            guard let validator = state.read(ValidatorRecord.self, StateKey.validator(address)),
                  !validator.jailed, !validator.tombstoned else { continue }
            let bonded = stake(address).bonded
            guard bonded >= parameters.staking.minValidatorStake else { continue }
            let whole = bonded.units / Amount.unitsPerACTI
            let power = whole > UInt128(UInt64.max) ? UInt64.max : UInt64(whole)
            guard power > 0 else { continue }
            candidates.append(ValidatorSetEntry(consensusKey: validator.consensusKey, address: address, power: power))
        }
        candidates.sort { $0.power != $1.power ? $0.power > $1.power : $0.consensusKey < $1.consensusKey }
        return candidates.prefix(Int(parameters.staking.maxValidators)).sorted { $0.consensusKey < $1.consensusKey }
    }
}

import KCCodec
import KCCrypto
import KCTypes

// Disputes (specs/runtime.md, "Disputes"; ADR 0011). A dispute accuses the event's author and
// every gateway that attested it valid; none of them judges it. The judges are the validators
// of the set that are not accused, if they hold more than half of the set's power; otherwise
// there is no independent judge and the dispute is a bond round: upheld unless someone
// defends the event with at least the dispute's bond. A failed dispute never closes the challenge window:
// another may follow inside it, each posting at least twice the largest bond before it.
extension BlockExecutor {
    func dispute(_ id: Hash256) -> DisputeRecord? { state.read(DisputeRecord.self, StateKey.dispute(id)) }

    mutating func openDispute(_ sender: PublicKey, eventID: Hash256, bond: Amount, reason: ArTxID) throws(CallError) {
        guard var record = event(eventID) else { throw CallError(.unknownEvent, "event \(eventID.hex) is not on chain") }
        let closes = record.challengeWindowCloses(parameters)
        guard record.status == .accepted && now < closes else {
            throw CallError(.notInChallengeWindow, "event \(eventID.hex) cannot be disputed: \(challengeState(record, closes: closes))")
        }
        guard record.disputeCount < EventRecord.maxDisputes else {
            throw CallError(.tooManyDisputes, "event \(eventID.hex) has had \(EventRecord.maxDisputes) disputes, the most one event can have")
        }
        let doubled = record.largestBond.adding(record.largestBond) ?? Amount(units: .max)
        let required = max(parameters.events.minDisputeBond, doubled)
        guard bond >= required else {
            let rule = record.largestBond > .zero ? "twice the largest bond of its earlier rounds (\(record.largestBond))" : "the minimum dispute bond"
            throw CallError(.bondTooSmall, "bond \(bond) is below \(required): \(rule)")
        }
        try debit(sender, bond, for: "dispute bond")
        global.disputeEscrow = plus(global.disputeEscrow, bond)
        let disputeID = DisputeRecord.id(forEvent: eventID, sequence: record.disputeCount)
        let (jury, setPower, eligible) = jury(for: eventID, record)
        let mode: DisputeMode = eligible.multipliedFullWidth(by: 2) > setPower.multipliedFullWidth(by: 1) ? .validators : .bonds
        let deadline = now.addingSaturating(parameters.events.revotePeriodMilliseconds)
        state.write(StateKey.dispute(disputeID),
                    DisputeRecord(eventID: eventID, sequence: record.disputeCount, disputer: sender, bond: bond, reason: reason,
                                  openedAtMilliseconds: now, openedAtHeight: height, deadlineMilliseconds: deadline,
                                  mode: mode, setPower: setPower, eligiblePower: eligible))
        if mode == .validators { state.write(StateKey.jury(disputeID), jury) }
        record.disputeCount += 1
        record.disputeID = disputeID
        record.largestBond = bond
        moveEvent(eventID, &record, to: .disputed, inCall: true)
        state.write(StateKey.event(eventID), record)
        push(.revote, disputeID)
    }

    /// Why an event is not open to a dispute, with the times that matter.
    func challengeState(_ record: EventRecord, closes: UInt64) -> String {
        switch record.status {
        case .pending: return "it is pending (not accepted yet); its attestation ends at block time \(blockTime(record.proposedAtMilliseconds.addingSaturating(parameters.events.attestationPeriodMilliseconds)))"
        case .disputed:
            let open = record.disputeID.flatMap { dispute($0) }
            let until = open.map { " until block time \(blockTime($0.deadlineMilliseconds))" } ?? ""
            return "dispute \(record.disputeID?.hex ?? "?") is open\(until); another may follow if it fails before the challenge window closes at block time \(blockTime(closes))"
        case .accepted: return "its challenge window closed at block time \(blockTime(closes)) (it is now \(blockTime(now)))"
        case .finalized: return "it is final since height \(record.statusChangedAtHeight); its challenge window closed at block time \(blockTime(closes))"
        case .rejected: return "it was rejected at height \(record.statusChangedAtHeight)"
        case .expired: return "it expired undecided at height \(record.statusChangedAtHeight)"
        }
    }

    /// The validators of the current set that the dispute does not accuse (not the author,
    /// no valid attestation), sorted by address, with the set's power and theirs.
    func jury(for eventID: Hash256, _ record: EventRecord) -> (JuryRecord, UInt128, UInt128) {
        guard let sets = state.read(ValidatorSets.self, StateKey.validatorSets) else { preconditionFailure("no validator sets") }
        var members: [JuryRecord.Member] = []
        var setPower: UInt128 = 0, eligible: UInt128 = 0
        for entry in sets.current {
            setPower += UInt128(entry.power)
            let accusedJudge = runtime.brokenRule == .accusedJudge
            if entry.address == record.header.author && !accusedJudge { continue }
            if let vote = record.vote(of: entry.address, event: eventID, stored: { state.read(EventVote.self, $0) }),
               vote.verdict == .valid, !accusedJudge { continue }
            members.append(JuryRecord.Member(address: entry.address, power: entry.power))
            eligible += UInt128(entry.power)
        }
        members.sort { $0.address < $1.address }
        return (JuryRecord(members: members), setPower, eligible)
    }

    mutating func voteDispute(_ sender: PublicKey, disputeID: Hash256, uphold: Bool) throws(CallError) {
        var record = try openDispute(disputeID)
        guard record.mode == .validators else {
            throw CallError(.notJuror, "dispute \(disputeID.hex) is a bond round (its unaccused validators hold too little power to judge): no vote decides it; it is upheld at block time \(blockTime(record.deadlineMilliseconds)) unless defended with at least its bond")
        }
        guard let jury = state.read(JuryRecord.self, StateKey.jury(disputeID)), let position = jury.index(of: sender) else {
            throw CallError(.notJuror, "this account is not on the jury of dispute \(disputeID.hex): the jury is the validators of the set when it opened that neither authored nor attested the event valid")
        }
        let voteKey = StateKey.disputeVote(disputeID, juror: UInt16(position))
        guard state.get(voteKey) == nil else {
            throw CallError(.alreadyVoted, "this validator already voted on dispute \(disputeID.hex)")
        }
        let power = jury.members[position].power
        state.write(voteKey, DisputeVote(uphold: uphold, power: power))
        if uphold { record.upholdPower += UInt128(power) } else { record.rejectPower += UInt128(power) }
        record.voterCount += 1
        lock(sender, until: record.deadlineMilliseconds)
        if Self.exceeds(record.upholdPower, numerator: 2, of: record.eligiblePower) {
            resolveUpheld(disputeID, &record, inCall: true)
        } else if !Self.exceeds(record.eligiblePower - record.rejectPower, numerator: 2, of: record.eligiblePower) {
            // What is left can no longer pass 2/3: the dispute fails now.
            resolveNotUpheld(disputeID, &record, inCall: true)
        }
        state.write(StateKey.dispute(disputeID), record)
    }

    mutating func defend(_ sender: PublicKey, disputeID: Hash256, bond: Amount) throws(CallError) {
        var record = try openDispute(disputeID)
        guard record.mode == .bonds else {
            throw CallError(.notBondRound, "dispute \(disputeID.hex) is judged by the validators' vote (unaccused power \(record.eligiblePower) of \(record.setPower)); a defence bond does not decide it")
        }
        guard bond >= record.bond else {
            throw CallError(.bondTooSmall, "defence bond \(bond) is below the dispute's bond \(record.bond)")
        }
        try debit(sender, bond, for: "defence bond")
        global.disputeEscrow = plus(global.disputeEscrow, bond)
        record.status = .defended
        record.defender = sender
        record.defenseBond = bond
        // The disputer lost this round: half its bond to the defender, half burned.
        let toDefender = record.bond.fraction(basisPoints: 5_000)
        global.disputeEscrow = minus(global.disputeEscrow, record.bond)
        global.burned = plus(global.burned, minus(record.bond, toDefender))
        credit(sender, toDefender)
        pending.slashes.append(SlashRecord(address: record.disputer, reason: .disputeBond, amount: record.bond, height: height))
        // Written before the event is settled: settling returns the defence bonds it finds.
        state.write(StateKey.dispute(disputeID), record)
        guard var event = event(record.eventID) else { preconditionFailure("dispute of a missing event") }
        event.defenseEscrow = plus(event.defenseEscrow, bond)
        event.largestBond = max(event.largestBond, bond)
        disputeFailed(record.eventID, &event, inCall: true)
    }

    /// The dispute `id`, which must exist and still be open.
    func openDispute(_ id: Hash256) throws(CallError) -> DisputeRecord {
        guard let record = dispute(id) else { throw CallError(.unknownDispute, "dispute \(id.hex) does not exist") }
        try requireOpen(id, record)
        return record
    }

    func requireOpen(_ id: Hash256, _ record: DisputeRecord) throws(CallError) {
        guard record.status == .open else {
            throw CallError(.disputeClosed, "dispute \(id.hex) is closed: \(record.status.name)")
        }
        guard now < record.deadlineMilliseconds else {
            throw CallError(.disputeClosed, "dispute \(id.hex) closed at block time \(blockTime(record.deadlineMilliseconds)) (it is now \(blockTime(now)))")
        }
    }

    /// Disputes whose re-vote ended: a jury that did not uphold fails the dispute; a bond
    /// round nobody defended is upheld.
    mutating func closeDisputes() {
        for id in popDue(.revote, period: parameters.events.revotePeriodMilliseconds) {
            guard var record = dispute(id), record.status == .open else { continue }
            switch record.mode {
            case .validators: resolveNotUpheld(id, &record, inCall: false)
            case .bonds: resolveUpheld(id, &record, inCall: false)
            }
            state.write(StateKey.dispute(id), record)
        }
    }

    /// The event is false: every accused is slashed `dispute_slash_bps` of the stake that backed
    /// its part (a voter's vote weight, the author's stake when it proposed); the disputer gets
    /// its bond back, `disputer_reward_bps` of the slash and half the forfeited defence bonds;
    /// the rest is burned; the event is rejected.
    mutating func resolveUpheld(_ disputeID: Hash256, _ record: inout DisputeRecord, inCall: Bool) {
        guard var event = event(record.eventID) else { preconditionFailure("dispute of a missing event") }
        let basisPoints = parameters.slashing.disputeSlashBasisPoints
        var slashed = Amount.zero
        for index in 0..<event.validCount {
            guard let entry = event.voter(.valid, at: index, event: record.eventID, stored: { state.read(VoterEntry.self, $0) }) else {
                preconditionFailure("voter entry \(index) of an event is missing")
            }
            slashed = plus(slashed, slash(entry.voter, target: entry.weight.fraction(basisPoints: basisPoints), reason: .lostDispute, inCall: inCall))
        }
        slashed = plus(slashed, slash(event.header.author, target: event.authorStake.fraction(basisPoints: basisPoints), reason: .lostDispute, inCall: inCall))
        let reward = slashed.fraction(basisPoints: parameters.events.disputerRewardBasisPoints)
        global.burned = plus(global.burned, minus(slashed, reward))
        global.disputeEscrow = minus(global.disputeEscrow, record.bond)
        let forfeit = forfeitDefenseBonds(&event, to: record.disputer)
        credit(record.disputer, plus(record.bond, reward))
        record.status = .upheld
        record.slashedTotal = slashed
        record.disputerReward = plus(reward, forfeit)
        moveEvent(record.eventID, &event, to: .rejected, resolution: .dispute, inCall: inCall)
        state.write(StateKey.event(record.eventID), event)
    }

    /// The jury did not uphold: the bond is burned and the event stands.
    mutating func resolveNotUpheld(_ disputeID: Hash256, _ record: inout DisputeRecord, inCall: Bool) {
        record.status = .notUpheld
        global.disputeEscrow = minus(global.disputeEscrow, record.bond)
        global.burned = plus(global.burned, record.bond)
        let entry = SlashRecord(address: record.disputer, reason: .disputeBond, amount: record.bond, height: height)
        if inCall { pending.slashes.append(entry) } else { effects.slashes.append(entry) }
        state.write(StateKey.dispute(disputeID), record)
        guard var event = event(record.eventID) else { preconditionFailure("dispute of a missing event") }
        disputeFailed(record.eventID, &event, inCall: inCall)
    }
}

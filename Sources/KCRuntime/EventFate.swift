import KCCodec
import KCCrypto
import KCTypes

// How an event reaches its final status (specs/runtime.md, "Event lifecycle"): every
// transition, finality after the challenge window and only once every parent is final, the
// waiting list of children whose parents are not final yet, the settlement of defence bonds,
// and the reward credit of the votes on the side that won.
extension BlockExecutor {
    mutating func moveEvent(_ id: Hash256, _ record: inout EventRecord, to status: EventStatus,
                            resolution: EventResolution = .none, inCall: Bool) {
        precondition(record.status.canMove(to: status), "illegal event transition \(record.status.name) -> \(status.name)")
        precondition(status.isFinal == (resolution != .none), "a final status needs a resolution, and only a final one")
        let change = EventStatusChange(eventID: id, from: record.status, to: status, height: height)
        // Decided before its deadline: its attestation entry lets it go (the deadline pops
        // the entry of an event that expires).
        let leavesQueue = record.status == .pending && resolution != .deadline && runtime.brokenRule != .decidedEventsStayQueued
        record.status = status
        record.resolution = resolution
        record.statusChangedAtMilliseconds = now
        record.statusChangedAtHeight = height
        if status == .accepted && record.acceptedAtMilliseconds == 0 { record.acceptedAtMilliseconds = now }
        var side: Verdict? = nil
        switch resolution {
        case .challengeWindow: side = .valid
        case .attestation, .dispute: side = .invalid
        case .none, .parent, .deadline: side = nil
        }
        // Only an event that children wait on has a waiting list to settle.
        let wakes = status.isFinal && record.hasWaitingChildren
        if inCall {
            pending.eventChanges.append(change)
            if wakes { pending.wakeups.append(id) }
            if let side { pending.credits.append((id, side)) }
            if leavesQueue { pending.leftPending.append((record.attestationEntry, id)) }
        } else {
            effects.eventChanges.append(change)
            if wakes { effects.wakeups.append(id) }
            if let side { effects.credits.append((id, side)) }
            if leavesQueue { effects.leftPending.append((record.attestationEntry, id)) }
        }
    }

    /// An accepted (or just undisputed) event whose challenge window has passed: final if
    /// every parent is final, rejected if a parent was rejected or expired, otherwise waiting
    /// for the first parent that is not final yet.
    mutating func settle(_ id: Hash256, _ record: inout EventRecord, inCall: Bool) {
        precondition(record.status == .accepted || record.status == .disputed, "settling a \(record.status.name) event")
        var undecided: (id: Hash256, record: EventRecord)? = nil
        for parent in record.header.parents where runtime.brokenRule != .childIgnoresParents {
            guard let parentRecord = event(parent) else { preconditionFailure("event \(id.hex) has a missing parent") }
            switch parentRecord.status {
            case .finalized: continue
            case .rejected, .expired:
                record.rejectedParent = parent
                moveEvent(id, &record, to: .rejected, resolution: .parent, inCall: inCall)
                returnDefenseBonds(&record)
                state.write(StateKey.event(id), record)
                return
            case .pending, .accepted, .disputed:
                if undecided == nil { undecided = (parent, parentRecord) }
            }
        }
        if let (parent, undecidedRecord) = undecided {
            var parentRecord = undecidedRecord
            if record.status == .disputed { moveEvent(id, &record, to: .accepted, inCall: inCall) }
            record.waitingOn = parent
            if parentRecord.hasWaitingChildren {
                record.nextWaiting = state.read(Hash256.self, StateKey.waiting(on: parent))
            } else {
                parentRecord.hasWaitingChildren = true
                state.write(StateKey.event(parent), parentRecord)
            }
            state.write(StateKey.waiting(on: parent), id)
            state.write(StateKey.event(id), record)
            return
        }
        moveEvent(id, &record, to: .finalized, resolution: .challengeWindow, inCall: inCall)
        returnDefenseBonds(&record)
        state.write(StateKey.event(id), record)
    }

    /// A dispute that did not uphold: the event goes back to `accepted` while its window is
    /// open (so further disputes stay possible), or is settled if the window has passed.
    mutating func disputeFailed(_ id: Hash256, _ record: inout EventRecord, inCall: Bool) {
        precondition(record.status == .disputed, "a dispute failed on a \(record.status.name) event")
        if now < record.challengeWindowCloses(parameters) && runtime.brokenRule != .disputeClosesWindow {
            moveEvent(id, &record, to: .accepted, inCall: inCall)
            state.write(StateKey.event(id), record)
        } else {
            settle(id, &record, inCall: inCall)
        }
    }

    /// Children waiting on events that became final in this block are settled again, and so
    /// on down the DAG until nothing changes. Runs at the end of the block.
    mutating func processWakeups() {
        var queue = effects.wakeups
        effects.wakeups.removeAll()
        var next = 0
        while next < queue.count {
            let parent = queue[next]
            next += 1
            let key = StateKey.waiting(on: parent)
            guard let head = state.read(Hash256.self, key) else { preconditionFailure("event \(parent.hex) has waiting children but no list") }
            state.delete(key)
            var child: Hash256? = head
            while let id = child {
                guard var record = event(id) else { preconditionFailure("a waiting event is missing") }
                precondition(record.waitingOn == parent, "event \(id.hex) is listed as waiting on the wrong parent")
                child = record.nextWaiting
                record.waitingOn = nil
                record.nextWaiting = nil
                settle(id, &record, inCall: false)
            }
            queue += effects.wakeups
            effects.wakeups.removeAll()
        }
    }

    /// Defence bonds of an event whose fate is final without an upheld dispute go back to
    /// their defenders.
    mutating func returnDefenseBonds(_ record: inout EventRecord) {
        guard record.defenseEscrow > .zero else { return }
        let eventID = record.header.id
        var returned = Amount.zero
        for sequence in 0..<record.disputeCount {
            guard let dispute = state.read(DisputeRecord.self, StateKey.dispute(DisputeRecord.id(forEvent: eventID, sequence: sequence))) else {
                preconditionFailure("dispute \(sequence) of an event is missing")
            }
            guard dispute.status == .defended, let defender = dispute.defender else { continue }
            credit(defender, dispute.defenseBond)
            returned = plus(returned, dispute.defenseBond)
        }
        precondition(returned == record.defenseEscrow, "defence bonds returned differ from the event's defence escrow")
        global.disputeEscrow = minus(global.disputeEscrow, returned)
        record.defenseEscrow = .zero
    }

    /// Defence bonds of an event found false by a later dispute: half to that disputer, half
    /// burned. Returns the disputer's part.
    mutating func forfeitDefenseBonds(_ record: inout EventRecord, to winner: PublicKey) -> Amount {
        let forfeited = record.defenseEscrow
        guard forfeited > .zero else { return .zero }
        let toWinner = forfeited.fraction(basisPoints: 5_000)
        global.disputeEscrow = minus(global.disputeEscrow, forfeited)
        global.burned = plus(global.burned, minus(forfeited, toWinner))
        credit(winner, toWinner)
        record.defenseEscrow = .zero
        return toWinner
    }

    /// Credits the reward weight of the votes on the winning side of every event decided in
    /// this block: each vote adds its weight in whole ACTI to its gateway's share of the
    /// gateway pool (specs/runtime.md, "Rewards"). Runs at the end of the block.
    mutating func processCredits() {
        guard !effects.credits.isEmpty else { return }
        var earned: [PublicKey: (votes: UInt64, weight: UInt128)] = [:]
        for (id, side) in effects.credits {
            guard let record = event(id) else { preconditionFailure("a decided event is missing") }
            let count = side == .valid ? record.validCount : record.invalidCount
            for index in 0..<count {
                guard let entry = record.voter(side, at: index, event: id, stored: { state.read(VoterEntry.self, $0) }) else {
                    preconditionFailure("voter entry \(index) of an event is missing")
                }
                let whole = entry.weight.units / Amount.unitsPerACTI
                let previous = earned[entry.voter] ?? (0, 0)
                let (weight, overflow) = previous.weight.addingReportingOverflow(whole)
                earned[entry.voter] = (previous.votes.addingSaturating(1), overflow ? .max : weight)
            }
        }
        effects.credits.removeAll()
        // Written in address order: the dictionary's order never reaches the state.
        for (address, credit) in earned.sorted(by: { $0.key < $1.key }) {
            guard var gateway = state.read(GatewayRecord.self, StateKey.gateway(address)) else { continue }  // left since
            gateway.winningVotesThisEpoch = gateway.winningVotesThisEpoch.addingSaturating(credit.votes)
            let (weight, overflow) = gateway.rewardWeightThisEpoch.addingReportingOverflow(credit.weight)
            gateway.rewardWeightThisEpoch = overflow ? .max : weight
            state.write(StateKey.gateway(address), gateway)
        }
    }
}

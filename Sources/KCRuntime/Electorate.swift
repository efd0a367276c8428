import KCCodec
import KCCrypto
import KCTypes

// The electorate of an event: the gateways and their stake when the epoch it was proposed in
// opened (specs/runtime.md, "Electorate"; ADR 0011). Nothing done afterwards changes who may
// vote on it or what a vote weighs, so a threshold is always a share of a fixed total.
//
// Snapshots are lazy: an account's history (`gwh/`) gets an entry only in an epoch in which
// its electoral stake changes, holding the stake it had when that epoch opened; the weight at
// epoch e is the first entry at or after e, or the current stake if it has not changed since.
extension BlockExecutor {
    /// `address`'s weight in the electorate of `epoch` (zero if it was not a gateway then).
    func electoralWeight(_ address: PublicKey, epoch: UInt64) -> Amount {
        precondition(epoch >= global.oldestLiveEpoch, "electorate of epoch \(epoch) is no longer kept")
        return state.electoralWeight(address, epoch: epoch)
    }

    /// Records `current` (the account's electoral stake before a change) as its weight at the
    /// opening of this epoch, if this is the epoch's first change. Entries of epochs no live
    /// event can use are dropped first. With the history full, a decrease goes unrecorded
    /// (older electorates then read a lower weight for this account: it can only weaken its
    /// own later votes, never raise a tally) and an increase is refused: returns false.
    mutating func noteElectoralChange(_ address: PublicKey, from current: Amount, increase: Bool) -> Bool {
        let key = StateKey.gatewayHistory(address)
        var history = state.read(GatewayHistory.self, key) ?? GatewayHistory()
        if let last = history.entries.last, last.epoch == global.epoch { return true }
        let live = global.oldestLiveEpoch
        let stale = history.entries.prefix { $0.epoch < live }.count
        history.entries.removeFirst(stale)
        guard history.entries.count < GatewayHistory.maxEntries else { return !increase }
        history.entries.append(GatewayHistory.Entry(epoch: global.epoch, weight: current))
        state.write(key, history)
        return true
    }

    /// Changes a gateway's bonded stake (the caller has checked the role) and the running total.
    mutating func changeElectoralStake(_ address: PublicKey, _ record: inout StakeRecord, to bonded: Amount) throws(CallError) {
        let before = record.electoralStake
        let increase = bonded > record.bonded
        guard noteElectoralChange(address, from: before, increase: increase) else {
            throw CallError(.electorateHistoryFull,
                            "this gateway's stake changed in \(GatewayHistory.maxEntries) epochs that live events still use; add stake after epoch \(global.oldestLiveEpoch) is no longer used")
        }
        global.gatewayStake = plus(minus(global.gatewayStake, before), bonded)
        record.bonded = bonded
    }

    // MARK: epochs

    /// Writes the record of the epoch opening now (genesis, or after an epoch-end block).
    mutating func openEpoch(_ number: UInt64, startHeight: UInt64) {
        state.write(StateKey.epoch(number), EpochRecord(gatewayTotal: global.gatewayStake, startHeight: startHeight))
    }

    /// Closes the running epoch at this block and opens the next.
    mutating func closeEpoch() {
        let key = StateKey.epoch(global.epoch)
        guard var record = state.read(EpochRecord.self, key) else { preconditionFailure("running epoch \(global.epoch) has no record") }
        record.endedAtMilliseconds = now
        state.write(key, record)
        global.epoch += 1
        openEpoch(global.epoch, startHeight: height + 1)
    }

    /// Forgets epochs whose electorate no event can use any more. Weights are looked up only
    /// by attestation votes (a dispute's jury, its slashes and the rewards use the weights
    /// stored with each vote), and an event of epoch e was proposed by the block that closed
    /// e at the latest, so its attestation ends by that block's time + the attestation period.
    mutating func retireEpochs() {
        let period = parameters.events.attestationPeriodMilliseconds
        while global.oldestLiveEpoch < global.epoch {
            let key = StateKey.epoch(global.oldestLiveEpoch)
            guard let record = state.read(EpochRecord.self, key) else { preconditionFailure("live epoch \(global.oldestLiveEpoch) has no record") }
            guard record.endedAtMilliseconds.addingSaturating(period) <= now else { break }
            state.delete(key)
            global.oldestLiveEpoch += 1
        }
    }

    func epochRecord(_ number: UInt64) -> EpochRecord {
        guard let record = state.read(EpochRecord.self, StateKey.epoch(number)) else {
            preconditionFailure("epoch \(number) has no record")
        }
        return record
    }
}

extension StateReading {
    /// `address`'s weight in the electorate of `epoch`, for an epoch still kept (at or after
    /// `oldest_live_epoch`): the first history entry at or after it, else the current stake.
    public func electoralWeight(_ address: PublicKey, epoch: UInt64) -> Amount {
        if let history = record(GatewayHistory.self, StateKey.gatewayHistory(address)),
           let weight = history.weight(atEpoch: epoch) {
            return weight
        }
        return (record(StakeRecord.self, StateKey.stake(address)) ?? StakeRecord()).electoralStake
    }
}

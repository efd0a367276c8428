import KCCodec
import KCCrypto
import KCTypes

// Proposing and attesting knowledge events (specs/runtime.md, "Calls"). An event's first
// votes are held in its record; later ones are a few small writes under their own keys
// (bounded state work whatever the number of voters). A vote weighs what the voter held when
// the event's epoch opened.
extension BlockExecutor {
    func requireGateway(_ sender: PublicKey) throws(CallError) -> Amount {
        let record = stake(sender)
        guard record.isGateway else { throw CallError(.notGateway, "account is not a registered gateway") }
        return record.bonded
    }

    mutating func proposeEvent(_ sender: PublicKey, nonce: UInt64, parents: [Hash256], arTxID: ArTxID,
                               contentHash: Hash256, kind: String) throws(CallError) {
        let authorStake = try requireGateway(sender)
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
        for parent in parents where !seen.insert(parent).inserted {
            throw CallError(.duplicateParent, "parent \(parent.hex) is listed twice")
        }
        for parent in parents {
            guard let record = event(parent) else { throw CallError(.unknownParent, "parent \(parent.hex) is not on chain") }
            guard record.status != .rejected else { throw CallError(.rejectedParent, "parent \(parent.hex) was rejected") }
            guard record.status != .expired else { throw CallError(.expiredParent, "parent \(parent.hex) expired undecided") }
        }
        let header = EventHeader(author: sender, nonce: nonce, height: height, parents: parents, arTxID: arTxID,
                                 contentHash: contentHash, kind: kind)
        let id = header.id
        // New by construction, so not looked up (a read of an absent key costs a store lookup
        // per event): the header holds the author and this transaction's nonce, which no other
        // transaction of that account can have (nonces only move up; accounts are never
        // deleted), so another event with this id needs a BLAKE2b collision. Checked in debug
        // builds, which every test runs.
        assert(event(id) == nil, "event \(id.hex) already exists")
        let electorate = epochRecord(global.epoch)
        let entry = push(.attestation, id)
        let record = EventRecord(header: header, proposedAtMilliseconds: now, electorateEpoch: global.epoch,
                                 electorateTotal: electorate.gatewayTotal, authorStake: authorStake, attestationEntry: entry)
        state.write(StateKey.event(id), record)
        // The author answers for its event with the stake it had: it stays until the event is settled.
        lock(sender, until: record.votesSettle(parameters))
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
        guard !votes.isEmpty else { throw CallError(.emptyAttestation, "an attestation needs at least one verdict") }
        var lockUntil: UInt64 = 0
        for vote in votes {
            let id = vote.eventID
            guard var record = event(id) else { throw CallError(.unknownEvent, "event \(id.hex) is not on chain") }
            guard record.header.author != sender else {
                throw CallError(.ownEvent, "a gateway may not attest its own event \(id.hex)")
            }
            guard record.vote(of: sender, event: id, stored: { state.read(EventVote.self, $0) }) == nil else {
                throw CallError(.alreadyVoted, "this gateway already attested event \(id.hex)")
            }
            let deadline = record.proposedAtMilliseconds.addingSaturating(parameters.events.attestationPeriodMilliseconds)
            guard record.status == .pending && now < deadline else { continue }
            let weight = electoralWeight(sender, epoch: record.electorateEpoch)
            guard weight > .zero else {
                throw CallError(.notInElectorate, "event \(id.hex) is decided by the gateways of epoch \(record.electorateEpoch), and this account had no gateway stake when that epoch opened")
            }
            let index: UInt32
            switch vote.verdict {
            case .valid:
                index = record.validCount
                precondition(index < UInt32.max, "voter count overflow")
                record.validCount += 1
                record.validWeight = plus(record.validWeight, weight)
            case .invalid:
                index = record.invalidCount
                precondition(index < UInt32.max, "voter count overflow")
                record.invalidCount += 1
                record.invalidWeight = plus(record.invalidWeight, weight)
            }
            // The first votes live in the record; later ones under their own keys (ADR 0019).
            if !record.inlineVotesFull {
                record.inlineVotes.append(InlineVote(voter: sender, verdict: vote.verdict, weight: weight))
            } else {
                state.write(StateKey.eventVote(id, sender), EventVote(verdict: vote.verdict, weight: weight, index: index))
                state.write(StateKey.voterEntry(id, vote.verdict, index), VoterEntry(voter: sender, weight: weight))
            }
            // Σ weights of distinct voters never exceeds the electorate's total.
            precondition(plus(record.validWeight, record.invalidWeight) <= record.electorateTotal || runtime.brokenRule != nil,
                         "tally exceeds the electorate")
            lockUntil = max(lockUntil, record.votesSettle(parameters))
            tally(id, &record)
            state.write(StateKey.event(id), record)
        }
        if lockUntil > 0 { lock(sender, until: lockUntil) }
    }

    /// Accepted once valid weight exceeds 2/3 of the electorate's total; rejected once invalid
    /// weight exceeds 1/3. Compared as 3·valid > 2·total in full width: no rounding.
    mutating func tally(_ id: Hash256, _ record: inout EventRecord) {
        let total = runtime.brokenRule == .tallyAgainstCurrentStake ? global.gatewayStake : record.electorateTotal
        if Self.exceeds(record.validWeight, numerator: 2, of: total) {
            moveEvent(id, &record, to: .accepted, inCall: true)
            push(.challenge, id)
        } else if Self.exceeds(record.invalidWeight, numerator: 1, of: total) {
            moveEvent(id, &record, to: .rejected, resolution: .attestation, inCall: true)
        }
    }

    /// `part > numerator/3 · total`, exactly.
    static func exceeds(_ part: Amount, numerator: UInt128, of total: Amount) -> Bool {
        exceeds(part.units, numerator: numerator, of: total.units)
    }

    static func exceeds(_ part: UInt128, numerator: UInt128, of total: UInt128) -> Bool {
        let left = part.multipliedFullWidth(by: 3)
        let right = total.multipliedFullWidth(by: numerator)
        return left.high != right.high ? left.high > right.high : left.low > right.low
    }
}

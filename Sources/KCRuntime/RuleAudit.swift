import KCCodec
import KCCrypto
import KCTypes

/// Whole-state checks of the knowledge-chain rules after a block, for tests, the property
/// tests and the simulator: slow (they read every entry), never part of block execution.
/// Each problem is a sentence; an empty list means the state and the block's outcome keep
/// every invariant of specs/runtime.md that can be checked from them.
extension ChainState {
    ///
    /// `changed`: the keys the block wrote, when the caller knows them (the entries it did not
    /// write were checked when they were written); nil decodes every entry.
    public func auditRules(_ outcome: BlockOutcome, parameters: ChainParameters, changed: [StoreKey]? = nil) -> [String] {
        var problems = changed.map { decodeEntries($0) } ?? decodeEveryEntry()
        guard problems.isEmpty else { return problems }
        let global = self.global
        problems += auditDecisions(outcome, parameters: parameters, now: global.timeMilliseconds)
        problems += auditDisputeSlashes(outcome, parameters: parameters)
        problems += auditJuries()
        problems += auditEscrowAndLocks(global, parameters: parameters)
        problems += auditRegistries(global)
        problems += auditEventQueues(global)
        return problems
    }

    /// Every entry decodes as the record its key's prefix names.
    public func decodeEveryEntry() -> [String] {
        var problems: [String] = []
        forEachEntry { key, value in Self.checkEntry(key, value, into: &problems) }
        return problems
    }

    /// The entries under `keys` (those present) decode as the records their prefixes name.
    public func decodeEntries(_ keys: some Sequence<StoreKey>) -> [String] {
        var problems: [String] = []
        for key in keys {
            guard let value = get(key) else { continue }
            Self.checkEntry(key, value, into: &problems)
        }
        return problems
    }

    private static func checkEntry(_ key: StoreKey, _ value: [UInt8], into problems: inout [String]) {
        guard let type = recordType(of: key) else {
            problems.append("state key \(key) has no known prefix")
            return
        }
        do { try type.check(value) } catch { problems.append("state entry \(key) does not decode: \(error)") }
    }

    struct RecordCheck: Sendable {
        let check: @Sendable ([UInt8]) throws -> Void
        init<T: CanonicalDecodable>(_ type: T.Type) { check = { _ = try T.decode(exactly: $0) } }
    }

    static func recordType(of key: StoreKey) -> RecordCheck? {
        let bytes = key.bytes
        if bytes == global { return RecordCheck(GlobalRecord.self) }
        if bytes == validatorSets { return RecordCheck(ValidatorSets.self) }
        for (prefix, check) in prefixes where key.hasPrefix(prefix) { return check }
        return nil
    }

    private static let global = Array("global".utf8)
    private static let validatorSets = Array("vsets".utf8)
    private static let prefixes: [([UInt8], RecordCheck)] = [
        ("acct/", RecordCheck(AccountRecord.self)), ("stake/", RecordCheck(StakeRecord.self)),
        ("val/", RecordCheck(ValidatorRecord.self)), ("gw/", RecordCheck(GatewayRecord.self)),
        ("gwh/", RecordCheck(GatewayHistory.self)), ("ckey/", RecordCheck(PublicKey.self)),
        ("event/", RecordCheck(EventRecord.self)), ("evote/", RecordCheck(EventVote.self)),
        ("evl/", RecordCheck(VoterEntry.self)), ("disp/", RecordCheck(DisputeRecord.self)),
        ("jury/", RecordCheck(JuryRecord.self)), ("dvote/", RecordCheck(DisputeVote.self)),
        ("wait/", RecordCheck(Hash256.self)), ("evid/", RecordCheck(UInt64.self)),
        ("height/", RecordCheck(HeightRecord.self)), ("vset/", RecordCheck(HistoricValidatorSet.self)),
        ("epoch/", RecordCheck(EpochRecord.self)), ("reg/v/", RecordCheck(RegistryPage.self)),
        ("reg/g/", RecordCheck(RegistryPage.self)), ("q/attest/", RecordCheck(QueueEntry.self)),
        ("q/challenge/", RecordCheck(QueueEntry.self)), ("q/revote/", RecordCheck(QueueEntry.self)),
    ].map { (Array($0.0.utf8), $0.1) }

    /// Each status change of the block happened for its reason: thresholds against the
    /// electorate's fixed total, finality after the window with every parent final, tallies
    /// equal to the votes stored.
    func auditDecisions(_ outcome: BlockOutcome, parameters: ChainParameters, now: UInt64) -> [String] {
        var problems: [String] = []
        for change in outcome.eventChanges {
            let id = change.eventID
            guard let record = event(id) else {
                problems.append("event \(id.hex.prefix(8)) changed status but is missing")
                continue
            }
            let name = "event \(id.hex.prefix(8))"
            switch change.to {
            case .accepted where change.from == .pending:
                if !BlockExecutor.exceeds(record.validWeight, numerator: 2, of: record.electorateTotal) {
                    problems.append("\(name) accepted with valid \(record.validWeight) of electorate \(record.electorateTotal), not above 2/3")
                }
            case .rejected where change.from == .pending:
                if !BlockExecutor.exceeds(record.invalidWeight, numerator: 1, of: record.electorateTotal) {
                    problems.append("\(name) rejected with invalid \(record.invalidWeight) of electorate \(record.electorateTotal), not above 1/3")
                }
            case .rejected:
                switch record.resolution {
                case .dispute:
                    if record.disputeID.flatMap({ dispute($0) })?.status != .upheld {
                        problems.append("\(name) rejected by a dispute that is not upheld")
                    }
                case .parent:
                    let parent = record.rejectedParent.flatMap { event($0) }
                    if parent?.status != .rejected && parent?.status != .expired {
                        problems.append("\(name) rejected for a parent that is neither rejected nor expired")
                    }
                default: problems.append("\(name) rejected after acceptance with resolution \(record.resolution.name)")
                }
            case .finalized:
                if now < record.challengeWindowCloses(parameters) {
                    problems.append("\(name) finalized at \(now), before its window closes at \(record.challengeWindowCloses(parameters))")
                }
                for parent in record.header.parents where event(parent)?.status != .finalized {
                    problems.append("\(name) finalized while parent \(parent.hex.prefix(8)) is \(event(parent)?.status.name ?? "missing")")
                }
            case .expired:
                if now < record.proposedAtMilliseconds.addingSaturating(parameters.events.attestationPeriodMilliseconds) {
                    problems.append("\(name) expired before its attestation deadline")
                }
            default: break
            }
            // Its voter lists against its tallies: `tallyProblems`, for every event, in auditEscrowAndLocks.
            if record.validWeight.adding(record.invalidWeight).map({ $0 > record.electorateTotal }) ?? true {
                problems.append("\(name) tallies exceed its electorate total \(record.electorateTotal)")
            }
        }
        return problems
    }

    /// Every lost-dispute slash lands on an accused of an event this block rejected by a
    /// dispute, and takes at most `dispute_slash_bps` of the stake that backed its part.
    func auditDisputeSlashes(_ outcome: BlockOutcome, parameters: ChainParameters) -> [String] {
        var allowed: [PublicKey: Amount] = [:]
        for change in outcome.eventChanges where change.to == .rejected {
            guard let record = event(change.eventID), record.resolution == .dispute else { continue }
            let basisPoints = parameters.slashing.disputeSlashBasisPoints
            for entry in voters(change.eventID, record, .valid) {
                allowed[entry.voter] = (allowed[entry.voter] ?? .zero).adding(entry.weight.fraction(basisPoints: basisPoints))
            }
            allowed[record.header.author] = (allowed[record.header.author] ?? .zero).adding(record.authorStake.fraction(basisPoints: basisPoints))
        }
        var taken: [PublicKey: Amount] = [:]
        for slash in outcome.slashes where slash.reason == .lostDispute {
            taken[slash.address] = (taken[slash.address] ?? .zero).adding(slash.amount)
        }
        var problems: [String] = []
        for (address, amount) in taken.sorted(by: { $0.key < $1.key }) {
            guard let limit = allowed[address] else {
                problems.append("\(address.hex.prefix(8)) was slashed for a lost dispute it was not accused in")
                continue
            }
            if amount > limit { problems.append("\(address.hex.prefix(8)) lost \(amount) to disputes, more than the \(limit) its votes backed") }
        }
        return problems
    }

    /// Every dispute's jury is impartial: no member authored the event or attested it valid;
    /// its power is the recorded eligible power, and the mode follows from it (validators
    /// judge only when the unaccused hold more than half the set's power).
    func auditJuries() -> [String] {
        var problems: [String] = []
        let disputePrefix = Array("disp/".utf8)
        forEachEntry { key, value in
            guard key.hasPrefix(disputePrefix), let record = try? DisputeRecord.decode(exactly: value), let event = event(record.eventID) else { return }
            let disputeID = Hash256(key.bytes.dropFirst(disputePrefix.count))
            let id = disputeID.hex.prefix(8)
            let accused = Set([event.header.author] + voters(record.eventID, event, .valid).map(\.voter))
            let members = jury(disputeID)?.members ?? []
            for member in members where accused.contains(member.address) {
                problems.append("dispute \(id): juror \(member.address.hex.prefix(8)) is accused by it (author or valid attester)")
            }
            let power = members.reduce(UInt128(0)) { $0 + UInt128($1.power) }
            if record.mode == .validators && power != record.eligiblePower {
                problems.append("dispute \(id): its jury holds \(power), its record says \(record.eligiblePower)")
            }
            if (record.mode == .validators) != (record.eligiblePower * 2 > record.setPower) {
                problems.append("dispute \(id) is a \(record.mode) dispute with eligible power \(record.eligiblePower) of \(record.setPower)")
            }
        }
        return problems
    }

    /// Escrow equals the open dispute bonds plus the defence bonds held; every voter of an
    /// event not yet settled has its stake locked until the event's votes settle.
    func auditEscrowAndLocks(_ global: GlobalRecord, parameters: ChainParameters) -> [String] {
        var problems: [String] = []
        var held = Amount.zero
        let disputePrefix = Array("disp/".utf8), eventPrefix = Array("event/".utf8)
        forEachEntry { key, value in
            if key.hasPrefix(disputePrefix), let record = try? DisputeRecord.decode(exactly: value), record.status == .open {
                held = held.adding(record.bond) ?? held
            } else if key.hasPrefix(eventPrefix), let record = try? EventRecord.decode(exactly: value) {
                held = held.adding(record.defenseEscrow) ?? held
                let id = record.header.id
                let valid = voters(id, record, .valid), invalid = voters(id, record, .invalid)
                problems += Self.tallyProblems(record, valid: valid, invalid: invalid)
                let settles = record.votesSettle(parameters)
                guard settles > global.timeMilliseconds else { return }
                let answerable = [record.header.author] + (valid + invalid).map(\.voter)
                for address in answerable where stake(address).lockedUntilMilliseconds < settles {
                    problems.append("\(address.hex.prefix(8)), author or voter of event \(id.hex.prefix(8)), is locked until \(stake(address).lockedUntilMilliseconds), before its votes settle at \(settles)")
                }
            }
        }
        if held != global.disputeEscrow { problems.append("dispute escrow is \(global.disputeEscrow) but open bonds and defence bonds are \(held)") }
        return problems
    }

    /// An event's voter lists hold as many voters as it counts, with the weights it tallies,
    /// and its record holds the first ones (ADR 0019): none past it while it has room.
    static func tallyProblems(_ record: EventRecord, valid: [VoterEntry], invalid: [VoterEntry]) -> [String] {
        var problems: [String] = []
        let name = "event \(record.header.id.hex.prefix(8))"
        for (side, list, count, weight) in [("valid", valid, record.validCount, record.validWeight), ("invalid", invalid, record.invalidCount, record.invalidWeight)] {
            if list.count != Int(count) { problems.append("\(name) counts \(count) \(side) votes but its list holds \(list.count)") }
            let sum = list.reduce(Amount.zero) { $0.adding($1.weight) ?? Amount(units: .max) }
            if sum != weight { problems.append("\(name) tallies \(weight) \(side) but its voters weigh \(sum)") }
        }
        if !record.inlineVotesFull && UInt64(record.inlineVotes.count) != UInt64(record.validCount) + UInt64(record.invalidCount) {
            problems.append("\(name) holds \(record.inlineVotes.count) votes inline but counts \(UInt64(record.validCount) + UInt64(record.invalidCount)) while it has room")
        }
        return problems
    }

    /// Registry pages hold exactly the counted members, each at the position its record says.
    func auditRegistries(_ global: GlobalRecord) -> [String] {
        var problems: [String] = []
        for (position, address) in validatorRegistry.enumerated() where validator(address)?.registryIndex != UInt32(position) {
            problems.append("validator \(address.hex.prefix(8)) sits at \(position) but its record says \(String(describing: validator(address)?.registryIndex))")
        }
        var electoral = Amount.zero
        for (position, address) in gatewayRegistry.enumerated() {
            if gateway(address)?.registryIndex != UInt32(position) || !stake(address).isGateway {
                problems.append("gateway \(address.hex.prefix(8)) at \(position) does not match its records")
            }
            electoral = electoral.adding(stake(address).bonded) ?? electoral
        }
        if electoral != global.gatewayStake { problems.append("gateway stake \(global.gatewayStake) differs from the registry's \(electoral)") }
        return problems
    }

    /// The attestation queue holds exactly the pending events, each in the entry its record
    /// names; an event with a waiting list says so in its record, and is not final yet.
    func auditEventQueues(_ global: GlobalRecord) -> [String] {
        var problems: [String] = []
        var queued: [Hash256: UInt64] = [:]
        let bounds = global.attestationQueue
        if bounds.tail >= bounds.head {
            for position in bounds.head..<bounds.tail {
                guard let entry = decode(QueueEntry.self, at: StateKey.queueEntry(.attestation, position)) else {
                    problems.append("attestation entry \(position) is missing")
                    continue
                }
                for id in entry.ids where queued.updateValue(position, forKey: id) != nil {
                    problems.append("event \(id.hex.prefix(8)) is queued twice for its attestation deadline")
                }
            }
        }
        let eventPrefix = Array("event/".utf8), waitPrefix = Array("wait/".utf8)
        forEachEntry { key, value in
            if key.hasPrefix(eventPrefix), let record = try? EventRecord.decode(exactly: value) {
                let id = record.header.id, name = "event \(id.hex.prefix(8))"
                let position = queued.removeValue(forKey: id)
                if record.status == .pending && position != record.attestationEntry {
                    problems.append("\(name) is pending but not in its attestation entry \(record.attestationEntry)")
                } else if record.status != .pending && position != nil {
                    problems.append("\(name) is \(record.status.name) but still queued for its attestation deadline")
                }
                if record.hasWaitingChildren && !record.status.isFinal && get(StateKey.waiting(on: id)) == nil {
                    problems.append("\(name) says children wait on it but has no waiting list")
                }
                if let parent = record.waitingOn, event(parent)?.hasWaitingChildren != true {
                    problems.append("\(name) waits on \(parent.hex.prefix(8)), whose record does not say children wait on it")
                }
            } else if key.hasPrefix(waitPrefix), let parent = try? Hash256.decode(exactly: Array(key.bytes.dropFirst(waitPrefix.count))) {
                let record = event(parent)
                if record?.hasWaitingChildren != true || record?.status.isFinal != false {
                    problems.append("event \(parent.hex.prefix(8)) has a waiting list but is \(record?.status.name ?? "missing") and says children wait on it: \(record?.hasWaitingChildren ?? false)")
                }
            }
        }
        for (id, position) in queued.sorted(by: { $0.value < $1.value }) {
            problems.append("attestation entry \(position) holds \(id.hex.prefix(8)), which is not an event")
        }
        return problems
    }
}

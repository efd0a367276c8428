import KCCodec
import KCConsensus
import KCCrypto
import KCNode
import KCRuntime
import KCTypes

/// JSON forms of chain objects (specs/openapi.yaml, "components"). Amounts are strings of base
/// units (1 ACTI = 10^18), so no client rounds them through a float; ids and keys are hex.
enum View {
    static func amount(_ value: Amount) -> JSONValue { .string(String(value.units)) }
    static func number<T: BinaryInteger>(_ value: T) -> JSONValue { .number(String(value)) }
    static func hex(_ value: Hash256) -> JSONValue { .string(value.hex) }
    static func key(_ value: PublicKey) -> JSONValue { .string(value.hex) }

    static func call(_ call: Call) -> JSONValue {
        var members: [(String, JSONValue)] = [("type", .string(call.name))]
        switch call {
        case .transfer(let to, let amount): members += [("to", key(to)), ("amount", self.amount(amount))]
        case .bond(let amount), .unbond(let amount): members.append(("amount", self.amount(amount)))
        case .withdrawUnbonded, .registerGateway, .unjail: break
        case .registerValidator(let consensusKey): members.append(("consensus_key", key(consensusKey)))
        case .proposeEvent(let parents, let arTxID, let contentHash, let kind):
            members += [("parents", .array(parents.map(hex))), ("ar_tx_id", .string(arTxID.text)),
                        ("content_hash", hex(contentHash)), ("kind", .string(kind))]
        case .attest(let votes):
            members.append(("votes", .array(votes.map {
                .object([("event_id", hex($0.eventID)), ("verdict", .string(verdictName($0.verdict)))])
            })))
        case .dispute(let eventID, let bond, let reason):
            members += [("event_id", hex(eventID)), ("bond", amount(bond)), ("reason", .string(reason.text))]
        case .voteDispute(let disputeID, let uphold):
            members += [("dispute_id", hex(disputeID)), ("uphold", .bool(uphold))]
        case .defend(let disputeID, let bond):
            members += [("dispute_id", hex(disputeID)), ("bond", amount(bond))]
        }
        return .object(members)
    }

    static func receipt(_ receipt: Receipt) -> JSONValue {
        .object([("code", number(receipt.code.rawValue)), ("name", .string(receipt.code.name)),
                 ("message", .string(receipt.message)), ("fee_paid", amount(receipt.feePaid)),
                 ("succeeded", .bool(receipt.succeeded))])
    }

    static func transaction(_ transaction: SignedTransaction, location: TransactionLocation, receipt: Receipt?) -> JSONValue {
        let body = transaction.body
        return .object([("hash", hex(transaction.hash)), ("height", number(location.height)), ("index", number(location.index)),
                        ("sender", key(body.sender)), ("nonce", number(body.nonce)), ("fee", amount(body.fee)),
                        ("call", call(body.call)), ("receipt", receipt.map(self.receipt) ?? .null)])
    }

    static func block(_ block: Block, results: BlockResults?) -> JSONValue {
        let header = block.header
        return .object([
            ("height", number(header.height)), ("id", hex(block.id)), ("time_ms", number(header.timeMilliseconds)),
            ("previous_block_id", hex(header.previousBlockID)), ("state_root", hex(header.stateRoot)),
            ("validators_hash", hex(header.validatorsHash)), ("transactions_hash", hex(header.transactionsHash)),
            ("proposer", key(header.proposer)),
            ("transactions", .array(block.transactions.map { hex($0.hash) })),
            ("evidence", number(block.evidence.count)),
            ("last_commit_signers", .array((block.lastCommit?.signers ?? []).map(key))),
            ("receipts", .array((results?.receipts ?? []).map(receipt))),
            ("event_changes", .array((results?.eventChanges ?? []).map(eventChange))),
            ("slashes", .array((results?.slashes ?? []).map(slash))),
        ])
    }

    static func eventChange(_ change: EventStatusChange) -> JSONValue {
        .object([("event_id", hex(change.eventID)), ("from", change.from.map { .string($0.name) } ?? .null),
                 ("to", .string(change.to.name)), ("height", number(change.height))])
    }

    static func slash(_ slash: SlashRecord) -> JSONValue {
        .object([("address", key(slash.address)), ("reason", .string(slash.reason.name)), ("amount", amount(slash.amount)),
                 ("height", number(slash.height))])
    }

    static func verdictName(_ verdict: Verdict) -> String { verdict == .valid ? "valid" : "invalid" }

    static func event(_ id: Hash256, _ record: EventRecord, dispute: (Hash256, DisputeRecord)?, parameters: ChainParameters) -> JSONValue {
        let header = record.header
        let accepted = record.acceptedAtMilliseconds != 0
        let doubled = record.largestBond.adding(record.largestBond) ?? Amount(units: .max)
        return .object([
            ("id", hex(id)), ("author", key(header.author)), ("parents", .array(header.parents.map(hex))),
            ("ar_tx_id", .string(header.arTxID.text)), ("content_hash", hex(header.contentHash)), ("kind", .string(header.kind)),
            ("height", number(header.height)), ("proposed_at_ms", number(record.proposedAtMilliseconds)),
            ("status", .string(record.status.name)), ("resolution", .string(record.resolution.name)),
            ("status_changed_at_height", number(record.statusChangedAtHeight)),
            ("status_changed_at_ms", number(record.statusChangedAtMilliseconds)),
            ("attestation_ends_ms", number(record.proposedAtMilliseconds.addingSaturating(parameters.events.attestationPeriodMilliseconds))),
            ("accepted_at_ms", accepted ? number(record.acceptedAtMilliseconds) : .null),
            ("challenge_window_closes_ms", accepted ? number(record.challengeWindowCloses(parameters)) : .null),
            ("votes_settle_ms", number(record.votesSettle(parameters))),
            ("electorate", .object([("epoch", number(record.electorateEpoch)), ("total", amount(record.electorateTotal)),
                                    ("accept_when_valid_exceeds", .string("2/3")), ("reject_when_invalid_exceeds", .string("1/3"))])),
            ("tally", .object([("valid_weight", amount(record.validWeight)), ("invalid_weight", amount(record.invalidWeight)),
                               ("valid_count", number(record.validCount)), ("invalid_count", number(record.invalidCount))])),
            ("author_stake", amount(record.authorStake)),
            ("waiting_on", record.waitingOn.map(hex) ?? .null),
            ("rejected_parent", record.rejectedParent.map(hex) ?? .null),
            ("disputes", .object([("count", number(record.disputeCount)), ("largest_bond", amount(record.largestBond)),
                                  ("next_bond_at_least", amount(max(parameters.events.minDisputeBond, doubled))),
                                  ("defense_escrow", amount(record.defenseEscrow))])),
            ("dispute", dispute.map { self.dispute($0.0, $0.1, jury: nil) } ?? .null),
        ])
    }

    static func vote(_ entry: VoterEntry, verdict: Verdict) -> JSONValue {
        .object([("voter", key(entry.voter)), ("verdict", .string(verdictName(verdict))), ("weight", amount(entry.weight))])
    }

    static func dispute(_ id: Hash256, _ record: DisputeRecord, jury: [JSONValue]?) -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("id", hex(id)), ("event_id", hex(record.eventID)), ("sequence", number(record.sequence)),
            ("disputer", key(record.disputer)), ("bond", amount(record.bond)),
            ("reason", .string(record.reason.text)), ("opened_at_height", number(record.openedAtHeight)),
            ("opened_at_ms", number(record.openedAtMilliseconds)), ("deadline_ms", number(record.deadlineMilliseconds)),
            ("mode", .string(record.mode.name)), ("status", .string(record.status.name)),
            ("set_power", number(record.setPower)), ("eligible_power", number(record.eligiblePower)),
            ("uphold_power", number(record.upholdPower)), ("reject_power", number(record.rejectPower)),
            ("voter_count", number(record.voterCount)),
            ("defense_bond_at_least", record.mode == .bonds ? amount(record.bond) : .null),
            ("defender", record.defender.map(key) ?? .null), ("defense_bond", amount(record.defenseBond)),
            ("slashed_total", amount(record.slashedTotal)), ("disputer_reward", amount(record.disputerReward)),
        ]
        if let jury { members.append(("jury", .array(jury))) }
        return .object(members)
    }

    static func juror(_ member: JuryRecord.Member, vote: DisputeVote?) -> JSONValue {
        .object([("address", key(member.address)), ("power", number(member.power)),
                 ("vote", vote.map { .string($0.uphold ? "uphold" : "reject") } ?? .null)])
    }

    static func epoch(_ number: UInt64, _ record: EpochRecord) -> JSONValue {
        .object([("epoch", self.number(number)), ("gateway_total", amount(record.gatewayTotal)),
                 ("start_height", self.number(record.startHeight)),
                 ("ended_at_ms", record.endedAtMilliseconds == 0 ? .null : self.number(record.endedAtMilliseconds))])
    }

    static func account(_ address: PublicKey, _ account: AccountRecord, stake: StakeRecord?, now: UInt64, gateway: JSONValue) -> JSONValue {
        let lockedUntil = stake?.lockedUntilMilliseconds ?? 0
        return .object([
            ("address", key(address)), ("balance", amount(account.balance)), ("nonce", number(account.nonce)),
            ("bonded", amount(stake?.bonded ?? Amount(units: 0))),
            ("unbonding", .array((stake?.unbonding ?? []).map {
                .object([("amount", amount($0.amount)), ("completion_time_ms", number($0.completionTimeMilliseconds)),
                         ("creation_height", number($0.creationHeight))])
            })),
            ("locked_until_ms", number(lockedUntil)), ("stake_locked", .bool(lockedUntil > now)),
            ("gateway", .bool(stake?.isGateway ?? false)),
            ("gateway_detail", gateway),
            ("consensus_key", stake?.consensusKey.map(key) ?? .null),
        ])
    }

    static func validator(_ address: PublicKey, stake: StakeRecord, record: ValidatorRecord, power: UInt64?) -> JSONValue {
        .object([
            ("address", key(address)), ("consensus_key", key(record.consensusKey)), ("bonded", amount(stake.bonded)),
            ("in_set", .bool(power != nil)), ("power", power.map(number) ?? .null), ("jailed", .bool(record.jailed)),
            ("jailed_until_ms", number(record.jailedUntilMilliseconds)), ("tombstoned", .bool(record.tombstoned)),
            ("missed_in_window", number(record.missedCount)), ("signed_this_epoch", number(record.signedThisEpoch)),
            ("locked_until_ms", number(stake.lockedUntilMilliseconds)),
        ])
    }

    static func gatewayDetail(_ record: GatewayRecord, weightNow: Amount) -> JSONValue {
        .object([("electoral_weight_this_epoch", amount(weightNow)),
                 ("winning_votes_this_epoch", number(record.winningVotesThisEpoch)),
                 ("reward_weight_this_epoch", number(record.rewardWeightThisEpoch))])
    }

    static func gateway(_ address: PublicKey, stake: StakeRecord, record: GatewayRecord, weightNow: Amount) -> JSONValue {
        .object([("address", key(address)), ("bonded", amount(stake.bonded)),
                 ("electoral_weight_this_epoch", amount(weightNow)),
                 ("winning_votes_this_epoch", number(record.winningVotesThisEpoch)),
                 ("reward_weight_this_epoch", number(record.rewardWeightThisEpoch)),
                 ("locked_until_ms", number(stake.lockedUntilMilliseconds))])
    }
}

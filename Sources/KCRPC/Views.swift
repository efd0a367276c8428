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
                .object([("event_id", hex($0.eventID)), ("verdict", .string($0.verdict == .valid ? "valid" : "invalid"))])
            })))
        case .dispute(let eventID, let bond, let reason):
            members += [("event_id", hex(eventID)), ("bond", amount(bond)), ("reason", .string(reason.text))]
        case .voteDispute(let disputeID, let uphold):
            members += [("dispute_id", hex(disputeID)), ("uphold", .bool(uphold))]
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

    static func event(_ id: Hash256, _ record: EventRecord, dispute: (Hash256, DisputeRecord)?) -> JSONValue {
        let header = record.header
        return .object([
            ("id", hex(id)), ("author", key(header.author)), ("parents", .array(header.parents.map(hex))),
            ("ar_tx_id", .string(header.arTxID.text)), ("content_hash", hex(header.contentHash)), ("kind", .string(header.kind)),
            ("height", number(header.height)), ("proposed_at_ms", number(record.proposedAtMilliseconds)),
            ("status", .string(record.status.name)), ("status_changed_at_height", number(record.statusChangedAtHeight)),
            ("status_changed_at_ms", number(record.statusChangedAtMilliseconds)),
            ("accepted_at_ms", record.acceptedAtMilliseconds == 0 ? .null : number(record.acceptedAtMilliseconds)),
            ("tally", .object([("valid_stake", amount(record.validStake)), ("invalid_stake", amount(record.invalidStake)),
                               ("valid_voters", .array(record.validVoters.map(key))),
                               ("invalid_voters", .array(record.invalidVoters.map(key)))])),
            ("dispute", dispute.map { self.dispute($0.0, $0.1) } ?? .null),
        ])
    }

    static func dispute(_ id: Hash256, _ record: DisputeRecord) -> JSONValue {
        .object([
            ("id", hex(id)), ("event_id", hex(record.eventID)), ("disputer", key(record.disputer)), ("bond", amount(record.bond)),
            ("reason", .string(record.reason.text)), ("opened_at_height", number(record.openedAtHeight)),
            ("opened_at_ms", number(record.openedAtMilliseconds)), ("status", .string(record.status.name)),
            ("uphold_stake", amount(record.upholdStake)), ("reject_stake", amount(record.rejectStake)),
            ("voters", .array(record.voters.map(key))), ("slashed_total", amount(record.slashedTotal)),
            ("disputer_reward", amount(record.disputerReward)),
        ])
    }

    static func account(_ address: PublicKey, _ account: AccountRecord, stake: StakeRecord?) -> JSONValue {
        .object([
            ("address", key(address)), ("balance", amount(account.balance)), ("nonce", number(account.nonce)),
            ("bonded", amount(stake?.bonded ?? Amount(units: 0))),
            ("unbonding", .array((stake?.unbonding ?? []).map {
                .object([("amount", amount($0.amount)), ("completion_time_ms", number($0.completionTimeMilliseconds)),
                         ("creation_height", number($0.creationHeight))])
            })),
            ("gateway", .bool(stake?.isGateway ?? false)),
            ("consensus_key", stake?.consensusKey.map(key) ?? .null),
        ])
    }

    static func validator(_ address: PublicKey, stake: StakeRecord, record: ValidatorRecord, power: UInt64?) -> JSONValue {
        .object([
            ("address", key(address)), ("consensus_key", key(record.consensusKey)), ("bonded", amount(stake.bonded)),
            ("in_set", .bool(power != nil)), ("power", power.map(number) ?? .null), ("jailed", .bool(record.jailed)),
            ("jailed_until_ms", number(record.jailedUntilMilliseconds)), ("tombstoned", .bool(record.tombstoned)),
            ("missed_in_window", number(record.missedCount)),
        ])
    }

    static func gateway(_ address: PublicKey, stake: StakeRecord, record: GatewayRecord) -> JSONValue {
        .object([("address", key(address)), ("bonded", amount(stake.bonded)), ("votes_this_epoch", number(record.votesThisEpoch))])
    }
}

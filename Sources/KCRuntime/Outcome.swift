import KCCodec
import KCCrypto
import KCTypes

/// What the consensus layer hands the runtime with a block's transactions.
public struct BlockContext: Sendable, Equatable {
    public let height: UInt64
    /// Block time (see specs/consensus.md for how it is agreed); strictly increasing.
    public let timeMilliseconds: UInt64
    /// Consensus keys whose precommits for the previous block are in this block's last commit.
    public let lastCommitSigners: [PublicKey]
    /// Double-sign evidence the proposer included.
    public let evidence: [DoubleSignEvidence]

    public init(height: UInt64, timeMilliseconds: UInt64, lastCommitSigners: [PublicKey] = [], evidence: [DoubleSignEvidence] = []) {
        self.height = height
        self.timeMilliseconds = timeMilliseconds
        self.lastCommitSigners = lastCommitSigners
        self.evidence = evidence
    }
}

/// A block time in a call's error message: RFC 3339 UTC, computed by integers (deterministic).
func blockTime(_ milliseconds: UInt64) -> String { UTCTime.rfc3339(milliseconds: milliseconds) }

/// Stable error codes of failed calls. The numbers never change once released; names and
/// meanings are listed in specs/runtime.md.
public enum ErrorCode: UInt16, Sendable, Equatable, CaseIterable {
    case ok = 0
    case insufficientBalance = 1
    case invalidAmount = 2
    case belowMinimumStake = 3
    case insufficientBonded = 4
    case nothingToWithdraw = 5
    case alreadyValidator = 6
    case consensusKeyInUse = 7
    case alreadyGateway = 8
    case notJailed = 9
    case jailNotExpired = 10
    case tombstoned = 11
    case notGateway = 12
    case tooManyParents = 13
    case duplicateParent = 14
    case unknownParent = 15
    case rejectedParent = 16
    case invalidKind = 17
    case unknownEvent = 18
    case ownEvent = 19
    case alreadyVoted = 20
    case emptyAttestation = 21
    case notInChallengeWindow = 22
    case bondTooSmall = 23
    case unknownDispute = 24
    case disputeClosed = 25
    case notValidator = 26
    case tooManyUnbondingEntries = 27
    case overflow = 28
    case eventExists = 29
    case notInElectorate = 30
    case expiredParent = 31
    case stakeLocked = 32
    case electorateHistoryFull = 33
    case gatewayRegistryFull = 34
    case validatorRegistryFull = 35
    case tooManyDisputes = 36
    case notJuror = 37
    case notBondRound = 38

    public var name: String {
        switch self {
        case .ok: return "ok"
        case .insufficientBalance: return "insufficient_balance"
        case .invalidAmount: return "invalid_amount"
        case .belowMinimumStake: return "below_minimum_stake"
        case .insufficientBonded: return "insufficient_bonded"
        case .nothingToWithdraw: return "nothing_to_withdraw"
        case .alreadyValidator: return "already_validator"
        case .consensusKeyInUse: return "consensus_key_in_use"
        case .alreadyGateway: return "already_gateway"
        case .notJailed: return "not_jailed"
        case .jailNotExpired: return "jail_not_expired"
        case .tombstoned: return "tombstoned"
        case .notGateway: return "not_gateway"
        case .tooManyParents: return "too_many_parents"
        case .duplicateParent: return "duplicate_parent"
        case .unknownParent: return "unknown_parent"
        case .rejectedParent: return "rejected_parent"
        case .invalidKind: return "invalid_kind"
        case .unknownEvent: return "unknown_event"
        case .ownEvent: return "own_event"
        case .alreadyVoted: return "already_voted"
        case .emptyAttestation: return "empty_attestation"
        case .notInChallengeWindow: return "not_in_challenge_window"
        case .bondTooSmall: return "bond_too_small"
        case .unknownDispute: return "unknown_dispute"
        case .disputeClosed: return "dispute_closed"
        case .notValidator: return "not_validator"
        case .tooManyUnbondingEntries: return "too_many_unbonding_entries"
        case .overflow: return "overflow"
        case .eventExists: return "event_exists"
        case .notInElectorate: return "not_in_electorate"
        case .expiredParent: return "expired_parent"
        case .stakeLocked: return "stake_locked"
        case .electorateHistoryFull: return "electorate_history_full"
        case .gatewayRegistryFull: return "gateway_registry_full"
        case .validatorRegistryFull: return "validator_registry_full"
        case .tooManyDisputes: return "too_many_disputes"
        case .notJuror: return "not_juror"
        case .notBondRound: return "not_bond_round"
        }
    }
}

/// A failed call: a stable code and a sentence for people.
public struct CallError: Error, Equatable, Sendable {
    public let code: ErrorCode
    public let message: String

    /// Messages are cut to `Receipt.maxMessageBytes` (at a character boundary): a receipt
    /// never grows past what its decoder accepts.
    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = Receipt.clipped(message)
    }
}

/// The result of one included transaction.
public struct Receipt: Equatable, Sendable, CanonicalCodable {
    public let transactionHash: Hash256
    public let code: ErrorCode
    public let message: String
    public let feePaid: Amount

    public var succeeded: Bool { code == .ok }

    public static let maxMessageBytes = 1_024

    /// `message` cut to at most `maxMessageBytes` bytes of UTF-8, at a character boundary.
    public static func clipped(_ message: String) -> String {
        guard message.utf8.count > maxMessageBytes else { return message }
        var clipped = ""
        for character in message {
            guard clipped.utf8.count + character.utf8.count <= maxMessageBytes else { break }
            clipped.append(character)
        }
        return clipped
    }

    public init(transactionHash: Hash256, code: ErrorCode, message: String, feePaid: Amount) {
        self.transactionHash = transactionHash
        self.code = code
        self.message = message
        self.feePaid = feePaid
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(transactionHash); writer.write(UInt16(code.rawValue)); writer.writeString(message); writer.write(feePaid)
    }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        transactionHash = try reader.read(Hash256.self)
        let raw = try reader.readUInt16("error code")
        guard let code = ErrorCode(rawValue: raw) else { throw .unknownTag(what: "error code", tag: UInt32(raw)) }
        self.code = code
        message = try reader.readString("message", limit: Receipt.maxMessageBytes)
        feePaid = try reader.read(Amount.self)
    }
}

/// An event entering a status (`from == nil`: it was proposed).
public struct EventStatusChange: Equatable, Sendable, CanonicalCodable {
    public let eventID: Hash256
    public let from: EventStatus?
    public let to: EventStatus
    public let height: UInt64

    public init(eventID: Hash256, from: EventStatus?, to: EventStatus, height: UInt64) {
        self.eventID = eventID
        self.from = from
        self.to = to
        self.height = height
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(eventID); writer.writeOptional(from); writer.write(to); writer.write(height)
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        eventID = try reader.read(Hash256.self)
        from = try reader.readOptional(EventStatus.self, "previous status")
        to = try reader.read(EventStatus.self)
        height = try reader.readUInt64("height")
    }
}

public enum SlashReason: UInt32, Sendable, Equatable, CaseIterable, CanonicalTag {
    public static let tagName = "slash reason"
    case doubleSign = 0
    case downtime = 1
    case lostDispute = 2
    case disputeBond = 3

    public var name: String {
        switch self {
        case .doubleSign: return "double_sign"
        case .downtime: return "downtime"
        case .lostDispute: return "lost_dispute"
        case .disputeBond: return "dispute_bond"
        }
    }
}

public struct SlashRecord: Equatable, Sendable, CanonicalCodable {
    public let address: PublicKey
    public let reason: SlashReason
    public let amount: Amount
    public let height: UInt64

    public init(address: PublicKey, reason: SlashReason, amount: Amount, height: UInt64) {
        self.address = address
        self.reason = reason
        self.amount = amount
        self.height = height
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(address); writer.write(reason); writer.write(amount); writer.write(height)
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        address = try reader.read(PublicKey.self)
        reason = try reader.read(SlashReason.self)
        amount = try reader.read(Amount.self)
        height = try reader.readUInt64("height")
    }
}

/// Everything a block produced besides the state itself.
public struct BlockOutcome: Sendable {
    public let height: UInt64
    public let stateRoot: Hash256
    public let receipts: [Receipt]
    public let eventChanges: [EventStatusChange]
    public let slashes: [SlashRecord]
    /// A validator set decided in this block, with the height it takes effect at.
    public let validatorSetUpdate: ScheduledValidatorSet?
    /// The set that signs the next height.
    public let nextValidators: [ValidatorSetEntry]
    /// Evidence that was already processed (ignored, each infraction is slashed once).
    public let ignoredEvidence: Int
}

/// An executed, not yet committed block: the state changes, the new trie, and the outcome.
public struct ExecutedBlock: Sendable {
    /// Root of the state this block was executed against.
    public let baseRoot: Hash256
    /// Every changed state entry: new bytes, or nil for a deletion.
    public let changes: [StoreKey: [UInt8]?]
    /// The trie nodes the block writes (nil: deletes) on top of the base state's.
    public let trieWrites: [TriePosition: TrieNode?]
    public let outcome: BlockOutcome
    /// Query indexes (not part of the state root): key -> value, written with the block.
    public let indexWrites: [([UInt8], [UInt8])]

    /// The root of the state after the block.
    public var stateRoot: Hash256 { outcome.stateRoot }
}

/// A block the runtime refuses as a whole: its proposer broke a validity rule, so honest
/// validators must not vote for it.
public enum BlockError: Error, Equatable, Sendable, CustomStringConvertible {
    case wrongHeight(expected: UInt64, found: UInt64)
    case timeNotIncreasing(previous: UInt64, found: UInt64)
    case tooManyTransactions(count: Int, limit: UInt32)
    case tooManyBytes(bytes: Int, limit: UInt32)
    case transactionTooLarge(index: Int, bytes: Int, limit: UInt32)
    case feeBelowMinimum(index: Int, fee: Amount, minimum: Amount)
    case wrongNonce(index: Int, expected: UInt64, found: UInt64)
    case cannotPayFee(index: Int, fee: Amount, balance: Amount)
    case invalidEvidence(index: Int, reason: String)

    public var description: String {
        switch self {
        case .wrongHeight(let expected, let found): return "block height \(found), expected \(expected)"
        case .timeNotIncreasing(let previous, let found): return "block time \(blockTime(found)) is not after the previous block time \(blockTime(previous))"
        case .tooManyTransactions(let count, let limit): return "\(count) transactions exceed the block limit of \(limit)"
        case .tooManyBytes(let bytes, let limit): return "\(bytes) bytes of transactions exceed the block limit of \(limit)"
        case .transactionTooLarge(let index, let bytes, let limit): return "transaction \(index) is \(bytes) bytes, over the limit of \(limit)"
        case .feeBelowMinimum(let index, let fee, let minimum): return "transaction \(index) pays \(fee), below the minimum fee \(minimum)"
        case .wrongNonce(let index, let expected, let found): return "transaction \(index) has nonce \(found), expected \(expected)"
        case .cannotPayFee(let index, let fee, let balance): return "transaction \(index) cannot pay its fee \(fee) from a balance of \(balance)"
        case .invalidEvidence(let index, let reason): return "evidence \(index) is invalid: \(reason)"
        }
    }
}

/// Keys of the query indexes the runtime writes beside the state (not in the state root).
///
/// The author and kind indexes are grouped per block: one key per (author, height) and per
/// (kind, height) whose value is the ids of that block's events, sorted and concatenated
/// (`groupedIDs`). A list position in them is still `key ‖ event id`, the key an ungrouped
/// index would have used, so cursors look the same for every index.
public enum EventIndexKey {
    public static func byAuthor(_ author: PublicKey, height: UInt64) -> [UInt8] {
        var key = authorPrefix(author)
        ByteOrder.appendBigEndian(height, to: &key)
        return key
    }

    public static func authorPrefix(_ author: PublicKey) -> [UInt8] { Array("ix/author/".utf8) + author.bytes32.bytes }

    public static func byArTxID(_ id: ArTxID, event: Hash256) -> [UInt8] {
        Array("ix/artx/".utf8) + id.bytes32.bytes + event.bytes
    }

    public static func arTxIDPrefix(_ id: ArTxID) -> [UInt8] { Array("ix/artx/".utf8) + id.bytes32.bytes }

    public static func child(parent: Hash256, child: Hash256) -> [UInt8] {
        Array("ix/child/".utf8) + parent.bytes + child.bytes
    }

    public static func childrenPrefix(_ parent: Hash256) -> [UInt8] { Array("ix/child/".utf8) + parent.bytes }

    /// The length (u16 big-endian) keeps one kind's keys from running into a longer kind that
    /// starts the same way.
    public static func byKind(_ kind: String, height: UInt64) -> [UInt8] {
        var key = kindPrefix(kind)
        ByteOrder.appendBigEndian(height, to: &key)
        return key
    }

    public static func kindPrefix(_ kind: String) -> [UInt8] {
        let bytes = Array(kind.utf8)
        return Array("ix/kind/".utf8) + [UInt8(truncatingIfNeeded: bytes.count >> 8), UInt8(truncatingIfNeeded: bytes.count)] + bytes
    }

    /// In an ungrouped index the event id is the last 32 bytes of the key.
    public static func eventID(fromKey key: [UInt8]) -> Hash256? {
        guard key.count >= 32 else { return nil }
        return Hash256(key[(key.count - 32)...])
    }

    /// The ids in a grouped index value; nil if the value is not a whole number of ids.
    public static func groupedIDs(_ value: [UInt8]) -> [Hash256]? {
        guard value.count % 32 == 0 else { return nil }
        return stride(from: 0, to: value.count, by: 32).map { Hash256(value[$0..<($0 + 32)]) }
    }

    /// Groups (group, id) pairs into one write per group, keyed by `key(group)`: the ids
    /// sorted and concatenated. Writes come out in key byte order, so the result never depends
    /// on the order of the input (the dictionary's order is never seen).
    public static func grouped<Group: Hashable>(_ pairs: [(Group, Hash256)], key: (Group) -> [UInt8]) -> [([UInt8], [UInt8])] {
        var groups: [Group: [Hash256]] = [:]
        for (group, id) in pairs { groups[group, default: []].append(id) }
        var writes: [([UInt8], [UInt8])] = []
        writes.reserveCapacity(groups.count)
        for (group, ids) in groups {
            var value: [UInt8] = []
            value.reserveCapacity(ids.count * 32)
            for id in ids.sorted() { id.withUnsafeBytes { value.append(contentsOf: $0) } }
            writes.append((key(group), value))
        }
        writes.sort { ByteOrder.precedes($0.0, $1.0) }
        return writes
    }
}

import KCCodec
import KCCrypto
import KCTypes

// The typed records of the chain state. Each is stored under one state key (StateKey) in its
// canonical encoding; specs/runtime.md lists them field by field.

/// A liquid balance and the count of transactions sent (the next valid nonce).
public struct AccountRecord: Equatable, Sendable, CanonicalCodable {
    public var balance: Amount
    public var nonce: UInt64

    public init(balance: Amount = .zero, nonce: UInt64 = 0) {
        self.balance = balance
        self.nonce = nonce
    }

    public func encode(to writer: inout CanonicalWriter) { writer.write(balance); writer.write(nonce) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        balance = try reader.read(Amount.self)
        nonce = try reader.readUInt64("nonce")
    }
}

/// Stake leaving the bonded pool, withdrawable at `completionTimeMilliseconds`.
public struct UnbondingEntry: Equatable, Sendable, CanonicalCodable {
    public var amount: Amount
    public var completionTimeMilliseconds: UInt64
    /// Height of the unbond; infractions at or before it still reach this entry.
    public var creationHeight: UInt64

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(amount); writer.write(completionTimeMilliseconds); writer.write(creationHeight)
    }
    public init(amount: Amount, completionTimeMilliseconds: UInt64, creationHeight: UInt64) {
        self.amount = amount
        self.completionTimeMilliseconds = completionTimeMilliseconds
        self.creationHeight = creationHeight
    }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        amount = try reader.read(Amount.self)
        completionTimeMilliseconds = try reader.readUInt64("completion time")
        creationHeight = try reader.readUInt64("creation height")
    }
}

/// An account's stake: bonded, unbonding, and the roles it holds.
public struct StakeRecord: Equatable, Sendable, CanonicalCodable {
    public var bonded: Amount
    public var unbonding: [UnbondingEntry]
    public var isGateway: Bool
    /// Set once the account registers as a validator.
    public var consensusKey: PublicKey?

    public static let maxUnbondingEntries = 32

    public init(bonded: Amount = .zero, unbonding: [UnbondingEntry] = [], isGateway: Bool = false, consensusKey: PublicKey? = nil) {
        self.bonded = bonded
        self.unbonding = unbonding
        self.isGateway = isGateway
        self.consensusKey = consensusKey
    }

    public var unbondingTotal: Amount {
        unbonding.reduce(Amount.zero) { total, entry in
            // Bounded by total supply, which fits in u128: the loader and the rules keep it so.
            total.adding(entry.amount)!
        }
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(bonded); writer.writeList(unbonding); writer.write(isGateway); writer.writeOptional(consensusKey)
    }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        bonded = try reader.read(Amount.self)
        unbonding = try reader.readList(UnbondingEntry.self, "unbonding entries", limit: StakeRecord.maxUnbondingEntries)
        isGateway = try reader.readBool("is gateway")
        consensusKey = try reader.readOptional(PublicKey.self, "consensus key")
    }
}

/// Validator-only state: jail, and the signing window watched for downtime.
public struct ValidatorRecord: Equatable, Sendable, CanonicalCodable {
    public var consensusKey: PublicKey
    public var jailed: Bool
    public var jailedUntilMilliseconds: UInt64
    /// Double signers are tombstoned: jailed for good, never slashed twice.
    public var tombstoned: Bool
    /// One bit per block of the window, set when the block was missed (ring buffer).
    public var missedBits: [UInt8]
    /// Blocks recorded in the current window (saturates at the window length).
    public var windowFilled: UInt64
    /// Position of the next bit to write.
    public var windowCursor: UInt64
    public var missedCount: UInt64
    /// Blocks this validator signed in the current epoch (for rewards).
    public var signedThisEpoch: UInt64

    public init(consensusKey: PublicKey, windowLength: UInt64) {
        self.consensusKey = consensusKey
        jailed = false
        jailedUntilMilliseconds = 0
        tombstoned = false
        missedBits = [UInt8](repeating: 0, count: Int((windowLength + 7) / 8))
        windowFilled = 0
        windowCursor = 0
        missedCount = 0
        signedThisEpoch = 0
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(consensusKey); writer.write(jailed); writer.write(jailedUntilMilliseconds); writer.write(tombstoned)
        writer.writeBytes(missedBits); writer.write(windowFilled); writer.write(windowCursor); writer.write(missedCount)
        writer.write(signedThisEpoch)
    }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        consensusKey = try reader.read(PublicKey.self)
        jailed = try reader.readBool("jailed")
        jailedUntilMilliseconds = try reader.readUInt64("jailed until")
        tombstoned = try reader.readBool("tombstoned")
        missedBits = try reader.readBytes("missed bits", limit: 1_000_000 / 8 + 1)
        windowFilled = try reader.readUInt64("window filled")
        windowCursor = try reader.readUInt64("window cursor")
        missedCount = try reader.readUInt64("missed count")
        signedThisEpoch = try reader.readUInt64("signed this epoch")
    }
}

/// Gateway-only state.
public struct GatewayRecord: Equatable, Sendable, CanonicalCodable {
    /// Attestation and dispute votes cast in the current epoch (for rewards).
    public var votesThisEpoch: UInt64

    public init(votesThisEpoch: UInt64 = 0) { self.votesThisEpoch = votesThisEpoch }

    public func encode(to writer: inout CanonicalWriter) { writer.write(votesThisEpoch) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        votesThisEpoch = try reader.readUInt64("votes this epoch")
    }
}

/// Where an event is in its life. Only the edges listed in specs/runtime.md exist.
public enum EventStatus: UInt32, Sendable, Equatable, CaseIterable, CanonicalTag {
    public static let tagName = "event status"

    case pending = 0
    case accepted = 1
    case rejected = 2
    case expired = 3
    case disputed = 4
    case finalized = 5

    public var name: String {
        switch self {
        case .pending: return "pending"
        case .accepted: return "accepted"
        case .rejected: return "rejected"
        case .expired: return "expired"
        case .disputed: return "disputed"
        case .finalized: return "finalized"
        }
    }

    /// The lifecycle's edges; the runtime asserts every transition against this.
    public func canMove(to next: EventStatus) -> Bool {
        switch (self, next) {
        case (.pending, .accepted), (.pending, .rejected), (.pending, .expired),
             (.accepted, .finalized), (.accepted, .disputed),
             (.disputed, .rejected), (.disputed, .finalized):
            return true
        default:
            return false
        }
    }

}

/// The header a gateway proposes. Its BLAKE2b-256 is the event id; the author's nonce and the
/// block height make it unique.
public struct EventHeader: Equatable, Sendable, CanonicalCodable {
    public let author: PublicKey
    public let nonce: UInt64
    public let height: UInt64
    public let parents: [Hash256]
    public let arTxID: ArTxID
    public let contentHash: Hash256
    public let kind: String

    public init(author: PublicKey, nonce: UInt64, height: UInt64, parents: [Hash256], arTxID: ArTxID, contentHash: Hash256, kind: String) {
        self.author = author
        self.nonce = nonce
        self.height = height
        self.parents = parents
        self.arTxID = arTxID
        self.contentHash = contentHash
        self.kind = kind
    }

    public var id: Hash256 { Blake2b.hash256(canonicalBytes) }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(author); writer.write(nonce); writer.write(height); writer.writeList(parents)
        writer.write(arTxID); writer.write(contentHash); writer.writeString(kind)
    }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        author = try reader.read(PublicKey.self)
        nonce = try reader.readUInt64("nonce")
        height = try reader.readUInt64("height")
        parents = try reader.readList(Hash256.self, "parents", limit: TransactionLimits.maxParents)
        arTxID = try reader.read(ArTxID.self)
        contentHash = try reader.read(Hash256.self)
        kind = try reader.readString("kind", limit: TransactionLimits.maxKindBytes)
    }
}

/// An event on chain: its header, where it is in its lifecycle, and its tallies.
public struct EventRecord: Equatable, Sendable, CanonicalCodable {
    public var header: EventHeader
    public var proposedAtMilliseconds: UInt64
    public var status: EventStatus
    /// Block time of the last status change (acceptance opens the challenge window).
    public var statusChangedAtMilliseconds: UInt64
    public var statusChangedAtHeight: UInt64
    /// Block time of acceptance (0 if never accepted): the challenge window runs from it.
    public var acceptedAtMilliseconds: UInt64
    public var validStake: Amount
    public var invalidStake: Amount
    /// Gateways that attested `valid`, sorted; they are the ones slashed if a dispute is upheld.
    public var validVoters: [PublicKey]
    public var invalidVoters: [PublicKey]
    public var disputeID: Hash256?

    public static let maxVoters = 10_000

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(header); writer.write(proposedAtMilliseconds); writer.write(status)
        writer.write(statusChangedAtMilliseconds); writer.write(statusChangedAtHeight); writer.write(acceptedAtMilliseconds)
        writer.write(validStake); writer.write(invalidStake)
        writer.writeList(validVoters); writer.writeList(invalidVoters); writer.writeOptional(disputeID)
    }
    public init(header: EventHeader, proposedAtMilliseconds: UInt64) {
        self.header = header
        self.proposedAtMilliseconds = proposedAtMilliseconds
        status = .pending
        statusChangedAtMilliseconds = proposedAtMilliseconds
        statusChangedAtHeight = header.height
        acceptedAtMilliseconds = 0
        validStake = .zero
        invalidStake = .zero
        validVoters = []
        invalidVoters = []
        disputeID = nil
    }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        header = try reader.read(EventHeader.self)
        proposedAtMilliseconds = try reader.readUInt64("proposed at")
        status = try reader.read(EventStatus.self)
        statusChangedAtMilliseconds = try reader.readUInt64("status changed at")
        statusChangedAtHeight = try reader.readUInt64("status changed at height")
        acceptedAtMilliseconds = try reader.readUInt64("accepted at")
        validStake = try reader.read(Amount.self)
        invalidStake = try reader.read(Amount.self)
        validVoters = try reader.readList(PublicKey.self, "valid voters", limit: EventRecord.maxVoters)
        invalidVoters = try reader.readList(PublicKey.self, "invalid voters", limit: EventRecord.maxVoters)
        disputeID = try reader.readOptional(Hash256.self, "dispute id")
    }

    public func hasVoted(_ gateway: PublicKey) -> Bool {
        SortedKeys.contains(validVoters, gateway) || SortedKeys.contains(invalidVoters, gateway)
    }
}

public enum DisputeStatus: UInt32, Sendable, Equatable, CanonicalTag {
    public static let tagName = "dispute status"

    case open = 0
    case upheld = 1
    case notUpheld = 2

    public var name: String {
        switch self {
        case .open: return "open"
        case .upheld: return "upheld"
        case .notUpheld: return "not_upheld"
        }
    }

}

public struct DisputeRecord: Equatable, Sendable, CanonicalCodable {
    public var eventID: Hash256
    public var disputer: PublicKey
    public var bond: Amount
    public var reason: ArTxID
    public var openedAtMilliseconds: UInt64
    public var openedAtHeight: UInt64
    public var status: DisputeStatus
    public var upholdStake: Amount
    public var rejectStake: Amount
    public var voters: [PublicKey]
    /// What the resolution moved: total slashed from gateways and the disputer's reward.
    public var slashedTotal: Amount
    public var disputerReward: Amount

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(eventID); writer.write(disputer); writer.write(bond); writer.write(reason)
        writer.write(openedAtMilliseconds); writer.write(openedAtHeight); writer.write(status)
        writer.write(upholdStake); writer.write(rejectStake); writer.writeList(voters)
        writer.write(slashedTotal); writer.write(disputerReward)
    }
    public init(eventID: Hash256, disputer: PublicKey, bond: Amount, reason: ArTxID, openedAtMilliseconds: UInt64, openedAtHeight: UInt64) {
        self.eventID = eventID
        self.disputer = disputer
        self.bond = bond
        self.reason = reason
        self.openedAtMilliseconds = openedAtMilliseconds
        self.openedAtHeight = openedAtHeight
        status = .open
        upholdStake = .zero
        rejectStake = .zero
        voters = []
        slashedTotal = .zero
        disputerReward = .zero
    }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        eventID = try reader.read(Hash256.self)
        disputer = try reader.read(PublicKey.self)
        bond = try reader.read(Amount.self)
        reason = try reader.read(ArTxID.self)
        openedAtMilliseconds = try reader.readUInt64("opened at")
        openedAtHeight = try reader.readUInt64("opened at height")
        status = try reader.read(DisputeStatus.self)
        upholdStake = try reader.read(Amount.self)
        rejectStake = try reader.read(Amount.self)
        voters = try reader.readList(PublicKey.self, "dispute voters", limit: EventRecord.maxVoters)
        slashedTotal = try reader.read(Amount.self)
        disputerReward = try reader.read(Amount.self)
    }

    /// One dispute per event: its id is derived from the event id.
    public static func id(forEvent eventID: Hash256) -> Hash256 {
        Blake2b.hash256(Array("membria/dispute".utf8) + eventID.bytes)
    }
}

/// A member of a validator set as consensus sees it.
public struct ValidatorSetEntry: Equatable, Sendable, CanonicalCodable {
    public let consensusKey: PublicKey
    public let address: PublicKey
    /// Voting power: bonded stake in whole ACTI.
    public let power: UInt64

    public init(consensusKey: PublicKey, address: PublicKey, power: UInt64) {
        self.consensusKey = consensusKey
        self.address = address
        self.power = power
    }

    public func encode(to writer: inout CanonicalWriter) { writer.write(consensusKey); writer.write(address); writer.write(power) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        consensusKey = try reader.read(PublicKey.self)
        address = try reader.read(PublicKey.self)
        power = try reader.readUInt64("power")
    }
}

/// A validator set scheduled to take effect at a height.
public struct ScheduledValidatorSet: Equatable, Sendable, CanonicalCodable {
    public let effectiveHeight: UInt64
    public let validators: [ValidatorSetEntry]

    public init(effectiveHeight: UInt64, validators: [ValidatorSetEntry]) {
        self.effectiveHeight = effectiveHeight
        self.validators = validators
    }

    public func encode(to writer: inout CanonicalWriter) { writer.write(effectiveHeight); writer.writeList(validators) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        effectiveHeight = try reader.readUInt64("effective height")
        validators = try reader.readList(ValidatorSetEntry.self, "validators", limit: 1_000)
    }
}

/// The validator sets: the one active at the previous height (whose signatures the last
/// commit carries), the current one and the height it signs from, and changes waiting for
/// their height.
public struct ValidatorSets: Equatable, Sendable, CanonicalCodable {
    public var previous: [ValidatorSetEntry]
    public var current: [ValidatorSetEntry]
    /// The first height `current` signs: the key of its `vset/` history entry.
    public var currentSince: UInt64
    public var scheduled: [ScheduledValidatorSet]

    public func encode(to writer: inout CanonicalWriter) {
        writer.writeList(previous); writer.writeList(current); writer.write(currentSince); writer.writeList(scheduled)
    }
    public init(previous: [ValidatorSetEntry], current: [ValidatorSetEntry], currentSince: UInt64, scheduled: [ScheduledValidatorSet]) {
        self.previous = previous
        self.current = current
        self.currentSince = currentSince
        self.scheduled = scheduled
    }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        previous = try reader.readList(ValidatorSetEntry.self, "previous set", limit: 1_000)
        current = try reader.readList(ValidatorSetEntry.self, "current set", limit: 1_000)
        currentSince = try reader.readUInt64("current set since")
        scheduled = try reader.readList(ScheduledValidatorSet.self, "scheduled sets", limit: 100)
    }
}

/// A validator set in the history (`vset/` key: the first height it signs), kept while some
/// height inside the evidence window was signed by it.
public struct HistoricValidatorSet: Equatable, Sendable, CanonicalCodable {
    /// Sorted by consensus key.
    public let validators: [ValidatorSetEntry]

    public init(validators: [ValidatorSetEntry]) { self.validators = validators }

    public func encode(to writer: inout CanonicalWriter) { writer.writeList(validators) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        validators = try reader.readList(ValidatorSetEntry.self, "validators", limit: 1_000)
    }

    /// The member with this consensus key, by binary search over the sorted keys.
    public func member(_ key: PublicKey) -> ValidatorSetEntry? {
        var low = 0, high = validators.count
        while low < high {
            let middle = (low + high) / 2
            if validators[middle].consensusKey < key { low = middle + 1 } else { high = middle }
        }
        return low < validators.count && validators[low].consensusKey == key ? validators[low] : nil
    }
}

/// What evidence about one committed height needs (`height/` key), kept for the last
/// `max_evidence_age_blocks` heights: which set signed it and its block time.
public struct HeightRecord: Equatable, Sendable, CanonicalCodable {
    /// The `vset/` key of the set that signed this height.
    public let validatorSetSince: UInt64
    public let timeMilliseconds: UInt64

    public init(validatorSetSince: UInt64, timeMilliseconds: UInt64) {
        self.validatorSetSince = validatorSetSince
        self.timeMilliseconds = timeMilliseconds
    }

    public func encode(to writer: inout CanonicalWriter) { writer.write(validatorSetSince); writer.write(timeMilliseconds) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        validatorSetSince = try reader.readUInt64("validator set since")
        timeMilliseconds = try reader.readUInt64("time")
    }
}

/// A FIFO of ids, stored as numbered entries between `head` and `tail`.
public struct QueueBounds: Equatable, Sendable, CanonicalCodable {
    public var head: UInt64 = 0
    public var tail: UInt64 = 0
    public init() {}
    public var isEmpty: Bool { head == tail }
    public func encode(to writer: inout CanonicalWriter) { writer.write(head); writer.write(tail) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        head = try reader.readUInt64("queue head")
        tail = try reader.readUInt64("queue tail")
    }
}

/// One queue entry: the ids pushed in one block, and that block's time. Every id of a queue
/// has the same period, so the whole entry falls due at once.
public struct QueueEntry: Equatable, Sendable, CanonicalCodable {
    public let timeMilliseconds: UInt64
    public let ids: [Hash256]

    public init(timeMilliseconds: UInt64, ids: [Hash256]) {
        self.timeMilliseconds = timeMilliseconds
        self.ids = ids
    }

    public func encode(to writer: inout CanonicalWriter) { writer.write(timeMilliseconds); writer.writeList(ids) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        timeMilliseconds = try reader.readUInt64("queue entry time")
        ids = try reader.readList(Hash256.self, "queue entry ids", limit: 1_000_000)
    }
}

/// Chain-wide totals and counters.
public struct GlobalRecord: Equatable, Sendable, CanonicalCodable {
    public var height: UInt64
    public var timeMilliseconds: UInt64
    /// Fees and minted block rewards waiting for the epoch-end payout.
    public var rewardPot: Amount
    public var treasury: Amount
    /// Dispute bonds held until their dispute resolves.
    public var disputeEscrow: Amount
    /// Σ bonded stake of registered gateways: the base of every attestation threshold.
    public var gatewayStake: Amount
    public var genesisSupply: Amount
    public var minted: Amount
    public var burned: Amount
    public var epoch: UInt64
    public var attestationQueue: QueueBounds
    public var challengeQueue: QueueBounds
    public var revoteQueue: QueueBounds

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(height); writer.write(timeMilliseconds); writer.write(rewardPot); writer.write(treasury)
        writer.write(disputeEscrow); writer.write(gatewayStake); writer.write(genesisSupply); writer.write(minted)
        writer.write(burned); writer.write(epoch); writer.write(attestationQueue); writer.write(challengeQueue)
        writer.write(revoteQueue)
    }
    public init(height: UInt64, timeMilliseconds: UInt64, genesisSupply: Amount) {
        self.height = height
        self.timeMilliseconds = timeMilliseconds
        rewardPot = .zero
        treasury = .zero
        disputeEscrow = .zero
        gatewayStake = .zero
        self.genesisSupply = genesisSupply
        minted = .zero
        burned = .zero
        epoch = 0
        attestationQueue = QueueBounds()
        challengeQueue = QueueBounds()
        revoteQueue = QueueBounds()
    }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        height = try reader.readUInt64("height")
        timeMilliseconds = try reader.readUInt64("time")
        rewardPot = try reader.read(Amount.self)
        treasury = try reader.read(Amount.self)
        disputeEscrow = try reader.read(Amount.self)
        gatewayStake = try reader.read(Amount.self)
        genesisSupply = try reader.read(Amount.self)
        minted = try reader.read(Amount.self)
        burned = try reader.read(Amount.self)
        epoch = try reader.readUInt64("epoch")
        attestationQueue = try reader.read(QueueBounds.self)
        challengeQueue = try reader.read(QueueBounds.self)
        revoteQueue = try reader.read(QueueBounds.self)
    }

    /// What the supply must be: genesis plus minted minus burned.
    public var expectedSupply: Amount? { genesisSupply.adding(minted)?.subtracting(burned) }
}

/// A sorted list of keys used as a set (registries, voter lists): binary search, ordered insert.
public enum SortedKeys {
    public static func contains(_ keys: [PublicKey], _ key: PublicKey) -> Bool {
        let index = insertionIndex(keys, key)
        return index < keys.count && keys[index] == key
    }

    public static func insertionIndex(_ keys: [PublicKey], _ key: PublicKey) -> Int {
        var low = 0, high = keys.count
        while low < high {
            let middle = (low + high) / 2
            if keys[middle] < key { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Inserts `key`; returns false if it was already there.
    @discardableResult
    public static func insert(_ keys: inout [PublicKey], _ key: PublicKey) -> Bool {
        let index = insertionIndex(keys, key)
        if index < keys.count && keys[index] == key { return false }
        keys.insert(key, at: index)
        return true
    }

    @discardableResult
    public static func remove(_ keys: inout [PublicKey], _ key: PublicKey) -> Bool {
        let index = insertionIndex(keys, key)
        guard index < keys.count && keys[index] == key else { return false }
        keys.remove(at: index)
        return true
    }
}

/// A list of public keys as a state record (the validator and gateway registries).
public struct KeyList: Equatable, Sendable, CanonicalCodable {
    public var keys: [PublicKey]
    public init(keys: [PublicKey] = []) { self.keys = keys }
    public func encode(to writer: inout CanonicalWriter) { writer.writeList(keys) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        keys = try reader.readList(PublicKey.self, "keys", limit: 1_000_000)
    }
}

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

/// An account's stake: bonded, unbonding, the roles it holds, and until when its votes keep it.
public struct StakeRecord: Equatable, Sendable, CanonicalCodable {
    public var bonded: Amount
    public var unbonding: [UnbondingEntry]
    public var isGateway: Bool
    /// Set once the account registers as a validator.
    public var consensusKey: PublicKey?
    /// No withdrawal before this block time: the account voted on an event, judged a dispute,
    /// or lost power while evidence about it could still arrive (specs/runtime.md, "Locks").
    public var lockedUntilMilliseconds: UInt64

    public static let maxUnbondingEntries = 32

    public init(bonded: Amount = .zero, unbonding: [UnbondingEntry] = [], isGateway: Bool = false, consensusKey: PublicKey? = nil,
                lockedUntilMilliseconds: UInt64 = 0) {
        self.bonded = bonded
        self.unbonding = unbonding
        self.isGateway = isGateway
        self.consensusKey = consensusKey
        self.lockedUntilMilliseconds = lockedUntilMilliseconds
    }

    public var unbondingTotal: Amount {
        unbonding.reduce(Amount.zero) { total, entry in
            // Bounded by total supply, which fits in u128: the loader and the rules keep it so.
            total.adding(entry.amount)!
        }
    }

    /// The stake that counts in gateway votes: bonded stake while the account is a gateway.
    public var electoralStake: Amount { isGateway ? bonded : .zero }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(bonded); writer.writeList(unbonding); writer.write(isGateway); writer.writeOptional(consensusKey)
        writer.write(lockedUntilMilliseconds)
    }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        bonded = try reader.read(Amount.self)
        unbonding = try reader.readList(UnbondingEntry.self, "unbonding entries", limit: StakeRecord.maxUnbondingEntries)
        isGateway = try reader.readBool("is gateway")
        consensusKey = try reader.readOptional(PublicKey.self, "consensus key")
        lockedUntilMilliseconds = try reader.readUInt64("locked until")
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
    /// Position in the validator registry; nil while not registered.
    public var registryIndex: UInt32?

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
        registryIndex = nil
    }

    /// The record of a validator registering again: jail and tombstone kept, counters fresh.
    public func reregistered(windowLength: UInt64) -> ValidatorRecord {
        var fresh = ValidatorRecord(consensusKey: consensusKey, windowLength: windowLength)
        fresh.jailed = jailed
        fresh.jailedUntilMilliseconds = jailedUntilMilliseconds
        fresh.tombstoned = tombstoned
        return fresh
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(consensusKey); writer.write(jailed); writer.write(jailedUntilMilliseconds); writer.write(tombstoned)
        writer.writeBytes(missedBits); writer.write(windowFilled); writer.write(windowCursor); writer.write(missedCount)
        writer.write(signedThisEpoch); writer.writeOptional(registryIndex)
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
        registryIndex = try reader.readOptional(UInt32.self, "registry index")
    }
}

/// Gateway-only state, from registration to deregistration.
public struct GatewayRecord: Equatable, Sendable, CanonicalCodable {
    /// Position in the gateway registry.
    public var registryIndex: UInt32
    /// Votes this epoch on the side that won an event's final decision, and their weight
    /// (Σ of each vote's weight in whole ACTI): the gateway's share of the gateway pool.
    public var winningVotesThisEpoch: UInt64
    public var rewardWeightThisEpoch: UInt128

    public init(registryIndex: UInt32) {
        self.registryIndex = registryIndex
        winningVotesThisEpoch = 0
        rewardWeightThisEpoch = 0
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(registryIndex); writer.write(winningVotesThisEpoch); writer.write(rewardWeightThisEpoch)
    }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        registryIndex = try reader.readUInt32("registry index")
        winningVotesThisEpoch = try reader.readUInt64("winning votes this epoch")
        rewardWeightThisEpoch = try reader.readUInt128("reward weight this epoch")
    }
}

/// A gateway's stake at the opening of the epochs in which it changed (`gwh/` key), so that
/// an event keeps the weights of its electorate whatever happens after (specs/runtime.md,
/// "Electorate"). Sorted by epoch; entries of epochs no live event uses are dropped.
public struct GatewayHistory: Equatable, Sendable, CanonicalCodable {
    public struct Entry: Equatable, Sendable, CanonicalCodable {
        public let epoch: UInt64
        /// The gateway's electoral stake when `epoch` opened.
        public let weight: Amount

        public init(epoch: UInt64, weight: Amount) {
            self.epoch = epoch
            self.weight = weight
        }

        public func encode(to writer: inout CanonicalWriter) { writer.write(epoch); writer.write(weight) }
        public init(from reader: inout CanonicalReader) throws(DecodingError) {
            epoch = try reader.readUInt64("epoch")
            weight = try reader.read(Amount.self)
        }
    }

    public var entries: [Entry]

    public static let maxEntries = 64

    public init(entries: [Entry] = []) { self.entries = entries }

    public func encode(to writer: inout CanonicalWriter) { writer.writeList(entries) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        entries = try reader.readList(Entry.self, "history entries", limit: GatewayHistory.maxEntries)
    }

    /// The weight recorded for the first epoch at or after `epoch`, if any: with no change
    /// between `epoch` and that one, it is the weight at `epoch` too.
    public func weight(atEpoch epoch: UInt64) -> Amount? {
        var low = 0, high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].epoch < epoch { low = middle + 1 } else { high = middle }
        }
        return low < entries.count ? entries[low].weight : nil
    }
}

/// One epoch (`epoch/` u64-be key), kept while an event of its electorate can still be
/// voted on or decided.
public struct EpochRecord: Equatable, Sendable, CanonicalCodable {
    /// Σ electoral stake when the epoch opened: the total every threshold of its events uses.
    public let gatewayTotal: Amount
    public let startHeight: UInt64
    /// Block time of the block that closed it (0 while it runs).
    public var endedAtMilliseconds: UInt64

    public init(gatewayTotal: Amount, startHeight: UInt64, endedAtMilliseconds: UInt64 = 0) {
        self.gatewayTotal = gatewayTotal
        self.startHeight = startHeight
        self.endedAtMilliseconds = endedAtMilliseconds
    }

    public func encode(to writer: inout CanonicalWriter) { writer.write(gatewayTotal); writer.write(startHeight); writer.write(endedAtMilliseconds) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        gatewayTotal = try reader.read(Amount.self)
        startHeight = try reader.readUInt64("start height")
        endedAtMilliseconds = try reader.readUInt64("ended at")
    }
}

/// One page of a registry (`reg/v/`, `reg/g/` u64-be page): members in registration order,
/// a removed member's place taken by the last one. Page p holds positions p·256 … p·256+255.
public struct RegistryPage: Equatable, Sendable, CanonicalCodable {
    public var keys: [PublicKey]

    public static let capacity = 256

    public init(keys: [PublicKey] = []) { self.keys = keys }

    public func encode(to writer: inout CanonicalWriter) { writer.writeList(keys) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        keys = try reader.readList(PublicKey.self, "registry page", limit: RegistryPage.capacity)
    }
}

/// A member of a validator set as consensus sees it.
public struct ValidatorSetEntry: Equatable, Sendable, CanonicalCodable {
    public let consensusKey: PublicKey
    public let address: PublicKey
    /// Voting power: bonded stake in whole ACTI.
    public let power: UInt64

    /// Members a set can have (the loader caps `max_validators` at it).
    public static let maxSetSize: UInt32 = 1_000

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
    /// At most one set per height of the change delay (the loader caps the delay at it).
    public static let maxScheduled: UInt64 = 100

    public let effectiveHeight: UInt64
    public let validators: [ValidatorSetEntry]

    public init(effectiveHeight: UInt64, validators: [ValidatorSetEntry]) {
        self.effectiveHeight = effectiveHeight
        self.validators = validators
    }

    public func encode(to writer: inout CanonicalWriter) { writer.write(effectiveHeight); writer.writeList(validators) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        effectiveHeight = try reader.readUInt64("effective height")
        validators = try reader.readList(ValidatorSetEntry.self, "validators", limit: Int(ValidatorSetEntry.maxSetSize))
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
        previous = try reader.readList(ValidatorSetEntry.self, "previous set", limit: Int(ValidatorSetEntry.maxSetSize))
        current = try reader.readList(ValidatorSetEntry.self, "current set", limit: Int(ValidatorSetEntry.maxSetSize))
        currentSince = try reader.readUInt64("current set since")
        scheduled = try reader.readList(ScheduledValidatorSet.self, "scheduled sets", limit: Int(ScheduledValidatorSet.maxScheduled))
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
        validators = try reader.readList(ValidatorSetEntry.self, "validators", limit: Int(ValidatorSetEntry.maxSetSize))
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

/// One queue entry: ids pushed in one block (a block with more writes several entries), and
/// that block's time. Every id of a queue has the same period, so the whole entry falls due at once.
public struct QueueEntry: Equatable, Sendable, CanonicalCodable {
    public let timeMilliseconds: UInt64
    public let ids: [Hash256]

    /// Bounds what deciding an event before its deadline makes a block rewrite (ADR 0029): its
    /// entry, at most 8 KiB.
    public static let maxIDs = 256

    public init(timeMilliseconds: UInt64, ids: [Hash256]) {
        self.timeMilliseconds = timeMilliseconds
        self.ids = ids
    }

    public func encode(to writer: inout CanonicalWriter) { writer.write(timeMilliseconds); writer.writeList(ids) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        timeMilliseconds = try reader.readUInt64("queue entry time")
        ids = try reader.readList(Hash256.self, "queue entry ids", limit: QueueEntry.maxIDs)
    }
}

/// Chain-wide totals and counters.
public struct GlobalRecord: Equatable, Sendable, CanonicalCodable {
    public var height: UInt64
    public var timeMilliseconds: UInt64
    /// Fees and minted block rewards waiting for the epoch-end payout.
    public var rewardPot: Amount
    public var treasury: Amount
    /// Dispute and defence bonds held until they are settled.
    public var disputeEscrow: Amount
    /// Σ electoral stake of registered gateways now (the next epoch's electorate total).
    public var gatewayStake: Amount
    public var genesisSupply: Amount
    public var minted: Amount
    public var burned: Amount
    public var epoch: UInt64
    /// The oldest epoch whose electorate a live event may still use (its `epoch/` record and
    /// the gateway history back to it are kept).
    public var oldestLiveEpoch: UInt64
    public var validatorCount: UInt32
    public var gatewayCount: UInt32
    public var attestationQueue: QueueBounds
    public var challengeQueue: QueueBounds
    public var revoteQueue: QueueBounds

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(height); writer.write(timeMilliseconds); writer.write(rewardPot); writer.write(treasury)
        writer.write(disputeEscrow); writer.write(gatewayStake); writer.write(genesisSupply); writer.write(minted)
        writer.write(burned); writer.write(epoch); writer.write(oldestLiveEpoch); writer.write(validatorCount)
        writer.write(gatewayCount); writer.write(attestationQueue); writer.write(challengeQueue); writer.write(revoteQueue)
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
        oldestLiveEpoch = 0
        validatorCount = 0
        gatewayCount = 0
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
        oldestLiveEpoch = try reader.readUInt64("oldest live epoch")
        validatorCount = try reader.readUInt32("validator count")
        gatewayCount = try reader.readUInt32("gateway count")
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

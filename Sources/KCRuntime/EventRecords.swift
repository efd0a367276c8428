import KCCodec
import KCCrypto
import KCTypes

// The records of knowledge events, their votes and their disputes (specs/runtime.md, "State").
// Votes live under their own keys, never inside the event record: a vote costs a few small
// writes whatever the number of voters, and no record grows with them.

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

    /// Rejected, expired and finalized events never change again.
    public var isFinal: Bool { self == .rejected || self == .expired || self == .finalized }

    /// The lifecycle's edges; the runtime asserts every transition against this.
    public func canMove(to next: EventStatus) -> Bool {
        switch (self, next) {
        case (.pending, .accepted), (.pending, .rejected), (.pending, .expired),
             (.accepted, .disputed), (.accepted, .finalized), (.accepted, .rejected),
             (.disputed, .accepted), (.disputed, .finalized), (.disputed, .rejected):
            return true
        default:
            return false
        }
    }
}

/// Why an event reached its final status (or `none` while it has not).
public enum EventResolution: UInt32, Sendable, Equatable, CaseIterable, CanonicalTag {
    public static let tagName = "event resolution"

    case none = 0
    /// Rejected by its attestation: invalid weight over 1/3 of the electorate.
    case attestation = 1
    /// Rejected by an upheld dispute.
    case dispute = 2
    /// Rejected because a parent was rejected or expired.
    case parent = 3
    /// Expired: no decision before the attestation deadline.
    case deadline = 4
    /// Finalized: its challenge window passed, every dispute failed and every parent is final.
    case challengeWindow = 5

    public var name: String {
        switch self {
        case .none: return "none"
        case .attestation: return "attestation"
        case .dispute: return "dispute"
        case .parent: return "parent"
        case .deadline: return "deadline"
        case .challengeWindow: return "challenge_window"
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

/// An event on chain: its header, its electorate, its tallies, its disputes and where it is
/// in its lifecycle. Its first `inlineVoteLimit` votes are held in it; later ones under their
/// own keys (`EventVote`, `VoterEntry`), so its size is bounded whatever the number of voters.
public struct EventRecord: Equatable, Sendable, CanonicalCodable {
    public var header: EventHeader
    public var proposedAtMilliseconds: UInt64
    public var status: EventStatus
    public var resolution: EventResolution
    /// Block time and height of the last status change.
    public var statusChangedAtMilliseconds: UInt64
    public var statusChangedAtHeight: UInt64
    /// Block time of acceptance (0 if never accepted): the challenge window runs from it.
    public var acceptedAtMilliseconds: UInt64
    /// The epoch whose opening gateway stakes decide this event, and their total.
    public var electorateEpoch: UInt64
    public var electorateTotal: Amount
    /// The author's bonded stake when it proposed: what an upheld dispute slashes from it.
    public var authorStake: Amount
    /// Σ weight of the valid and invalid votes, and how many of each.
    public var validWeight: Amount
    public var invalidWeight: Amount
    public var validCount: UInt32
    public var invalidCount: UInt32
    /// Disputes opened so far (each has its own id), the latest, and the largest bond posted
    /// by a disputer or a defender (a new dispute must post at least twice it).
    public var disputeCount: UInt32
    public var disputeID: Hash256?
    public var largestBond: Amount
    /// Defence bonds held until the event's fate is final.
    public var defenseEscrow: Amount
    /// Set while the event's window has passed but a parent is not final yet: that parent,
    /// and the next event waiting on the same parent (a list threaded through the records).
    public var waitingOn: Hash256?
    public var nextWaiting: Hash256?
    /// For `resolution == .parent`: the parent that was rejected or expired.
    public var rejectedParent: Hash256?
    /// The attestation-queue entry (`q/attest/` position) that holds the event while it is
    /// pending: a decision before the deadline takes it out there, so the deadline reads only
    /// events still pending.
    public var attestationEntry: UInt64
    /// Set once an event starts waiting on this one (a `wait/` list exists while this event is
    /// not final): only then does its becoming final read that list.
    public var hasWaitingChildren: Bool
    /// The first votes cast on the event, in order, at most `inlineVoteLimit` (ADR 0019): an
    /// event decided by a small electorate costs no state entry per vote.
    public var inlineVotes: [InlineVote]

    /// A protocol constant: disputes one event can have (bonds at least double each round).
    public static let maxDisputes: UInt32 = 32
    /// A protocol constant: votes held in the record; later votes are written under `evote/`
    /// and `evl/` keys.
    public static let inlineVoteLimit = 32

    public init(header: EventHeader, proposedAtMilliseconds: UInt64, electorateEpoch: UInt64, electorateTotal: Amount,
                authorStake: Amount, attestationEntry: UInt64) {
        self.header = header
        self.proposedAtMilliseconds = proposedAtMilliseconds
        self.attestationEntry = attestationEntry
        status = .pending
        resolution = .none
        statusChangedAtMilliseconds = proposedAtMilliseconds
        statusChangedAtHeight = header.height
        acceptedAtMilliseconds = 0
        self.electorateEpoch = electorateEpoch
        self.electorateTotal = electorateTotal
        self.authorStake = authorStake
        validWeight = .zero
        invalidWeight = .zero
        validCount = 0
        invalidCount = 0
        disputeCount = 0
        disputeID = nil
        largestBond = .zero
        defenseEscrow = .zero
        waitingOn = nil
        nextWaiting = nil
        rejectedParent = nil
        hasWaitingChildren = false
        inlineVotes = []
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(header); writer.write(proposedAtMilliseconds); writer.write(status); writer.write(resolution)
        writer.write(statusChangedAtMilliseconds); writer.write(statusChangedAtHeight); writer.write(acceptedAtMilliseconds)
        writer.write(electorateEpoch); writer.write(electorateTotal); writer.write(authorStake)
        writer.write(validWeight); writer.write(invalidWeight); writer.write(validCount); writer.write(invalidCount)
        writer.write(disputeCount); writer.writeOptional(disputeID); writer.write(largestBond); writer.write(defenseEscrow)
        writer.writeOptional(waitingOn); writer.writeOptional(nextWaiting); writer.writeOptional(rejectedParent)
        writer.write(attestationEntry); writer.write(hasWaitingChildren)
        writer.writeList(inlineVotes)
    }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        header = try reader.read(EventHeader.self)
        proposedAtMilliseconds = try reader.readUInt64("proposed at")
        status = try reader.read(EventStatus.self)
        resolution = try reader.read(EventResolution.self)
        statusChangedAtMilliseconds = try reader.readUInt64("status changed at")
        statusChangedAtHeight = try reader.readUInt64("status changed at height")
        acceptedAtMilliseconds = try reader.readUInt64("accepted at")
        electorateEpoch = try reader.readUInt64("electorate epoch")
        electorateTotal = try reader.read(Amount.self)
        authorStake = try reader.read(Amount.self)
        validWeight = try reader.read(Amount.self)
        invalidWeight = try reader.read(Amount.self)
        validCount = try reader.readUInt32("valid count")
        invalidCount = try reader.readUInt32("invalid count")
        disputeCount = try reader.readUInt32("dispute count")
        disputeID = try reader.readOptional(Hash256.self, "dispute id")
        largestBond = try reader.read(Amount.self)
        defenseEscrow = try reader.read(Amount.self)
        waitingOn = try reader.readOptional(Hash256.self, "waiting on")
        nextWaiting = try reader.readOptional(Hash256.self, "next waiting")
        rejectedParent = try reader.readOptional(Hash256.self, "rejected parent")
        attestationEntry = try reader.readUInt64("attestation entry")
        hasWaitingChildren = try reader.readBool("has waiting children")
        inlineVotes = try reader.readList(InlineVote.self, "inline votes", limit: Self.inlineVoteLimit)
        guard UInt64(inlineVotes.count) <= UInt64(validCount) + UInt64(invalidCount) else {
            throw .invalidValue(what: "event record", reason: "more inline votes than votes counted")
        }
    }

    /// Whether later votes go under their own keys.
    public var inlineVotesFull: Bool { inlineVotes.count >= Self.inlineVoteLimit }

    /// `voter`'s vote on this event (`id`): held in the record, else read under its
    /// `evote/` key with `stored`, which is only asked once the record is full.
    public func vote(of voter: PublicKey, event id: Hash256, stored: (StoreKey) -> EventVote?) -> EventVote? {
        var valid: UInt32 = 0, invalid: UInt32 = 0  // positions in each side's list
        for inline in inlineVotes {
            let isValid = inline.verdict == .valid
            if inline.voter == voter { return EventVote(verdict: inline.verdict, weight: inline.weight, index: isValid ? valid : invalid) }
            if isValid { valid += 1 } else { invalid += 1 }
        }
        return inlineVotesFull ? stored(StateKey.eventVote(id, voter)) : nil
    }

    /// Voter number `position` of `side`'s list (in the order they voted): held in the record
    /// for a side's first ones, else read under its `evl/` key with `stored`.
    public func voter(_ side: Verdict, at position: UInt32, event id: Hash256, stored: (StoreKey) -> VoterEntry?) -> VoterEntry? {
        var sideIndex: UInt32 = 0
        for inline in inlineVotes where inline.verdict == side {
            if sideIndex == position { return VoterEntry(voter: inline.voter, weight: inline.weight) }
            sideIndex += 1
        }
        return stored(StateKey.voterEntry(id, side, position))
    }

    /// Block time at which the challenge window closes (meaningful once accepted).
    public func challengeWindowCloses(_ parameters: ChainParameters) -> UInt64 {
        acceptedAtMilliseconds.addingSaturating(parameters.events.challengeWindowMilliseconds)
    }

    /// The last block time at which anything can still be voted or decided about this event
    /// (attestation, challenge window, a last dispute's re-vote): its voters' stake is locked
    /// until then.
    public func votesSettle(_ parameters: ChainParameters) -> UInt64 {
        proposedAtMilliseconds.addingSaturating(parameters.events.lifetimeMilliseconds)
    }
}

/// A vote held in its event's record (`EventRecord.inlineVotes`).
public struct InlineVote: Equatable, Sendable, CanonicalCodable {
    public let voter: PublicKey
    public let verdict: Verdict
    public let weight: Amount

    public init(voter: PublicKey, verdict: Verdict, weight: Amount) {
        self.voter = voter
        self.verdict = verdict
        self.weight = weight
    }

    public func encode(to writer: inout CanonicalWriter) { writer.write(voter); writer.write(verdict); writer.write(weight) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        voter = try reader.read(PublicKey.self)
        verdict = try reader.read(Verdict.self)
        weight = try reader.read(Amount.self)
    }
}

/// One gateway's vote on one event past the record's inline votes (`evote/` key): its verdict, the weight it was cast with
/// (its stake at the electorate's epoch) and its place in the event's voter list.
public struct EventVote: Equatable, Sendable, CanonicalCodable {
    public let verdict: Verdict
    public let weight: Amount
    public let index: UInt32

    public init(verdict: Verdict, weight: Amount, index: UInt32) {
        self.verdict = verdict
        self.weight = weight
        self.index = index
    }

    public func encode(to writer: inout CanonicalWriter) { writer.write(verdict); writer.write(weight); writer.write(index) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        verdict = try reader.read(Verdict.self)
        weight = try reader.read(Amount.self)
        index = try reader.readUInt32("vote index")
    }
}

/// One entry of an event's valid or invalid voter list: who, and with what weight (under an
/// `evl/` key past the record's inline votes).
public struct VoterEntry: Equatable, Sendable, CanonicalCodable {
    public let voter: PublicKey
    public let weight: Amount

    public init(voter: PublicKey, weight: Amount) {
        self.voter = voter
        self.weight = weight
    }

    public func encode(to writer: inout CanonicalWriter) { writer.write(voter); writer.write(weight) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        voter = try reader.read(PublicKey.self)
        weight = try reader.read(Amount.self)
    }
}

public enum DisputeStatus: UInt32, Sendable, Equatable, CanonicalTag {
    public static let tagName = "dispute status"

    case open = 0
    /// The jury or an undefended bond round found the event false: it is rejected.
    case upheld = 1
    /// The jury did not uphold it: the bond is burned, the event stands.
    case notUpheld = 2
    /// A defender matched the bond in a bond round: the event stands.
    case defended = 3

    public var name: String {
        switch self {
        case .open: return "open"
        case .upheld: return "upheld"
        case .notUpheld: return "not_upheld"
        case .defended: return "defended"
        }
    }
}

/// Who decides a dispute (specs/runtime.md, "Disputes").
public enum DisputeMode: UInt32, Sendable, Equatable, CanonicalTag {
    public static let tagName = "dispute mode"

    /// The validators that are not accused, holding more than half of the set's power.
    case validators = 0
    /// Too little unaccused power: a bond round (defend with at least the bond, or it is upheld).
    case bonds = 1

    public var name: String { self == .validators ? "validators" : "bonds" }
}

public struct DisputeRecord: Equatable, Sendable, CanonicalCodable {
    public var eventID: Hash256
    /// 0 for the event's first dispute, then 1, 2, …
    public var sequence: UInt32
    public var disputer: PublicKey
    public var bond: Amount
    public var reason: ArTxID
    public var openedAtMilliseconds: UInt64
    public var openedAtHeight: UInt64
    /// Block time at which the re-vote (or the defence period) ends.
    public var deadlineMilliseconds: UInt64
    public var mode: DisputeMode
    public var status: DisputeStatus
    /// Power of the validator set when the dispute opened, and of its unaccused members (the jury).
    public var setPower: UInt128
    public var eligiblePower: UInt128
    public var upholdPower: UInt128
    public var rejectPower: UInt128
    public var voterCount: UInt32
    public var defender: PublicKey?
    public var defenseBond: Amount
    /// What the resolution moved: total slashed from the accused and the disputer's reward.
    public var slashedTotal: Amount
    public var disputerReward: Amount

    public init(eventID: Hash256, sequence: UInt32, disputer: PublicKey, bond: Amount, reason: ArTxID,
                openedAtMilliseconds: UInt64, openedAtHeight: UInt64, deadlineMilliseconds: UInt64,
                mode: DisputeMode, setPower: UInt128, eligiblePower: UInt128) {
        self.eventID = eventID
        self.sequence = sequence
        self.disputer = disputer
        self.bond = bond
        self.reason = reason
        self.openedAtMilliseconds = openedAtMilliseconds
        self.openedAtHeight = openedAtHeight
        self.deadlineMilliseconds = deadlineMilliseconds
        self.mode = mode
        status = .open
        self.setPower = setPower
        self.eligiblePower = eligiblePower
        upholdPower = 0
        rejectPower = 0
        voterCount = 0
        defender = nil
        defenseBond = .zero
        slashedTotal = .zero
        disputerReward = .zero
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(eventID); writer.write(sequence); writer.write(disputer); writer.write(bond); writer.write(reason)
        writer.write(openedAtMilliseconds); writer.write(openedAtHeight); writer.write(deadlineMilliseconds)
        writer.write(mode); writer.write(status); writer.write(setPower); writer.write(eligiblePower)
        writer.write(upholdPower); writer.write(rejectPower); writer.write(voterCount)
        writer.writeOptional(defender); writer.write(defenseBond); writer.write(slashedTotal); writer.write(disputerReward)
    }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        eventID = try reader.read(Hash256.self)
        sequence = try reader.readUInt32("dispute sequence")
        disputer = try reader.read(PublicKey.self)
        bond = try reader.read(Amount.self)
        reason = try reader.read(ArTxID.self)
        openedAtMilliseconds = try reader.readUInt64("opened at")
        openedAtHeight = try reader.readUInt64("opened at height")
        deadlineMilliseconds = try reader.readUInt64("deadline")
        mode = try reader.read(DisputeMode.self)
        status = try reader.read(DisputeStatus.self)
        setPower = try reader.readUInt128("set power")
        eligiblePower = try reader.readUInt128("eligible power")
        upholdPower = try reader.readUInt128("uphold power")
        rejectPower = try reader.readUInt128("reject power")
        voterCount = try reader.readUInt32("voter count")
        defender = try reader.readOptional(PublicKey.self, "defender")
        defenseBond = try reader.read(Amount.self)
        slashedTotal = try reader.read(Amount.self)
        disputerReward = try reader.read(Amount.self)
    }

    /// The id of an event's dispute number `sequence`.
    public static func id(forEvent eventID: Hash256, sequence: UInt32) -> Hash256 {
        var bytes = Array("membria/dispute".utf8) + eventID.bytes
        ByteOrder.appendBigEndian(sequence, to: &bytes)
        return Blake2b.hash256(bytes)
    }
}

/// The jury of a dispute decided by validators (`jury/` key): the members of the validator
/// set that were not accused when it opened, sorted by address, with their power then.
public struct JuryRecord: Equatable, Sendable, CanonicalCodable {
    public struct Member: Equatable, Sendable, CanonicalCodable {
        public let address: PublicKey
        public let power: UInt64

        public init(address: PublicKey, power: UInt64) {
            self.address = address
            self.power = power
        }

        public func encode(to writer: inout CanonicalWriter) { writer.write(address); writer.write(power) }
        public init(from reader: inout CanonicalReader) throws(DecodingError) {
            address = try reader.read(PublicKey.self)
            power = try reader.readUInt64("power")
        }
    }

    public let members: [Member]

    public init(members: [Member]) { self.members = members }

    public func encode(to writer: inout CanonicalWriter) { writer.writeList(members) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        members = try reader.readList(Member.self, "jury members", limit: Int(ValidatorSetEntry.maxSetSize))
    }

    /// The member's position, by binary search over the sorted addresses.
    public func index(of address: PublicKey) -> Int? {
        var low = 0, high = members.count
        while low < high {
            let middle = (low + high) / 2
            if members[middle].address < address { low = middle + 1 } else { high = middle }
        }
        return low < members.count && members[low].address == address ? low : nil
    }
}

/// A juror's vote (`dvote/` dispute ‖ u16 jury position).
public struct DisputeVote: Equatable, Sendable, CanonicalCodable {
    public let uphold: Bool
    public let power: UInt64

    public init(uphold: Bool, power: UInt64) {
        self.uphold = uphold
        self.power = power
    }

    public func encode(to writer: inout CanonicalWriter) { writer.write(uphold); writer.write(power) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        uphold = try reader.readBool("uphold")
        power = try reader.readUInt64("power")
    }
}

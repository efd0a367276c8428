import KCCodec
import KCCrypto
import KCTypes

/// Votes of one height, by round and kind: tallies per value, and equivocation detection.
struct VoteKeeper: Sendable {
    enum AddResult: Equatable {
        case added
        case duplicate
        /// A second, different vote for the same height, round and kind: the pair is evidence.
        /// Both votes count towards their own value (a Byzantine validator may send each to
        /// different peers, and a quorum for one value must still be recognisable by anyone
        /// who receives it), but the validator counts once towards "any value".
        case equivocation(DoubleSignEvidence)
    }

    /// At most this many distinct values are kept per validator per round and kind, so an
    /// equivocator cannot make us store without bound.
    static let maxValuesPerValidator = 2

    struct Tally: Sendable {
        var byValidator: [PublicKey: [SignedVote]] = [:]
        var powerByValue: [Hash256?: UInt64] = [:]
        var totalPower: UInt64 = 0
    }

    struct RoundVotes: Sendable {
        var prevotes = Tally()
        var precommits = Tally()
        /// Validators (and proposers) heard from in this round, with their power (L55).
        var senders: [PublicKey: UInt64] = [:]
        var senderPower: UInt64 = 0
    }

    private(set) var rounds: [UInt32: RoundVotes] = [:]
    /// Evidence already reported, so each equivocation is reported once.
    private var reported: Set<PublicKey> = []

    mutating func noteSender(_ key: PublicKey, round: UInt32, power: UInt64) {
        guard power > 0 else { return }
        // Mutated in place: a copy taken out of the dictionary would share its inner tables,
        // and the first write would copy them whole.
        Self.noteSender(key, power: power, in: &rounds[round, default: RoundVotes()])
    }

    private static func noteSender(_ key: PublicKey, power: UInt64, in votes: inout RoundVotes) {
        guard votes.senders[key] == nil else { return }
        votes.senders[key] = power
        votes.senderPower += power
    }

    mutating func add(_ signed: SignedVote, power: UInt64) -> AddResult {
        let vote = signed.vote
        var result = AddResult.added
        func record(_ tally: inout Tally) {
            if let existing = tally.byValidator[vote.validator] {
                if existing.contains(where: { $0.vote.blockID == vote.blockID }) || existing.count >= Self.maxValuesPerValidator {
                    result = .duplicate
                    return
                }
                if let evidence = DoubleSignEvidence(existing[0], signed) { result = .equivocation(evidence) }
                tally.byValidator[vote.validator]!.append(signed)
                tally.powerByValue[vote.blockID, default: 0] += power
                return
            }
            tally.byValidator[vote.validator] = [signed]
            tally.powerByValue[vote.blockID, default: 0] += power
            tally.totalPower += power
        }
        // In place (see noteSender).
        switch vote.kind {
        case .prevote: record(&rounds[vote.round, default: RoundVotes()].prevotes)
        case .precommit: record(&rounds[vote.round, default: RoundVotes()].precommits)
        }
        noteSender(vote.validator, round: vote.round, power: power)
        if case .equivocation = result {
            // One report per validator per height is enough to slash it.
            if !reported.insert(vote.validator).inserted { return .added }
        }
        return result
    }

    /// Whether `add` would change anything: false for a vote already held, or a further
    /// value from a validator that already holds its two.
    func wouldStore(_ vote: Vote) -> Bool {
        let tally = vote.kind == .prevote ? rounds[vote.round]?.prevotes : rounds[vote.round]?.precommits
        guard let existing = tally?.byValidator[vote.validator] else { return true }
        return existing.count < Self.maxValuesPerValidator && !existing.contains { $0.vote.blockID == vote.blockID }
    }

    func tally(_ kind: VoteKind, round: UInt32) -> Tally? {
        guard let votes = rounds[round] else { return nil }
        return kind == .prevote ? votes.prevotes : votes.precommits
    }

    // The rule checks below reach into the round's tables directly: copying the round's record
    // out first would count references to each of its tables on every rule check.
    func power(_ kind: VoteKind, round: UInt32, for id: Hash256?) -> UInt64 {
        switch kind {
        case .prevote: return rounds[round]?.prevotes.powerByValue[id] ?? 0
        case .precommit: return rounds[round]?.precommits.powerByValue[id] ?? 0
        }
    }

    func totalPower(_ kind: VoteKind, round: UInt32) -> UInt64 {
        switch kind {
        case .prevote: return rounds[round]?.prevotes.totalPower ?? 0
        case .precommit: return rounds[round]?.precommits.totalPower ?? 0
        }
    }

    func senderPower(round: UInt32) -> UInt64 { rounds[round]?.senderPower ?? 0 }

    /// The rounds above `bound` in which `key` sent anything (unordered).
    func roundsHeard(from key: PublicKey, above bound: UInt32) -> [UInt32] {
        rounds.compactMap { round, votes in round > bound && votes.senders[key] != nil ? round : nil }
    }

    /// The lowest round above `round` with any message that satisfies `condition` (without
    /// sorting: the minimum does not depend on the dictionary's order).
    func lowestRound(above round: UInt32, where condition: (UInt32) -> Bool) -> UInt32? {
        var lowest: UInt32? = nil
        for candidate in rounds.keys where candidate > round && (lowest.map { candidate < $0 } ?? true) && condition(candidate) {
            lowest = candidate
        }
        return lowest
    }

    /// Every vote of a round, prevotes then precommits, each sorted by validator key.
    func allVotes(round: UInt32) -> [SignedVote] {
        guard let votes = rounds[round] else { return [] }
        func sorted(_ tally: Tally) -> [SignedVote] {
            tally.byValidator.sorted { $0.key < $1.key }.flatMap(\.value)
        }
        return sorted(votes.prevotes) + sorted(votes.precommits)
    }

    /// The votes for `id`, sorted by validator key (a canonical order for certificates).
    func votes(_ kind: VoteKind, round: UInt32, for id: Hash256?) -> [SignedVote] {
        guard let tally = tally(kind, round: round) else { return [] }
        return tally.byValidator.values.compactMap { votes in votes.first { $0.vote.blockID == id } }
            .sorted { $0.vote.validator < $1.vote.validator }
    }
}

/// The precommits of more than two thirds of a height's power for one block: proof, on its
/// own, that the block was decided.
public struct CommitCertificate: Sendable, Equatable, CanonicalCodable {
    public let height: UInt64
    public let round: UInt32
    public let blockID: Hash256
    /// Sorted by validator key, one per validator.
    public let precommits: [SignedVote]

    public static let maxPrecommits = 1_000

    public init(height: UInt64, round: UInt32, blockID: Hash256, precommits: [SignedVote]) {
        self.height = height
        self.round = round
        self.blockID = blockID
        self.precommits = precommits
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(height); writer.write(round); writer.write(blockID); writer.writeList(precommits)
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        height = try reader.readUInt64("height")
        round = try reader.readUInt32("round")
        blockID = try reader.read(Hash256.self)
        precommits = try reader.readList(SignedVote.self, "precommits", limit: CommitCertificate.maxPrecommits)
    }

    public enum Problem: Error, Equatable, Sendable, CustomStringConvertible {
        case wrongVote(index: Int)
        case unknownValidator(index: Int)
        case duplicateOrUnsorted(index: Int)
        case badSignature(index: Int)
        case noQuorum(power: UInt64, total: UInt64)

        public var description: String {
            switch self {
            case .wrongVote(let index): return "precommit \(index) is not for this height, round and block"
            case .unknownValidator(let index): return "precommit \(index) is from a key outside the validator set"
            case .duplicateOrUnsorted(let index): return "precommit \(index) repeats a validator or breaks the key order"
            case .badSignature(let index): return "precommit \(index) has a bad signature"
            case .noQuorum(let power, let total): return "precommits carry \(power) of \(total) power, not more than two thirds"
            }
        }
    }

    /// Checks the certificate alone against the set that signed its height.
    public func verify(validators: ValidatorSet, chainID: String, cache: SignatureCache? = nil) throws(Problem) {
        var power: UInt64 = 0
        var previous: PublicKey? = nil
        for (index, signed) in precommits.enumerated() {
            let vote = signed.vote
            guard vote.kind == .precommit, vote.height == height, vote.round == round, vote.blockID == blockID else {
                throw .wrongVote(index: index)
            }
            guard let memberPower = validators.power(of: vote.validator) else { throw .unknownValidator(index: index) }
            if let previous, !(previous < vote.validator) { throw .duplicateOrUnsorted(index: index) }
            previous = vote.validator
            guard signed.verify(chainID: chainID, cache: cache) else { throw .badSignature(index: index) }
            power += memberPower
        }
        guard validators.isQuorum(power) else { throw .noQuorum(power: power, total: validators.totalPower) }
    }

    public var signers: [PublicKey] { precommits.map(\.vote.validator) }

    /// The block time this certificate fixes for the next block: the power-weighted median of
    /// the precommit timestamps (specs/consensus.md, "Block time").
    public func medianTime(validators: ValidatorSet) -> UInt64 {
        let weighted = precommits.map { ($0.vote.timestampMilliseconds, validators.power(of: $0.vote.validator) ?? 0) }
            .sorted { $0.0 < $1.0 }
        let total = weighted.reduce(UInt64(0)) { $0 + $1.1 }
        var accumulated: UInt64 = 0
        for (time, power) in weighted {
            accumulated += power
            if accumulated * 2 > total { return time }
        }
        return weighted.last?.0 ?? 0
    }
}

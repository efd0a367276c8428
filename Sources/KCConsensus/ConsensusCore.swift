// Tendermint BFT (Buchman, Kwon, Milosevic 2018, arXiv 1807.04938, Algorithm 1) as a pure
// state machine: `apply(input) -> [effect]`. No clock, no network, no disk, no randomness.
// Comments tag the paper's lines (`L22`).
//
// DRIVER CONTRACT (also in specs/consensus.md). A host that runs this core must:
//  1. Feed every input through `apply` and carry out the returned effects in order.
//  2. On `.signVote` / `.signProposal`: have the signer check the message against the last
//     signed height/round/step and make it durable BEFORE the signature leaves (a synced
//     signer record, or the signed message synced into the WAL from which the signer is
//     restored at start-up); then broadcast it and feed it back as `.vote` / `.proposal`.
//  3. Append every input to the consensus WAL before applying it; after a crash, rebuild the
//     core with `startHeight` and replay the WAL's inputs for that height. Effects replayed
//     from the WAL re-sign only identical bytes (the signer returns the identical signature).
//  4. On `.scheduleTimeout`: feed `.timeout` back after the duration (host clock); stale
//     timeouts are ignored by the core, so they need not be cancelled.
//  5. On `.requestValue`: build a value (block) for that height and round and feed it back as
//     `.proposeValue`.
//  6. Verify signatures of proposals and votes before feeding them, and decide validity of a
//     proposed value (execute the block) before feeding `.proposal(_, valid:)`.
//  7. On `.decide`: persist the value with its commit certificate and the resulting state in
//     one synced batch, then call `startHeight` for the next height with its validator set.
//  8. On `.evidence`: hand the double-sign evidence to the block builder for inclusion.
//  9. Gossip (specs/p2p.md, "Consensus gossip") only what went through 1-3 and 6: an own
//     message once it is durable (2), a peer's message once checked, logged and fed; a
//     message for the next height waits, unchecked and bounded, until that height starts.
// 10. Start no core before the store holds the state the height is built on: a node that
//     restores a snapshot (state sync) writes the restored state, synced, and only then
//     starts the height after it; a block synced or decided is stored before the next starts.

import KCCodec
import KCCrypto
import KCTypes

/// A value consensus can agree on. Blocks in the node; small stand-ins in tests.
public protocol ConsensusValue: Sendable, Equatable {
    var id: Hash256 { get }
}

/// The validators of one height: keys and voting power.
public struct ValidatorSet: Sendable, Equatable {
    public let members: [Member]
    public let totalPower: UInt64

    public struct Member: Sendable, Equatable {
        public let key: PublicKey
        public let power: UInt64
        public init(key: PublicKey, power: UInt64) {
            self.key = key
            self.power = power
        }
    }

    /// Members sorted by key; precondition: non-empty, distinct keys, positive powers.
    public init(_ members: [Member]) {
        precondition(!members.isEmpty, "a validator set is never empty")
        let sorted = members.sorted { $0.key < $1.key }
        var total: UInt64 = 0
        for (position, member) in sorted.enumerated() {
            precondition(member.power > 0, "validator power must be positive")
            precondition(position == 0 || sorted[position - 1].key < member.key, "duplicate validator key")
            let (sum, overflow) = total.addingReportingOverflow(member.power)
            precondition(!overflow, "total voting power overflows")
            total = sum
        }
        self.members = sorted
        self.totalPower = total
    }

    /// The member's position in `members`: a binary search of the sorted keys (every vote
    /// asks; cheaper than hashing the key, and nothing to build per height).
    public func index(of key: PublicKey) -> Int? {
        var low = 0
        var high = members.count
        while low < high {
            let middle = (low + high) / 2
            let candidate = members[middle].key
            if candidate == key { return middle }
            if candidate < key { low = middle + 1 } else { high = middle }
        }
        return nil
    }

    public func power(of key: PublicKey) -> UInt64? { index(of: key).map { members[$0].power } }
    public func contains(_ key: PublicKey) -> Bool { index(of: key) != nil }

    /// More than two thirds of the total power.
    public func isQuorum(_ power: UInt64) -> Bool { UInt128(power) * 3 > UInt128(totalPower) * 2 }
    /// More than one third: at least one honest validator is among them.
    public func isOneThirdPlus(_ power: UInt64) -> Bool { UInt128(power) * 3 > UInt128(totalPower) }

    /// The proposer of (height, round): a member drawn with probability proportional to its
    /// power, by a hash of the height and round (see specs/consensus.md).
    public func proposer(height: UInt64, round: UInt32) -> PublicKey {
        var writer = CanonicalWriter()
        writer.writeString("membria/proposer")
        writer.write(height)
        writer.write(round)
        let digest = Blake2b.hash256(writer.bytes).bytes
        let draw: UInt64 = ByteOrder.bigEndian(digest[0..<8])
        // Map the 64-bit draw onto [0, totalPower) without modulo bias worth noting:
        // the high half of a 128-bit product.
        var position = UInt64((UInt128(draw) * UInt128(totalPower)) >> 64)
        for member in members {
            if position < member.power { return member.key }
            position -= member.power
        }
        preconditionFailure("draw beyond the total power")
    }

    /// Hash of the set: committed in block headers.
    public var hash: Hash256 {
        var writer = CanonicalWriter()
        writer.writeLength(members.count)
        for member in members {
            writer.write(member.key)
            writer.write(member.power)
        }
        return Blake2b.hash256(writer.bytes)
    }
}

/// Round timeouts: base plus delta per round, in milliseconds, all from config.
public struct TimeoutConfig: Sendable, Equatable {
    public var proposeMilliseconds: UInt64 = 1_000
    public var proposeDeltaMilliseconds: UInt64 = 500
    public var prevoteMilliseconds: UInt64 = 500
    public var prevoteDeltaMilliseconds: UInt64 = 250
    public var precommitMilliseconds: UInt64 = 500
    public var precommitDeltaMilliseconds: UInt64 = 250

    public init() {}

    public func duration(_ step: TimeoutStep, round: UInt32) -> UInt64 {
        switch step {
        case .propose: return proposeMilliseconds &+ proposeDeltaMilliseconds &* UInt64(round)
        case .prevote: return prevoteMilliseconds &+ prevoteDeltaMilliseconds &* UInt64(round)
        case .precommit: return precommitMilliseconds &+ precommitDeltaMilliseconds &* UInt64(round)
        }
    }
}

public enum TimeoutStep: UInt8, Sendable, Equatable, CaseIterable {
    case propose, prevote, precommit
}

public enum Step: UInt8, Sendable, Equatable, Comparable {
    case propose, prevote, precommit, decided
    public static func < (lhs: Step, rhs: Step) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A proposal: a value for (height, round), and the round it was last seen valid in (the
/// paper's `validRound`, nil for -1).
public struct Proposal<Value: ConsensusValue>: Sendable, Equatable {
    public let height: UInt64
    public let round: UInt32
    public let value: Value
    public let validRound: UInt32?
    public let proposer: PublicKey

    public init(height: UInt64, round: UInt32, value: Value, validRound: UInt32?, proposer: PublicKey) {
        self.height = height
        self.round = round
        self.value = value
        self.validRound = validRound
        self.proposer = proposer
    }
}

/// What goes into the core.
public enum ConsensusInput<Value: ConsensusValue>: Sendable {
    /// A proposal whose signature the host verified, with the host's verdict on the value.
    case proposal(Proposal<Value>, valid: Bool)
    /// A vote whose signature the host verified.
    case vote(SignedVote)
    case timeout(TimeoutStep, height: UInt64, round: UInt32)
    /// The value this node proposes, answering `.requestValue`.
    case proposeValue(Value, height: UInt64, round: UInt32)
}

/// What comes out: the host carries these out (see the driver contract above).
public enum ConsensusEffect<Value: ConsensusValue>: Sendable, Equatable {
    case requestValue(height: UInt64, round: UInt32)
    case signProposal(Proposal<Value>)
    case signVote(kind: VoteKind, height: UInt64, round: UInt32, blockID: Hash256?)
    case scheduleTimeout(TimeoutStep, height: UInt64, round: UInt32, milliseconds: UInt64)
    case decide(Value, CommitCertificate)
    case evidence(DoubleSignEvidence)
}

/// The core for one height. `ConsensusCore(height:validators:me:timeouts:)` then `start()`.
public struct ConsensusCore<Value: ConsensusValue>: Sendable {
    public let height: UInt64
    public let validators: ValidatorSet
    /// This node's consensus key, or nil for a non-validating node.
    public let me: PublicKey?
    public let timeouts: TimeoutConfig

    public private(set) var round: UInt32 = 0
    public private(set) var step: Step = .propose
    public private(set) var lockedValue: Value? = nil
    public private(set) var lockedRound: UInt32? = nil
    public private(set) var validValue: Value? = nil
    public private(set) var validRound: UInt32? = nil
    public private(set) var decision: Value? = nil

    /// Test-only fault injection: makes the core ignore its lock (L22/L28) and forget its
    /// valid value when proposing (L15), the "amnesia" bug, to prove that the simulator's
    /// checkers catch a broken rule. Never set outside tests.
    public var faultIgnoreLock = false

    var proposals: [UInt32: (proposal: Proposal<Value>, valid: Bool)] = [:]
    /// The keys of `proposals`, ascending: the rules walk proposals in round order on every
    /// evaluation pass, and keeping the order here spares a sort (and its allocations) each time.
    var proposalRounds: [UInt32] = []
    var votes = VoteKeeper()
    var firedPrevoteTimeout: Set<UInt32> = []     // L34 "for the first time"
    var firedPrecommitTimeout: Set<UInt32> = []   // L47
    var firedLock: Set<UInt32> = []               // L36
    var started = false
    /// The proposer of the round last asked about: every proposal and every round start asks,
    /// and the draw hashes.
    var lastProposer: (round: UInt32, key: PublicKey)? = nil

    public init(height: UInt64, validators: ValidatorSet, me: PublicKey?, timeouts: TimeoutConfig) {
        self.height = height
        self.validators = validators
        self.me = me
        self.timeouts = timeouts
    }

    var isValidator: Bool { me.map(validators.contains) ?? false }

    /// The proposal this core accepted for `round`, for gossip.
    @_specialize(exported: true, where Value == Block)
    public func heldProposal(round: UInt32) -> Proposal<Value>? { proposals[round]?.proposal }

    /// Every vote this core holds for `round`, for gossip to peers that may lack them.
    public func heldVotes(round: UInt32) -> [SignedVote] { votes.allVotes(round: round) }


    /// L10: start round 0.
    // The node and the simulator run the core on `Block`: exported specializations spare
    // them the generic code path (runtime metadata look-ups on every dictionary access).
    @_specialize(exported: true, where Value == Block)
    public mutating func start() -> [ConsensusEffect<Value>] {
        precondition(!started, "a height's core starts once")
        started = true
        var effects: [ConsensusEffect<Value>] = []
        startRound(0, &effects)
        evaluate(&effects)
        return effects
    }

    @_specialize(exported: true, where Value == Block)
    public mutating func apply(_ input: ConsensusInput<Value>) -> [ConsensusEffect<Value>] {
        precondition(started, "apply before start")
        var effects: [ConsensusEffect<Value>] = []
        switch input {
        case .proposal(let proposal, let valid):
            guard proposal.height == height, decision == nil else { return [] }
            guard proposal.proposer == proposer(of: proposal.round) else { return [] }
            guard admits(round: proposal.round, from: proposal.proposer) else { return [] }
            // The first proposal of a round counts; an equivocating proposer's second is ignored.
            guard proposals[proposal.round] == nil else { return [] }
            proposals[proposal.round] = (proposal, valid)
            proposalRounds.insert(proposal.round, at: proposalRounds.firstIndex { $0 > proposal.round } ?? proposalRounds.endIndex)
            votes.noteSender(proposal.proposer, round: proposal.round, power: validators.power(of: proposal.proposer) ?? 0)
        case .vote(let signed):
            let vote = signed.vote
            guard vote.height == height, let power = validators.power(of: vote.validator),
                  admits(round: vote.round, from: vote.validator) else { return [] }
            switch votes.add(signed, power: power) {
            case .added, .duplicate:
                break
            case .equivocation(let evidence):
                effects.append(.evidence(evidence))
            }
        case .timeout(let kind, let timeoutHeight, let timeoutRound):
            guard timeoutHeight == height, timeoutRound == round, decision == nil else { return [] }
            switch kind {
            case .propose:
                // L57
                if step == .propose { prevote(nil, &effects) }
            case .prevote:
                // L61
                if step == .prevote { precommit(nil, &effects) }
            case .precommit:
                // L65
                startRound(round + 1, &effects)
            }
        case .proposeValue(let value, let valueHeight, let valueRound):
            guard valueHeight == height, valueRound == round, step == .propose, decision == nil,
                  me == proposer(of: round) else { return [] }
            // L19: propose our own value with validRound -1.
            effects.append(.signProposal(Proposal(height: height, round: round, value: value, validRound: nil, proposer: me!)))
        }
        evaluate(&effects)
        return effects
    }

    /// What `apply` would do with a proposal or vote, asked before it is fed: a host drops
    /// redundant ones before writing them to its WAL (or checking their signature), and bans
    /// the peer that sent a forbidden one (specs/consensus.md, "Screening"). Pure; the core
    /// is not changed. A redundant input fed anyway changes nothing, so a WAL without it
    /// replays to the same state.
    public enum Screening: Equatable, Sendable {
        /// `apply` would store it (or it is not a peer message): write it and feed it.
        case useful
        /// `apply` would ignore it: another height, a duplicate, a round beyond the sender's
        /// allowance, a second proposal for a round, or anything after the decision.
        case redundant
        /// No honest peer sends it: a vote by a key outside this height's set, or a proposal
        /// by a key that is not the proposer of its round.
        case forbidden(String)
    }

    @_specialize(exported: true, where Value == Block)
    public func screen(_ input: ConsensusInput<Value>) -> Screening {
        switch input {
        case .proposal(let proposal, _):
            guard proposal.height == height else { return .redundant }
            let expected = lastProposer.flatMap { $0.round == proposal.round ? $0.key : nil }
                ?? validators.proposer(height: height, round: proposal.round)
            guard proposal.proposer == expected else {
                return .forbidden("\(proposal.proposer.hex.prefix(16)) is not the proposer of height \(height) round \(proposal.round)")
            }
            guard decision == nil, proposals[proposal.round] == nil,
                  admits(round: proposal.round, from: proposal.proposer) else { return .redundant }
            return .useful
        case .vote(let signed):
            let vote = signed.vote
            guard vote.height == height else { return .redundant }
            guard validators.contains(vote.validator) else {
                return .forbidden("\(vote.validator.hex.prefix(16)) is not a validator at height \(height)")
            }
            guard admits(round: vote.round, from: vote.validator), votes.wouldStore(vote) else { return .redundant }
            return .useful
        case .timeout, .proposeValue:
            return .useful
        }
    }

    /// Rounds beyond the next one that a single validator may occupy in this core at a time.
    /// Without a bound, one Byzantine validator could sign messages for millions of future
    /// rounds and make the core store (and scan, on every rule check) a record for each.
    public static var maxFutureRoundsPerValidator: Int { 2 }

    /// Whether a message of `messageRound` from `sender` is stored: any round up to the next
    /// one; beyond it, only a round `sender` already holds or while it holds fewer than
    /// `maxFutureRoundsPerValidator` such rounds. Rounds stop counting as the core reaches
    /// them, so a correct validator that is far ahead is followed again (it keeps re-sending
    /// its current round while stalled); see specs/consensus.md, "Bounded rounds".
    func admits(round messageRound: UInt32, from sender: PublicKey) -> Bool {
        guard messageRound > round, messageRound - round > 1 else { return true }
        let held = votes.roundsHeard(from: sender, above: round + 1)
        return held.contains(messageRound) || held.count < Self.maxFutureRoundsPerValidator
    }

    /// `validators.proposer(height:round:)` for this height, remembered for the last round asked.
    mutating func proposer(of round: UInt32) -> PublicKey {
        if let lastProposer, lastProposer.round == round { return lastProposer.key }
        let key = validators.proposer(height: height, round: round)
        lastProposer = (round, key)
        return key
    }

    // MARK: the rules

    /// L11-L21: StartRound(r).
    mutating func startRound(_ newRound: UInt32, _ effects: inout [ConsensusEffect<Value>]) {
        round = newRound
        step = .propose
        let proposer = proposer(of: round)
        if isValidator && proposer == me {
            if let validValue, !faultIgnoreLock {
                // L15-L16: re-propose the value we saw a quorum prevote for.
                effects.append(.signProposal(Proposal(height: height, round: round, value: validValue,
                                                      validRound: validRound, proposer: me!)))
            } else {
                // L18: getValue() — the host builds a block and answers with .proposeValue.
                effects.append(.requestValue(height: height, round: round))
            }
        }
        // L21 (every node, proposer included, guards against a proposer that never proposes).
        effects.append(.scheduleTimeout(.propose, height: height, round: round,
                                        milliseconds: timeouts.duration(.propose, round: round)))
    }

    mutating func prevote(_ id: Hash256?, _ effects: inout [ConsensusEffect<Value>]) {
        if isValidator { effects.append(.signVote(kind: .prevote, height: height, round: round, blockID: id)) }
        step = .prevote
    }

    mutating func precommit(_ id: Hash256?, _ effects: inout [ConsensusEffect<Value>]) {
        if isValidator { effects.append(.signVote(kind: .precommit, height: height, round: round, blockID: id)) }
        step = .precommit
    }

    /// Applies every rule whose condition now holds, until none does (bounded: each rule
    /// moves the step or round forward, or fires once per round).
    mutating func evaluate(_ effects: inout [ConsensusEffect<Value>]) {
        for _ in 0..<64 {
            guard decision == nil else { return }
            if !evaluateOnce(&effects) { return }
        }
        preconditionFailure("consensus rules did not settle")
    }

    /// One pass over the rules; true if something changed.
    mutating func evaluateOnce(_ effects: inout [ConsensusEffect<Value>]) -> Bool {
        // L49: a decision in any round.
        for proposalRound in proposalRounds {
            guard let entry = proposals[proposalRound], entry.valid else { continue }
            let id = entry.proposal.value.id
            if validators.isQuorum(votes.power(.precommit, round: proposalRound, for: id)) {
                decision = entry.proposal.value
                step = .decided
                let certificate = CommitCertificate(height: height, round: proposalRound, blockID: id,
                                                    precommits: votes.votes(.precommit, round: proposalRound, for: id))
                effects.append(.decide(entry.proposal.value, certificate))
                return false
            }
        }

        // L55: f+1 of the power is already in a later round: skip to it.
        if let later = votes.lowestRound(above: round, where: { validators.isOneThirdPlus(votes.senderPower(round: $0)) }) {
            startRound(later, &effects)
            return true
        }

        let current = proposals[round]
        if step == .propose, let current {
            let value = current.proposal.value
            if current.proposal.validRound == nil {
                // L22-L27
                let acceptable = current.valid && (faultIgnoreLock || lockedRound == nil || lockedValue == value)
                prevote(acceptable ? value.id : nil, &effects)
                return true
            } else if let proposedValidRound = current.proposal.validRound, proposedValidRound < round,
                      validators.isQuorum(votes.power(.prevote, round: proposedValidRound, for: value.id)) {
                // L28-L33
                let unlockedOrSame = faultIgnoreLock || (lockedRound.map { $0 <= proposedValidRound } ?? true) || lockedValue == value
                prevote(current.valid && unlockedOrSame ? value.id : nil, &effects)
                return true
            }
        }

        if step == .prevote && !firedPrevoteTimeout.contains(round)
            && validators.isQuorum(votes.totalPower(.prevote, round: round)) {
            // L34-L35
            firedPrevoteTimeout.insert(round)
            effects.append(.scheduleTimeout(.prevote, height: height, round: round,
                                            milliseconds: timeouts.duration(.prevote, round: round)))
            return true
        }

        if step >= .prevote, !firedLock.contains(round), let current, current.valid,
           validators.isQuorum(votes.power(.prevote, round: round, for: current.proposal.value.id)) {
            // L36-L43
            firedLock.insert(round)
            let value = current.proposal.value
            if step == .prevote {
                lockedValue = value
                lockedRound = round
                precommit(value.id, &effects)
            }
            validValue = value
            validRound = round
            return true
        }

        // A polka seen late, for an earlier round above validRound, also updates validValue
        // (as CometBFT does): the next time this node proposes it re-proposes that value with
        // its round, which others accept through L28. Locks are untouched, so safety is as in
        // the paper; without it, a value locked by a minority is re-proposed only when one of
        // the few nodes that saw its polka in time happens to be the proposer.
        for proposalRound in proposalRounds.reversed() {
            guard proposalRound < round, let entry = proposals[proposalRound], entry.valid,
                  validRound.map({ proposalRound > $0 }) ?? true else { continue }
            if validators.isQuorum(votes.power(.prevote, round: proposalRound, for: entry.proposal.value.id)) {
                validValue = entry.proposal.value
                validRound = proposalRound
                return true
            }
        }

        if step == .prevote && validators.isQuorum(votes.power(.prevote, round: round, for: nil)) {
            // L44-L46
            precommit(nil, &effects)
            return true
        }

        if !firedPrecommitTimeout.contains(round) && validators.isQuorum(votes.totalPower(.precommit, round: round)) {
            // L47-L48
            firedPrecommitTimeout.insert(round)
            effects.append(.scheduleTimeout(.precommit, height: height, round: round,
                                            milliseconds: timeouts.duration(.precommit, round: round)))
            return true
        }
        return false
    }
}

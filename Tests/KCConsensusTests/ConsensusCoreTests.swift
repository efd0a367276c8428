import KCCodec
import KCConsensus
import KCCrypto
import KCTestSupport
import KCTypes
import Testing

struct TestValue: ConsensusValue {
    let label: String
    var id: Hash256 { Blake2b.hash256(Array(label.utf8)) }
}

let chainID = "membria-consensus-test"
let keys = (0..<4).map { SigningKey(seed: Blake2b.hash256(Array("validator-\($0)".utf8))) }
let validatorSet = ValidatorSet(keys.map { ValidatorSet.Member(key: $0.publicKey, power: 10) })

func key(for publicKey: PublicKey) -> SigningKey { keys.first { $0.publicKey == publicKey }! }

/// A core for `height` run by a validator that is not the round-0 proposer, plus helpers that
/// play the other validators.
struct Scenario {
    var core: ConsensusCore<TestValue>
    let height: UInt64

    /// `me` proposes round 0 if `meIsProposer`; otherwise `me` proposes none of rounds 0...3,
    /// so every proposal in a scenario comes from another validator.
    init(height: UInt64 = 1, meIsProposer: Bool = false) {
        self.height = height
        let proposer = validatorSet.proposer(height: height, round: 0)
        let earlyProposers = Set((0...3 as ClosedRange<UInt32>).map { validatorSet.proposer(height: height, round: $0) })
        let me = meIsProposer ? proposer : validatorSet.members.first { !earlyProposers.contains($0.key) }!.key
        core = ConsensusCore(height: height, validators: validatorSet, me: me, timeouts: TimeoutConfig())
    }

    var me: PublicKey { core.me! }
    func others(excluding extra: [PublicKey] = []) -> [PublicKey] {
        validatorSet.members.map(\.key).filter { $0 != me && !extra.contains($0) }
    }

    func vote(_ kind: VoteKind, from validator: PublicKey, round: UInt32, _ value: TestValue?, time: UInt64 = 1) -> SignedVote {
        Vote(kind: kind, height: height, round: round, blockID: value?.id, timestampMilliseconds: time, validator: validator)
            .signed(with: key(for: validator), chainID: chainID)
    }

    func proposal(round: UInt32, _ value: TestValue, validRound: UInt32? = nil) -> Proposal<TestValue> {
        Proposal(height: height, round: round, value: value, validRound: validRound,
                 proposer: validatorSet.proposer(height: height, round: round))
    }

    /// Delivers a vote from each of `validators`; returns all effects.
    mutating func votes(_ kind: VoteKind, from validators: [PublicKey], round: UInt32, _ value: TestValue?) -> [ConsensusEffect<TestValue>] {
        validators.flatMap { core.apply(.vote(vote(kind, from: $0, round: round, value))) }
    }

    /// Our own vote, as the host feeds it back after signing.
    mutating func ownVote(_ kind: VoteKind, round: UInt32, _ value: TestValue?) -> [ConsensusEffect<TestValue>] {
        core.apply(.vote(vote(kind, from: me, round: round, value)))
    }
}

func signedVotes(_ effects: [ConsensusEffect<TestValue>]) -> [(VoteKind, UInt32, Hash256?)] {
    effects.compactMap { effect in
        if case .signVote(let kind, _, let round, let id) = effect { return (kind, round, id) }
        return nil
    }
}

struct ConsensusCoreTests {
    let v = TestValue(label: "block-v")
    let w = TestValue(label: "block-w")

    @Test func happyPathDecidesWithACertificate() throws {
        var s = Scenario()
        let start = s.core.start()
        #expect(start.contains(.scheduleTimeout(.propose, height: 1, round: 0, milliseconds: 1_000)))
        let afterProposal = s.core.apply(.proposal(s.proposal(round: 0, v), valid: true))
        #expect(signedVotes(afterProposal).map(\.2) == [v.id])  // L24: prevote id(v)
        #expect(s.core.step == .prevote)
        _ = s.ownVote(.prevote, round: 0, v)
        let afterPrevotes = s.votes(.prevote, from: s.others(), round: 0, v)
        // L36: quorum of prevotes for v: lock and precommit.
        #expect(signedVotes(afterPrevotes).contains { $0.0 == .precommit && $0.2 == v.id })
        #expect(s.core.lockedValue == v && s.core.lockedRound == 0)
        #expect(s.core.validValue == v && s.core.validRound == 0)
        _ = s.ownVote(.precommit, round: 0, v)
        let decided = s.votes(.precommit, from: Array(s.others().prefix(2)), round: 0, v)
        guard case .decide(let value, let certificate)? = decided.last else {
            Issue.record("no decision: \(decided)")
            return
        }
        #expect(value == v)
        #expect(certificate.precommits.count == 3)
        try certificate.verify(validators: validatorSet, chainID: chainID)
        #expect(s.core.decision == v)
    }

    @Test func ownProposalWhenProposer() {
        var s = Scenario(meIsProposer: true)
        let start = s.core.start()
        #expect(start.contains(.requestValue(height: 1, round: 0)))
        let proposed = s.core.apply(.proposeValue(v, height: 1, round: 0))
        #expect(proposed.contains(.signProposal(Proposal(height: 1, round: 0, value: v, validRound: nil, proposer: s.me))))
    }

    @Test func silentProposerLeadsToNilVotesAndTheNextRound() {
        var s = Scenario()
        _ = s.core.start()
        let timedOut = s.core.apply(.timeout(.propose, height: 1, round: 0))  // L57
        #expect(signedVotes(timedOut).map(\.0) == [.prevote])
        #expect(signedVotes(timedOut).first?.2 == nil)
        _ = s.ownVote(.prevote, round: 0, nil)
        let nilPrevotes = s.votes(.prevote, from: s.others(), round: 0, nil)
        #expect(nilPrevotes.contains(.scheduleTimeout(.prevote, height: 1, round: 0, milliseconds: 500)))  // L34
        #expect(signedVotes(nilPrevotes).contains { $0.0 == .precommit && $0.2 == nil })  // L44
        _ = s.ownVote(.precommit, round: 0, nil)
        let nilPrecommits = s.votes(.precommit, from: s.others(), round: 0, nil)
        #expect(nilPrecommits.contains(.scheduleTimeout(.precommit, height: 1, round: 0, milliseconds: 500)))  // L47
        let next = s.core.apply(.timeout(.precommit, height: 1, round: 0))  // L65
        #expect(s.core.round == 1 && s.core.step == .propose)
        #expect(next.contains(.scheduleTimeout(.propose, height: 1, round: 1, milliseconds: 1_500)))  // grows per round
        #expect(s.core.decision == nil)
    }

    @Test func staleTimeoutsAreIgnored() {
        var s = Scenario()
        _ = s.core.start()
        #expect(s.core.apply(.timeout(.propose, height: 1, round: 5)).isEmpty)
        #expect(s.core.apply(.timeout(.prevote, height: 1, round: 0)).isEmpty)  // not in prevote step
        #expect(s.core.apply(.timeout(.propose, height: 2, round: 0)).isEmpty)
        #expect(s.core.step == .propose)
    }

    @Test func lockedValueIsCarriedAcrossRounds() {
        var s = Scenario()
        _ = s.core.start()
        _ = s.core.apply(.proposal(s.proposal(round: 0, v), valid: true))
        _ = s.ownVote(.prevote, round: 0, v)
        _ = s.votes(.prevote, from: s.others(), round: 0, v)
        #expect(s.core.lockedValue == v)
        _ = s.ownVote(.precommit, round: 0, v)
        // Round 0 ends without a precommit quorum for v.
        _ = s.votes(.precommit, from: Array(s.others().prefix(2)), round: 0, nil)
        _ = s.core.apply(.timeout(.precommit, height: 1, round: 0))
        #expect(s.core.round == 1)

        // L22-L27: a fresh proposal for another value while locked on v: prevote nil.
        let proposalW = s.proposal(round: 1, w)
        let effects = s.core.apply(.proposal(proposalW, valid: true))
        #expect(signedVotes(effects).map(\.2) == [nil])
        // Next round: v re-proposed with validRound 0 and the round-0 prevote quorum: prevote v (L28).
        _ = s.core.apply(.timeout(.prevote, height: 1, round: 1))
        _ = s.votes(.precommit, from: s.others(), round: 1, nil)
        _ = s.core.apply(.timeout(.precommit, height: 1, round: 1))
        #expect(s.core.round == 2)
        let reproposal = s.proposal(round: 2, v, validRound: 0)
        let reproposalEffects = s.core.apply(.proposal(reproposal, valid: true))
        #expect(signedVotes(reproposalEffects).map(\.2) == [v.id])
        #expect(s.core.lockedValue == v && s.core.lockedRound == 0)
    }

    /// A polka for an earlier round, learnt late, makes the value this node's valid value (it
    /// would re-propose it), without locking it.
    @Test func latePolkaUpdatesTheValidValueButNotTheLock() {
        var other = Scenario()
        _ = other.core.start()
        _ = other.core.apply(.timeout(.propose, height: 1, round: 0))
        _ = other.core.apply(.timeout(.prevote, height: 1, round: 0))
        _ = other.votes(.precommit, from: other.others(), round: 0, nil)
        _ = other.core.apply(.timeout(.precommit, height: 1, round: 0))
        #expect(other.core.round == 1)
        _ = other.core.apply(.proposal(other.proposal(round: 0, v), valid: true))
        _ = other.votes(.prevote, from: other.others(), round: 0, v)
        #expect(other.core.validValue == v && other.core.validRound == 0)
        #expect(other.core.lockedValue == nil, "a late polka never locks")
    }

    @Test func lockIgnoredWhenTheFaultIsInjected() {
        var s = Scenario()
        s.core.faultIgnoreLock = true
        _ = s.core.start()
        _ = s.core.apply(.proposal(s.proposal(round: 0, v), valid: true))
        _ = s.ownVote(.prevote, round: 0, v)
        _ = s.votes(.prevote, from: s.others(), round: 0, v)
        _ = s.votes(.precommit, from: s.others(), round: 0, nil)
        _ = s.core.apply(.timeout(.precommit, height: 1, round: 0))
        let proposalW = s.proposal(round: 1, w)
        let effects = s.core.apply(.proposal(proposalW, valid: true))
        #expect(signedVotes(effects).map(\.2) == [w.id], "the broken core prevotes against its lock")
    }

    @Test func roundSkipOnOneThirdPlusFromALaterRound() {
        var s = Scenario()
        _ = s.core.start()
        let others = s.others()
        _ = s.core.apply(.vote(s.vote(.prevote, from: others[0], round: 3, nil)))
        #expect(s.core.round == 0, "10 of 40 power is not more than a third")
        let effects = s.core.apply(.vote(s.vote(.prevote, from: others[1], round: 3, nil)))  // L55
        #expect(s.core.round == 3)
        #expect(effects.contains(.scheduleTimeout(.propose, height: 1, round: 3, milliseconds: 2_500)))
    }

    /// A validator may hold at most two rounds beyond the next one; a third is dropped, a second
    /// message for a held round is kept, and once the core reaches those rounds they stop
    /// counting, so the same validator's later rounds are taken again.
    @Test func farFutureRoundsAreBoundedPerValidator() {
        var s = Scenario()
        _ = s.core.start()
        let others = s.others()
        let x = others[0]
        for round in [5, 6, 7, 8] as [UInt32] { _ = s.core.apply(.vote(s.vote(.prevote, from: x, round: round, nil))) }
        #expect(s.core.heldVotes(round: 5).count == 1 && s.core.heldVotes(round: 6).count == 1)
        #expect(s.core.heldVotes(round: 7).isEmpty && s.core.heldVotes(round: 8).isEmpty)
        _ = s.core.apply(.vote(s.vote(.precommit, from: x, round: 6, nil)))
        #expect(s.core.heldVotes(round: 6).count == 2, "a held round takes more messages")
        // The next round is never limited.
        _ = s.core.apply(.vote(s.vote(.prevote, from: x, round: 1, nil)))
        #expect(s.core.heldVotes(round: 1).count == 1)
        // Another validator has its own allowance; with x it makes f+1 in round 5 (L55).
        _ = s.core.apply(.vote(s.vote(.prevote, from: others[1], round: 5, nil)))
        #expect(s.core.round == 5)
        _ = s.core.apply(.vote(s.vote(.prevote, from: x, round: 8, nil)))
        #expect(s.core.heldVotes(round: 8).count == 1, "rounds 5 and 6 no longer count once the core is in round 5")
    }

    /// A flood of signed votes for ever later rounds from one validator leaves two records.
    @Test func aVoteFloodAcrossRoundsStoresLittle() {
        var s = Scenario()
        _ = s.core.start()
        let x = s.others()[0]
        for round in 2...1_000 as ClosedRange<UInt32> { _ = s.core.apply(.vote(s.vote(.precommit, from: x, round: round, nil))) }
        let held = (0...1_000 as ClosedRange<UInt32>).filter { !s.core.heldVotes(round: $0).isEmpty }
        #expect(held.count == 2)
        #expect(held.prefix(3) == [2, 3])
        #expect(s.core.round == 0)
    }

    /// Proposals count against their proposer's allowance the same way.
    @Test func farFutureProposalsAreBoundedPerProposer() {
        var s = Scenario()
        _ = s.core.start()
        let proposer = s.others()[0]
        let rounds = (2...400 as ClosedRange<UInt32>).filter { validatorSet.proposer(height: 1, round: $0) == proposer }.prefix(3)
        #expect(rounds.count == 3)
        for round in rounds { _ = s.core.apply(.proposal(s.proposal(round: round, v), valid: true)) }
        #expect(rounds.map { s.core.heldProposal(round: $0) != nil } == [true, true, false])
    }

    @Test func invalidProposalGetsANilPrevote() {
        var s = Scenario()
        _ = s.core.start()
        let effects = s.core.apply(.proposal(s.proposal(round: 0, v), valid: false))
        #expect(signedVotes(effects).map(\.2) == [nil])
    }

    @Test func proposalFromTheWrongProposerIsIgnored() {
        var s = Scenario()
        _ = s.core.start()
        let wrong = validatorSet.members.first { $0.key != validatorSet.proposer(height: 1, round: 0) }!.key
        let forged = Proposal(height: 1, round: 0, value: v, validRound: nil, proposer: wrong)
        #expect(s.core.apply(.proposal(forged, valid: true)).isEmpty)
        #expect(s.core.step == .propose)
    }

    @Test func equivocatingProposerAndDoubleVoterAreHandled() throws {
        var s = Scenario()
        _ = s.core.start()
        _ = s.core.apply(.proposal(s.proposal(round: 0, v), valid: true))
        // A second proposal for the same round is ignored: the first one stands.
        #expect(s.core.apply(.proposal(s.proposal(round: 0, w), valid: true)).isEmpty)
        let voter = s.others()[0]
        _ = s.core.apply(.vote(s.vote(.prevote, from: voter, round: 0, v)))
        let effects = s.core.apply(.vote(s.vote(.prevote, from: voter, round: 0, w)))
        guard case .evidence(let evidence)? = effects.first else {
            Issue.record("no evidence for a double vote: \(effects)")
            return
        }
        #expect(evidence.validator == voter)
        try evidence.validate(chainID: chainID)
        // Reported once, counted once.
        #expect(s.core.apply(.vote(s.vote(.prevote, from: voter, round: 0, nil))).allSatisfy {
            if case .evidence = $0 { return false } else { return true }
        })
    }

    @Test func votesFromOutsideTheSetOrOtherHeightsAreIgnored() {
        var s = Scenario()
        _ = s.core.start()
        let stranger = SigningKey(seed: Blake2b.hash256([9]))
        let vote = Vote(kind: .prevote, height: 1, round: 7, blockID: nil, timestampMilliseconds: 1, validator: stranger.publicKey)
        #expect(s.core.apply(.vote(vote.signed(with: stranger, chainID: chainID))).isEmpty)
        #expect(s.core.apply(.vote(Scenario(height: 2).vote(.prevote, from: s.others()[0], round: 9, nil))).isEmpty)
        #expect(s.core.round == 0)
    }
}

/// Screening (specs/consensus.md): what a host may drop before its WAL, or ban for, must be
/// exactly what `apply` would ignore.
struct ScreeningTests {
    let v = TestValue(label: "block-v")
    let w = TestValue(label: "block-w")
    /// The observable state of a core: round, step, and what it holds for the first rounds.
    func snapshot(_ core: ConsensusCore<TestValue>) -> String {
        let held = (0...12 as ClosedRange<UInt32>).map { round in
            "\(round):\(core.heldVotes(round: round).count)/\(core.heldProposal(round: round)?.value.label ?? "-")"
        }
        return "r\(core.round) \(core.step) " + held.joined(separator: ",")
    }

    @Test func strangersAndWrongProposersAreForbiddenAndDuplicatesRedundant() {
        var s = Scenario()
        _ = s.core.start()
        let stranger = SigningKey(seed: Blake2b.hash256([9]))
        let strangerVote = Vote(kind: .prevote, height: 1, round: 0, blockID: nil, timestampMilliseconds: 1, validator: stranger.publicKey)
        guard case .forbidden = s.core.screen(.vote(strangerVote.signed(with: stranger, chainID: chainID))) else {
            Issue.record("a vote from outside the set was not forbidden")
            return
        }
        let wrong = validatorSet.members.first { $0.key != validatorSet.proposer(height: 1, round: 0) }!.key
        guard case .forbidden = s.core.screen(.proposal(Proposal(height: 1, round: 0, value: v, validRound: nil, proposer: wrong), valid: true)) else {
            Issue.record("a proposal from a key that is not the round's proposer was not forbidden")
            return
        }
        let vote = s.vote(.prevote, from: s.others()[0], round: 0, v)
        #expect(s.core.screen(.vote(vote)) == .useful)
        _ = s.core.apply(.vote(vote))
        #expect(s.core.screen(.vote(vote)) == .redundant, "a vote already held")
        #expect(s.core.screen(.vote(Scenario(height: 2).vote(.prevote, from: s.others()[0], round: 0, v))) == .redundant, "another height")
    }

    /// Over thousands of random inputs (members and strangers, right and wrong proposers,
    /// repeats, near and far rounds), an input screened redundant or forbidden leaves the core
    /// exactly as it was, and one screened useful changes what the core holds.
    @Test func screeningAgreesWithApply() {
        var random = SplitMix64(seed: 7)
        let stranger = SigningKey(seed: Blake2b.hash256([9]))
        let values = [v, w, TestValue(label: "x")]
        for _ in 0..<20 {
            var s = Scenario()
            _ = s.core.start()
            for _ in 0..<300 {
                let round = UInt32(random.below(10))
                let input: ConsensusInput<TestValue>
                switch random.below(4) {
                case 0:
                    let proposer = random.below(4) == 0 ? validatorSet.members[Int(random.below(4))].key
                        : validatorSet.proposer(height: 1, round: round)
                    input = .proposal(Proposal(height: 1, round: round, value: values[Int(random.below(3))], validRound: nil,
                                               proposer: proposer), valid: random.below(5) != 0)
                case 1:
                    let vote = Vote(kind: .prevote, height: 1, round: round, blockID: nil, timestampMilliseconds: 1,
                                    validator: stranger.publicKey)
                    input = .vote(vote.signed(with: stranger, chainID: chainID))
                default:
                    let voter = validatorSet.members[Int(random.below(4))].key
                    let value: TestValue? = random.below(4) == 0 ? nil : values[Int(random.below(2))]
                    input = .vote(s.vote(random.below(2) == 0 ? .prevote : .precommit, from: voter, round: round, value))
                }
                let verdict = s.core.screen(input)
                let before = snapshot(s.core)
                let effects = s.core.apply(input)
                if verdict != .useful {
                    #expect(effects.isEmpty && snapshot(s.core) == before, "\(verdict) input changed the core")
                } else {
                    #expect(snapshot(s.core) != before, "a useful input left the core unchanged")
                }
                if s.core.decision != nil { break }
            }
        }
    }
}

struct ValidatorSetTests {
    @Test func proposersFollowPowerOverTime() {
        let weighted = ValidatorSet([
            .init(key: keys[0].publicKey, power: 10), .init(key: keys[1].publicKey, power: 20),
            .init(key: keys[2].publicKey, power: 30), .init(key: keys[3].publicKey, power: 40),
        ])
        var counts: [PublicKey: Int] = [:]
        for height in 1...20_000 as ClosedRange<UInt64> { counts[weighted.proposer(height: height, round: 0), default: 0] += 1 }
        for (index, power) in [10, 20, 30, 40].enumerated() {
            let share = Double(counts[keys[index].publicKey] ?? 0) / 20_000
            #expect(abs(share - Double(power) / 100) < 0.02, "validator \(index) proposed \(share)")
        }
        #expect(weighted.proposer(height: 5, round: 1) == weighted.proposer(height: 5, round: 1))
    }

    @Test func quorumThresholdsAreStrict() {
        #expect(!validatorSet.isQuorum(26) && validatorSet.isQuorum(27))  // 40 total: > 26.67
        #expect(!validatorSet.isOneThirdPlus(13) && validatorSet.isOneThirdPlus(14))
    }

    @Test func certificateRejectsForgeriesAndMinorities() {
        let id = Blake2b.hash256([1])
        func precommit(_ k: SigningKey, round: UInt32 = 0, blockID: Hash256? = nil) -> SignedVote {
            Vote(kind: .precommit, height: 4, round: round, blockID: blockID ?? id, timestampMilliseconds: 1, validator: k.publicKey)
                .signed(with: k, chainID: chainID)
        }
        let sorted = keys.sorted { $0.publicKey < $1.publicKey }
        let good = CommitCertificate(height: 4, round: 0, blockID: id, precommits: sorted.prefix(3).map { precommit($0) })
        #expect(throws: Never.self) { try good.verify(validators: validatorSet, chainID: chainID) }
        let minority = CommitCertificate(height: 4, round: 0, blockID: id, precommits: sorted.prefix(2).map { precommit($0) })
        #expect(throws: CommitCertificate.Problem.noQuorum(power: 20, total: 40)) { try minority.verify(validators: validatorSet, chainID: chainID) }
        let repeated = CommitCertificate(height: 4, round: 0, blockID: id, precommits: [precommit(sorted[0]), precommit(sorted[0]), precommit(sorted[1])])
        #expect(throws: CommitCertificate.Problem.duplicateOrUnsorted(index: 1)) { try repeated.verify(validators: validatorSet, chainID: chainID) }
        let otherBlock = CommitCertificate(height: 4, round: 0, blockID: id,
                                           precommits: [precommit(sorted[0]), precommit(sorted[1], blockID: Blake2b.hash256([2])), precommit(sorted[2])])
        #expect(throws: CommitCertificate.Problem.wrongVote(index: 1)) { try otherBlock.verify(validators: validatorSet, chainID: chainID) }
        #expect(throws: CommitCertificate.Problem.badSignature(index: 0)) {
            try CommitCertificate(height: 4, round: 0, blockID: id, precommits: sorted.prefix(3).map { precommit($0) })
                .verify(validators: validatorSet, chainID: "another-chain")
        }
    }

    @Test func medianTimeIgnoresAMinorityOfOutliers() {
        let id = Blake2b.hash256([1])
        let sorted = keys.sorted { $0.publicKey < $1.publicKey }
        let times: [UInt64] = [1_000, 1_010, 1_020, 9_999_999]
        let precommits = zip(sorted, times).map { key, time in
            Vote(kind: .precommit, height: 1, round: 0, blockID: id, timestampMilliseconds: time, validator: key.publicKey)
                .signed(with: key, chainID: chainID)
        }
        let certificate = CommitCertificate(height: 1, round: 0, blockID: id, precommits: precommits)
        // The first time at which more than half the power has voted: the outlier cannot move it.
        #expect(certificate.medianTime(validators: validatorSet) == 1_020)
    }
}

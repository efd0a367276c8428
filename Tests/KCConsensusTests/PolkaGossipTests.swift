import KCCrypto
import KCConsensus
import KCTypes
import Testing

/// A polka that a locked validator holds and its peers never complete stops the height for
/// good: they refuse every re-proposal of the locked value (L28) and the locked ones refuse
/// everything else. Two ways it happened in simulator sweeps, each played here.
struct PolkaGossipTests {
    let v = TestValue(label: "block-v")
    let w = TestValue(label: "block-w")

    /// A validator with a quarter of the power shows one prevote to some validators and another
    /// to the rest (seed 771612): the first group sees a polka and locks on it; the second holds
    /// the other prevote, so its announcements say it has that validator's vote and nobody sends
    /// it the one that completes the polka. Played as the attacker plays it.
    @Test func aStallAnswerCarriesThePolkaAPeerHoldsOnlyTheOtherHalfOf() {
        // Four validators of power 10 (a quorum is three). `locked` runs the locked node; of
        // the other three, `witness` prevotes v, `liar` equivocates and `peer` never saw the
        // proposal of round 0.
        var locked = Scenario()
        // The witness proposes round 1 (re-proposing v); the peer proposes neither round.
        let witness = validatorSet.proposer(height: 1, round: 1)
        let rest = locked.others(excluding: [witness])
        let (liar, peer) = (rest[0], rest[1])
        let peerIndex = validatorSet.index(of: peer)!
        _ = locked.core.start()
        _ = locked.core.apply(.proposal(locked.proposal(round: 0, v), valid: true))
        _ = locked.ownVote(.prevote, round: 0, v)
        _ = locked.core.apply(.vote(locked.vote(.prevote, from: witness, round: 0, v)))
        let liarForV = locked.vote(.prevote, from: liar, round: 0, v)
        _ = locked.core.apply(.vote(liarForV))
        #expect(locked.core.lockedValue == v && locked.core.lockedRound == 0)

        // The peer: it timed out on the proposal (prevote nil) and got the liar's other prevote.
        var other = ConsensusCore<TestValue>(height: 1, validators: validatorSet, me: peer, timeouts: TimeoutConfig())
        _ = other.start()
        _ = other.apply(.timeout(.propose, height: 1, round: 0))
        for vote in [locked.vote(.prevote, from: peer, round: 0, nil), locked.vote(.prevote, from: locked.me, round: 0, v),
                     locked.vote(.prevote, from: witness, round: 0, v), locked.vote(.prevote, from: liar, round: 0, w)] {
            _ = other.apply(.vote(vote))
        }
        _ = other.apply(.timeout(.prevote, height: 1, round: 0))
        for key in [peer, witness, liar] { _ = other.apply(.vote(locked.vote(.precommit, from: key, round: 0, nil))) }
        _ = other.apply(.timeout(.precommit, height: 1, round: 0))
        #expect(other.round == 1)

        // The locked node's gossip: the peer's round-0 announcement had a bit for every
        // validator, the locked node's own prevote went to it, then the peer stalls in round 1.
        var gossip = GossipKnowledge<Int>()
        gossip.connected(peerIndex)
        var all = ValidatorBits(count: 4)
        for index in 0..<4 { all[index] = true }
        let links = all
        _ = gossip.announced(RoundState(height: 1, round: 0, phase: .prevote, hasProposal: false, prevotes: all,
                                        precommits: ValidatorBits(count: 4), links: links), by: peerIndex, setSize: 4)
        _ = gossip.ownVote(locked.core.voteID(locked.vote(.prevote, from: locked.me, round: 0, v))!, height: 1)
        _ = gossip.announced(RoundState(height: 1, round: 1, phase: .propose, hasProposal: false, prevotes: ValidatorBits(count: 4),
                                        precommits: ValidatorBits(count: 4), links: links, stalled: true), by: peerIndex, setSize: 4)
        let answer = gossip.stallAnswer(to: peerIndex, peerRound: 1, core: locked.core) { locked.core.heldProposal(round: $0) }
        #expect(answer.votes.contains(liarForV), "the liar's prevote for v completes the polka the peer lacks")
        #expect(!answer.votes.contains(locked.vote(.prevote, from: locked.me, round: 0, v)), "already sent on this connection")

        // Without it, the peer cannot accept v re-proposed from round 0; with it, it prevotes v.
        let reproposal = Proposal(height: 1, round: 1, value: v, validRound: 0, proposer: witness)
        var starved = other
        #expect(signedVotes(starved.apply(.proposal(reproposal, valid: true))).isEmpty)
        #expect(signedVotes(starved.apply(.timeout(.propose, height: 1, round: 1))).map(\.2) == [nil])
        for vote in answer.votes { _ = other.apply(.vote(vote)) }
        #expect(signedVotes(other.apply(.proposal(reproposal, valid: true))).map(\.2) == [v.id])

        // Each vote goes over a connection once: a second stall report gets nothing new.
        _ = gossip.announced(RoundState(height: 1, round: 1, phase: .propose, hasProposal: true, prevotes: ValidatorBits(count: 4),
                                        precommits: ValidatorBits(count: 4), links: links, stalled: true), by: peerIndex, setSize: 4)
        let again = gossip.stallAnswer(to: peerIndex, peerRound: 1, core: locked.core) { locked.core.heldProposal(round: $0) }
        #expect(!again.votes.contains(liarForV))
    }

    /// The locked validator's own prevote was lost on the way (a partition, seed 610046): its
    /// gossip believes the peer has it. The peer, holding the re-proposal of the locked value
    /// and stalled before prevoting, gets the whole polka again and then accepts it.
    @Test func aPeerWaitingOnAPolkaGetsItAgainWhateverWasSent() {
        // Four validators of power 10: `locked`, the `proposer` of round 1, the `peer`, and a
        // fourth that says nothing.
        var locked = Scenario()
        let proposer = validatorSet.proposer(height: 1, round: 1)
        let peer = locked.others(excluding: [proposer])[0]
        let peerIndex = validatorSet.index(of: peer)!
        _ = locked.core.start()
        _ = locked.core.apply(.proposal(locked.proposal(round: 0, v), valid: true))
        _ = locked.ownVote(.prevote, round: 0, v)
        _ = locked.core.apply(.vote(locked.vote(.prevote, from: proposer, round: 0, v)))
        _ = locked.core.apply(.vote(locked.vote(.prevote, from: peer, round: 0, v)))
        #expect(locked.core.lockedValue == v && locked.core.lockedRound == 0)

        // The peer saw two of the three prevotes: no polka, no lock; round 0 ends.
        var other = ConsensusCore<TestValue>(height: 1, validators: validatorSet, me: peer, timeouts: TimeoutConfig())
        _ = other.start()
        _ = other.apply(.proposal(locked.proposal(round: 0, v), valid: true))
        for key in [peer, proposer] { _ = other.apply(.vote(locked.vote(.prevote, from: key, round: 0, v))) }
        for key in [peer, proposer, locked.me] { _ = other.apply(.vote(locked.vote(.precommit, from: key, round: 0, nil))) }
        _ = other.apply(.timeout(.precommit, height: 1, round: 0))
        #expect(other.round == 1 && other.lockedValue == nil)

        // The locked node sent its prevote (lost), reaches round 1 and holds the re-proposal.
        var gossip = GossipKnowledge<Int>()
        gossip.connected(peerIndex)
        var links = ValidatorBits(count: 4)
        for index in 0..<4 { links[index] = true }
        func announcement(round: UInt32, phase: RoundState.Phase, proposal: Bool, stalled: Bool) -> RoundState {
            RoundState(height: 1, round: round, phase: phase, hasProposal: proposal, prevotes: ValidatorBits(count: 4),
                       precommits: ValidatorBits(count: 4), links: links, stalled: stalled)
        }
        _ = gossip.announced(announcement(round: 0, phase: .prevote, proposal: true, stalled: false), by: peerIndex, setSize: 4)
        let ownPrevote = locked.vote(.prevote, from: locked.me, round: 0, v)
        _ = gossip.ownVote(locked.core.voteID(ownPrevote)!, height: 1)
        for key in [proposer, peer] { _ = locked.core.apply(.vote(locked.vote(.precommit, from: key, round: 0, nil))) }
        _ = locked.core.apply(.timeout(.precommit, height: 1, round: 0))
        let reproposal = Proposal(height: 1, round: 1, value: v, validRound: 0, proposer: proposer)
        _ = locked.core.apply(.proposal(reproposal, valid: true))
        #expect(locked.core.round == 1 && locked.core.heldProposal(round: 1) != nil)

        // Stalled in round 1 without the proposal: nothing of round 0 comes (it "has" it all).
        _ = gossip.announced(announcement(round: 1, phase: .propose, proposal: false, stalled: true), by: peerIndex, setSize: 4)
        let before = gossip.stallAnswer(to: peerIndex, peerRound: 1, core: locked.core) { locked.core.heldProposal(round: $0) }
        #expect(!before.votes.contains(ownPrevote))
        // Holding the re-proposal and still stalled: it waits for the polka of round 0.
        _ = other.apply(.proposal(reproposal, valid: true))
        _ = gossip.announced(announcement(round: 1, phase: .propose, proposal: true, stalled: true), by: peerIndex, setSize: 4)
        let answer = gossip.stallAnswer(to: peerIndex, peerRound: 1, core: locked.core) { locked.core.heldProposal(round: $0) }
        #expect(answer.votes.contains(ownPrevote), "the lost prevote goes again")
        var effects: [ConsensusEffect<TestValue>] = []
        for vote in answer.votes { effects += other.apply(.vote(vote)) }
        #expect(signedVotes(effects).map(\.2) == [v.id], "the peer accepts the re-proposal (L28)")
    }
}

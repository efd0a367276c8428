import KCCrypto
import KCTypes

/// What a running core tells gossip: its announcement, the identity of a vote, and the votes
/// a stalled peer may lack (specs/p2p.md, "Consensus gossip"). Read-only.
extension ConsensusCore {
    /// This core's position and what it holds of the current round. `links` are the members
    /// of this height's set the node is connected to (it sets its own bit itself).
    public func roundState(links: Set<PublicKey>) -> RoundState {
        let size = validators.members.count
        var prevotes = ValidatorBits(count: size), precommits = ValidatorBits(count: size)
        for key in votes.tally(.prevote, round: round)?.byValidator.keys ?? [:].keys {
            if let index = validators.index(of: key) { prevotes[index] = true }
        }
        for key in votes.tally(.precommit, round: round)?.byValidator.keys ?? [:].keys {
            if let index = validators.index(of: key) { precommits[index] = true }
        }
        return RoundState(height: height, round: round, phase: RoundState.Phase(step), hasProposal: proposals[round] != nil,
                          prevotes: prevotes, precommits: precommits, links: .links(validators, me: me, connected: links))
    }

    /// The gossip identity of a vote of this height by a member of this set.
    public func voteID(_ signed: SignedVote) -> GossipVoteID? {
        signed.vote.height == height ? GossipVoteID(signed, in: validators) : nil
    }

    /// The rounds whose messages a peer at `peerRound` of this height may still need: the
    /// round before its own through its own, this core's round, and this core's locked and
    /// valid rounds (a proposal re-proposed from its valid round needs that round's polka).
    public func gossipRounds(peerRound: UInt32) -> [UInt32] {
        var rounds: Set<UInt32> = [peerRound, round]
        if peerRound > 0 { rounds.insert(peerRound - 1) }
        if let lockedRound { rounds.insert(lockedRound) }
        if let validRound { rounds.insert(validRound) }
        return rounds.sorted()
    }

    /// The prevotes of every polka (a quorum of prevotes for one block) that a peer at
    /// `peerRound` may need to accept a re-proposal: in the rounds of `gossipRounds` and the
    /// valid round of the proposal held for the peer's round, only the prevotes for the
    /// polka's block. Announcement bits say a peer holds *a* vote of a validator, not which:
    /// a validator that showed one prevote to some peers and another to the rest leaves the
    /// second group short of a polka the first holds, and without these votes by value that
    /// group never accepts the re-proposal its locked peers keep making (a halt).
    public func polkaVotes(peerRound: UInt32) -> [(id: GossipVoteID, item: SignedVote)] {
        var rounds = Set(gossipRounds(peerRound: peerRound))
        if let proposedValidRound = proposals[peerRound]?.proposal.validRound { rounds.insert(proposedValidRound) }
        var polkas: [(id: GossipVoteID, item: SignedVote)] = []
        for round in rounds.sorted() {
            guard let tally = votes.tally(.prevote, round: round) else { continue }
            // At most one block has a quorum unless a third of the power equivocates; sorted
            // all the same, so the answer never depends on a dictionary's order.
            let blocks = tally.powerByValue.compactMap { value, power in value.flatMap { validators.isQuorum(power) ? $0 : nil } }.sorted()
            for block in blocks { polkas += polkaVotes(round: round, for: block) }
        }
        return polkas
    }

    /// The prevotes of `round` for `block` if they are a polka (a quorum), else none.
    public func polkaVotes(round: UInt32, for block: Hash256) -> [(id: GossipVoteID, item: SignedVote)] {
        guard validators.isQuorum(votes.power(.prevote, round: round, for: block)) else { return [] }
        return votes.votes(.prevote, round: round, for: block).compactMap { vote in voteID(vote).map { ($0, vote) } }
    }

    /// The votes of `rounds`, with their identities (prevotes then precommits, by key).
    public func heldVotes(rounds: [UInt32]) -> [(id: GossipVoteID, item: SignedVote)] {
        rounds.flatMap { heldVotes(round: $0) }.compactMap { vote in voteID(vote).map { ($0, vote) } }
    }

    /// The votes this core's own key signed at this height, with their identities.
    public func ownVotes() -> [(id: GossipVoteID, item: SignedVote)] {
        guard let me else { return [] }
        var own: [(id: GossipVoteID, item: SignedVote)] = []
        for round in votes.rounds.keys.sorted() {
            for vote in heldVotes(round: round) where vote.vote.validator == me {
                if let id = voteID(vote) { own.append((id, vote)) }
            }
        }
        return own
    }
}

extension GossipVoteID {
    /// The identity of a vote by a member of `validators` (nil for anyone else).
    public init?(_ signed: SignedVote, in validators: ValidatorSet) {
        guard let index = validators.index(of: signed.vote.validator) else { return nil }
        self.init(round: signed.vote.round, kind: signed.vote.kind, validator: index, blockID: signed.vote.blockID)
    }
}

extension RoundState.Phase {
    /// A running core's step as announced (a decided core is still in its precommit step).
    public init(_ step: Step) {
        switch step {
        case .propose: self = .propose
        case .prevote: self = .prevote
        case .precommit, .decided: self = .precommit
        }
    }
}

extension RoundState {
    /// The announcement of a node whose next height has not started (the commit pause, the
    /// start-up hold): it holds nothing of that height yet.
    public static func waiting(height: UInt64, validators: ValidatorSet, me: PublicKey?, links: Set<PublicKey>) -> RoundState {
        let size = validators.members.count
        return RoundState(height: height, round: 0, phase: .waiting, hasProposal: false,
                          prevotes: ValidatorBits(count: size), precommits: ValidatorBits(count: size),
                          links: .links(validators, me: me, connected: links))
    }
}

extension ValidatorBits {
    /// The members of `validators` this node is connected to, itself included. (A set has at
    /// most 1,000 members: the genesis loader bounds `max_validators`, so the count is valid.)
    static func links(_ validators: ValidatorSet, me: PublicKey?, connected: Set<PublicKey>) -> ValidatorBits {
        var bits = ValidatorBits(count: validators.members.count)
        for (index, member) in validators.members.enumerated() where connected.contains(member.key) || member.key == me {
            bits[index] = true
        }
        return bits
    }
}

extension GossipKnowledge {
    /// The answer to `peer`'s stall report at `core`'s height: the proposals (through
    /// `proposal`, which gives what this node holds of a round) and the votes the peer lacks of
    /// the rounds it may need, then the polkas' prevotes it is not known to hold by value
    /// (`polkaVotes`), all marked as sent. The node and the simulator both answer with it.
    ///
    /// A peer that stalls in the propose step holding its round's proposal, when that proposal
    /// carries a valid round, waits for the polka of that round (L28): its prevotes go again,
    /// whatever this node thinks it sent. What was sent is only a belief (a vote can be lost
    /// on the way or dropped by the peer's screening while it was elsewhere), and a polka that
    /// one locked validator holds and its peers never complete stops the height for good.
    public mutating func stallAnswer<Value, P>(to peer: Peer, peerRound: UInt32, core: ConsensusCore<Value>,
                                        proposal: (UInt32) -> P?) -> (proposals: [P], votes: [SignedVote]) {
        let rounds = core.gossipRounds(peerRound: peerRound)
        var proposals: [P] = []
        for round in rounds {
            if let held = proposal(round), missingProposal(height: core.height, round: round, for: peer) { proposals.append(held) }
        }
        var votes = missingVotes(core.heldVotes(rounds: rounds), height: core.height, for: peer)
        votes += missingVotes(core.polkaVotes(peerRound: peerRound), height: core.height, for: peer, byValue: true)
        if let announced = state(of: peer), announced.height == core.height, announced.round == peerRound,
           announced.phase == .propose, announced.hasProposal,
           let waited = core.heldProposal(round: peerRound), let validRound = waited.validRound {
            var chosen = Set(votes)
            for (id, vote) in core.polkaVotes(round: validRound, for: waited.value.id) where chosen.insert(vote).inserted {
                votes.append(vote)
                heard(vote: id, height: core.height, from: peer)
            }
        }
        return (proposals, votes)
    }
}

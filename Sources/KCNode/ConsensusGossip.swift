import KCConsensus
import KCCrypto
import KCNetwork
import KCTypes

/// The node's consensus gossip (specs/p2p.md, "Consensus gossip"): what each peer holds
/// (`GossipKnowledge`), which peers proved which consensus key, and when to announce. Pure:
/// it returns what to send to whom; the driver sends it.
struct ConsensusGossip {
    typealias Send = (message: WireMessage, to: [PublicKey])

    /// A node that did not move (height, round, step) for this long sends a stall report.
    static let stallIntervalMilliseconds: UInt64 = 250

    private(set) var knowledge = GossipKnowledge<PublicKey>()
    /// Consensus key -> node key, for the connected peers that proved one.
    private var validatorPeers: [PublicKey: PublicKey] = [:]
    private(set) var announcedPosition: RoundState.Position? = nil
    /// When each peer's last stall report was answered (monotonic ms): at most one answer per
    /// stall interval, so a peer cannot make this node resend its rounds faster than an honest
    /// peer would ask (a 100-byte report can cost a round's worth of votes).
    private var answeredAt: [PublicKey: UInt64] = [:]
    private var positionAtCheck: RoundState.Position? = nil

    mutating func connected(_ peer: PublicKey, validatorKey: PublicKey?) {
        knowledge.connected(peer)
        if let validatorKey { validatorPeers[validatorKey] = peer }
    }

    mutating func disconnected(_ peer: PublicKey) {
        knowledge.disconnected(peer)
        answeredAt[peer] = nil
        validatorPeers = validatorPeers.filter { $0.value != peer }
    }

    /// The consensus keys of the connected peers.
    var links: Set<PublicKey> { Set(validatorPeers.keys) }

    /// This node's announcement: from its core, or, between heights, for the next height.
    func roundState(core: ConsensusCore<Block>?, next: (height: UInt64, validators: ValidatorSet), me: PublicKey) -> RoundState {
        core?.roundState(links: links) ?? .waiting(height: next.height, validators: next.validators, me: me, links: links)
    }

    /// The announcement to every peer when the height or the round changed since the last one.
    mutating func announcement(_ state: RoundState) -> Send? {
        guard state.height != announcedPosition?.height || state.round != announcedPosition?.round else { return nil }
        announcedPosition = state.position
        return (.roundState(state), knowledge.peers)
    }

    /// Once per stall interval: a stall report when nothing moved since the last check.
    mutating func stallCheck(_ state: RoundState) -> Send? {
        defer { positionAtCheck = state.position }
        guard state.position == positionAtCheck else { return nil }
        announcedPosition = state.position
        return (.roundState(state.stallReport()), knowledge.peers)
    }

    mutating func ownVote(_ signed: SignedVote, validators: ValidatorSet) -> Send? {
        guard let id = GossipVoteID(signed, in: validators) else { return nil }
        return (.vote(signed), knowledge.ownVote(id, height: signed.vote.height))
    }

    mutating func ownProposal(_ signed: SignedProposal) -> Send {
        (.proposal(signed), knowledge.ownProposal(height: signed.proposal.height, round: signed.proposal.round))
    }

    /// Where to pass transactions admitted from `peer` (specs/p2p.md, tag 1): the peers not
    /// linked to it, when it proved a consensus key of `validators`.
    func transactionTargets(from peer: PublicKey, validatorKey: PublicKey?, validators: ValidatorSet) -> [PublicKey] {
        knowledge.transactionTargets(from: peer, sourceValidator: validatorKey.flatMap { validators.index(of: $0) })
    }

    /// A vote of a height signed by `validators` that this node accepted from `peer` (after
    /// screening and its signature check): the peers to pass it to.
    mutating func relay(_ signed: SignedVote, from peer: PublicKey, validators: ValidatorSet, me: PublicKey?) -> Send? {
        guard let id = GossipVoteID(signed, in: validators) else { return nil }
        let targets = knowledge.relayVote(id, height: signed.vote.height, from: peer, signer: validatorPeers[signed.vote.validator],
                                          me: me.flatMap { validators.index(of: $0) })
        return (.vote(signed), targets)
    }

    mutating func relay(_ signed: SignedProposal, from peer: PublicKey, validators: ValidatorSet, me: PublicKey?) -> Send? {
        let proposal = signed.proposal
        guard let proposer = validators.index(of: proposal.proposer) else { return nil }
        let targets = knowledge.relayProposal(height: proposal.height, round: proposal.round, proposer: proposer, from: peer,
                                              signer: validatorPeers[proposal.proposer], me: me.flatMap { validators.index(of: $0) })
        return (.proposal(signed), targets)
    }

    /// A peer's announcement. `setSize` is this node's set size (the bits of a height next to
    /// its own are read against it). To a stall report at this node's height it answers with
    /// the proposals and votes the peer lacks of the rounds it may need.
    mutating func received(_ state: RoundState, from peer: PublicKey, core: ConsensusCore<Block>?, nextHeight: UInt64,
                           setSize: Int, proposals: [UInt32: SignedProposal], now: UInt64) -> [Send] {
        let near = state.height &+ 1 >= nextHeight && state.height <= nextHeight &+ 1
        let announcement = knowledge.announced(state, by: peer, setSize: near ? setSize : nil)
        guard announcement == .stalled, let core, core.height == state.height else { return [] }
        if let last = answeredAt[peer], now &- last < Self.stallIntervalMilliseconds, now >= last { return [] }
        answeredAt[peer] = now
        let answer = knowledge.stallAnswer(to: peer, peerRound: state.round, core: core) { proposals[$0] }
        return answer.proposals.map { (.proposal($0), [peer]) } + answer.votes.map { (.vote($0), [peer]) }
    }
}

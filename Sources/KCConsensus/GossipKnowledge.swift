import KCCrypto
import KCTypes

/// One vote, by its slot in a height and the value it is for (an equivocator's two votes
/// are two identities).
public struct GossipVoteID: Hashable, Sendable {
    public let round: UInt32
    public let kind: VoteKind
    /// The signer's index in the height's validator set.
    public let validator: Int
    public let blockID: Hash256?

    public init(round: UInt32, kind: VoteKind, validator: Int, blockID: Hash256?) {
        self.round = round
        self.kind = kind
        self.validator = validator
        self.blockID = blockID
    }

    var slot: GossipSlot { GossipSlot(round: round, kind: kind, validator: validator) }
}

/// A vote's slot: some vote of that validator, round and kind (what announcement bits say).
struct GossipSlot: Hashable, Sendable {
    let round: UInt32
    let kind: VoteKind
    let validator: Int
}

/// What each peer already has of the consensus messages of the height it decides, and the
/// rules that decide who gets a vote or a proposal (specs/p2p.md, "Consensus gossip"). Pure:
/// the node and the simulator both run it, with their own peer identities.
///
/// - A message goes to a peer at most once per connection: a peer knows what it sent us, what
///   we sent it, and what its `RoundState` announcements say it holds.
/// - Only peers at the message's height get it (a peer behind gets it when it arrives there,
///   a peer ahead does not need it).
/// - A signer sends its own messages to every peer; a relay skips the peers that announced a
///   direct link to the signer (they have it from the signer), so in a full mesh each message
///   crosses each link once, and in a partial mesh it reaches the peers the signer cannot.
/// - For one vote slot in `witnessEvery` (by height, round, kind and signer), a vote received
///   straight from its signer is also passed to one linked peer (a witness): a validator that
///   shows different votes to different peers has its two halves meet, and becomes evidence.
/// - A stall report (the peer did not move for a gossip interval) is authoritative for its
///   round: what its bits lack is sent again, whatever was sent before.
public struct GossipKnowledge<Peer: Hashable & Comparable & Sendable>: Sendable {
    public typealias VoteID = GossipVoteID

    typealias Slot = GossipSlot

    /// What a peer holds of one height.
    struct Held: Sendable {
        var votes: Set<VoteID> = []
        /// Slots the peer's bits said it holds (some vote, value unknown).
        var slots: Set<Slot> = []
        var proposals: Set<UInt32> = []
        var count: Int { votes.count + slots.count + proposals.count }
    }

    struct View: Sendable {
        var state: RoundState? = nil
        /// What it holds of its announced height and of the next one (a node holds messages
        /// for the height after its own until it starts it); nothing older is kept.
        var current = Held()
        var next = Held()
        var links: ValidatorBits? = nil

        /// The record for `height`, if it is the peer's announced height or the next.
        func held(_ height: UInt64) -> Held? {
            guard let announced = state?.height else { return nil }
            if height == announced { return current }
            if height == announced &+ 1 { return next }
            return nil
        }

        mutating func update(_ height: UInt64, _ body: (inout Held) -> Void) {
            guard let announced = state?.height, current.count + next.count < GossipKnowledge.maxKnownPerPeer else { return }
            if height == announced { body(&current) } else if height == announced &+ 1 { body(&next) }
        }
    }

    /// What an announcement tells about its sender.
    public enum Announcement: Equatable, Sendable {
        /// It reached a height it did not announce before (or it is its first announcement).
        case newHeight
        /// Another round or step of the same height.
        case moved
        /// A stall report: it did not move for a gossip interval and waits for something.
        case stalled
    }

    /// Knowledge kept per peer is capped: past it, nothing more is remembered for that peer
    /// (it may then get a message twice; memory stays bounded whatever a peer sends).
    public static var maxKnownPerPeer: Int { 65_536 }
    /// A vote received straight from its signer is passed to a peer linked to the signer for
    /// one vote slot in this many (see the type's notes).
    public static var witnessEvery: Int { 8 }

    private var views: [Peer: View] = [:]
    /// Connected peers, sorted: every decision walks them in this order (deterministic).
    public private(set) var peers: [Peer] = []

    public init() {}

    public mutating func connected(_ peer: Peer) {
        guard views[peer] == nil else { return }
        views[peer] = View()
        peers.insert(peer, at: peers.firstIndex { $0 > peer } ?? peers.endIndex)
    }

    /// A new connection starts from nothing: knowledge is per connection.
    public mutating func disconnected(_ peer: Peer) {
        guard views.removeValue(forKey: peer) != nil else { return }
        peers.removeAll { $0 == peer }
    }

    public func state(of peer: Peer) -> RoundState? { views[peer]?.state }

    /// Records `peer`'s announcement. `setSize` is the size of the validator set of the
    /// announced height when this node knows it (bits of any other length are ignored).
    public mutating func announced(_ state: RoundState, by peer: Peer, setSize: Int?) -> Announcement {
        connected(peer)
        guard var view = views.removeValue(forKey: peer) else { return .newHeight }
        let previous = view.state
        if let old = view.state?.height, old != state.height {
            // Moved on: what it held of the next height is now its current one.
            view.current = state.height == old &+ 1 ? view.next : Held()
            view.next = Held()
        }
        view.state = state
        let bitsUsable = setSize.map { size in
            state.prevotes.count == size && state.precommits.count == size && state.links.count == size
        } ?? false
        // Links are kept across heights: sets rarely change, and a wrong guess after a change
        // costs one message too many or one relay too few (the stall report repairs it).
        if let setSize, state.links.count == setSize { view.links = state.links }
        let result: Announcement = state.stalled ? .stalled : previous?.height == state.height ? .moved : .newHeight
        if bitsUsable {
            let round = state.round
            if result == .stalled {
                // Authoritative for its round: forget what we think we gave it there.
                view.current.votes = view.current.votes.filter { id in
                    id.round != round || (id.kind == .prevote ? state.prevotes : state.precommits)[id.validator]
                }
                view.current.slots = view.current.slots.filter { $0.round != round }
                if !state.hasProposal { view.current.proposals.remove(round) }
            }
            view.update(state.height) { held in
                for index in state.prevotes.indices { held.slots.insert(Slot(round: round, kind: .prevote, validator: index)) }
                for index in state.precommits.indices { held.slots.insert(Slot(round: round, kind: .precommit, validator: index)) }
                if state.hasProposal { held.proposals.insert(round) }
            }
        }
        views[peer] = view
        return result
    }

    // MARK: what peers have

    /// Whether `peer` is at `height` (or one below: it holds messages for its next height) and
    /// not known to hold the vote.
    public func lacks(_ peer: Peer, vote id: VoteID, height: UInt64) -> Bool {
        guard let held = views[peer]?.held(height) else { return false }
        return !held.votes.contains(id) && !held.slots.contains(id.slot)
    }

    /// Whether `peer` is at `height` and not known to hold this very vote: the vote's value,
    /// not only its slot (announcement bits do not say which of an equivocator's votes a peer holds).
    func lacksValue(_ peer: Peer, vote id: VoteID, height: UInt64) -> Bool {
        guard let held = views[peer]?.held(height) else { return false }
        return !held.votes.contains(id)
    }

    public func lacksProposal(_ peer: Peer, height: UInt64, round: UInt32) -> Bool {
        guard let held = views[peer]?.held(height) else { return false }
        return !held.proposals.contains(round)
    }

    /// The peers to pass a transaction on to, received from `source` (the validator at
    /// `sourceValidator` of the running set, if it is one): every other peer except those that
    /// announced a link to that validator, which have it from the source itself. In a full mesh
    /// of validators each transaction then crosses each connection once instead of once per
    /// relayer; a peer that is not a validator is relayed for in full.
    public func transactionTargets(from source: Peer, sourceValidator: Int?) -> [Peer] {
        peers.filter { peer in
            guard peer != source else { return false }
            guard let sourceValidator, let links = views[peer]?.links else { return true }
            return !links[sourceValidator]
        }
    }

    /// Whether `peer` announced a direct link to the validator at `validator` of `height`'s set.
    func linked(_ peer: Peer, to validator: Int, height: UInt64) -> Bool {
        guard let links = views[peer]?.links else { return false }
        return links[validator]
    }

    /// `peer` has the vote (it sent it, or we sent it).
    public mutating func heard(vote id: VoteID, height: UInt64, from peer: Peer) {
        guard var view = views.removeValue(forKey: peer) else { return }
        view.update(height) { $0.votes.insert(id) }
        views[peer] = view
    }

    public mutating func heardProposal(height: UInt64, round: UInt32, from peer: Peer) {
        guard var view = views.removeValue(forKey: peer) else { return }
        view.update(height) { $0.proposals.insert(round) }
        views[peer] = view
    }

    // MARK: who gets what

    /// An own vote: every peer not known to hold it (those at its height are marked).
    public mutating func ownVote(_ id: VoteID, height: UInt64) -> [Peer] {
        var targets: [Peer] = []
        for peer in peers where views[peer]?.held(height)?.votes.contains(id) != true {
            targets.append(peer)
            heard(vote: id, height: height, from: peer)
        }
        return targets
    }

    /// An own proposal: every peer not known to hold it.
    public mutating func ownProposal(height: UInt64, round: UInt32) -> [Peer] {
        var targets: [Peer] = []
        for peer in peers where views[peer]?.held(height)?.proposals.contains(round) != true {
            targets.append(peer)
            heardProposal(height: height, round: round, from: peer)
        }
        return targets
    }

    /// A vote this node just accepted from `source`: the peers to pass it to (marked).
    /// `signer` is the peer that signed it, when connected; `me` this node's index in the
    /// height's set (nil for a node that does not validate).
    public mutating func relayVote(_ id: VoteID, height: UInt64, from source: Peer, signer: Peer?, me: Int?) -> [Peer] {
        heard(vote: id, height: height, from: source)
        let fromSigner = signer == source
        let salt = Self.salt(height: height, round: id.round, kind: UInt64(id.kind.rawValue) &+ 1, validator: id.validator)
        var targets: [Peer] = []
        var linkedToSigner: [Peer] = []
        for peer in peers where peer != source && lacks(peer, vote: id, height: height) {
            if linked(peer, to: id.validator, height: height) {
                linkedToSigner.append(peer)
            } else if relays(to: peer, signer: signer, fromSigner: fromSigner, me: me, salt: salt) {
                targets.append(peer)
            }
        }
        if fromSigner && !linkedToSigner.isEmpty && salt % UInt64(Self.witnessEvery) == 0 {
            targets.append(linkedToSigner[Int((salt / UInt64(Self.witnessEvery)) % UInt64(linkedToSigner.count))])
        }
        for peer in targets { heard(vote: id, height: height, from: peer) }
        return targets
    }

    /// A proposal this node just accepted from `source`: the peers to pass it to (marked).
    public mutating func relayProposal(height: UInt64, round: UInt32, proposer: Int, from source: Peer, signer: Peer?, me: Int?) -> [Peer] {
        heardProposal(height: height, round: round, from: source)
        let salt = Self.salt(height: height, round: round, kind: 0, validator: proposer)
        var targets: [Peer] = []
        for peer in peers where peer != source && lacksProposal(peer, height: height, round: round)
            && !linked(peer, to: proposer, height: height)
            && relays(to: peer, signer: signer, fromSigner: signer == source, me: me, salt: salt) {
            targets.append(peer)
            heardProposal(height: height, round: round, from: peer)
        }
        return targets
    }

    /// How many of the validators linked to both the signer and a peer pass a message on.
    public static var relayers: Int { 2 }

    /// Whether this node passes a message to `peer` (not linked to the signer). A validator
    /// relays only what it got straight from the signer, and only when it is one of the
    /// `relayers` validators linked to both the signer and `peer` ranked first by the
    /// message's salt: every validator linked to both computes the same ranking from the
    /// same announcements, so the peer gets two copies, not one per common neighbour. What
    /// is further away (no common neighbour) is repaired by the peer's stall report. A node
    /// that does not validate, or that lacks the announcements to rank, relays.
    func relays(to peer: Peer, signer: Peer?, fromSigner: Bool, me: Int?, salt: UInt64) -> Bool {
        guard let me else { return true }
        guard fromSigner else { return false }
        guard let signer, let signerLinks = views[signer]?.links, let peerLinks = views[peer]?.links else { return true }
        var best: [(rank: UInt64, index: Int)] = []
        for index in signerLinks.common(with: peerLinks) {
            let rank = Self.mix(UInt64(index) ^ salt)
            if best.count < Self.relayers {
                best.append((rank, index))
                best.sort { $0.rank < $1.rank }
            } else if rank < best[best.count - 1].rank {
                best[best.count - 1] = (rank, index)
                best.sort { $0.rank < $1.rank }
            }
        }
        return best.isEmpty || best.contains { $0.index == me }
    }

    static func salt(height: UInt64, round: UInt32, kind: UInt64, validator: Int) -> UInt64 {
        mix(height &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(round) << 40 ^ kind << 32 ^ UInt64(truncatingIfNeeded: validator))
    }

    /// SplitMix64's finaliser: spreads a key over 64 bits.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Of `candidates` (votes of `height` this node holds), those `peer` lacks, marked as sent.
    /// `byValue`: those it is not known to hold by value (`lacksValue`), whatever its bits say.
    public mutating func missingVotes<Item>(_ candidates: [(id: VoteID, item: Item)], height: UInt64, for peer: Peer,
                                            byValue: Bool = false) -> [Item] {
        var chosen: [Item] = []
        for candidate in candidates
        where byValue ? lacksValue(peer, vote: candidate.id, height: height) : lacks(peer, vote: candidate.id, height: height) {
            chosen.append(candidate.item)
            heard(vote: candidate.id, height: height, from: peer)
        }
        return chosen
    }

    /// Whether `peer` lacks the proposal of (height, round); marked as sent when it does.
    public mutating func missingProposal(height: UInt64, round: UInt32, for peer: Peer) -> Bool {
        guard lacksProposal(peer, height: height, round: round) else { return false }
        heardProposal(height: height, round: round, from: peer)
        return true
    }
}

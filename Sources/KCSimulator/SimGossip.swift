import KCCodec
import KCConsensus
import KCCrypto
import KCNode
import KCTypes

/// Consensus gossip in the simulator: the node's own rules (`GossipKnowledge`), over the
/// simulated links. A node announces its round state to its peers when it moves and once per
/// gossip interval while it does not (a stall report); own messages go to every peer, relays
/// only to peers that lack them and are not linked to the signer; a stalled peer gets what it
/// lacks, a peer behind gets the block it misses.
extension Simulation {
    func position(_ node: SimNode) -> RoundState.Position {
        guard let core = node.core else { return .init(height: node.height, round: 0, phase: .waiting) }
        return .init(height: core.height, round: core.round, phase: RoundState.Phase(core.step))
    }

    func roundState(_ node: SimNode) -> RoundState {
        node.core?.roundState(links: node.linkKeys)
            ?? .waiting(height: node.height, validators: node.validators, me: node.key.publicKey, links: node.linkKeys)
    }

    func announce(_ node: SimNode, stalled: Bool = false) {
        guard node.behaviour != .silent, !node.crashed else { return }
        var state = roundState(node)
        if stalled { state = state.stallReport() }
        node.announced = state.position
        for peer in node.neighbours { send(from: node.index, to: peer, .roundState(state)) }
    }

    /// After every event a node handles: a new height or round is announced at once (a new
    /// step is not: peers need it only in a stall report).
    func announceIfMoved(_ node: SimNode) {
        guard !node.crashed else { return }
        let current = position(node)
        guard current.height != node.announced?.height || current.round != node.announced?.round else { return }
        announce(node)
    }

    /// The gossip interval: no move since the last one means a stall report.
    func gossipTick(_ node: SimNode) {
        let current = position(node)
        if current == node.positionAtTick { announce(node, stalled: true) }
        node.positionAtTick = current
    }

    func receive(_ node: SimNode, roundState state: RoundState, from peer: Int) {
        guard peer < nodes.count else { return }
        // Bits of a height next to this node's are read against its own set (sets rarely
        // change; a wrong reading costs a message, and the next stall report repairs it).
        let setSize = state.height &+ 1 >= node.height && state.height <= node.height &+ 1 ? node.validators.members.count : nil
        let announcement = node.gossip.announced(state, by: peer, setSize: setSize)
        if state.height > node.height {
            // Behind: ask this peer for the blocks (at most every 500 ms per peer).
            let last = node.lastSyncRequest[peer]
            if last == nil || now >= last! + 500 {
                node.lastSyncRequest[peer] = now
                send(from: node.index, to: peer, .syncRequest(from: node.index, height: node.height))
            }
            return
        }
        guard announcement == .stalled else { return }
        if state.height < node.height {
            // It waits for a height this node decided: the block and its certificate.
            guard state.height >= 1 else { return }
            let (block, certificate) = node.blocks[Int(state.height - 1)]
            send(from: node.index, to: peer, .decided(block, certificate))
            return
        }
        guard let core = node.core else { return }
        let answer = node.gossip.stallAnswer(to: peer, peerRound: state.round, core: core) { core.heldProposal(round: $0) }
        for proposal in answer.proposals { send(from: node.index, to: peer, .proposal(proposal)) }
        for vote in answer.votes { send(from: node.index, to: peer, .vote(vote)) }
    }

    func relay(_ node: SimNode, vote: SignedVote, id: GossipVoteID, from source: Int) {
        guard node.behaviour == .honest, source < nodes.count else { return }
        // Validator i runs node i: the signer's node is its index, when it is a peer.
        let signer = node.neighbours.contains(signerNode(vote.vote.validator)) ? signerNode(vote.vote.validator) : nil
        for peer in node.gossip.relayVote(id, height: vote.vote.height, from: source, signer: signer,
                                          me: node.validators.index(of: node.key.publicKey)) {
            send(from: node.index, to: peer, .vote(vote))
        }
    }

    func relay(_ node: SimNode, proposal: Proposal<Block>, from source: Int) {
        guard node.behaviour == .honest, source < nodes.count, let index = node.validators.index(of: proposal.proposer) else { return }
        let signer = node.neighbours.contains(signerNode(proposal.proposer)) ? signerNode(proposal.proposer) : nil
        for peer in node.gossip.relayProposal(height: proposal.height, round: proposal.round, proposer: index, from: source,
                                              signer: signer, me: node.validators.index(of: node.key.publicKey)) {
            send(from: node.index, to: peer, .proposal(proposal))
        }
    }

    /// The node that runs a consensus key (-1 for none).
    func signerNode(_ key: PublicKey) -> Int { nodeOfKey[key] ?? -1 }

    /// A restarted node's connections are new: both ends start from nothing.
    func reconnect(_ node: SimNode) {
        node.gossip = GossipKnowledge<Int>()
        for peer in node.neighbours {
            node.gossip.connected(peer)
            nodes[peer].gossip.disconnected(node.index)
            nodes[peer].gossip.connected(node.index)
        }
    }

    func resetLink(_ a: Int, _ b: Int) {
        guard a < nodes.count, b < nodes.count else { return }
        nodes[a].gossip.disconnected(b)
        nodes[a].gossip.connected(b)
        nodes[b].gossip.disconnected(a)
        nodes[b].gossip.connected(a)
    }

    /// The bytes a message takes on the wire: its canonical encoding as a wire message (one
    /// tag byte) in a frame (4-byte length, 16-byte tag).
    func wireBytes(_ message: Message) -> UInt64 {
        let body: Int
        switch message {
        case .proposal(let proposal):
            // The signature the simulator leaves out is 64 bytes.
            body = proposalBytes(proposal) + 64
        case .vote(let vote): body = vote.canonicalBytes.count
        case .decided(let block, let certificate): body = blockBytes(block) + certificate.canonicalBytes.count
        case .evidence(let evidence): body = evidence.canonicalBytes.count
        case .syncRequest: body = 8
        case .transaction(let transaction): body = transaction.encodedSize
        case .roundState(let state): body = state.canonicalBytes.count
        }
        return UInt64(body + 1 + 4 + 16)
    }

    func proposalBytes(_ proposal: Proposal<Block>) -> Int {
        blockBytes(proposal.value) + 8 + 4 + 5 + 32
    }

    func blockBytes(_ block: Block) -> Int {
        if let known = blockSizes[block.id] { return known }
        let size = block.canonicalBytes.count
        if blockSizes.count > 4_096 { blockSizes.removeAll() }
        blockSizes[block.id] = size
        return size
    }
}

extension Message {
    static let kindNames = ["proposal", "vote", "block", "evidence", "sync_request", "transaction", "round_state"]

    var kind: Int {
        switch self {
        case .proposal: return 0
        case .vote: return 1
        case .decided: return 2
        case .evidence: return 3
        case .syncRequest: return 4
        case .transaction: return 5
        case .roundState: return 6
        }
    }
}

/// Traffic and finality of a run, in integers.
public struct ScaleFigures: Sendable {
    public let validators: Int
    /// Average number of peers per validator, to one decimal (as text: no floating point in
    /// figures compared across runs).
    public let meanDegree: String
    public private(set) var messages: UInt64 = 0
    public private(set) var bytes: UInt64 = 0
    /// Virtual milliseconds from the first honest start of a height to each honest commit of it.
    public private(set) var finality: [UInt64] = []

    init(validators: Int, meanDegree: Double) {
        self.validators = validators
        let tenths = Int((meanDegree * 10).rounded())
        self.meanDegree = "\(tenths / 10).\(tenths % 10)"
    }

    /// Messages by kind, in `Message.kindNames` order.
    public private(set) var messagesByKind = [UInt64](repeating: 0, count: Message.kindNames.count)

    mutating func delivered(kind: Int, bytes size: UInt64) {
        messages += 1
        bytes += size
        messagesByKind[kind] += 1
    }

    /// Messages per height per node by kind, to a tenth, as `name=count` pairs.
    public func breakdown(_ heights: UInt64) -> String {
        guard heights > 0 else { return "" }
        let per = heights * UInt64(max(validators, 1))
        return zip(Message.kindNames, messagesByKind).map { name, count in
            let tenths = (count * 10 + per / 2) / per
            return "\(name)=\(tenths / 10).\(tenths % 10)"
        }.joined(separator: " ")
    }

    mutating func finalized(afterMilliseconds elapsed: UInt64) { finality.append(elapsed) }

    public func messagesPerHeightPerNode(_ heights: UInt64) -> UInt64 {
        heights == 0 ? 0 : messages / heights / UInt64(max(validators, 1))
    }

    public func bytesPerHeightPerNode(_ heights: UInt64) -> UInt64 {
        heights == 0 ? 0 : bytes / heights / UInt64(max(validators, 1))
    }

    /// The p-th percentile (nearest rank) of finality, in milliseconds.
    public func finalityPercentile(_ p: Int) -> UInt64 {
        guard !finality.isEmpty else { return 0 }
        let sorted = finality.sorted()
        let rank = max(1, (p * sorted.count + 99) / 100)
        return sorted[min(rank, sorted.count) - 1]
    }
}

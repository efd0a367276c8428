import KCCodec
import KCConsensus
import KCCrypto
import KCTypes

/// Peers that hold no stake and attack the validators from outside (the `outsiders` fault,
/// specs/threat-model.md): they send double-sign evidence and votes and proposals signed by
/// their own keys, lie about heights with votes and blocks far ahead, and send forged blocks
/// for heights the validators are about to sync. When a validator bans one, it comes back
/// under a fresh identity. Honest validators must stay live, never write an outsider's message
/// to their WAL, and never pool its evidence.
struct Outsider {
    /// Its peer number in messages: above every validator's index.
    let peer: Int
    let seed: UInt64
    /// Bumped each time a validator bans it: a new key, a new identity.
    var identity: UInt64 = 0

    var key: SigningKey { SigningKey(seed: Blake2b.hash256(Array("sim/\(seed)/outsider/\(peer)/\(identity)".utf8))) }
}

/// What one honest node has banned: a peer's identity, until a virtual time.
struct Bans {
    var entries: [Int: (identity: UInt64, until: UInt64)] = [:]

    func isBanned(_ peer: Int, identity: UInt64, now: UInt64) -> Bool {
        guard let entry = entries[peer] else { return false }
        return entry.identity == identity && entry.until > now
    }
}

extension Simulation {
    static let banMilliseconds: UInt64 = 60_000

    /// The identity a message from `peer` carries now (validators: always 0).
    func identity(of peer: Int) -> UInt64 {
        peer >= nodes.count ? outsiders[peer - nodes.count].identity : 0
    }

    /// Whether `node` still listens to `peer` (bans last a minute; a fresh identity is new).
    func listens(_ node: SimNode, to peer: Int) -> Bool {
        !node.bans.isBanned(peer, identity: identity(of: peer), now: now)
    }

    /// `node` bans `peer` for misbehaving; an outsider answers with a fresh identity.
    func ban(_ node: SimNode, _ peer: Int, reason: String) {
        guard peer != node.index else { return }
        node.bans.entries[peer] = (identity(of: peer), now + Self.banMilliseconds)
        trace.record(now, 12, UInt64(node.index), UInt64(peer))
        if peer >= nodes.count {
            outsiderBans += 1
            outsiders[peer - nodes.count].identity += 1
        } else if nodes[peer].behaviour == .honest {
            checker.violation("honest node \(node.index) banned honest node \(peer): \(reason)")
        }
    }

    /// One outsider's move, every 100 to 400 ms of virtual time.
    func outsiderAct(_ index: Int) {
        let outsider = outsiders[index]
        queue.push(.outsider(index), at: now + 100 + networkRandom.below(300))
        guard let leader = leadingHonest else { return }
        let key = outsider.key
        let height = leader.height
        let message: Message
        switch networkRandom.below(5) {
        case 0:
            // An outsider's own double sign at the last committed height.
            let committed = max(height, 2) - 1
            func precommit(_ id: Hash256?) -> SignedVote {
                Vote(kind: .precommit, height: committed, round: 0, blockID: id, timestampMilliseconds: 1, validator: key.publicKey)
                    .signed(with: key, chainID: chainID)
            }
            guard let evidence = DoubleSignEvidence(precommit(Blake2b.hash256([UInt8(truncatingIfNeeded: now)])), precommit(nil)) else { return }
            message = .evidence(evidence)
        case 1:
            let vote = Vote(kind: networkRandom.below(2) == 0 ? .prevote : .precommit, height: height,
                            round: UInt32(networkRandom.below(3)), blockID: nil, timestampMilliseconds: 1, validator: key.publicKey)
            message = .vote(vote.signed(with: key, chainID: chainID))
        case 2:
            // A proposal of the leader's last block, claimed by the outsider.
            guard let (block, _) = leader.blocks.last else { return }
            message = .proposal(Proposal(height: height, round: UInt32(networkRandom.below(3)), value: block, validRound: nil,
                                         proposer: key.publicKey))
        case 3:
            // A height far ahead: validators ask the liar for blocks it does not have.
            let vote = Vote(kind: .prevote, height: height + 1_000 + networkRandom.below(1 << 40), round: 0, blockID: nil,
                            timestampMilliseconds: 1, validator: key.publicKey)
            message = .vote(vote.signed(with: key, chainID: chainID))
        default:
            // A forged block for the next height with a certificate of its own making.
            guard let (block, _) = leader.blocks.last else { return }
            let header = BlockHeader(chainID: chainID, height: height, timeMilliseconds: block.header.timeMilliseconds + 1,
                                     previousBlockID: block.id, lastCommitHash: .zero, transactionsHash: .zero, evidenceHash: .zero,
                                     stateRoot: .zero, validatorsHash: .zero, proposer: key.publicKey)
            let forged = Block(header: header, transactions: [], evidence: [], lastCommit: nil)
            let vote = Vote(kind: .precommit, height: height, round: 0, blockID: forged.id, timestampMilliseconds: 1, validator: key.publicKey)
            message = .decided(forged, CommitCertificate(height: height, round: 0, blockID: forged.id,
                                                         precommits: [vote.signed(with: key, chainID: chainID)]))
        }
        trace.record(now, 13, UInt64(index), outsider.identity)
        for node in nodes { send(from: outsider.peer, to: node.index, message) }
    }

    /// After a run: no honest node holds evidence against a key outside its sets. (That no
    /// outsider's vote or proposal reaches a WAL is checked as each input is fed.)
    func outsiderViolations() -> [String] {
        var problems: [String] = []
        for node in nodes where node.behaviour == .honest {
            for evidence in node.evidence.items where !node.validators.contains(evidence.validator)
                && !(node.previousValidators?.contains(evidence.validator) ?? false) {
                problems.append("node \(node.index) pooled evidence against \(evidence.validator.hex.prefix(8)), no validator")
            }
        }
        return problems
    }
}

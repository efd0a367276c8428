import KCConsensus
import KCCrypto

/// Proposals and votes for the next height that arrived before it started, with their sender
/// (specs/p2p.md, "Held messages for the next height"). Those that came while the current
/// height ran are not checked yet (`verified` false): the driver screens and checks them when
/// the height starts. Bounded in all.
struct EarlyInputs {
    struct Entry {
        let input: ConsensusInput<Block>
        let record: WALRecord
        let from: PublicKey?
        let verified: Bool
    }

    static let capacity = 10_000
    private(set) var entries: [Entry] = []
    /// Unchecked entries per sender: one peer may hold at most what an honest peer relays of a
    /// height (a round or two of both kinds of votes), so a liar cannot crowd out the rest.
    private var unchecked: [PublicKey: Int] = [:]

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }

    /// Holds an input; false when full, or when its sender already has `perPeerLimit`
    /// unchecked entries (it is dropped).
    @discardableResult
    mutating func hold(_ input: ConsensusInput<Block>, record: WALRecord, from peer: PublicKey?, verified: Bool,
                       perPeerLimit: Int = Int.max) -> Bool {
        guard entries.count < Self.capacity else { return false }
        if !verified, let peer {
            guard unchecked[peer, default: 0] < perPeerLimit else { return false }
            unchecked[peer, default: 0] += 1
        }
        entries.append(Entry(input: input, record: record, from: peer, verified: verified))
        return true
    }

    /// Everything held, emptied (when a height starts).
    mutating func take() -> [Entry] {
        defer { entries = []; unchecked = [:] }
        return entries
    }

    /// After committing `height`: drops what is for it or below (and timeouts, which belong
    /// to no later height).
    mutating func committed(_ height: UInt64) {
        defer {
            unchecked = [:]
            for entry in entries where !entry.verified { if let peer = entry.from { unchecked[peer, default: 0] += 1 } }
        }
        entries.removeAll { entry in
            switch entry.record {
            case .vote(let vote): return vote.vote.height <= height
            case .proposal(let proposal): return proposal.proposal.height <= height
            default: return true
            }
        }
    }
}

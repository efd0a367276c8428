import KCConsensus
import KCCrypto

/// Block-sync bookkeeping (specs/p2p.md, "Block sync"): which peer claims which height, which
/// heights are asked of whom, what arrived. No I/O: the driver sends the requests it returns,
/// verifies and applies blocks in height order, and bans the peers it names.
///
/// Heights are fetched in a window above the local tip, spread over every peer that claims
/// them (the least loaded first), so several peers serve a node that is far behind at once.
/// A peer that answers "no block" for a height it claimed, lets requests time out
/// `maxStrikes` times, or sends a block it was not asked for (at any height), is reported for
/// a ban; its heights go to other peers. A claimed height is only a hint of whom to ask: the
/// node acts on blocks that verify, never on a claim (specs/p2p.md, "Block sync").
public struct BlockSync: Sendable {
    public var window: UInt64 = 64
    public var maxPerPeer = 16
    public var timeoutMilliseconds: UInt64 = 3_000
    public var maxStrikes = 3

    public private(set) var peerHeights: [PublicKey: UInt64] = [:]
    /// The lowest height each peer still keeps (pruning nodes drop older blocks).
    var peerBases: [PublicKey: UInt64] = [:]
    var outstanding: [UInt64: (peer: PublicKey, deadline: UInt64)] = [:]
    var arrived: [UInt64: (block: Block, certificate: CommitCertificate, peer: PublicKey)] = [:]
    /// Heights asked of each peer, with the time after which an answer is no longer awaited
    /// (kept past the tip, so a late answer to a real request is not mistaken for an
    /// unsolicited block).
    var asked: [PublicKey: [UInt64: UInt64]] = [:]
    /// How long after its deadline a request's answer is still accepted (late, not blamed).
    public var lateAnswerMilliseconds: UInt64 = 30_000
    var strikes: [PublicKey: Int] = [:]
    /// Since when (monotonic ms) some peer is ahead of the local tip.
    public private(set) var aheadSince: UInt64? = nil
    var tip: UInt64 = 0

    public init() {}

    public var bestHeight: UInt64 { peerHeights.values.max() ?? 0 }

    /// Whether some peer keeps the block at `height` (none may, when every peer prunes).
    public func isServed(_ height: UInt64) -> Bool {
        peerHeights.contains { $0.value >= height && peerBases[$0.key, default: 1] <= height }
    }
    public var hasStatus: Bool { !peerHeights.isEmpty }

    public mutating func noteStatus(_ peer: PublicKey, height: UInt64, base: UInt64 = 1, mine: UInt64, now: UInt64) {
        peerHeights[peer] = height
        peerBases[peer] = base
        tip = mine
        if height > mine && aheadSince == nil { aheadSince = now }
    }

    /// The local tip moved: forget what is below it and restart the lag clock.
    public mutating func noteHeight(_ mine: UInt64, now: UInt64) {
        tip = mine
        outstanding = outstanding.filter { $0.key > mine }
        arrived = arrived.filter { $0.key > mine }
        aheadSince = bestHeight > mine ? now : nil
    }

    /// Requests to send now for heights from `next` up, as (peer, height).
    public mutating func requests(from next: UInt64, now: UInt64) -> [(PublicKey, UInt64)] {
        let best = bestHeight
        guard best >= next else { return [] }
        var load: [PublicKey: Int] = [:]
        for entry in outstanding.values { load[entry.peer, default: 0] += 1 }
        var result: [(PublicKey, UInt64)] = []
        var height = next
        while height <= best && height < next + window {
            defer { height += 1 }
            if outstanding[height] != nil || arrived[height] != nil { continue }
            let candidates = peerHeights.filter {
                $0.value >= height && peerBases[$0.key, default: 1] <= height && load[$0.key, default: 0] < maxPerPeer
            }.map(\.key)
            guard let peer = candidates.min(by: { (load[$0, default: 0], $0) < (load[$1, default: 0], $1) }) else { continue }
            outstanding[height] = (peer, now + timeoutMilliseconds)
            asked[peer, default: [:]][height] = now + timeoutMilliseconds + lateAnswerMilliseconds
            load[peer, default: 0] += 1
            result.append((peer, height))
        }
        return result
    }

    /// A block from a peer. False when that peer was not asked for that height (or was asked
    /// so long ago that the answer is no longer awaited).
    public mutating func deliver(_ block: Block, _ certificate: CommitCertificate, from peer: PublicKey) -> Bool {
        let height = block.header.height
        guard asked[peer]?.removeValue(forKey: height) != nil else { return false }
        if outstanding[height]?.peer == peer { outstanding[height] = nil }
        if arrived[height] == nil && height > tip { arrived[height] = (block, certificate, peer) }
        strikes[peer] = nil
        return true
    }

    /// The block for `height`, if it arrived.
    public mutating func take(height: UInt64) -> (Block, CommitCertificate, PublicKey)? {
        guard let entry = arrived.removeValue(forKey: height) else { return nil }
        return (entry.block, entry.certificate, entry.peer)
    }

    /// Whether the block for `height` arrived and waits to be taken.
    public func hasArrived(_ height: UInt64) -> Bool { arrived[height] != nil }

    /// A peer said it has no block at `height`: the reason to ban it if it claimed that height.
    public mutating func refused(_ height: UInt64, by peer: PublicKey) -> String? {
        asked[peer]?.removeValue(forKey: height)
        if outstanding[height]?.peer == peer { outstanding[height] = nil }
        let base = peerBases[peer, default: 1]
        guard let claimed = peerHeights[peer], claimed >= height, base <= height else { return nil }
        forget(peer)
        return "claimed heights \(base)...\(claimed) but has no block \(height)"
    }

    /// Requests past their deadline go back to the pool; peers out of strikes are returned.
    public mutating func expire(now: UInt64) -> [(PublicKey, String)] {
        var banned: [(PublicKey, String)] = []
        asked = asked.compactMapValues { heights in
            let awaited = heights.filter { $0.value > now }
            return awaited.isEmpty ? nil : awaited
        }
        for (height, entry) in outstanding where entry.deadline <= now {
            outstanding[height] = nil
            strikes[entry.peer, default: 0] += 1
            if strikes[entry.peer]! >= maxStrikes && peerHeights[entry.peer] != nil {
                banned.append((entry.peer, "left \(maxStrikes) block requests unanswered"))
                forget(entry.peer)
            }
        }
        return banned
    }

    public mutating func forget(_ peer: PublicKey) {
        peerHeights[peer] = nil
        peerBases[peer] = nil
        asked[peer] = nil
        strikes[peer] = nil
        outstanding = outstanding.filter { $0.value.peer != peer }
        arrived = arrived.filter { $0.value.peer != peer }
    }
}

/// Whether the node is catching up, and the start-up hold of a validator new to this machine
/// (specs/p2p.md, "Block sync"). Pure: the driver reports verified progress and asks, with the
/// time as an input.
///
/// A validator whose key has signed nothing on this machine signs nothing until it is not
/// behind: it could otherwise vote at heights its key already signed elsewhere, and the
/// look-back check would only see the stale part of the chain. The hold ends once no verified
/// block arrived by sync for `catchUpMilliseconds`, and either every peer that spoke is at or
/// below the tip or `holdMilliseconds` passed since start: a peer's claim cannot prolong it,
/// only blocks that verify can.
public struct CatchUp: Sendable {
    /// How long after a committed sync block the node still counts as catching up.
    public static let catchUpMilliseconds: UInt64 = 2_000
    /// The longest a start-up hold lasts without verified sync progress.
    public static let holdMilliseconds: UInt64 = 2_000

    public let startedAt: UInt64
    public private(set) var holding: Bool
    /// When (monotonic ms) a block fetched by sync was last committed.
    public private(set) var lastSyncedAt: UInt64? = nil

    public init(startedAt: UInt64, hold: Bool) {
        self.startedAt = startedAt
        holding = hold
    }

    /// Whether a block fetched by sync was committed lately (the node is behind its peers).
    public func catchingUp(now: UInt64) -> Bool {
        lastSyncedAt.map { elapsed(now, since: $0) < Self.catchUpMilliseconds } ?? false
    }

    /// Blocks fetched by sync verified and were committed at `now`.
    public mutating func noteSynced(now: UInt64) { lastSyncedAt = now }

    /// True exactly once: when the hold ends (given whether any peer spoke and the best height
    /// claimed against the tip).
    public mutating func release(now: UInt64, heardPeers: Bool, bestClaimed: UInt64, tip: UInt64) -> Bool {
        guard holding, !catchingUp(now: now) else { return false }
        let waited = elapsed(now, since: startedAt) >= Self.holdMilliseconds
        guard waited || (heardPeers && bestClaimed <= tip) else { return false }
        holding = false
        return true
    }

    private func elapsed(_ now: UInt64, since: UInt64) -> UInt64 { now >= since ? now - since : 0 }
}

/// Whether the node is catching up, and the start-up hold of a validator new to this machine
/// (specs/p2p.md, "Block sync"). Pure: the driver reports verified progress and asks, with the
/// time as an input.
///
/// A validator whose key has signed nothing on this machine signs nothing until it is not
/// behind: it could otherwise vote at heights its key already signed elsewhere, and the
/// look-back check would only see the stale part of the chain. The hold ends as soon as every
/// peer that spoke is at or below the tip; otherwise once no verified block arrived by sync for
/// `catchUpMilliseconds` and `holdMilliseconds` passed since the hold began
/// (`claimedHoldMilliseconds` while a peer claims more than one height above the tip). A peer's
/// claim can prolong it only that far; blocks that verify, for as long as they arrive. While the
/// look-back still watches the key (`LookBack`), sync progress holds it again (`hold(now:)`).
public struct CatchUp: Sendable {
    /// How long after a committed sync block the node still counts as catching up.
    public static let catchUpMilliseconds: UInt64 = 2_000
    /// The longest a start-up hold lasts without verified sync progress.
    public static let holdMilliseconds: UInt64 = 2_000
    /// The longest a hold lasts without verified sync progress while a peer claims a height
    /// more than one above the tip (a slow peer is given time to serve it).
    public static let claimedHoldMilliseconds: UInt64 = 15_000

    /// When (monotonic ms) the current hold began.
    public private(set) var startedAt: UInt64
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

    /// Holds again from `now` (sync moved a validator whose key the look-back still watches).
    /// True when it was not holding.
    public mutating func hold(now: UInt64) -> Bool {
        guard !holding else { return false }
        holding = true
        startedAt = now
        return true
    }

    /// True exactly once per hold: when it ends (given whether any peer spoke and the best
    /// height claimed against the tip).
    public mutating func release(now: UInt64, heardPeers: Bool, bestClaimed: UInt64, tip: UInt64) -> Bool {
        guard holding else { return false }
        if !(heardPeers && bestClaimed <= tip) {
            guard !catchingUp(now: now) else { return false }
            let claimedAhead = heardPeers && bestClaimed > tip && bestClaimed - tip > 1
            let wait = claimedAhead ? Self.claimedHoldMilliseconds : Self.holdMilliseconds
            guard elapsed(now, since: startedAt) >= wait else { return false }
        }
        holding = false
        return true
    }

    private func elapsed(_ now: UInt64, since: UInt64) -> UInt64 { now >= since ? now - since : 0 }
}

import KCCrypto

/// How many answers of one kind a peer gets per second (state-sync chunks and light blocks are
/// large answers to small requests: without a bound one peer could make a node send hundreds
/// of megabytes a second). Requests beyond the budget go unanswered; the asker times out.
struct ServeBudget {
    let perSecond: Int
    var window: UInt64 = 0
    var used: [PublicKey: Int] = [:]

    init(perSecond: Int) { self.perSecond = perSecond }

    /// Whether `peer` may have one more answer now (monotonic milliseconds).
    mutating func allow(_ peer: PublicKey, now: UInt64) -> Bool {
        let second = now / 1_000
        if second != window {
            window = second
            used.removeAll(keepingCapacity: true)
        }
        guard used[peer, default: 0] < perSecond else { return false }
        used[peer, default: 0] += 1
        return true
    }
}

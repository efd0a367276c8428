import KCNode

/// Whether a node is fit to serve, for `GET /health` (200 when healthy, 503 with the reasons
/// otherwise): a load balancer or an operator's probe must not see "ok" from a node that is
/// halted, catching up, or cut off from its peers.
public struct HealthCheck: Sendable {
    /// A node that has committed nothing for this long (by its own clock) is stalled.
    public var maxBlockAgeMilliseconds: UInt64
    /// Whether the node needs peers to make progress (every network of more than one validator).
    public var needsPeers: Bool

    public init(maxBlockAgeMilliseconds: UInt64, needsPeers: Bool) {
        self.maxBlockAgeMilliseconds = maxBlockAgeMilliseconds
        self.needsPeers = needsPeers
    }

    /// The reasons the node is unhealthy (none: healthy), each one sentence with its figures.
    public func problems(_ snapshot: NodeMonitor.Snapshot, nowMilliseconds: UInt64) -> [String] {
        var problems: [String] = []
        if snapshot.syncing {
            problems.append("syncing: at height \(snapshot.height), catching up with its peers")
        }
        // Counted on this node's clock from its last commit (or its start): a block's own time
        // can be far in the past after a genesis dated earlier, without any stall.
        if snapshot.committedAtMilliseconds > 0 && nowMilliseconds > snapshot.committedAtMilliseconds
            && nowMilliseconds - snapshot.committedAtMilliseconds > maxBlockAgeMilliseconds {
            let age = nowMilliseconds - snapshot.committedAtMilliseconds
            problems.append("stalled: no block committed for \(age / 1_000) s (height \(snapshot.height); the limit is rpc.health_max_block_age_ms = \(maxBlockAgeMilliseconds))")
        }
        if needsPeers && snapshot.peers == 0 {
            problems.append("isolated: no peer connected")
        }
        return problems
    }
}

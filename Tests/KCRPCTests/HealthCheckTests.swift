import KCNode
import KCRPC
import Testing

/// `GET /health` reports what an operator's probe needs: a halted, syncing or isolated node is
/// unhealthy, with the reason and its figures.
struct HealthCheckTests {
    /// `committedAt`: this node's clock at its last commit; the block's own time is long before.
    func snapshot(height: UInt64 = 100, committedAt: UInt64 = 1_000_000, syncing: Bool = false, peers: Int = 4) -> NodeMonitor.Snapshot {
        var snapshot = NodeMonitor.Snapshot()
        snapshot.height = height
        snapshot.committedAtMilliseconds = committedAt
        snapshot.blockTimeMilliseconds = 5_000
        snapshot.syncing = syncing
        snapshot.peers = peers
        return snapshot
    }

    @Test func eachFaultIsNamedWithItsFigures() {
        let check = HealthCheck(maxBlockAgeMilliseconds: 30_000, needsPeers: true)
        #expect(check.problems(snapshot(), nowMilliseconds: 1_029_000).isEmpty, "a block 29 s old is within the limit")
        let stalled = check.problems(snapshot(), nowMilliseconds: 1_031_000)
        #expect(stalled == ["stalled: no block committed for 31 s (height 100; the limit is rpc.health_max_block_age_ms = 30000)"])
        #expect(check.problems(snapshot(syncing: true), nowMilliseconds: 1_000_500).first?.hasPrefix("syncing: at height 100") == true)
        #expect(check.problems(snapshot(peers: 0), nowMilliseconds: 1_000_500) == ["isolated: no peer connected"])
        #expect(check.problems(snapshot(syncing: true, peers: 0), nowMilliseconds: 2_000_000).count == 3)
    }

    /// An old block time (a genesis dated earlier) is not a stall: only time since this node's
    /// last commit counts.
    @Test func aLoneValidatorAndAClockBehindTheBlockAreNotFaults() {
        let alone = HealthCheck(maxBlockAgeMilliseconds: 30_000, needsPeers: false)
        #expect(alone.problems(snapshot(peers: 0), nowMilliseconds: 1_000_500).isEmpty)
        #expect(alone.problems(snapshot(), nowMilliseconds: 999_000).isEmpty, "a clock stepped back is no stall")
        #expect(alone.problems(snapshot(committedAt: 0), nowMilliseconds: 9_999_999).isEmpty, "not started yet")
    }
}

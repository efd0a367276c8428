import KCCrypto
import KCNode
import KCRuntime
import KCTypes
import Testing

/// What the node reports to its operator at warning level: each trouble once when it starts,
/// with its figures.
struct FaultWatchTests {
    static let me = SigningKey(seed: Blake2b.hash256(Array("fault-me".utf8))).publicKey
    static let other = SigningKey(seed: Blake2b.hash256(Array("fault-other".utf8))).publicKey

    func watch() -> FaultWatch {
        FaultWatch(stallMilliseconds: 9_000, downtimeJailMilliseconds: 600_000)
    }

    @Test func slashesAndJailingsAreReportedOwnOnesAsErrors() {
        var faults = watch()
        let alerts = faults.committed(height: 40, blockTimeMilliseconds: 1_767_225_600_000, slashes: [
            SlashRecord(address: Self.other, reason: .downtime, amount: Amount(units: 5), height: 40),
            SlashRecord(address: Self.me, reason: .doubleSign, amount: Amount(units: 7), height: 40),
            SlashRecord(address: Self.other, reason: .lostDispute, amount: Amount(units: 1), height: 40),
        ], own: Self.me)
        #expect(alerts.map(\.message) == ["validator slashed", "validator jailed", "THIS validator was slashed",
                                          "THIS validator was jailed for ever (tombstoned) for double signing", "validator slashed"])
        #expect(alerts.map(\.level) == [.warning, .warning, .error, .error, .warning])
        #expect(alerts[0].fields["reason"] == "downtime" && alerts[0].fields["address"] == Self.other.hex)
        #expect(alerts[0].fields["amount"] == Amount(units: 5).description)
        // Jailed at 2026-01-01T00:00:00Z for 10 minutes.
        #expect(alerts[1].fields["until"] == "2026-01-01T00:10:00.000Z")
        #expect(faults.committed(height: 41, blockTimeMilliseconds: 1, slashes: []).isEmpty)
    }

    @Test func eachFailedRoundIsReportedOnce() {
        var faults = watch()
        #expect(faults.entered(height: 5, round: 0, proposer: Self.other).isEmpty)
        let first = faults.entered(height: 5, round: 1, proposer: Self.other)
        #expect(first.count == 1 && first[0].level == .warning)
        #expect(first[0].fields == ["height": "5", "round": "1", "failed_round": "0", "proposer": Self.other.hex])
        #expect(faults.entered(height: 5, round: 1, proposer: Self.other).isEmpty)
        #expect(faults.entered(height: 5, round: 2, proposer: Self.me).count == 1)
        #expect(faults.entered(height: 6, round: 1, proposer: Self.me).count == 1)
    }

    @Test func aStallIsReportedAtTheThresholdThenAtDoublingIntervals() {
        var faults = watch()
        var reportedAt: [UInt64] = []
        for waited in stride(from: UInt64(0), through: 80_000, by: 1_000) {
            let alerts = faults.waiting(height: 7, round: 2, step: "prevote", waitedMilliseconds: waited, peers: 2)
            if !alerts.isEmpty { reportedAt.append(waited) }
            if waited == 9_000 {
                #expect(alerts.first?.fields == ["height": "7", "round": "2", "step": "prevote", "waited_ms": "9000", "peers": "2"])
            }
        }
        #expect(reportedAt == [9_000, 18_000, 36_000, 72_000])
        // A commit ends the stall; the next height starts from the threshold again.
        _ = faults.committed(height: 7, blockTimeMilliseconds: 1, slashes: [])
        #expect(faults.waiting(height: 8, round: 0, step: "propose", waitedMilliseconds: 8_999, peers: 2).isEmpty)
        #expect(faults.waiting(height: 8, round: 0, step: "propose", waitedMilliseconds: 9_000, peers: 2).count == 1)
    }

    /// Five validators of 10 each: this node and one peer hold 20 of 50, not a quorum; with
    /// two more peers it is 40 of 50. Exactly 2/3 is no quorum.
    @Test func aLostQuorumOfPeersIsReportedOnceAndItsReturnToo() {
        var faults = watch()
        #expect(faults.reach(ownPower: 10, peerPower: 40, totalPower: 50, peers: 4).isEmpty)
        let lost = faults.reach(ownPower: 10, peerPower: 10, totalPower: 50, peers: 1)
        #expect(lost.count == 1 && lost[0].level == .warning)
        #expect(lost[0].fields == ["reached_power": "20", "total_power": "50", "peers": "1"])
        #expect(faults.reach(ownPower: 10, peerPower: 0, totalPower: 50, peers: 0).isEmpty)
        let back = faults.reach(ownPower: 10, peerPower: 30, totalPower: 50, peers: 3)
        #expect(back.map(\.message) == ["quorum of peers restored"])
        #expect(faults.reach(ownPower: 0, peerPower: 2, totalPower: 3, peers: 2).map(\.level) == [.warning])
    }
}

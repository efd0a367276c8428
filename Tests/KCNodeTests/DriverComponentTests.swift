@testable import KCNode
import KCConsensus
import KCCrypto
import KCTypes
import Testing

struct TimerQueueTests {
    /// Timers fire by deadline, ties in the order they were set, only once due; the wait
    /// never exceeds the limit; clearing forgets them all.
    @Test func firesByDeadlineThenOrderSet() {
        var timers = TimerQueue()
        #expect(timers.wait(now: 0, limit: 100) == 100)
        timers.set(.beginHeight, at: 50)
        timers.set(.timeout(.prevote, height: 3, round: 1), at: 20)
        timers.set(.timeout(.propose, height: 3, round: 1), at: 20)
        #expect(timers.wait(now: 5, limit: 100) == 15)
        let fired = [19, 20, 20, 49].map { timers.due(now: UInt64($0)) }
        #expect(fired == [nil, .timeout(.prevote, height: 3, round: 1), .timeout(.propose, height: 3, round: 1), nil])
        #expect(timers.wait(now: 60, limit: 100) == 0, "overdue: no wait")
        let last = timers.due(now: 60)
        #expect(last == .beginHeight)
        timers.set(.beginHeight, at: 1)
        timers.removeAll()
        let none = timers.due(now: 1_000)
        #expect(timers.count == 0 && none == nil)
    }
}

struct EarlyInputsTests {
    static let key = SigningKey(seed: Blake2b.hash256(Array("early".utf8)))

    func vote(height: UInt64) -> (ConsensusInput<Block>, WALRecord) {
        let signed = Vote(kind: .prevote, height: height, round: 0, blockID: nil, timestampMilliseconds: 1, validator: Self.key.publicKey)
            .signed(with: Self.key, chainID: "c")
        return (.vote(signed), .vote(signed))
    }

    /// Held in order up to the bound; a commit drops what it made stale; taking empties.
    @Test func holdsBoundedDropsStaleAndTakesAll() {
        var early = EarlyInputs()
        for height in [5, 6, 6, 7] as [UInt64] {
            let (input, record) = vote(height: height)
            let held = early.hold(input, record: record, from: Self.key.publicKey, verified: height != 7)
            #expect(held)
        }
        early.committed(5)
        #expect(early.count == 3)
        let taken = early.take()
        #expect(taken.map(\.verified) == [true, true, false] && early.isEmpty)
        let (input, record) = vote(height: 9)
        for _ in 0..<EarlyInputs.capacity { early.hold(input, record: record, from: nil, verified: true) }
        let overflow = early.hold(input, record: record, from: nil, verified: true)
        #expect(!overflow, "full: dropped")
        #expect(early.count == EarlyInputs.capacity)
    }
}

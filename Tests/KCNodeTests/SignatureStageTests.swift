import Dispatch
import KCCrypto
import KCNode
import KCTypes
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The signature stage in front of the consensus thread: transactions come out checked, each
/// peer's in the order they went in, bad signatures refused with a reason, a flood refused at
/// the stage's bound, and peers served in turn.
struct SignatureStageTests {
    static let chainID = "membria-mempool-test"
    static let peer = SigningKey(seed: Blake2b.hash256(Array("stage-peer".utf8))).publicKey
    static let otherPeer = SigningKey(seed: Blake2b.hash256(Array("stage-other-peer".utf8))).publicKey

    static func batch(_ key: SigningKey, nonces: Range<UInt64>) -> [SignedTransaction] {
        nonces.map { MempoolTests.transfer(key, nonce: $0) }
    }

    /// Runs `check` and waits for its results (at most 10 s).
    static func checkAndWait(_ stage: SignatureStage, _ transactions: [SignedTransaction]) -> [CheckedTransaction]? {
        let done = DispatchSemaphore(value: 0)
        let result = Mutex<[CheckedTransaction]?>(nil)
        guard stage.check(transactions, from: Self.peer, then: { checked in result.withLock { $0 = checked }; done.signal() }) else { return nil }
        guard done.wait(timeout: .now() + 10) == .success else { return nil }
        return result.withLock { $0 }
    }

    /// Waits (at most 10 s) until nothing waits in the stage.
    static func waitUntilEmpty(_ stage: SignatureStage) {
        for _ in 0..<1_000 where stage.waiting > 0 { usleep(10_000) }
    }

    @Test func theMempoolAdmitsWhatTheStageCheckedWithoutCheckingAgain() throws {
        let cache = SignatureCache()
        let stage = SignatureStage(chainID: Self.chainID, cache: cache, parallelism: 4)
        let transactions = Self.batch(MempoolTests.alice, nonces: 0..<200)
        let checked = try #require(Self.checkAndWait(stage, transactions))
        #expect(cache.verifications == 200, "each signature checked once, off the caller's thread")
        let pool = Mempool(runtime: MempoolTests.runtime, signatures: cache)
        let state = MempoolTests.runtime.genesisState()
        for (item, transaction) in zip(checked, transactions) {
            guard case .verified(let verified) = item else { Issue.record("a good transaction was refused"); return }
            #expect(verified.transaction == transaction && verified.hash == transaction.hash, "results keep the input's order")
            try pool.add(verified: verified, from: "peer", state: state)
        }
        #expect(pool.count == 200)
        #expect(cache.verifications == 200, "the mempool checked nothing again")
        #expect(pool.verified(transactions[7].hash) != nil)
    }

    @Test func batchesAreHandedOnInArrivalOrder() {
        let stage = SignatureStage(chainID: Self.chainID, cache: SignatureCache(), parallelism: 4)
        let order = Mutex<[Int]>([])
        let done = DispatchSemaphore(value: 0)
        // Large and small batches alternate: a small one checked sooner must still wait its turn.
        for index in 0..<20 {
            let size = index % 2 == 0 ? 120 : 1
            let accepted = stage.check(Self.batch(MempoolTests.bob, nonces: UInt64(index * 200)..<UInt64(index * 200 + size)), from: Self.peer) { checked in
                #expect(checked.count == size)
                order.withLock { $0.append(index) }
                done.signal()
            }
            #expect(accepted)
        }
        for _ in 0..<20 { #expect(done.wait(timeout: .now() + 10) == .success) }
        #expect(order.withLock { $0 } == Array(0..<20))
        #expect(stage.waiting == 0)
    }

    @Test func aBadSignatureOrAnotherChainIsRefusedWithItsReason() throws {
        let cache = SignatureCache()
        let stage = SignatureStage(chainID: Self.chainID, cache: cache, parallelism: 2)
        let good = MempoolTests.transfer(MempoolTests.alice, nonce: 0)
        let forged = SignedTransaction(body: MempoolTests.transfer(MempoolTests.alice, nonce: 1).body, signature: good.signature)
        let elsewhere = MempoolTests.transfer(MempoolTests.alice, nonce: 1, chainID: "other")
        let checked = try #require(Self.checkAndWait(stage, [good, forged, elsewhere]))
        #expect(checked.count == 3)
        guard case .verified = checked[0] else { Issue.record("the good one was refused"); return }
        #expect(checked[1] == .refused(forged, reason: "signature does not verify against the sender's key"))
        #expect(checked[2] == .refused(elsewhere, reason: "transaction is for chain other, this chain is \(Self.chainID)"))
        // Not cached: the mempool's own check of the forged one still refuses it.
        let pool = Mempool(runtime: MempoolTests.runtime, signatures: cache)
        #expect(throws: MempoolRejection.invalid("signature does not verify against the sender's key")) {
            try pool.add(forged, from: "peer", state: MempoolTests.runtime.genesisState())
        }
    }

    @Test func aFloodIsRefusedAtTheBoundAndTheStageRecovers() {
        let stage = SignatureStage(chainID: Self.chainID, cache: SignatureCache(), maxPending: 100, maxPendingPerPeer: 100, parallelism: 1)
        // Hold the stage's queue: the first batch's delivery waits until released, so what comes
        // after it waits in the stage.
        let release = DispatchSemaphore(value: 0)
        #expect(stage.check(Self.batch(MempoolTests.bob, nonces: 0..<10), from: Self.peer) { _ in release.wait() })
        Self.waitUntilEmpty(stage)  // the holder is checked and now waits in its delivery
        #expect(stage.check(Self.batch(MempoolTests.alice, nonces: 0..<60), from: Self.peer) { _ in })
        #expect(!stage.check(Self.batch(MempoolTests.alice, nonces: 60..<110), from: Self.peer) { _ in }, "60 + 50 waiting is over the bound of 100")
        #expect(stage.refusedBatches == 1)
        #expect(stage.check(Self.batch(MempoolTests.alice, nonces: 60..<100), from: Self.peer) { _ in }, "60 + 40 is within it")
        release.signal()
        Self.waitUntilEmpty(stage)
        #expect(stage.waiting == 0, "the held batches went on once released")
        let drained = DispatchSemaphore(value: 0)
        #expect(stage.check(Self.batch(MempoolTests.bob, nonces: 10..<20), from: Self.peer) { _ in drained.signal() })
        #expect(drained.wait(timeout: .now() + 10) == .success, "and new batches are taken again")
    }

    /// One peer flooding the stage fills only its own share: another peer's batch still gets in.
    @Test func aFloodingPeerCannotCrowdOutTheOthers() {
        let stage = SignatureStage(chainID: Self.chainID, cache: SignatureCache(), maxPending: 100, parallelism: 1)
        #expect(stage.maxPendingPerPeer == 25)
        let release = DispatchSemaphore(value: 0)
        #expect(stage.check(Self.batch(MempoolTests.bob, nonces: 0..<1), from: Self.otherPeer) { _ in release.wait() })
        Self.waitUntilEmpty(stage)  // the holder is checked and now waits in its delivery
        #expect(stage.check(Self.batch(MempoolTests.alice, nonces: 0..<20), from: Self.peer) { _ in })
        #expect(!stage.check(Self.batch(MempoolTests.alice, nonces: 20..<30), from: Self.peer) { _ in }, "20 + 10 is over the peer's 25")
        #expect(stage.check(Self.batch(MempoolTests.alice, nonces: 20..<25), from: Self.peer) { _ in })
        let other = DispatchSemaphore(value: 0)
        #expect(stage.check(Self.batch(MempoolTests.bob, nonces: 1..<26), from: Self.otherPeer) { _ in other.signal() },
                "the other peer has its own share")
        release.signal()
        #expect(other.wait(timeout: .now() + 10) == .success)
        Self.waitUntilEmpty(stage)
        #expect(stage.check(Self.batch(MempoolTests.alice, nonces: 25..<50), from: Self.peer) { _ in }, "a share frees as its batches go on")
    }

    /// A peer with a large backlog and a peer with one transaction: the second is checked after
    /// one slice of the first, not after all of it, and each peer's batches still go on in the
    /// order they came.
    @Test func peersTakeTurnsSoABacklogDoesNotHoldUpAnotherPeer() {
        #expect(SignatureStage(chainID: Self.chainID, cache: SignatureCache(), parallelism: 2).sliceSize == 256,
                "by default a turn is 128 transactions per thread")
        let cache = SignatureCache()
        let stage = SignatureStage(chainID: Self.chainID, cache: cache, maxPending: 1_000, parallelism: 1, sliceSize: 16)
        let holder = SigningKey(seed: Blake2b.hash256(Array("stage-holder".utf8))).publicKey
        let release = DispatchSemaphore(value: 0)
        #expect(stage.check(Self.batch(MempoolTests.bob, nonces: 0..<1), from: holder) { _ in release.wait() })
        Self.waitUntilEmpty(stage)  // the holder is checked and now waits in its delivery
        // What each delivery found: the signatures checked so far and the transactions held.
        let delivered = Mutex<[(name: String, count: Int, checkedThen: Int, waitingThen: Int)]>([])
        let done = DispatchSemaphore(value: 0)
        func send(_ name: String, _ transactions: [SignedTransaction], from peer: PublicKey) {
            #expect(stage.check(transactions, from: peer) { checked in
                delivered.withLock { $0.append((name, checked.count, cache.verifications, stage.waiting)) }
                done.signal()
            })
        }
        // The flooding peer queues 160 transactions in one batch and then one more; the other
        // peer sends one, then a batch of 40, after the flood.
        send("flood", Self.batch(MempoolTests.alice, nonces: 0..<160), from: Self.peer)
        send("flood-next", Self.batch(MempoolTests.alice, nonces: 160..<161), from: Self.peer)
        send("other", Self.batch(MempoolTests.bob, nonces: 1..<2), from: Self.otherPeer)
        send("other-next", Self.batch(MempoolTests.bob, nonces: 2..<42), from: Self.otherPeer)
        #expect(stage.waiting == 202)
        release.signal()
        for _ in 0..<4 { #expect(done.wait(timeout: .now() + 10) == .success) }
        let order = delivered.withLock { $0 }
        #expect(order.map(\.name) == ["other", "other-next", "flood", "flood-next"], "\(order)")
        #expect(order.map(\.count) == [1, 40, 160, 1])
        // The other peer's single transaction went on after one slice of the flood: the holder's
        // signature, 16 of the flood's and its own were checked. Its batch of 40, three slices
        // of its own, alternated with the flood's: four of the flood's slices by then. The
        // flood is held, and counted against the bounds, until it goes on whole.
        let first = order.first, second = order.dropFirst().first
        #expect(first?.checkedThen == 18 && first?.waitingThen == 201, "1 + 16 + 1 checked, 202 - 1 held: \(order)")
        #expect(second?.checkedThen == 106 && second?.waitingThen == 161, "1 + 64 + 1 + 40 checked, the flood's 161 held: \(order)")
        #expect(stage.waiting == 0)
    }
}


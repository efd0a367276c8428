import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import KCCrypto
import KCNode
import KCTypes
import Synchronization
import Testing

/// The signature stage in front of the consensus thread: signatures checked on other threads
/// land in the shared cache, batches come out in the order they went in, bad signatures are
/// left for the mempool to refuse, and a flood is refused at the stage's bound.
struct SignatureStageTests {
    static let chainID = "membria-mempool-test"

    static func batch(_ key: SigningKey, nonces: Range<UInt64>) -> [SignedTransaction] {
        nonces.map { MempoolTests.transfer(key, nonce: $0) }
    }

    /// Runs `check` and waits for its delivery (at most 10 s).
    static func checkAndWait(_ stage: SignatureStage, _ transactions: [SignedTransaction]) -> Bool {
        let done = DispatchSemaphore(value: 0)
        guard stage.check(transactions, then: { done.signal() }) else { return false }
        return done.wait(timeout: .now() + 10) == .success
    }

    @Test func theMempoolFindsEveryCheckedSignatureInTheCache() throws {
        let cache = SignatureCache()
        let stage = SignatureStage(chainID: Self.chainID, cache: cache, parallelism: 4)
        let transactions = Self.batch(MempoolTests.alice, nonces: 0..<200)
        #expect(Self.checkAndWait(stage, transactions))
        #expect(cache.verifications == 200, "each signature checked once, off the caller's thread")
        let pool = Mempool(runtime: MempoolTests.runtime, signatures: cache)
        let state = MempoolTests.runtime.genesisState()
        for transaction in transactions { try pool.add(transaction, from: "peer", state: state) }
        #expect(pool.count == 200)
        #expect(cache.verifications == 200, "the mempool's checks were all cache hits")
    }

    @Test func batchesAreHandedOnInArrivalOrder() {
        let stage = SignatureStage(chainID: Self.chainID, cache: SignatureCache(), parallelism: 4)
        let order = Mutex<[Int]>([])
        let done = DispatchSemaphore(value: 0)
        // Large and small batches alternate: a small one checked sooner must still wait its turn.
        for index in 0..<20 {
            let size = index % 2 == 0 ? 120 : 1
            let accepted = stage.check(Self.batch(MempoolTests.bob, nonces: UInt64(index * 200)..<UInt64(index * 200 + size))) {
                order.withLock { $0.append(index) }
                done.signal()
            }
            #expect(accepted)
        }
        for _ in 0..<20 { #expect(done.wait(timeout: .now() + 10) == .success) }
        #expect(order.withLock { $0 } == Array(0..<20))
        #expect(stage.waiting == 0)
    }

    @Test func aBadSignatureIsNotCachedAndTheMempoolStillRefusesIt() throws {
        let cache = SignatureCache()
        let stage = SignatureStage(chainID: Self.chainID, cache: cache, parallelism: 2)
        let good = MempoolTests.transfer(MempoolTests.alice, nonce: 0)
        let forged = SignedTransaction(body: MempoolTests.transfer(MempoolTests.alice, nonce: 1).body, signature: good.signature)
        #expect(Self.checkAndWait(stage, [good, forged]))
        let pool = Mempool(runtime: MempoolTests.runtime, signatures: cache)
        let state = MempoolTests.runtime.genesisState()
        try pool.add(good, from: "peer", state: state)
        #expect(throws: MempoolRejection.invalid("signature does not verify against the sender's key")) {
            try pool.add(forged, from: "peer", state: state)
        }
    }

    @Test func aFloodIsRefusedAtTheBoundAndTheStageRecovers() {
        let stage = SignatureStage(chainID: Self.chainID, cache: SignatureCache(), maxPending: 100, parallelism: 1)
        // Hold the stage's queue: the first batch's delivery waits until released, so what comes
        // after it waits in the stage.
        let release = DispatchSemaphore(value: 0)
        #expect(stage.check(Self.batch(MempoolTests.bob, nonces: 0..<10)) { release.wait() })
        #expect(stage.check(Self.batch(MempoolTests.alice, nonces: 0..<60)) {})
        #expect(!stage.check(Self.batch(MempoolTests.alice, nonces: 60..<110)) {}, "60 + 50 waiting is over the bound of 100")
        #expect(stage.refusedBatches == 1)
        #expect(stage.check(Self.batch(MempoolTests.alice, nonces: 60..<100)) {}, "60 + 40 is within it")
        release.signal()
        for _ in 0..<1_000 where stage.waiting > 0 { usleep(10_000) }
        #expect(stage.waiting == 0, "the held batches went on once released")
        let drained = DispatchSemaphore(value: 0)
        #expect(stage.check(Self.batch(MempoolTests.bob, nonces: 10..<20)) { drained.signal() })
        #expect(drained.wait(timeout: .now() + 10) == .success, "and new batches are taken again")
    }
}

import Dispatch
import KCCrypto
import KCTypes
import Synchronization

/// Checks the signatures of transactions that peers send before the consensus thread sees
/// them, on every core (ADR 0017). What verifies lands in the shared `SignatureCache`, so the
/// mempool's own check on the consensus thread is a cache hit; what fails is left for that
/// check to find again, and its sender is banned there as before: the stage decides nothing.
///
/// Batches are handed on in the order they arrived (one serial queue; the transactions of
/// one batch are checked in parallel), so a sender's run of nonces stays in order. The stage
/// is bounded: with `maxPending` transactions waiting, a new batch is refused, as a full inbox
/// refuses droppable messages (transactions are gossip: an honest peer's are offered again).
public final class SignatureStage: Sendable {
    public let chainID: String
    public let cache: SignatureCache
    public let maxPending: Int
    /// Threads checking one batch at once: the cores this process may use.
    public let parallelism: Int
    private let queue = DispatchQueue(label: "membria.signature-stage", qos: .userInitiated)
    private let pending = Atomic<Int>(0)
    private let refused = Atomic<Int>(0)

    public init(chainID: String, cache: SignatureCache, maxPending: Int = 20_000, parallelism: Int) {
        precondition(maxPending > 0 && parallelism > 0)
        self.chainID = chainID
        self.cache = cache
        self.maxPending = maxPending
        self.parallelism = parallelism
    }

    /// Checks `transactions` off the caller's thread, then calls `deliver`. False (and
    /// `deliver` is never called) when the stage already holds `maxPending` transactions.
    @discardableResult
    public func check(_ transactions: [SignedTransaction], then deliver: @escaping @Sendable () -> Void) -> Bool {
        let count = transactions.count
        guard pending.add(count, ordering: .relaxed).newValue <= maxPending else {
            pending.subtract(count, ordering: .relaxed)
            refused.add(1, ordering: .relaxed)
            return false
        }
        queue.async { [self] in
            verify(transactions)
            pending.subtract(count, ordering: .relaxed)
            deliver()
        }
        return true
    }

    /// Transactions accepted and not yet handed on.
    public var waiting: Int { pending.load(ordering: .relaxed) }
    /// Batches refused because the stage was full.
    public var refusedBatches: Int { refused.load(ordering: .relaxed) }

    /// Each transaction's signature checked once through the cache, in slices of at least 8
    /// transactions spread over `parallelism` threads.
    func verify(_ transactions: [SignedTransaction]) {
        let slices = min(parallelism, max(1, transactions.count / 8))
        let chainID = chainID, cache = cache
        guard slices > 1 else {
            for transaction in transactions { _ = try? transaction.verified(chainID: chainID, cache: cache) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: slices) { slice in
            let range = (transactions.count * slice / slices)..<(transactions.count * (slice + 1) / slices)
            for index in range { _ = try? transactions[index].verified(chainID: chainID, cache: cache) }
        }
    }
}

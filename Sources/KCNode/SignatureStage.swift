import Dispatch
import KCCrypto
import KCNetwork
import KCTypes
import Synchronization

/// A transaction from a peer after the signature stage: checked (chain id and signature), or
/// refused with the reason the node words its ban with.
public enum CheckedTransaction: Sendable, Equatable {
    case verified(VerifiedTransaction)
    case refused(SignedTransaction, reason: String)

    /// The one expensive check, through the shared cache.
    public static func check(_ transaction: SignedTransaction, chainID: String, cache: SignatureCache) -> CheckedTransaction {
        do { return .verified(try transaction.verified(chainID: chainID, cache: cache)) } catch { return .refused(transaction, reason: error.description) }
    }
}

/// Checks the signatures of transactions that peers send before the consensus thread sees
/// them, on every core (ADR 0017), and hands them on as `CheckedTransaction`s: the consensus
/// thread runs only the mempool's stateful checks, and bans the sender of a refused one as
/// before. What verifies also lands in the shared `SignatureCache`.
///
/// Batches are handed on in the order they arrived (one serial queue; the transactions of
/// one batch are checked in parallel), so a sender's run of nonces stays in order. The stage
/// is bounded: with `maxPending` transactions waiting (or a quarter of that from one peer), a
/// new batch is refused, as a full inbox refuses droppable messages (transactions are gossip:
/// an honest peer's are offered again).
public final class SignatureStage: Sendable {
    public let chainID: String
    public let cache: SignatureCache
    public let maxPending: Int
    /// Threads checking one batch at once: the cores this process may use.
    public let parallelism: Int
    /// What one peer's batches may hold of `maxPending`, so a peer that floods the stage
    /// cannot crowd out the others' transactions.
    public let maxPendingPerPeer: Int
    private let queue = DispatchQueue(label: "membria.signature-stage", qos: .userInitiated)
    /// Waiting transactions in all and by peer.
    private let counts = Mutex<(all: Int, byPeer: [PublicKey: Int])>((0, [:]))
    private let refused = Atomic<Int>(0)

    /// By default 40,000 transactions in all and a quarter of that per peer: a peer's share
    /// holds one whole `transactions` message (at most 10,000), so an honest batch of any size
    /// can get in.
    public init(chainID: String, cache: SignatureCache, maxPending: Int = 4 * WireMessage.maxTransactionsPerMessage,
                maxPendingPerPeer: Int? = nil, parallelism: Int) {
        precondition(maxPending > 0 && parallelism > 0)
        self.chainID = chainID
        self.cache = cache
        self.maxPending = maxPending
        self.maxPendingPerPeer = maxPendingPerPeer ?? max(1, maxPending / 4)
        self.parallelism = parallelism
    }

    /// Checks `transactions` (from `peer`) off the caller's thread, then calls `deliver` with
    /// the results in the same order. False (and `deliver` is never called) when the stage
    /// already holds `maxPending` transactions, or `maxPendingPerPeer` of this peer's.
    @discardableResult
    public func check(_ transactions: [SignedTransaction], from peer: PublicKey,
                      then deliver: @escaping @Sendable ([CheckedTransaction]) -> Void) -> Bool {
        let count = transactions.count
        let taken = counts.withLock { counts -> Bool in
            let mine = counts.byPeer[peer, default: 0]
            guard counts.all + count <= maxPending, mine + count <= maxPendingPerPeer else { return false }
            counts.all += count
            counts.byPeer[peer] = mine + count
            return true
        }
        guard taken else {
            refused.add(1, ordering: .relaxed)
            return false
        }
        queue.async { [self] in
            let checked = verify(transactions)
            counts.withLock { counts in
                counts.all -= count
                let left = counts.byPeer[peer, default: count] - count
                counts.byPeer[peer] = left > 0 ? left : nil
            }
            deliver(checked)
        }
        return true
    }

    /// Transactions accepted and not yet handed on.
    public var waiting: Int { counts.withLock { $0.all } }
    /// Batches refused because the stage was full.
    public var refusedBatches: Int { refused.load(ordering: .relaxed) }

    /// Each transaction checked once through the cache, in slices of at least 8 transactions
    /// spread over `parallelism` threads; the results in input order.
    func verify(_ transactions: [SignedTransaction]) -> [CheckedTransaction] {
        let slices = min(parallelism, max(1, transactions.count / 8))
        let chainID = chainID, cache = cache
        guard slices > 1 else { return transactions.map { CheckedTransaction.check($0, chainID: chainID, cache: cache) } }
        let parts = Mutex<[[CheckedTransaction]]>(Array(repeating: [], count: slices))
        DispatchQueue.concurrentPerform(iterations: slices) { slice in
            let range = (transactions.count * slice / slices)..<(transactions.count * (slice + 1) / slices)
            let checked = transactions[range].map { CheckedTransaction.check($0, chainID: chainID, cache: cache) }
            parts.withLock { $0[slice] = checked }
        }
        return parts.withLock { $0.flatMap { $0 } }
    }
}

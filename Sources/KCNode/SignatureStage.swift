import Dispatch
import DequeModule
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
/// One peer's batches are handed on in the order they arrived, so a sender's run of nonces
/// stays in order. Peers take turns (ADR 0024): the stage checks `sliceSize` transactions of
/// one peer's oldest batch, then of the next peer's, and so on (each slice in parallel), so a
/// peer that sends the largest batches delays another peer's small one by at most a slice per
/// busy peer, not by its whole backlog. The stage is bounded: with `maxPending` transactions
/// waiting (or a quarter of that from one peer), a new batch is refused, as a full inbox
/// refuses droppable messages (transactions are gossip: an honest peer's are offered again).
public final class SignatureStage: Sendable {
    public let chainID: String
    public let cache: SignatureCache
    public let maxPending: Int
    /// Threads checking one batch at once: the cores this process may use.
    public let parallelism: Int
    /// What one peer's batches may hold of `maxPending`, so a peer that floods the stage
    /// cannot crowd out the others' transactions.
    public let maxPendingPerPeer: Int
    /// Transactions checked in one turn of a peer.
    public let sliceSize: Int
    private let queue = DispatchQueue(label: "membria.signature-stage", qos: .userInitiated)
    /// Waiting transactions in all and by peer.
    private let counts = Mutex<(all: Int, byPeer: [PublicKey: Int])>((0, [:]))
    private let refused = Atomic<Int>(0)
    /// The batches waiting, by peer, and the peers' turns.
    private let turns = Mutex(Turns())

    /// By default 40,000 transactions in all and a quarter of that per peer: a peer's share
    /// holds one whole `transactions` message (at most 10,000), so an honest batch of any size
    /// can get in.
    /// A slice is 128 transactions per thread by default, so a turn takes about the same time
    /// on any number of cores: 256 on two cores of the development VM, about 9 ms of checks,
    /// against 0.35 s for a whole message of 10,000 (ADR 0024).
    public init(chainID: String, cache: SignatureCache, maxPending: Int = 4 * WireMessage.maxTransactionsPerMessage,
                maxPendingPerPeer: Int? = nil, parallelism: Int, sliceSize: Int? = nil) {
        precondition(maxPending > 0 && parallelism > 0 && (sliceSize ?? 1) > 0)
        self.chainID = chainID
        self.cache = cache
        self.maxPending = maxPending
        self.maxPendingPerPeer = maxPendingPerPeer ?? max(1, maxPending / 4)
        self.parallelism = parallelism
        self.sliceSize = sliceSize ?? 128 * parallelism
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
        let batch = Batch(transactions: transactions, deliver: deliver)
        let start = turns.withLock { turns in turns.add(batch, from: peer) }
        if start { queue.async { [self] in checkInTurn() } }
        return true
    }

    /// Runs on the serial queue while anything waits: one slice of the next peer's oldest batch
    /// at a time; a batch's results go on once its last slice is checked.
    private func checkInTurn() {
        while let (peer, batch, range) = turns.withLock({ $0.next(sliceSize: sliceSize) }) {
            batch.results += verify(batch.transactions[range])
            guard range.upperBound == batch.transactions.count else { continue }
            // A batch counts against the bounds until it is handed on: the bounds are on what
            // the stage holds, and it holds a batch whole until its last slice.
            let count = batch.transactions.count
            counts.withLock { counts in
                counts.all -= count
                let left = counts.byPeer[peer, default: count] - count
                counts.byPeer[peer] = left > 0 ? left : nil
            }
            batch.deliver(batch.results)
        }
    }

    /// Transactions accepted and not yet handed on.
    public var waiting: Int { counts.withLock { $0.all } }
    /// Batches refused because the stage was full.
    public var refusedBatches: Int { refused.load(ordering: .relaxed) }

    /// Each transaction checked once through the cache, in up to four parts per thread (of at
    /// least 8 transactions) spread over `parallelism` threads, so a thread that finishes early
    /// takes another part instead of waiting for the slowest (with one part per thread, turns
    /// of 256 took about 6 % longer than whole batches); the results in input order.
    func verify(_ transactions: ArraySlice<SignedTransaction>) -> [CheckedTransaction] {
        let slices = min(4 * parallelism, max(1, transactions.count / 8))
        let chainID = chainID, cache = cache
        guard slices > 1 else { return transactions.map { CheckedTransaction.check($0, chainID: chainID, cache: cache) } }
        let parts = Mutex<[[CheckedTransaction]]>(Array(repeating: [], count: slices))
        DispatchQueue.concurrentPerform(iterations: slices) { slice in
            let base = transactions.startIndex
            let range = (base + transactions.count * slice / slices)..<(base + transactions.count * (slice + 1) / slices)
            let checked = transactions[range].map { CheckedTransaction.check($0, chainID: chainID, cache: cache) }
            parts.withLock { $0[slice] = checked }
        }
        return parts.withLock { $0.flatMap { $0 } }
    }
}

extension SignatureStage {
    /// A batch being checked: `next` is only touched under the turns' lock, `results` only on
    /// the stage's serial queue.
    final class Batch: @unchecked Sendable {
        let transactions: [SignedTransaction]
        let deliver: @Sendable ([CheckedTransaction]) -> Void
        var results: [CheckedTransaction] = []
        /// The first transaction not yet handed out for checking.
        var next = 0

        init(transactions: [SignedTransaction], deliver: @escaping @Sendable ([CheckedTransaction]) -> Void) {
            self.transactions = transactions
            self.deliver = deliver
            results.reserveCapacity(transactions.count)
        }
    }

    /// The peers with batches waiting, in turn order, and each one's batches in arrival order.
    /// Every step takes constant (amortized) time whatever a peer queues, a share of 10,000
    /// one-transaction batches included.
    struct Turns {
        private var waiting: [PublicKey: Deque<Batch>] = [:]
        private var order: Deque<PublicKey> = []
        private var running = false

        /// Queues `batch`; true when the queue's loop must be started.
        mutating func add(_ batch: Batch, from peer: PublicKey) -> Bool {
            if waiting[peer] == nil { order.append(peer) }
            waiting[peer, default: []].append(batch)
            if running { return false }
            running = true
            return true
        }

        /// The next slice to check: the peer first in turn, its oldest batch and the range of
        /// it; the peer goes to the back of the turns if it has more. Nil (and the loop ends)
        /// when nothing waits.
        mutating func next(sliceSize: Int) -> (PublicKey, Batch, Range<Int>)? {
            guard let peer = order.popFirst() else {
                running = false
                return nil
            }
            guard var batches = waiting.removeValue(forKey: peer), let batch = batches.first else {
                preconditionFailure("a peer in turn has no batch waiting")
            }
            let range = batch.next..<min(batch.transactions.count, batch.next + sliceSize)
            batch.next = range.upperBound
            if batch.next == batch.transactions.count { batches.removeFirst() }
            if !batches.isEmpty {
                waiting[peer] = batches
                order.append(peer)
            }
            return (peer, batch, range)
        }
    }
}

import DequeModule
import KCCodec
import KCCrypto
import KCRuntime
import KCTypes

/// Why a transaction was not admitted. Each message names the problem for the sender.
public enum MempoolRejection: Error, Equatable, Sendable, CustomStringConvertible {
    case malformed(String)
    case invalid(String)
    case duplicate
    case full(String)
    case nonce(expected: UInt64, found: UInt64)
    /// Another transaction of the sender with this nonce already waits for an earlier nonce.
    case nonceQueued(UInt64)
    case stateful(String)
    case peerQuota(limit: Int)

    /// Why a transaction was refused, as a metric label: one series each, made up front.
    public enum Reason: String, CaseIterable, Sendable {
        case futureNonce = "future_nonce", usedNonce = "used_nonce", nonceQueued = "nonce_queued", duplicate, full, peerQuota = "peer_quota", stateful, invalid, malformed
    }

    public var reason: Reason {
        switch self {
        case .malformed: return .malformed
        case .invalid: return .invalid
        case .duplicate: return .duplicate
        case .full: return .full
        case .nonce(let expected, let found): return found > expected ? .futureNonce : .usedNonce
        case .nonceQueued: return .nonceQueued
        case .stateful: return .stateful
        case .peerQuota: return .peerQuota
        }
    }

    public var description: String {
        switch self {
        case .malformed(let reason): return "transaction is malformed: \(reason)"
        case .invalid(let reason): return "transaction is invalid: \(reason)"
        case .duplicate: return "transaction is already in the mempool"
        case .full(let reason): return "mempool is full (\(reason)); try again later or raise the fee"
        case .nonce(let expected, let found) where found > expected:
            return "nonce \(found) is too far ahead of the next nonce \(expected) for this sender: send the nonces before it first"
        case .nonce(let expected, let found): return "nonce \(found) is not the next nonce \(expected) for this sender"
        case .nonceQueued(let nonce): return "a transaction with nonce \(nonce) of this sender already waits in the mempool"
        case .stateful(let reason): return reason
        case .peerQuota(let limit): return "this peer already has \(limit) transactions waiting; refusing more"
        }
    }
}

/// What admitting a transaction did.
public struct Admission: Sendable, Equatable {
    public let hash: Hash256
    /// The transaction waits for an earlier nonce of its sender (it is in the mempool, not yet
    /// in line for a block).
    public var queued: Bool { ready.isEmpty }
    /// The transactions that joined the line for blocks: this one and those of its sender that
    /// waited behind it, in nonce order; empty when it waits itself.
    public let ready: [VerifiedTransaction]
    /// Those of `ready` that waited behind this one: they came from wherever they came (another
    /// peer, a client), not necessarily from this one's source.
    public var promoted: ArraySlice<VerifiedTransaction> { ready.dropFirst() }
}

/// Pending transactions: signature checked once on entry (through the shared cache), deduped
/// by hash, kept per sender in nonce order, capped by count and bytes, re-checked after every
/// commit, and with a per-peer quota so one peer cannot fill it.
///
/// A transaction whose nonce is ahead of its sender's next one (a few nonces sent at once that
/// arrived out of order, or one lost on the way) waits in a bounded queue beside the line
/// (`Limits`: how far ahead, how many in all, for how many heights) and joins the line when the
/// nonces before it do, here or in a block. Waiting transactions are not passed on to peers
/// until they join the line, so one that never can costs only this node.
public final class Mempool {
    public struct Limits: Sendable, Equatable {
        public var maxTransactions: Int
        public var maxBytes: Int
        /// The share of `maxTransactions` one peer's transactions may hold.
        public var maxPerPeer: Int
        /// How far ahead of its sender's next nonce a transaction may wait (so at most this many
        /// of one sender's wait).
        public var maxNonceGap: UInt64
        /// Transactions waiting for an earlier nonce, in all (part of `maxTransactions`).
        public var maxQueued: Int
        /// Heights a transaction may wait for an earlier nonce before it is dropped.
        public var queuedHeights: UInt64

        public init(maxTransactions: Int = 50_000, maxBytes: Int = 64 << 20, maxPerPeer: Int? = nil, maxNonceGap: UInt64 = 64,
                    maxQueued: Int? = nil, queuedHeights: UInt64 = 300) {
            self.maxTransactions = maxTransactions
            self.maxBytes = maxBytes
            self.maxPerPeer = maxPerPeer ?? max(1, maxTransactions / 4)
            self.maxNonceGap = maxNonceGap
            self.maxQueued = maxQueued ?? maxTransactions / 8
            self.queuedHeights = queuedHeights
        }
    }

    struct Entry {
        let transaction: VerifiedTransaction
        let peer: String?
        let arrival: UInt64
        /// The state's height when it came in.
        let height: UInt64
    }

    public let limits: Limits
    let runtime: Runtime
    let signatures: SignatureCache
    /// Each sender's line: consecutive nonces from its account's next one.
    private var bySender: [PublicKey: [Entry]] = [:]
    /// Each sender's transactions waiting for an earlier nonce, by nonce.
    private var queuedBySender: [PublicKey: [UInt64: Entry]] = [:]
    /// The same in arrival order, for expiry (an entry that left the queue earlier is skipped
    /// when it comes up), so a commit never walks every waiting transaction.
    private var queuedOrder: Deque<(height: UInt64, sender: PublicKey, nonce: UInt64, hash: Hash256)> = []
    /// Every transaction held, in line or waiting, by hash (also what block validation reuses:
    /// `verified(_:)`).
    private var byHash: [Hash256: VerifiedTransaction] = [:]
    private var perPeer: [String: Int] = [:]
    private var arrivals: UInt64 = 0
    /// Transactions in line for blocks and their bytes.
    public private(set) var count = 0
    public private(set) var bytes = 0
    /// Transactions waiting for an earlier nonce and their bytes.
    public private(set) var queuedCount = 0
    public private(set) var queuedBytes = 0

    public init(runtime: Runtime, limits: Limits = Limits(), signatures: SignatureCache) {
        self.runtime = runtime
        self.limits = limits
        self.signatures = signatures
    }

    /// Admits raw transaction bytes from a client (`peer == nil`) or a peer; returns the
    /// decoded transaction (for gossip) once it is in.
    @discardableResult
    public func add(bytes raw: [UInt8], from peer: String? = nil, state: ChainState) throws(MempoolRejection) -> SignedTransaction {
        let transaction = try Self.decode(raw, maxBytes: Int(runtime.parameters.block.maxTransactionBytes))
        try add(transaction, from: peer, state: state)
        return transaction
    }

    @discardableResult
    public func add(_ transaction: SignedTransaction, from peer: String? = nil, state: ChainState) throws(MempoolRejection) -> Admission {
        guard byHash[transaction.hash] == nil else { throw .duplicate }
        if let peer, perPeer[peer, default: 0] >= limits.maxPerPeer { throw .peerQuota(limit: limits.maxPerPeer) }
        return try add(verified: try Self.verify(transaction, chainID: runtime.chainID, cache: signatures), from: peer, state: state)
    }

    /// Decodes submitted bytes within the size limit; the refusal says what is wrong. Stateless:
    /// run where the bytes arrive (`NodeHandle.send`), off the node's thread.
    public static func decode(_ raw: [UInt8], maxBytes: Int) throws(MempoolRejection) -> SignedTransaction {
        guard raw.count <= maxBytes else { throw .malformed("\(raw.count) bytes exceed the limit of \(maxBytes)") }
        do { return try SignedTransaction.decode(exactly: raw) } catch { throw .malformed(error.description) }
    }

    /// Checks the chain id and the signature (through `cache`). Stateless, like `decode`.
    public static func verify(_ transaction: SignedTransaction, chainID: String, cache: SignatureCache) throws(MempoolRejection) -> VerifiedTransaction {
        do { return try transaction.verified(chainID: chainID, cache: cache) } catch { throw .invalid(error.description) }
    }

    /// Admits a transaction whose chain id and signature were already checked (by the
    /// signature stage): the stateful checks only. A nonce ahead of the sender's next one (by
    /// at most `maxNonceGap`) waits for the ones before it; the next nonce joins the line with
    /// those that waited behind it.
    @discardableResult
    public func add(verified: VerifiedTransaction, from peer: String? = nil, state: ChainState) throws(MempoolRejection) -> Admission {
        let hash = verified.hash
        guard byHash[hash] == nil else { throw .duplicate }
        if let peer, perPeer[peer, default: 0] >= limits.maxPerPeer { throw .peerQuota(limit: limits.maxPerPeer) }
        guard count + queuedCount < limits.maxTransactions else { throw .full("\(count + queuedCount) transactions") }
        guard bytes + queuedBytes + verified.encodedSize <= limits.maxBytes else { throw .full("\(bytes + queuedBytes) bytes") }
        let sender = verified.body.sender, nonce = verified.body.nonce
        let expected = state.account(sender).nonce + UInt64(bySender[sender]?.count ?? 0)
        let entry = Entry(transaction: verified, peer: peer, arrival: arrivals + 1, height: state.global.height)
        if nonce > expected {
            // No room at all (a zero gap or queue): refused as a nonce ahead, not as a full queue.
            guard nonce - expected <= limits.maxNonceGap, limits.maxQueued > 0 else { throw .nonce(expected: expected, found: nonce) }
            guard queuedBySender[sender]?[nonce] == nil else { throw .nonceQueued(nonce) }
            guard queuedCount < limits.maxQueued else { throw .full("\(queuedCount) transactions wait for an earlier nonce of their sender; send the nonces before this one") }
            if let problem = runtime.admissionError(verified, expectedNonce: nonce, in: state) { throw .stateful(problem) }
            arrivals += 1
            queuedBySender[sender, default: [:]][nonce] = entry
            queuedOrder.append((entry.height, sender, nonce, hash))
            compactQueuedOrder()
            hold(entry)
            queuedCount += 1
            queuedBytes += verified.encodedSize
            return Admission(hash: hash, ready: [])
        }
        guard nonce == expected else { throw .nonce(expected: expected, found: nonce) }
        if let problem = runtime.admissionError(verified, expectedNonce: expected, in: state) { throw .stateful(problem) }
        arrivals += 1
        hold(entry)
        line(entry, sender: sender)
        return Admission(hash: hash, ready: [verified] + (expected < .max ? promote(sender, from: expected + 1, state: state) : []))
    }

    public func contains(_ hash: Hash256) -> Bool { byHash[hash] != nil }

    /// The transaction with this hash, in line or waiting: its signature was checked when it came in.
    public func verified(_ hash: Hash256) -> VerifiedTransaction? { byHash[hash] }

    /// Transactions for a block, within the byte and count limits: senders take turns in the
    /// order their oldest waiting transaction arrived, each sender's in nonce order.
    public func reap(maxCount: Int, maxBytes: Int) -> [VerifiedTransaction] {
        var cursors = bySender.map { (sender: $0.key, entries: $0.value, next: 0) }
            .sorted { $0.entries[0].arrival < $1.entries[0].arrival }
        var chosen: [VerifiedTransaction] = []
        var used = 0
        var progressed = true
        while progressed && chosen.count < maxCount {
            progressed = false
            for index in cursors.indices where cursors[index].next < cursors[index].entries.count && chosen.count < maxCount {
                let transaction = cursors[index].entries[cursors[index].next].transaction
                guard used + transaction.encodedSize <= maxBytes else {
                    cursors[index].next = cursors[index].entries.count  // the rest of this sender waits
                    continue
                }
                chosen.append(transaction)
                used += transaction.encodedSize
                cursors[index].next += 1
                progressed = true
            }
        }
        return chosen
    }

    /// After a commit: drop what was included or can no longer apply (stale nonce, fee no
    /// longer payable), keeping each sender's remaining line contiguous from its new nonce;
    /// waiting transactions whose turn came (the nonces before them were in the block) join the
    /// line, and those that waited `queuedHeights` or fell behind the nonce leave. Returns the
    /// ones that joined the line, to be passed on.
    ///
    /// `moved`: the senders whose account nonce the block can have moved (its transactions'
    /// senders); only their waiting transactions are looked at, besides the expired ones, so
    /// waiting transactions (which pay nothing) cost a commit nothing per transaction. Nil
    /// (after a state sync): every sender.
    @discardableResult
    public func update(after state: ChainState, moved: Set<PublicKey>? = nil) -> [VerifiedTransaction] {
        for (sender, entries) in bySender {
            var nonce = state.account(sender).nonce
            var kept: [Entry] = []
            for entry in entries where entry.transaction.body.nonce >= nonce {
                guard entry.transaction.body.nonce == nonce,
                      runtime.admissionError(entry.transaction, expectedNonce: nonce, in: state) == nil else { break }
                kept.append(entry)
                nonce += 1
            }
            // Everything not kept (included, stale, unpayable, or behind a gap) leaves.
            let keptHashes = Set(kept.map(\.transaction.hash))
            for entry in entries where !keptHashes.contains(entry.transaction.hash) { leaveLine(entry) }
            bySender[sender] = kept.isEmpty ? nil : kept
        }
        let height = state.global.height
        while let first = queuedOrder.first, height - min(height, first.height) >= limits.queuedHeights {
            queuedOrder.removeFirst()
            if let entry = queuedBySender[first.sender]?[first.nonce], entry.transaction.hash == first.hash {
                unqueue(first.sender, first.nonce)
                release(entry)
            }
        }
        var promoted: [VerifiedTransaction] = []
        for sender in moved.map({ $0.filter { queuedBySender[$0] != nil } }) ?? Set(queuedBySender.keys) {
            guard let waiting = queuedBySender[sender] else { continue }
            let next = state.account(sender).nonce + UInt64(bySender[sender]?.count ?? 0)
            for (nonce, entry) in waiting where nonce < next {
                unqueue(sender, nonce)
                release(entry)
            }
            promoted += promote(sender, from: next, state: state)
        }
        return promoted
    }

    /// Arrival records held for expiry (the waiting transactions and some that left).
    var queuedArrivalRecords: Int { queuedOrder.count }

    /// Drops the arrival records of transactions that left the queue once they outnumber the
    /// waiting ones by far (they leave early only by joining the line or by a commit).
    private func compactQueuedOrder() {
        guard queuedOrder.count > 4 * max(limits.maxQueued, 64) else { return }
        queuedOrder = Deque(queuedOrder.filter { queuedBySender[$0.sender]?[$0.nonce]?.transaction.hash == $0.hash })
    }

    /// Moves the sender's waiting transactions from `nonce` on into its line while they run
    /// on without a gap; one that can no longer apply (its fee unpayable) leaves and stops the run.
    private func promote(_ sender: PublicKey, from nonce: UInt64, state: ChainState) -> [VerifiedTransaction] {
        var promoted: [VerifiedTransaction] = []
        var next = nonce
        while let entry = queuedBySender[sender]?[next] {
            unqueue(sender, next)
            guard runtime.admissionError(entry.transaction, expectedNonce: next, in: state) == nil else {
                release(entry)
                break
            }
            line(entry, sender: sender)
            promoted.append(entry.transaction)
            guard next < .max else { break }
            next += 1
        }
        return promoted
    }

    /// Counts a transaction coming in (by hash and against its peer's quota).
    private func hold(_ entry: Entry) {
        byHash[entry.transaction.hash] = entry.transaction
        if let peer = entry.peer { perPeer[peer, default: 0] += 1 }
    }

    /// Appends a held transaction to its sender's line.
    private func line(_ entry: Entry, sender: PublicKey) {
        bySender[sender, default: []].append(entry)
        count += 1
        bytes += entry.transaction.encodedSize
    }

    /// Forgets a transaction taken out of its sender's line (the caller rebuilds the line).
    private func leaveLine(_ entry: Entry) {
        release(entry)
        count -= 1
        bytes -= entry.transaction.encodedSize
    }

    /// Takes a transaction out of its sender's waiting queue (still held).
    private func unqueue(_ sender: PublicKey, _ nonce: UInt64) {
        guard let entry = queuedBySender[sender]?.removeValue(forKey: nonce) else { return }
        if queuedBySender[sender]?.isEmpty == true { queuedBySender[sender] = nil }
        queuedCount -= 1
        queuedBytes -= entry.transaction.encodedSize
    }

    /// Forgets a transaction that leaves (the line's or the queue's own counts are the caller's).
    private func release(_ entry: Entry) {
        byHash[entry.transaction.hash] = nil
        if let peer = entry.peer {
            let left = perPeer[peer, default: 1] - 1
            perPeer[peer] = left > 0 ? left : nil
        }
    }
}

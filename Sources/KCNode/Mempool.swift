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
    case stateful(String)
    case peerQuota(limit: Int)

    /// Why a transaction was refused, as a metric label: one series each, made up front.
    public enum Reason: String, CaseIterable, Sendable {
        case futureNonce = "future_nonce", usedNonce = "used_nonce", duplicate, full, peerQuota = "peer_quota", stateful, invalid, malformed
    }

    public var reason: Reason {
        switch self {
        case .malformed: return .malformed
        case .invalid: return .invalid
        case .duplicate: return .duplicate
        case .full: return .full
        case .nonce(let expected, let found): return found > expected ? .futureNonce : .usedNonce
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
        case .nonce(let expected, let found): return "nonce \(found) is not the next nonce \(expected) for this sender"
        case .stateful(let reason): return reason
        case .peerQuota(let limit): return "this peer already has \(limit) transactions waiting; refusing more"
        }
    }
}

/// Pending transactions: signature checked once on entry (through the shared cache), deduped
/// by hash, kept per sender in nonce order, capped by count and bytes, re-checked after every
/// commit, and with a per-peer quota so one peer cannot fill it.
public final class Mempool {
    public struct Limits: Sendable {
        public var maxTransactions: Int
        public var maxBytes: Int
        /// The share of `maxTransactions` one peer's transactions may hold.
        public var maxPerPeer: Int

        public init(maxTransactions: Int = 50_000, maxBytes: Int = 64 << 20, maxPerPeer: Int? = nil) {
            self.maxTransactions = maxTransactions
            self.maxBytes = maxBytes
            self.maxPerPeer = maxPerPeer ?? max(1, maxTransactions / 4)
        }
    }

    struct Entry {
        let transaction: VerifiedTransaction
        let peer: String?
        let arrival: UInt64
    }

    public let limits: Limits
    let runtime: Runtime
    let signatures: SignatureCache
    private var bySender: [PublicKey: [Entry]] = [:]
    /// Every waiting transaction by hash (also what block validation reuses: `verified(_:)`).
    private var byHash: [Hash256: VerifiedTransaction] = [:]
    private var perPeer: [String: Int] = [:]
    private var arrivals: UInt64 = 0
    public private(set) var count = 0
    public private(set) var bytes = 0

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
    public func add(_ transaction: SignedTransaction, from peer: String? = nil, state: ChainState) throws(MempoolRejection) -> Hash256 {
        let hash = transaction.hash
        guard byHash[hash] == nil else { throw .duplicate }
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
    /// signature stage): the stateful checks only.
    @discardableResult
    public func add(verified: VerifiedTransaction, from peer: String? = nil, state: ChainState) throws(MempoolRejection) -> Hash256 {
        let hash = verified.hash
        guard byHash[hash] == nil else { throw .duplicate }
        if let peer, perPeer[peer, default: 0] >= limits.maxPerPeer { throw .peerQuota(limit: limits.maxPerPeer) }
        guard count < limits.maxTransactions else { throw .full("\(count) transactions") }
        guard bytes + verified.encodedSize <= limits.maxBytes else { throw .full("\(bytes) bytes") }
        let sender = verified.body.sender
        let queued = bySender[sender] ?? []
        let expected = state.account(sender).nonce + UInt64(queued.count)
        guard verified.body.nonce == expected else { throw .nonce(expected: expected, found: verified.body.nonce) }
        if let problem = runtime.admissionError(verified, expectedNonce: expected, in: state) { throw .stateful(problem) }
        arrivals += 1
        bySender[sender, default: []].append(Entry(transaction: verified, peer: peer, arrival: arrivals))
        byHash[hash] = verified
        if let peer { perPeer[peer, default: 0] += 1 }
        count += 1
        bytes += verified.encodedSize
        return hash
    }

    public func contains(_ hash: Hash256) -> Bool { byHash[hash] != nil }

    /// The waiting transaction with this hash: its signature was checked when it came in.
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
    /// longer payable), keeping each sender's remaining run contiguous from its new nonce.
    public func update(after state: ChainState) {
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
            for entry in entries where !keptHashes.contains(entry.transaction.hash) { remove(entry) }
            bySender[sender] = kept.isEmpty ? nil : kept
        }
    }

    private func remove(_ entry: Entry) {
        byHash[entry.transaction.hash] = nil
        if let peer = entry.peer { perPeer[peer, default: 1] -= 1 }
        count -= 1
        bytes -= entry.transaction.encodedSize
    }
}

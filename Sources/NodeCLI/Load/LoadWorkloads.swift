import Dispatch
import KCConsensus
import KCCrypto
import KCNode
import KCRuntime
import KCTypes
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

enum LoadClock {
    static func microseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000 + UInt64(time.tv_nsec) / 1_000
    }
}

/// A transaction to send and the node it goes to: each sender's run goes to one node, so its
/// nonces arrive in order.
struct Outgoing {
    let node: Int
    let transaction: SignedTransaction
}

/// What the load generator sends. `due(_:)` gives the next `count` transactions of the offered
/// rate; `committed(_:)` shows each committed block, in height order.
protocol LoadWorkload {
    /// Transactions to send before the measured run (none by default), and whether the run may
    /// start: the setup's transactions are committed.
    mutating func setup() -> [Outgoing]
    var ready: Bool { get }
    mutating func due(_ count: Int) -> [Outgoing]
    mutating func committed(_ block: Block)
    /// The next nonce of each sender, for a following run.
    var nonces: [UInt64] { get }
    /// Senders none of whose transactions committed for `after` µs while later ones wait: one
    /// was refused on the way (a full mempool, a peer's quota), so none after it can execute.
    /// Their next nonce goes back to the chain's; returns each with that nonce (what was sent
    /// from it on will never commit).
    mutating func resync(now: UInt64, after: UInt64) -> [(sender: PublicKey, nonce: UInt64)]
}

extension LoadWorkload {
    /// Signed before the run: nothing to send again.
    mutating func resync(now: UInt64, after: UInt64) -> [(sender: PublicKey, nonce: UInt64)] { [] }
}

/// Signed transfers between funded devnet users, all signed before the run starts (on every
/// core), so that sending costs the generator little besides encryption.
struct TransferWorkload: LoadWorkload {
    private let prepared: [Outgoing]
    private let start: [UInt64]
    /// Transactions handed out so far: the first `next` of `prepared`.
    private var next = 0
    var ready: Bool { true }

    /// Sender i's transactions are i, i + n, i + 2n, ... of `prepared`; each handed out moved
    /// its sender's nonce on by one.
    var nonces: [UInt64] {
        start.indices.map { from in start[from] + UInt64(next / start.count + (from < next % start.count ? 1 : 0)) }
    }

    init(chain: Genesis, senders: [SigningKey], nonces start: [UInt64], count: Int, nodes: Int) {
        let bodies = (0..<count).map { index -> (Int, TransactionBody) in
            let from = index % senders.count
            let nonce = start[from] + UInt64(index / senders.count)
            return (from, TransactionBody(chainID: chain.chainID, sender: senders[from].publicKey, nonce: nonce,
                                          fee: chain.parameters.fees.minFee,
                                          call: .transfer(to: senders[(from + 1) % senders.count].publicKey, amount: Amount(units: 1))))
        }
        prepared = Self.sign(bodies.map { body in (body.1, senders[body.0], body.0 % nodes) })
        self.start = start
    }

    /// Signs on all cores; the result keeps the input's order.
    static func sign(_ work: [(TransactionBody, SigningKey, Int)]) -> [Outgoing] {
        let slices = max(1, min(64, work.count / 256))
        let results = Mutex<[[Outgoing]]>(Array(repeating: [], count: slices))
        DispatchQueue.concurrentPerform(iterations: slices) { slice in
            let range = (work.count * slice / slices)..<(work.count * (slice + 1) / slices)
            let signed = work[range].map { Outgoing(node: $0.2, transaction: $0.0.signed(with: $0.1)) }
            results.withLock { $0[slice] = signed }
        }
        return results.withLock { $0.flatMap { $0 } }
    }

    mutating func setup() -> [Outgoing] { [] }

    mutating func due(_ count: Int) -> [Outgoing] {
        let end = min(prepared.count, next + count)
        defer { next = end }
        return Array(prepared[next..<end])
    }

    mutating func committed(_ block: Block) {}
}

/// The chain's own workload: gateway accounts propose knowledge events whose parents are
/// drawn from recent committed events, while the validators' automatic attesters vote on them
/// in batches after each commit. The proposers are devnet users that bond the minimum gateway
/// stake and register as gateways in the setup (when they start from nonce 0).
struct EventWorkload: LoadWorkload {
    let chain: Genesis
    let proposers: [SigningKey]
    let nodes: Int
    private(set) var nonces: [UInt64]
    /// Each sender's next nonce on chain, as the committed blocks show it, and when it last
    /// moved (or when the sender's first transaction past it was sent).
    private var chainNonces: [UInt64]
    private var movedAt: [UInt64]
    private let positions: [PublicKey: Int]
    private var setupHashes: Set<Hash256> = []
    private var turn = 0
    private var counter: UInt64 = 0
    /// Events seen committed, newest last (at most `recentLimit`): the parents of new events.
    private var recent: [Hash256] = []
    static let recentLimit = 256
    static let kind = "bench.note"

    init(chain: Genesis, proposers: [SigningKey], nonces: [UInt64], nodes: Int) {
        self.chain = chain
        self.proposers = proposers
        self.nonces = nonces
        self.nodes = nodes
        chainNonces = nonces
        movedAt = [UInt64](repeating: 0, count: proposers.count)
        positions = Dictionary(proposers.enumerated().map { ($0.element.publicKey, $0.offset) }, uniquingKeysWith: { first, _ in first })
    }

    var ready: Bool { setupHashes.isEmpty }

    mutating func resync(now: UInt64, after: UInt64) -> [(sender: PublicKey, nonce: UInt64)] {
        var stuck: [(sender: PublicKey, nonce: UInt64)] = []
        for index in proposers.indices where nonces[index] > chainNonces[index] && now >= movedAt[index] && now - movedAt[index] >= after {
            stuck.append((proposers[index].publicKey, chainNonces[index]))
            nonces[index] = chainNonces[index]
            movedAt[index] = now
        }
        return stuck
    }

    mutating func setup() -> [Outgoing] {
        var outgoing: [Outgoing] = []
        let stake = chain.parameters.staking.minGatewayStake
        for (index, key) in proposers.enumerated() where nonces[index] == 0 {
            for call in [Call.bond(amount: stake), .registerGateway] {
                let body = TransactionBody(chainID: chain.chainID, sender: key.publicKey, nonce: nonces[index],
                                           fee: chain.parameters.fees.minFee, call: call)
                nonces[index] += 1
                let signed = body.signed(with: key)
                setupHashes.insert(signed.hash)
                outgoing.append(Outgoing(node: index % nodes, transaction: signed))
            }
        }
        return outgoing
    }

    mutating func due(_ count: Int) -> [Outgoing] {
        (0..<count).map { _ in
            let index = turn % proposers.count
            turn += 1
            counter += 1
            if nonces[index] == chainNonces[index] { movedAt[index] = LoadClock.microseconds() }
            // Parents: up to two recent events, chosen by the counter (deterministic, spread).
            var parents: [Hash256] = []
            if !recent.isEmpty {
                parents.append(recent[Int(counter % UInt64(recent.count))])
                let second = recent[Int((counter / 3) % UInt64(recent.count))]
                if second != parents[0] { parents.append(second) }
            }
            let seed = Array("\(proposers[index].publicKey.hex)/\(counter)/\(nonces[index])".utf8)
            let body = TransactionBody(chainID: chain.chainID, sender: proposers[index].publicKey, nonce: nonces[index],
                                       fee: chain.parameters.fees.minFee,
                                       call: .proposeEvent(parents: parents, arTxID: ArTxID(Blake2b.hash256(seed)),
                                                           contentHash: SHA256.hash(seed), kind: Self.kind))
            nonces[index] += 1
            return Outgoing(node: index % nodes, transaction: body.signed(with: proposers[index]))
        }
    }

    mutating func committed(_ block: Block) {
        let now = LoadClock.microseconds()
        for transaction in block.transactions {
            setupHashes.remove(transaction.hash)
            if let index = positions[transaction.body.sender], transaction.body.nonce >= chainNonces[index] {
                chainNonces[index] = transaction.body.nonce + 1
                movedAt[index] = now
                // Transactions sent before a resync may still commit: never reuse their nonces.
                nonces[index] = max(nonces[index], chainNonces[index])
            }
            guard case .proposeEvent(let parents, let arTxID, let contentHash, let kind) = transaction.body.call, kind == Self.kind else { continue }
            let header = EventHeader(author: transaction.body.sender, nonce: transaction.body.nonce, height: block.header.height,
                                     parents: parents, arTxID: arTxID, contentHash: contentHash, kind: kind)
            recent.append(header.id)
        }
        if recent.count > Self.recentLimit { recent.removeFirst(recent.count - Self.recentLimit) }
    }
}

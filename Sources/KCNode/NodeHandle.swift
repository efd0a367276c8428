import KCConsensus
import KCCrypto
import KCNetwork
import KCRuntime
import KCStorage
import KCTypes
import Synchronization

/// What the node's thread takes from its inbox: network events, and calls from other
/// services (the RPC) that must run where the mempool and the state live.
public enum NodeEvent: Sendable {
    case network(P2PEvent)
    case call(NodeCall)
    /// A peer's `transactions` message after the signature stage.
    case checkedTransactions([CheckedTransaction], from: PublicKey)
    /// A snapshot save that ran off the node's thread ended (`SnapshotWorker`).
    case snapshotSaved(height: UInt64, Result<SnapshotOffer, BlockStore.Failure>, milliseconds: UInt64)
}

/// A request to the node's thread; the reply runs on that thread, so it must only hand the
/// answer over (resume a continuation), never block.
public enum NodeCall: Sendable {
    /// Admit a transaction, decoded and its signature checked by the caller (or the caller's
    /// refusal, answered in turn), to the mempool and gossip it.
    case submit(Result<VerifiedTransaction, MempoolRejection>, reply: @Sendable (Result<Admission, MempoolRejection>) -> Void)
    /// A Merkle proof of one state key against the current state root.
    case proof(StoreKey, reply: @Sendable (StateProofAnswer) -> Void)
    /// A transaction's checks against the latest committed state, committing nothing
    /// (`Runtime.dryRun`). Run on the node's thread: a copy of the state held elsewhere while
    /// the node commits would make the commit copy every entry (`ChainState` is mutated in
    /// place only while uniquely held), a cost an outsider could force with each request.
    case check(TransactionBody, reply: @Sendable (CheckAnswer) -> Void)
}

/// What a transaction would do if it were next in line: its receipt, or why a block holding it
/// would be refused; `height` is the state it was checked against.
public struct CheckAnswer: Sendable {
    public let height: UInt64
    public let result: Result<Receipt, BlockError>

    public init(height: UInt64, result: Result<Receipt, BlockError>) {
        self.height = height
        self.result = result
    }
}

public struct StateProofAnswer: Sendable {
    public let height: UInt64
    public let root: Hash256
    public let value: [UInt8]?
    public let proof: StateTrie.Proof
}

/// The node as other services in the process see it: read-only access to the store (reads
/// may run on any thread), the live figures, a feed of commits, and calls onto the node's
/// thread.
public final class NodeHandle: Sendable {
    public let store: any KeyValueStore
    public let genesis: Genesis
    public let monitor: NodeMonitor
    public let metrics: NodeMetrics
    public let commits: CommitFeed
    let inbox: Inbox<NodeEvent>
    let signatures: SignatureCache

    init(store: any KeyValueStore, genesis: Genesis, monitor: NodeMonitor, metrics: NodeMetrics, commits: CommitFeed, inbox: Inbox<NodeEvent>,
         signatures: SignatureCache) {
        self.store = store
        self.signatures = signatures
        self.genesis = genesis
        self.monitor = monitor
        self.metrics = metrics
        self.commits = commits
        self.inbox = inbox
    }

    public func call(_ call: NodeCall) {
        inbox.push(.call(call))
    }

    /// Submits a transaction and waits for the mempool's verdict.
    public func submit(_ bytes: [UInt8]) async -> Result<Admission, MempoolRejection> {
        await withCheckedContinuation { continuation in
            send(bytes) { continuation.resume(returning: $0) }
        }
    }

    /// Submits a transaction without waiting: submissions reach the mempool in the order they
    /// were sent, and `reply` runs on the node's thread with its verdict (hand it over only).
    /// The bytes are decoded and the signature checked here, on the caller's thread (ADR 0017):
    /// the node's thread only runs the mempool's stateful checks.
    public func send(_ bytes: [UInt8], reply: @escaping @Sendable (Result<Admission, MempoolRejection>) -> Void) {
        do throws(MempoolRejection) {
            send(try Mempool.decode(bytes, maxBytes: Int(genesis.parameters.block.maxTransactionBytes)), reply: reply)
        } catch {
            call(.submit(.failure(error), reply: reply))  // answered in turn, like the others
        }
    }

    /// The same for a transaction already decoded (the attester's own): checked here, never
    /// encoded and decoded again.
    public func send(_ transaction: SignedTransaction, reply: @escaping @Sendable (Result<Admission, MempoolRejection>) -> Void) {
        let prepared: Result<VerifiedTransaction, MempoolRejection>
        do throws(MempoolRejection) { prepared = .success(try Mempool.verify(transaction, chainID: genesis.chainID, cache: signatures)) } catch {
            prepared = .failure(error)
        }
        call(.submit(prepared, reply: reply))
    }

    /// What `body` would do if it were next in line (`NodeCall.check`).
    public func check(_ body: TransactionBody) async -> CheckAnswer {
        await withCheckedContinuation { continuation in
            call(.check(body) { continuation.resume(returning: $0) })
        }
    }

    /// Wall-clock milliseconds since 1970 (for health: the age of the latest block).
    public static func wallMilliseconds() -> UInt64 { NodeDriver.wallMilliseconds() }

    public func proof(_ key: StoreKey) async -> StateProofAnswer {
        await withCheckedContinuation { continuation in
            call(.proof(key) { continuation.resume(returning: $0) })
        }
    }
}

/// Live figures the node's thread publishes for status, health and metrics.
public final class NodeMonitor: Sendable {
    public struct Snapshot: Sendable, Equatable {
        public var height: UInt64 = 0
        /// The lowest height whose block the node keeps (1 unless it prunes).
        public var baseHeight: UInt64 = 1
        public var blockTimeMilliseconds: UInt64 = 0
        /// This node's wall clock when it committed the latest height (or started).
        public var committedAtMilliseconds: UInt64 = 0
        public var blockID: Hash256 = .zero
        public var stateRoot: Hash256 = .zero
        public var round: UInt32 = 0
        public var syncing = false
        public var peers = 0
        public var isValidator = false
        public var nodeID: PublicKey? = nil
        public var mempoolTransactions = 0
        public var mempoolBytes = 0
        /// Transactions waiting for an earlier nonce of their sender (not counted above).
        public var mempoolQueued = 0
        public var lastBlockTransactions = 0
        public var eventsByStatus: [UInt64] = Array(repeating: 0, count: EventStatus.allCases.count)
        public init() {}
    }

    private let current = Mutex(Snapshot())

    public init() {}

    public var snapshot: Snapshot { current.withLock { $0 } }

    public func update(_ body: (inout Snapshot) -> Void) { current.withLock { body(&$0) } }
}

/// Tells waiting services about new heights: `wait(beyond:)` returns once a height above the
/// given one is committed (or the timeout passes). Waiting runs on the caller's executor.
public final class CommitFeed: Sendable {
    private struct State {
        var height: UInt64 = 0
        var nextID = 0
        var waiters: [Int: (target: UInt64, continuation: CheckedContinuation<UInt64, Never>)] = [:]
        /// Waits cancelled before they were registered.
        var cancelled: Set<Int> = []
    }

    private let state = Mutex(State())

    public init(height: UInt64 = 0) { state.withLock { $0.height = height } }

    public var height: UInt64 { state.withLock { $0.height } }

    public func publish(_ height: UInt64) {
        let ready = state.withLock { state -> [CheckedContinuation<UInt64, Never>] in
            state.height = max(state.height, height)
            let due = state.waiters.filter { $0.value.target < state.height }
            for id in due.keys { state.waiters[id] = nil }
            return due.values.map(\.continuation)
        }
        for continuation in ready { continuation.resume(returning: height) }
    }

    /// The committed height once it is above `height`; the current height after `timeout`
    /// milliseconds (or on cancellation) otherwise.
    public func wait(beyond height: UInt64, timeoutMilliseconds: UInt64) async -> UInt64 {
        await withTaskGroup(of: UInt64.self) { group in
            group.addTask { await self.waitUntilCancelled(beyond: height) }
            group.addTask {
                try? await Task.sleep(nanoseconds: timeoutMilliseconds * 1_000_000)
                return self.height
            }
            let first = await group.next() ?? self.height
            group.cancelAll()
            return first
        }
    }

    private func waitUntilCancelled(beyond height: UInt64) async -> UInt64 {
        let id = state.withLock { state -> Int in state.nextID += 1; return state.nextID }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state -> UInt64? in
                    if state.height > height || state.cancelled.remove(id) != nil { return state.height }
                    state.waiters[id] = (height, continuation)
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> (CheckedContinuation<UInt64, Never>, UInt64)? in
                guard let waiter = state.waiters.removeValue(forKey: id) else {
                    state.cancelled.insert(id)
                    return nil
                }
                return (waiter.continuation, state.height)
            }
            if let (continuation, height) = waiter { continuation.resume(returning: height) }
        }
    }
}

import KCCodec
import KCCrypto
import KCNode
import KCRuntime
import KCStorage
import KCTypes
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Blocks of 1,000 transactions (500 `propose_event`, 500 `attest`), signatures already
/// checked, executed by the runtime, committed to the in-memory state and written to RocksDB
/// in one synced batch per block: the work a validator does per block besides consensus and
/// signature checks.
public final class BlockFixture: @unchecked Sendable {
    static let gatewayCount = 20
    static let proposalsPerBlock = 500
    static let attestationsPerBlock = 500
    /// KC_BENCH_BLOCKS overrides the number of prepared blocks (longer runs reach the store's
    /// steady state: memtable flushes and compactions).
    public static let blockCount = ProcessInfo.processInfo.environment["KC_BENCH_BLOCKS"].flatMap { Int($0) } ?? 80

    let runtime: Runtime
    var state: ChainState
    let store: RocksDBStore
    let directory: String
    var blocks: [(BlockContext, [VerifiedTransaction])] = []
    var next = 0
    /// KC_BENCH_NO_SYNC=1 writes without fsync, to separate the disk's share from the CPU's.
    let syncWrites = ProcessInfo.processInfo.environment["KC_BENCH_NO_SYNC"] == nil

    public init() {
        // The devnet's genesis with 20 validators, every one a gateway (devnet parameters).
        let gateways = (0..<Self.gatewayCount).map { DevnetKeys.key(.account, index: $0) }
        let genesis = LocalGenesis.devnet(validatorCount: Self.gatewayCount, userCount: 0)
        let parameters = genesis.parameters
        runtime = Runtime(genesis: genesis)
        state = runtime.genesisState()
        var template = [UInt8]("/tmp/kc-bench-XXXXXX".utf8CString.map { UInt8(bitPattern: $0) })
        directory = template.withUnsafeMutableBufferPointer { buffer in
            String(cString: mkdtemp(UnsafeMutableRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self))!)
        }
        var configuration = RocksDBStore.Configuration()
        if let megabytes = ProcessInfo.processInfo.environment["KC_BENCH_WRITE_BUFFER_MB"].flatMap({ Int($0) }) {
            configuration.writeBufferBytes = megabytes << 20
        }
        store = try! RocksDBStore(path: directory, configuration: configuration)
        var batch = WriteBatch()
        StatePersistence.add(state, to: &batch)
        try! store.write(batch, sync: true)

        // Pre-sign every block so the measurement holds execution and storage only.
        let signers = state.validatorSets().current.map(\.consensusKey)
        var nonces = [UInt64](repeating: 0, count: Self.gatewayCount)
        var previousEvents: [(id: Hash256, author: Int)] = []
        let fee = parameters.fees.minFee
        for blockIndex in 0..<Self.blockCount {
            let height = UInt64(blockIndex + 1)
            var transactions: [VerifiedTransaction] = []
            var proposed: [(id: Hash256, author: Int)] = []
            for proposal in 0..<Self.proposalsPerBlock {
                let author = proposal % Self.gatewayCount
                let label = Array("payload-\(blockIndex)-\(proposal)".utf8)
                let arTxID = ArTxID(Blake2b.hash256(label))
                let call = Call.proposeEvent(parents: previousEvents.isEmpty ? [] : [previousEvents[proposal % previousEvents.count].id],
                                             arTxID: arTxID, contentHash: SHA256.hash(label), kind: "schema:Answer")
                let body = TransactionBody(chainID: genesis.chainID, sender: gateways[author].publicKey, nonce: nonces[author], fee: fee, call: call)
                guard case .proposeEvent(let parents, _, let contentHash, let kind) = call else { fatalError() }
                proposed.append((EventHeader(author: body.sender, nonce: body.nonce, height: height, parents: parents,
                                             arTxID: arTxID, contentHash: contentHash, kind: kind).id, author))
                nonces[author] += 1
                transactions.append(.assumingVerified(body.signed(with: gateways[author])))
            }
            if !previousEvents.isEmpty {
                for attestation in 0..<Self.attestationsPerBlock {
                    let event = previousEvents[attestation % previousEvents.count]
                    let voter = (event.author + 1 + attestation / previousEvents.count) % Self.gatewayCount
                    let body = TransactionBody(chainID: genesis.chainID, sender: gateways[voter].publicKey, nonce: nonces[voter], fee: fee,
                                               call: .attest(votes: [AttestationVote(eventID: event.id, verdict: .valid)]))
                    nonces[voter] += 1
                    transactions.append(.assumingVerified(body.signed(with: gateways[voter])))
                }
            }
            blocks.append((BlockContext(height: height, timeMilliseconds: genesis.genesisTimeUnixMilliseconds + height * 1_000,
                                        lastCommitSigners: signers), transactions))
            previousEvents = proposed
        }
        // The first block has no attestations: run it outside any measurement.
        runNext()
    }

    /// Where one block's time went, in nanoseconds.
    public struct Phases: Sendable {
        public var transactions = 0
        public var keysWritten = 0
        public var execute: Int64 = 0
        public var commit: Int64 = 0
        public var batch: Int64 = 0
        public var write: Int64 = 0
        public var total: Int64 { execute + commit + batch + write }
    }

    public var remaining: Int { blocks.count - next }

    /// Executes, commits and persists the next block; returns its transaction count.
    @discardableResult
    public func runNext() -> Int { runNextMeasured().transactions }

    /// Executes, commits and persists the next block, timing each phase.
    public func runNextMeasured() -> Phases {
        precondition(next < blocks.count, "benchmark ran more iterations than blocks were prepared")
        let (context, transactions) = blocks[next]
        next += 1
        let t0 = ContinuousClock.now
        let executed = try! runtime.execute(transactions, context: context, on: state)
        let t1 = ContinuousClock.now
        if let failed = executed.outcome.receipts.first(where: { !$0.succeeded }) {
            fatalError("a benchmark transaction failed: \(failed.code) \(failed.message)")
        }
        state.commit(executed)
        let t2 = ContinuousClock.now
        var batch = WriteBatch()
        try! StatePersistence.add(executed, over: store, to: &batch)
        let t3 = ContinuousClock.now
        let keys = batch.count
        try! store.write(batch, sync: syncWrites)
        let t4 = ContinuousClock.now
        return Phases(transactions: transactions.count, keysWritten: keys, execute: nanoseconds(t1 - t0), commit: nanoseconds(t2 - t1),
                      batch: nanoseconds(t3 - t2), write: nanoseconds(t4 - t3))
    }
}

public func nanoseconds(_ duration: Duration) -> Int64 {
    duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
}


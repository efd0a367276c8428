import Benchmark
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
final class BlockFixture: @unchecked Sendable {
    static let gatewayCount = 20
    static let proposalsPerBlock = 500
    static let attestationsPerBlock = 500
    static let blockCount = 80

    let runtime: Runtime
    var state: ChainState
    let store: RocksDBStore
    let directory: String
    var blocks: [(BlockContext, [VerifiedTransaction])] = []
    var next = 0
    let printPhases = ProcessInfo.processInfo.environment["KC_BENCH_PHASES"] != nil

    init() {
        let gateways = (0..<Self.gatewayCount).map { SigningKey(seed: Blake2b.hash256(Array("bench-gateway-\($0)".utf8))) }
        var parameters = LocalGenesis.developmentParameters
        parameters.block.maxTransactions = 10_000
        let genesis = Genesis(
            chainID: "membria-bench-1", genesisTimeUnixMilliseconds: 1_767_225_600_000, parameters: parameters,
            accounts: gateways.map { GenesisAccount(address: $0.publicKey, balance: .acti(1_000_000)) },
            validators: gateways.enumerated().map { index, key in
                GenesisValidator(moniker: "g\(index)", address: key.publicKey,
                                 consensusKey: SigningKey(seed: Blake2b.hash256(Array("bench-consensus-\(index)".utf8))).publicKey,
                                 nodeID: SigningKey(seed: Blake2b.hash256(Array("bench-node-\(index)".utf8))).publicKey,
                                 stake: .acti(100_000), gateway: true)
            })
        runtime = Runtime(genesis: genesis)
        state = runtime.genesisState()
        var template = [UInt8]("/tmp/kc-bench-XXXXXX".utf8CString.map { UInt8(bitPattern: $0) })
        directory = template.withUnsafeMutableBufferPointer { buffer in
            String(cString: mkdtemp(UnsafeMutableRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self))!)
        }
        store = try! RocksDBStore(path: directory)
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
        if printPhases {
            while next < blocks.count { runNext() }
            exit(0)
        }
    }

    /// Executes, commits and persists the next block; returns its transaction count.
    @discardableResult
    func runNext() -> Int {
        precondition(next < blocks.count, "benchmark ran more iterations than blocks were prepared")
        let (context, transactions) = blocks[next]
        next += 1
        let t0 = ContinuousClock.now
        let executed = try! runtime.execute(transactions, context: context, on: state)
        let t1 = ContinuousClock.now
        precondition(executed.outcome.receipts.allSatisfy(\.succeeded), "a benchmark transaction failed")
        state.commit(executed)
        let t2 = ContinuousClock.now
        var batch = WriteBatch()
        StatePersistence.add(executed, to: &batch)
        let t3 = ContinuousClock.now
        try! store.write(batch, sync: ProcessInfo.processInfo.environment["KC_BENCH_NO_SYNC"] == nil)
        let t4 = ContinuousClock.now
        if printPhases {
            // KC_BENCH_PHASES=1 runs every block once, outside the framework, and prints where
            // each block's time went.
            print("execute \(t1 - t0) commit \(t2 - t1) batch \(t3 - t2) write \(t4 - t3) changes \(executed.changes.count)")
        }
        return transactions.count
    }
}

let transactionsPerSecond = BenchmarkMetric.custom("transactions per second (wall clock)", polarity: .prefersLarger, useScalingFactor: false)
let transactionsPerCPUSecond = BenchmarkMetric.custom("transactions per CPU second (this thread)", polarity: .prefersLarger, useScalingFactor: false)

/// CPU time of the calling thread, in nanoseconds: what one core spent, excluding RocksDB's
/// background threads and time waiting for fsync.
func threadCPUNanoseconds() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
}

let benchmarks: @Sendable () -> Void = {
    runtimeBenchmarks()
    simulatorBenchmarks()
}

let runtimeBenchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .cpuTotal, .mallocCountTotal, transactionsPerSecond, transactionsPerCPUSecond],
                                           timeUnits: .milliseconds, warmupIterations: 1,
                                           maxDuration: .seconds(60), maxIterations: BlockFixture.blockCount - 3)
    Benchmark("Apply and commit a block of 500 propose_event + 500 attest to RocksDB", closure: { benchmark, fixture in
        let start = ContinuousClock.now
        let cpuStart = threadCPUNanoseconds()
        benchmark.startMeasurement()
        let count = fixture.runNext()
        benchmark.stopMeasurement()
        let cpu = threadCPUNanoseconds() - cpuStart
        let elapsed = ContinuousClock.now - start
        let nanoseconds = elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
        benchmark.measurement(transactionsPerSecond, Int(Int64(count) * 1_000_000_000 / max(nanoseconds, 1)))
        benchmark.measurement(transactionsPerCPUSecond, Int(Int64(count) * 1_000_000_000 / max(cpu, 1)))
    }, setup: { BlockFixture() })
}

// MARK: simulator

import KCSimulator

let heightsPerSecond = BenchmarkMetric.custom("simulated heights per second", polarity: .prefersLarger, useScalingFactor: false)

/// One seeded run of 5 honest validators with only network delay (no loss, crashes or
/// Byzantine roles), stopping at `heights`; reports committed heights per wall-clock second.
func simulatorBenchmark(_ benchmark: Benchmark, transactionsPerSecond: UInt64, heights: UInt64) {
    var config = SimulationConfig(seed: 1)
    config.validators = 5
    config.byzantine = 0
    config.heights = heights
    config.faults = [.delay]
    config.transactionsPerSecond = transactionsPerSecond
    let start = ContinuousClock.now
    benchmark.startMeasurement()
    let result = Simulation(config: config).run()
    benchmark.stopMeasurement()
    precondition(result.passed, "benchmark simulation failed: \(result.violations)")
    let elapsed = ContinuousClock.now - start
    let nanoseconds = elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
    benchmark.measurement(heightsPerSecond, Int(Int64(result.heightsCommitted) * 1_000_000_000 / max(nanoseconds, 1)))
}

let simulatorBenchmarks: @Sendable () -> Void = {
    let configuration = Benchmark.Configuration(metrics: [.wallClock, heightsPerSecond], timeUnits: .milliseconds,
                                                warmupIterations: 1, maxDuration: .seconds(30), maxIterations: 10)
    Benchmark("Simulator: 5 validators, empty blocks", configuration: configuration) { benchmark in
        simulatorBenchmark(benchmark, transactionsPerSecond: 0, heights: 400)
    }
    Benchmark("Simulator: 5 validators, full blocks (50 transactions each)", configuration: configuration) { benchmark in
        simulatorBenchmark(benchmark, transactionsPerSecond: 2_000, heights: 200)
    }
}

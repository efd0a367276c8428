import Benchmark
import BenchmarkFixtures
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
    snapshotBenchmarks()
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

// MARK: state-sync snapshots

import KCNetwork

/// A state of `count` entries shaped like the chain's (keys of 33 bytes, values of 120): about
/// 150 bytes an entry, so 200,000 entries are some 30 MB of state.
func syntheticState(entries count: Int) -> ChainState {
    var entries: [StoreKey: [UInt8]] = [:]
    entries.reserveCapacity(count)
    for index in 0..<count {
        let digest = Blake2b.hash256(withUnsafeBytes(of: UInt64(index).bigEndian) { Array($0) }).bytes
        entries[StoreKey([0x61] + digest)] = Array(repeating: UInt8(truncatingIfNeeded: index), count: 88) + digest
    }
    return ChainState(entries: entries)
}

let snapshotBenchmarks: @Sendable () -> Void = {
    let configuration = Benchmark.Configuration(metrics: [.wallClock, .cpuTotal, .peakMemoryResident], timeUnits: .milliseconds,
                                                warmupIterations: 1, maxDuration: .seconds(60), maxIterations: 5)
    // What a node serving state sync spends every `snapshot_interval` heights on its thread.
    Benchmark("Snapshot: cut a 200,000-entry state into 256 KiB chunks", configuration: configuration) { benchmark, state in
        benchmark.startMeasurement()
        let chunks = SnapshotChunks.make(state)
        benchmark.stopMeasurement()
        blackHole(chunks.count)
    } setup: {
        syntheticState(entries: 200_000)
    }
    // What a joining node spends restoring: checking, decoding and writing each chunk with the
    // trie pages it changes (into a store held in memory here), then the root check.
    Benchmark("Snapshot: check and restore a 200,000-entry state from its chunks", configuration: configuration) { benchmark, prepared in
        let genesis = LocalGenesis.devnet(validatorCount: 1, userCount: 0)
        let runtime = Runtime(genesis: genesis)
        let blocks = BlockStore(store: MemoryStore())
        _ = try! blocks.open(genesis: genesis, runtime: runtime)
        benchmark.startMeasurement()
        let restore = SnapshotRestore(blocks: blocks, runtime: runtime)
        var assembler = SnapshotAssembler(offer: prepared.offer, root: prepared.root, target: restore)
        for (index, chunk) in prepared.chunks.enumerated() { try! assembler.add(UInt32(index), bytes: chunk) }
        try! assembler.finish()
        benchmark.stopMeasurement()
        blackHole(restore.entries)
    } setup: { () -> (offer: SnapshotOffer, root: Hash256, chunks: [[UInt8]]) in
        let state = syntheticState(entries: 200_000)
        let chunks = SnapshotChunks.make(state)
        return (SnapshotOffer(height: 1, chunkHashes: chunks.map { Blake2b.hash256($0) }), state.root, chunks)
    }
}

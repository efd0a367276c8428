import KCCodec
import KCConsensus
import KCCrypto
import KCNetwork
import KCNode
import KCRuntime
import KCStorage
import KCTypes
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// The knowledge-event workload of one validator, in process, against a state stored in RocksDB
// and read through the node's `BlockStore` and `StateCache` (ADR 0018): blocks of proposals
// (each naming up to two recent events as parents) and the validator's own attestations of
// the previous block's events, executed and committed exactly as the node does, until
// KC_GROWTH_EVENTS events are on chain. Every tenth of the way it prints the cost per event of
// execution and of storing, the consensus thread's and the whole process's CPU per event (the
// second adds RocksDB's flushes and compactions), the store reads per event and what they read
// (a state entry's key prefix, or a trie page's depth), RSS and the store's size, so the cost
// of history is measured without a network, a load generator or consensus.
// KC_GROWTH_VALIDATORS validators (default 1; the devnet has 5) each attest every event, as
// every devnet validator's automatic attester does. KC_GROWTH_INDEXES=0 stores the blocks
// without the query indexes (`storage.indexes = false`, ADR 0027).
// Usage: Scripts/bench.sh --growth  (KC_GROWTH_EVENTS, KC_GROWTH_BLOCK, KC_GROWTH_VALIDATORS, KC_GROWTH_INDEXES,
// KC_GROWTH_CACHE_MB, KC_GROWTH_BLOCK_CACHE_MB, KC_GROWTH_WRITE_BUFFER_MB, KC_GROWTH_ALLOCATOR,
// KC_GROWTH_TRIM_MS)

let environment = ProcessInfo.processInfo.environment
let targetEvents = environment["KC_GROWTH_EVENTS"].flatMap { Int($0) } ?? 200_000
let eventsPerBlock = environment["KC_GROWTH_BLOCK"].flatMap { Int($0) } ?? 1_000
let validatorCount = max(1, environment["KC_GROWTH_VALIDATORS"].flatMap { Int($0) } ?? 1)
let cacheMiB = environment["KC_GROWTH_CACHE_MB"].flatMap { Int($0) } ?? 64
/// RocksDB's block cache (default: the state cache's size) and memtable size (default: the node's).
let blockCacheMiB = environment["KC_GROWTH_BLOCK_CACHE_MB"].flatMap { Int($0) } ?? cacheMiB
let writeBufferMiB = environment["KC_GROWTH_WRITE_BUFFER_MB"].flatMap { Int($0) } ?? (RocksDBStore.Configuration().writeBufferBytes >> 20)
/// Chain time per block: the block's events at 2,500 a second.
let blockMilliseconds = UInt64(max(1, eventsPerBlock * 1_000 / 2_500))

/// Counts the reads that reach RocksDB (past the state cache).
final class CountingStore: KeyValueStore, @unchecked Sendable {
    let inner: RocksDBStore
    let reads = Atomic<Int>(0)
    /// Reads by kind: a state entry's key prefix (`event/`), or a trie page's depth (`page@16`).
    let readKinds = Mutex<[String: Int]>([:])
    func countRead(_ key: [UInt8]) {
        reads.add(1, ordering: .relaxed)
        let kind: String
        if key.starts(with: Array("t/".utf8)), key.count >= 4 {
            kind = "page@\(Int(key[2]) << 8 | Int(key[3]))"
        } else if key.starts(with: Array("s/".utf8)) {
            kind = String(decoding: key.dropFirst(2).prefix { $0 != UInt8(ascii: "/") }, as: UTF8.self) + "/"
        } else {
            kind = "other"
        }
        readKinds.withLock { $0[kind, default: 0] += 1 }
    }
    /// Keys and bytes written, by kind: trie pages (`t/`), state entries (`s/`), the rest
    /// (blocks, results, indexes, markers).
    static let kinds = ["pages", "entries", "other"]
    var written: [(keys: Int, bytes: Int)] = [(0, 0), (0, 0), (0, 0)]
    init(_ inner: RocksDBStore) { self.inner = inner }
    func get(_ key: [UInt8]) throws(StoreError) -> [UInt8]? { countRead(key); return try inner.get(key) }
    func scan(_ range: KeyRange, limit: Int, reverse: Bool) throws(StoreError) -> [KeyValuePair] {
        try inner.scan(range, limit: limit, reverse: reverse)
    }
    func write(_ batch: WriteBatch, sync: Bool) throws(StoreError) {
        for operation in batch.operations {
            let (key, bytes): ([UInt8], Int)
            switch operation {
            case .put(let k, let value): (key, bytes) = (k, k.count + value.count)
            case .delete(let k): (key, bytes) = (k, k.count)
            }
            let kind = key.count > 1 && key[1] == UInt8(ascii: "/") ? (key[0] == UInt8(ascii: "t") ? 0 : key[0] == UInt8(ascii: "s") ? 1 : 2) : 2
            written[kind].keys += 1
            written[kind].bytes += bytes
        }
        try inner.write(batch, sync: sync)
    }
    func snapshot() -> any KeyValueSnapshot { CountingSnapshot(inner: inner.snapshot(), store: self) }
}

struct CountingSnapshot: KeyValueSnapshot, @unchecked Sendable {
    let inner: any KeyValueSnapshot
    let store: CountingStore
    func get(_ key: [UInt8]) throws(StoreError) -> [UInt8]? { store.countRead(key); return try inner.get(key) }
    func scan(_ range: KeyRange, limit: Int, reverse: Bool) throws(StoreError) -> [KeyValuePair] {
        try inner.scan(range, limit: limit, reverse: reverse)
    }
}

/// A size field of /proc/self/status (`VmRSS`, `VmHWM`), in MiB.
func statusMiB(_ field: String) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }),
          let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
    return kilobytes / 1_024
}

func residentMiB() -> Int { statusMiB("VmRSS") }

func directoryMiB(_ path: String) -> Int {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
    let bytes = files.reduce(0) { total, name in
        total + ((try? FileManager.default.attributesOfItem(atPath: path + "/" + name)[.size] as? Int) ?? 0)
    }
    return bytes >> 20
}

/// CPU time of the calling thread (RocksDB's background threads and waits for fsync excluded).
func threadCPUNanoseconds() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
}

func nanoseconds(_ duration: Duration) -> Int64 {
    duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
}

// The allocator as `node start` sets it (KC_GROWTH_ALLOCATOR=glibc: glibc's defaults), and the
// node's heap trimmer at the node's default interval (KC_GROWTH_TRIM_MS; 0: none), ADR 0021.
let allocator = environment["KC_GROWTH_ALLOCATOR"] == "glibc" ? Allocator.Applied() : Allocator.configure(cores: Cores.available())
let trimMilliseconds = environment["KC_GROWTH_TRIM_MS"].flatMap { Int($0) } ?? Int(NodeConfig().heapTrimIntervalMilliseconds)
/// Trims so far, their time in all and the longest.
let trims = Mutex<(runs: Int, total: Duration, longest: Duration)>((0, .zero, .zero))
let trimmer = trimMilliseconds > 0 ? HeapTrimmer(intervalMilliseconds: trimMilliseconds, observe: { spent in
    trims.withLock { $0 = ($0.runs + 1, $0.total + spent, max($0.longest, spent)) }
}) : nil
trimmer?.start()

// One validator (a gateway holding 100,000 ACTI) and four users that register as gateways with
// the minimum stake, as `Scripts/bench-network.sh`'s million-events part runs it (or more
// validators, each an attesting gateway).
let genesis = LocalGenesis.devnet(validatorCount: validatorCount, userCount: 4)
let parameters = genesis.parameters
let runtime = Runtime(genesis: genesis)
let validators = (0..<validatorCount).map { DevnetKeys.key(.account, index: $0) }
let validatorConsensus = DevnetKeys.key(.validator, index: 0)
let signers = (0..<validatorCount).map { DevnetKeys.key(.validator, index: $0).publicKey }
let users = (0..<4).map { DevnetKeys.user(index: $0) }

var template = [UInt8]("/tmp/kc-growth-XXXXXX".utf8CString.map { UInt8(bitPattern: $0) })
let directory = template.withUnsafeMutableBufferPointer { buffer in
    String(cString: mkdtemp(UnsafeMutableRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self))!)
}
defer { try? FileManager.default.removeItem(atPath: directory) }
var configuration = RocksDBStore.Configuration()
configuration.blockCacheBytes = blockCacheMiB << 20
configuration.writeBufferBytes = writeBufferMiB << 20
let rocks = try! RocksDBStore(path: directory, configuration: configuration)
let store = CountingStore(rocks)
let queryIndexes = environment["KC_GROWTH_INDEXES"] != "0"
let blocks = BlockStore(store: store, stateCacheBytes: cacheMiB << 20, queryIndexes: queryIndexes)
var state = try! blocks.open(genesis: genesis, runtime: runtime)

var nonces: [PublicKey: UInt64] = [:]
@MainActor func signed(_ key: SigningKey, _ call: Call) -> VerifiedTransaction {
    let nonce = nonces[key.publicKey, default: 0]
    nonces[key.publicKey] = nonce + 1
    let body = TransactionBody(chainID: genesis.chainID, sender: key.publicKey, nonce: nonce, fee: parameters.fees.minFee, call: call)
    return .assumingVerified(body.signed(with: key))
}

var height: UInt64 = 0
var previousBlockID = Hash256.zero
@MainActor func commitBlock(_ transactions: [VerifiedTransaction]) -> (execute: Int64, store: Int64, cpu: Int64, outcome: BlockOutcome) {
    height += 1
    let context = BlockContext(height: height, timeMilliseconds: genesis.genesisTimeUnixMilliseconds + height * blockMilliseconds,
                               lastCommitSigners: signers)
    let cpu0 = threadCPUNanoseconds()
    let t0 = ContinuousClock.now
    let executed = try! runtime.execute(transactions, context: context, on: state)
    let t1 = ContinuousClock.now
    let header = BlockHeader(chainID: genesis.chainID, height: height, timeMilliseconds: context.timeMilliseconds,
                             previousBlockID: previousBlockID, lastCommitHash: .zero, transactionsHash: .zero, evidenceHash: .zero,
                             stateRoot: executed.stateRoot, validatorsHash: .zero, proposer: validatorConsensus.publicKey)
    let block = Block(header: header, transactions: transactions.map(\.transaction), evidence: [], lastCommit: nil)
    try! blocks.commit(block, certificate: CommitCertificate(height: height, round: 0, blockID: block.id, precommits: []),
                       executed: executed, state: &state)
    previousBlockID = block.id
    let t2 = ContinuousClock.now
    return (nanoseconds(t1 - t0), nanoseconds(t2 - t1), threadCPUNanoseconds() - cpu0, executed.outcome)
}

// Block 1: the users bond and register as gateways.
let setup = commitBlock(users.flatMap { [signed($0, .bond(amount: parameters.staking.minGatewayStake)), signed($0, .registerGateway)] })
precondition(setup.outcome.receipts.allSatisfy(\.succeeded), "the users could not register as gateways")

print("state growth: \(targetEvents) events, \(eventsPerBlock) a block, \(validatorCount) attesting validator(s), \(blockMilliseconds) ms of chain time a block, state cache \(cacheMiB) MiB, block cache \(blockCacheMiB) MiB, memtable \(writeBufferMiB) MiB, query indexes \(queryIndexes ? "on" : "off"), heap trim every \(trimMilliseconds) ms, allocator \(allocator)")
print("events | blocks | execute µs/event | store µs/event | thread CPU µs/event | process CPU µs/event | page faults/event | store reads/event | RSS MiB | store MiB | failed")
/// The whole process's resource use so far: CPU of every thread, and minor page faults (fresh
/// pages it touched, each zeroed by the kernel).
func processUsage() -> (cpuNanoseconds: Int64, minorFaults: Int) {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    let cpu = Int64(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1_000_000_000 + Int64(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1_000
    return (cpu, usage.ru_minflt)
}
var usageAtWindow = processUsage()
var events = 0
var recent: [Hash256] = []
var toAttest: [Hash256] = []
var counter: UInt64 = 0
var window = (execute: Int64(0), store: Int64(0), cpu: Int64(0), events: 0, blocks: 0, failed: 0)
var readsAtWindow = store.reads.load(ordering: .relaxed)
var nextReport = targetEvents / 10
while events < targetEvents {
    var transactions: [VerifiedTransaction] = []
    var proposed: [Hash256] = []
    for _ in 0..<eventsPerBlock {
        counter += 1
        let author = users[Int(counter % UInt64(users.count))]
        var parents: [Hash256] = []
        if !recent.isEmpty {
            parents.append(recent[Int(counter % UInt64(recent.count))])
            let second = recent[Int((counter / 3) % UInt64(recent.count))]
            if second != parents[0] { parents.append(second) }
        }
        let seed = Array("\(author.publicKey.hex)/\(counter)".utf8)
        let arTxID = ArTxID(Blake2b.hash256(seed))
        let nonce = nonces[author.publicKey, default: 0]
        transactions.append(signed(author, .proposeEvent(parents: parents, arTxID: arTxID, contentHash: SHA256.hash(seed), kind: "bench.note")))
        proposed.append(EventHeader(author: author.publicKey, nonce: nonce, height: height + 1, parents: parents, arTxID: arTxID,
                                    contentHash: SHA256.hash(seed), kind: "bench.note").id)
    }
    // Each validator's attester: the previous block's events, in transactions of at most 1,900 votes.
    for validator in validators {
        var start = 0
        while start < toAttest.count {
            let end = min(start + 1_900, toAttest.count)
            transactions.append(signed(validator, .attest(votes: toAttest[start..<end].map { AttestationVote(eventID: $0, verdict: .valid) })))
            start = end
        }
    }
    let result = commitBlock(transactions)
    let failed = result.outcome.receipts.filter { !$0.succeeded }
    if let first = failed.first, window.failed == 0 { print("first failure at height \(height): \(first.code) \(first.message)") }
    window.execute += result.execute
    window.store += result.store
    window.cpu += result.cpu
    window.events += eventsPerBlock
    window.blocks += 1
    window.failed += failed.count
    events += eventsPerBlock
    toAttest = proposed
    recent += proposed
    if recent.count > 256 { recent.removeFirst(recent.count - 256) }
    if events >= nextReport {
        let usageNow = processUsage()
        let reads = store.reads.load(ordering: .relaxed)
        let perEvent = { (value: Int64) in value / 1_000 / Int64(max(window.events, 1)) }
        print("\(events) | \(window.blocks) | \(perEvent(window.execute)) | \(perEvent(window.store)) | \(perEvent(window.cpu)) | \(perEvent(usageNow.cpuNanoseconds - usageAtWindow.cpuNanoseconds)) | \(Double((usageNow.minorFaults - usageAtWindow.minorFaults) * 10 / max(window.events, 1)) / 10) | \(Double((reads - readsAtWindow) * 10 / max(window.events, 1)) / 10) | \(residentMiB()) | \(directoryMiB(directory)) | \(window.failed)")
        fflush(nil)
        readsAtWindow = reads
        usageAtWindow = usageNow
        // glibc's own account of its arenas (system bytes against bytes in use), on stderr.
        if let stats = dlsym(nil, "malloc_stats") { unsafeBitCast(stats, to: (@convention(c) () -> Void).self)() }
        let rocksMiB = { (name: String) in (Int(rocks.property("rocksdb." + name) ?? "") ?? 0) >> 20 }
        if trimmer != nil {
            let (runs, total, longest) = trims.withLock { $0 }
            print("   heap trims: \(runs), \(nanoseconds(total) / 1_000_000) ms in all, longest \(nanoseconds(longest) / 1_000) µs")
        }
        print("   memory MiB: memtables \(rocksMiB("cur-size-all-mem-tables")), block cache \(rocksMiB("block-cache-usage")) (pinned \(rocksMiB("block-cache-pinned-usage"))), table readers \(rocksMiB("estimate-table-readers-mem")); state cache \(blocks.stateCache.counts)")
        print("   written per event: " + zip(CountingStore.kinds, store.written).map { "\($0) \(Double($1.keys * 10 / window.events) / 10) keys, \($1.bytes / window.events) bytes" }.joined(separator: "; "))
        let kinds = store.readKinds.withLock { counts in defer { counts = [:] }; return counts }
        print("   reads per event: " + kinds.sorted { $0.value > $1.value }.map { "\($0.key) \(Double($0.value * 100 / window.events) / 100)" }.joined(separator: ", "))
        store.written = [(0, 0), (0, 0), (0, 0)]
        window = (0, 0, 0, 0, 0, 0)
        nextReport += targetEvents / 10
    }
}

// KC_GROWTH_SNAPSHOT=1: a state-sync snapshot of the final state, as a node with
// `storage.snapshot_interval` takes one: its time and the peak RSS while it is taken.
if environment["KC_GROWTH_SNAPSHOT"] == "1" {
    trimmer?.stop()
    Allocator.trim()
    // Writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS.
    try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    let before = residentMiB()
    let started = ContinuousClock.now
    let light = LightBlock(header: try! blocks.block(at: height)!.header,
                           certificate: CommitCertificate(height: height, round: 0, blockID: previousBlockID, precommits: []), nextSets: nil)
    let offer = try! blocks.saveSnapshot(of: state, lightBlock: light, keep: 2)
    let took = nanoseconds(ContinuousClock.now - started) / 1_000_000
    print("snapshot at height \(height): \(offer.chunkHashes.count) chunks in \(took) ms; RSS \(before) MiB before, peak \(statusMiB("VmHWM")) MiB while taking it")
}

// KC_GROWTH_RESTORE=1 (with KC_GROWTH_SNAPSHOT=1): a joining node's restore of that snapshot into
// a new RocksDB store, as state sync runs it (chunks verified, written in order as they come,
// the root checked at the end), then the same chunks rebuilt whole in memory and written in one
// batch, as state sync did before: time and peak RSS of each, the peak reset before each.
if environment["KC_GROWTH_SNAPSHOT"] == "1" && environment["KC_GROWTH_RESTORE"] == "1" {
    let offer = try! blocks.snapshots().first!
    let root = state.root
    func chunk(_ index: Int) -> [UInt8] { try! blocks.chunk(height: offer.height, index: UInt32(index))! }
    func joiningStore() -> (RocksDBStore, String) {
        var template = [UInt8]("/tmp/kc-restore-XXXXXX".utf8CString.map { UInt8(bitPattern: $0) })
        let path = template.withUnsafeMutableBufferPointer { buffer in
            String(cString: mkdtemp(UnsafeMutableRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self))!)
        }
        return (try! RocksDBStore(path: path, configuration: configuration), path)
    }
    func resetPeak() -> Int {
        Allocator.trim()
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
        return residentMiB()
    }
    do {
        let (joining, path) = joiningStore()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let joined = BlockStore(store: joining)
        _ = try! joined.open(genesis: genesis, runtime: runtime)
        let before = resetPeak()
        let started = ContinuousClock.now
        let flushMiB = environment["KC_GROWTH_RESTORE_FLUSH_MB"].flatMap { Int($0) } ?? (SnapshotRestore.defaultFlushBytes >> 20)
        let restore = SnapshotRestore(blocks: joined, runtime: runtime, flushBytes: flushMiB << 20)
        var assembler = SnapshotAssembler(offer: offer, root: root, target: restore)
        for index in 0..<offer.chunkHashes.count { try! assembler.add(UInt32(index), bytes: chunk(index)) }
        try! assembler.finish()
        let took = nanoseconds(ContinuousClock.now - started) / 1_000_000
        print("restore, chunks written as they come (a batch per \(flushMiB) MiB of entries): \(offer.chunkHashes.count) chunks, \(restore.entries) entries in \(took) ms; RSS \(before) MiB before, peak \(statusMiB("VmHWM")) MiB")
    }
    do {
        let (joining, path) = joiningStore()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let before = resetPeak()
        let started = ContinuousClock.now
        var entries: [StoreKey: [UInt8]] = [:]
        for index in 0..<offer.chunkHashes.count {
            for (key, value) in try! SnapshotChunks.decode(chunk(index)) { entries[key] = value }
        }
        let rebuilt = ChainState(entries: entries)
        precondition(rebuilt.root == root)
        var batch = WriteBatch()
        StatePersistence.add(rebuilt, to: &batch)
        try! joining.write(batch, sync: true)
        let took = nanoseconds(ContinuousClock.now - started) / 1_000_000
        print("restore, state rebuilt in memory (before): \(entries.count) entries in \(took) ms; RSS \(before) MiB before, peak \(statusMiB("VmHWM")) MiB")
    }
}

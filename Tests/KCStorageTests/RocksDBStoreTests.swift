import Foundation
import KCStorage
import KCTestSupport
import Synchronization
import Testing


/// The error opening `directory` fails with, or nil if it opened.
func openFailure(_ directory: String) -> StoreError? {
    do {
        _ = try RocksDBStore(path: directory)
        return nil
    } catch {
        return error
    }
}

@Suite(.serialized)
struct RocksDBStoreTests {
    @Test func reopenedStoreKeepsSyncedData() throws {
        let directory = TemporaryDirectory.make(prefix: "kc-rocks-reopen")
        defer { TemporaryDirectory.remove(directory) }
        do {
            let store = try RocksDBStore(path: directory)
            var batch = WriteBatch()
            batch.put(bytes("persisted"), bytes("yes"))
            try store.write(batch, sync: true)
        }
        let reopened = try RocksDBStore(path: directory)
        #expect(try reopened.get(bytes("persisted")) == bytes("yes"))
        #expect(reopened.property("rocksdb.estimate-num-keys") != nil)
    }

    /// The batch kept from write to write carries nothing over: the memtable receives each
    /// batch's operations once, whether the writes come one after another, from four threads
    /// at once, or after a batch too large to keep.
    @Test func eachWriteInsertsOnlyItsOwnOperations() throws {
        let directory = TemporaryDirectory.make(prefix: "kc-rocks-batches")
        defer { TemporaryDirectory.remove(directory) }
        // A memtable larger than the batch too large to keep, so every entry stays in the
        // active one and can be counted there.
        var configuration = RocksDBStore.Configuration()
        configuration.writeBufferBytes = 64 << 20
        let store = try RocksDBStore(path: directory, configuration: configuration)
        func memtableEntries() -> Int { Int(store.property("rocksdb.num-entries-active-mem-table") ?? "") ?? -1 }
        for index in 0..<50 {
            var batch = WriteBatch()
            batch.put(bytes("sequential/\(index)"), bytes("\(index)"))
            batch.put(bytes("sequential/last"), bytes("\(index)"))
            try store.write(batch, sync: false)
        }
        #expect(memtableEntries() == 100)
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { thread in
            for index in 0..<100 {
                var batch = WriteBatch()
                batch.put(bytes("thread\(thread)/\(index)"), bytes("\(thread).\(index)"))
                do { try store.write(batch, sync: false) } catch { failures.withLock { $0.append("\(error)") } }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        #expect(memtableEntries() == 500)
        for thread in 0..<4 {
            #expect(try store.scan(.prefix(bytes("thread\(thread)/"))).count == 100)
        }
        var large = WriteBatch()
        large.put(bytes("large"), [UInt8](repeating: 7, count: 33 << 20))
        try store.write(large, sync: false)
        var small = WriteBatch()
        small.put(bytes("after"), bytes("large"))
        try store.write(small, sync: false)
        #expect(memtableEntries() == 502)
        #expect(try store.get(bytes("after")) == bytes("large"))
        #expect(try store.get(bytes("large"))?.count == 33 << 20)
        #expect(try store.get(bytes("sequential/last")) == bytes("49"))
    }

    @Test func secondOpenIsRefusedAsLocked() throws {
        let directory = TemporaryDirectory.make(prefix: "kc-rocks-lock")
        defer { TemporaryDirectory.remove(directory) }
        let first = try RocksDBStore(path: directory)
        let error = try #require(openFailure(directory), "a second open of a held directory succeeded")
        guard case .locked = error else { Issue.record("expected .locked, got \(error)"); return }
        #expect(error.description.contains("in use by another process"))
        _ = first
    }

    @Test func directoryHeldByAnotherProcessIsRefused() throws {
        let directory = TemporaryDirectory.make(prefix: "kc-rocks-lock-process")
        defer { TemporaryDirectory.remove(directory) }
        let child = try CrashWriterProcess(directory: directory, start: 0)
        defer { child.kill() }
        try child.waitForReady()
        let error = try #require(openFailure(directory), "opened a directory another process holds")
        guard case .locked = error else { Issue.record("expected .locked, got \(error)"); return }
    }

    @Test func damagedDirectoryIsReportedAsDamaged() throws {
        let directory = TemporaryDirectory.make(prefix: "kc-rocks-damaged")
        defer { TemporaryDirectory.remove(directory) }
        do {
            let store = try RocksDBStore(path: directory)
            var batch = WriteBatch()
            batch.put(bytes("k"), bytes("v"))
            try store.write(batch, sync: true)
        }
        // CURRENT names the live manifest; point it at garbage.
        try "MANIFEST-999999\n".write(toFile: directory + "/CURRENT", atomically: false, encoding: .utf8)
        let error = try #require(openFailure(directory), "a damaged directory opened")
        guard case .damaged = error else { Issue.record("expected .damaged, got \(error)"); return }
        #expect(error.description.contains("damaged"))
    }

    @Test func corruptManifestIsReportedAsDamaged() throws {
        let directory = TemporaryDirectory.make(prefix: "kc-rocks-manifest")
        defer { TemporaryDirectory.remove(directory) }
        do {
            let store = try RocksDBStore(path: directory)
            var batch = WriteBatch()
            batch.put(bytes("k"), bytes("v"))
            try store.write(batch, sync: true)
        }
        let current = try String(contentsOfFile: directory + "/CURRENT", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let manifest = directory + "/" + current
        var contents = try Data(contentsOf: URL(fileURLWithPath: manifest))
        for index in stride(from: 0, to: contents.count, by: 3) { contents[index] ^= 0x5a }
        try contents.write(to: URL(fileURLWithPath: manifest))
        #expect(openFailure(directory) != nil, "a directory with a corrupt manifest opened")
    }

    /// A child process writes numbered batches and is killed with SIGKILL at a random moment,
    /// over and over. After each kill every batch is wholly present or wholly absent, the present
    /// ones are a prefix 0..<n, and every batch reported as synced is there.
    @Test func batchesSurviveSIGKILLWhollyOrNotAtAll() throws {
        let directory = TemporaryDirectory.make(prefix: "kc-rocks-crash")
        defer { TemporaryDirectory.remove(directory) }
        let keysPerBatch = 50
        var generator = SystemRandomNumberGenerator()
        var nextBatch: UInt64 = 0
        var kills = 0
        for round in 0..<22 {
            let child = try CrashWriterProcess(directory: directory, start: nextBatch, keysPerBatch: keysPerBatch)
            try child.waitForReady()
            usleep(UInt32.random(in: 20_000...150_000, using: &generator))
            child.kill()
            let lastSynced = child.lastSyncedBatch()
            kills += 1

            // Batches before the previous round's last one were checked already and nobody
            // writes them again; the final full check below covers them once more.
            let checkFrom = nextBatch == 0 ? 0 : nextBatch - 1
            let store = try RocksDBStore(path: directory)
            let end = try Self.checkBatches(store, from: checkFrom, keysPerBatch: keysPerBatch, round: round)
            if let lastSynced {
                #expect(end > lastSynced, "round \(round): synced batch \(lastSynced) was lost")
            }
            #expect(end >= nextBatch, "round \(round): batches from earlier rounds vanished")
            nextBatch = end
        }
        let store = try RocksDBStore(path: directory)
        #expect(try Self.checkBatches(store, from: 0, keysPerBatch: keysPerBatch, round: -1) == nextBatch)
        #expect(kills >= 20)
        #expect(nextBatch > 0, "the writer never wrote a batch")
        print("crash test: \(kills) kills, \(nextBatch) batches survived")
    }
}

extension RocksDBStoreTests {
    /// Checks the batches numbered `from` and up: each wholly present with the right values,
    /// present ones consecutive. Returns one past the last present batch.
    static func checkBatches(_ store: RocksDBStore, from: UInt64, keysPerBatch: Int, round: Int) throws -> UInt64 {
        var counts: [UInt64: Int] = [:]
        let range = KeyRange(lower: CrashBatchLayout.key(batch: from, index: 0),
                             upper: KeyRange.prefix(CrashBatchLayout.prefix).upper)
        for pair in try store.scan(range) {
            let parsed = try #require(CrashBatchLayout.parse(pair.key))
            #expect(pair.value == CrashBatchLayout.value(batch: parsed.batch, index: parsed.index))
            counts[parsed.batch, default: 0] += 1
        }
        let present = counts.keys.sorted()
        for batch in present {
            #expect(counts[batch] == keysPerBatch, "round \(round): batch \(batch) is partially present")
        }
        let expected = Array(from..<(from + UInt64(present.count)))
        #expect(present == expected, "round \(round): present batches are not consecutive from \(from)")
        return from + UInt64(present.count)
    }
}

/// `node debug-store-writer` as a child process: it prints "ready", then "synced N" after
/// each synced batch.
final class CrashWriterProcess {
    let child: ChildProcess

    init(directory: String, start: UInt64, keysPerBatch: Int = 50) throws {
        child = try ChildProcess(["debug-store-writer", "--dir", directory, "--start", String(start),
                                  "--keys-per-batch", String(keysPerBatch)], discardStandardError: true)
    }

    func waitForReady() throws {
        guard child.wait(seconds: 20, until: { child.lines.contains("ready") }) else {
            throw CrashWriterError(message: "writer did not start: \(child.text)")
        }
    }

    func kill() { child.stop(signal: SIGKILL) }

    /// The highest batch number the child reported as synced (only complete lines count).
    func lastSyncedBatch() -> UInt64? {
        child.lines.compactMap { line in line.hasPrefix("synced ") ? UInt64(line.dropFirst(7)) : nil }.max()
    }
}

struct CrashWriterError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

import ArgumentParser
import KCStorage

/// Test helper for the storage crash test: writes numbered batches until killed.
/// Batch i holds `keys-per-batch` keys `crash/<i as 8 bytes big-endian>/<j>`; every batch whose
/// number is a multiple of 3 is written with sync, and "synced i" is printed once it is durable.
struct StoreCrashWriterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug-store-writer",
        abstract: "Write numbered batches to a RocksDB directory until killed (crash-test helper).",
        shouldDisplay: false
    )

    @Option(name: .long, help: "RocksDB directory.")
    var dir: String

    @Option(name: .long, help: "First batch number.")
    var start: UInt64 = 0

    @Option(name: .long, help: "Keys per batch.")
    var keysPerBatch: Int = 50

    @Option(name: .long, help: "Stop after this many batches (the test kills the process long before).")
    var maxBatches: UInt64 = 10_000_000

    func run() throws {
        let store: RocksDBStore
        do { store = try RocksDBStore(path: dir) } catch {
            printError("error: \(error.description)")
            throw ExitCode.failure
        }
        print("ready")
        flushStandardOutput()
        var number = start
        while number < start &+ maxBatches {
            var batch = WriteBatch()
            for index in 0..<keysPerBatch {
                batch.put(CrashBatchLayout.key(batch: number, index: index), CrashBatchLayout.value(batch: number, index: index))
            }
            let sync = number % 3 == 0
            try store.write(batch, sync: sync)
            if sync {
                print("synced \(number)")
                flushStandardOutput()
            }
            number += 1
        }
    }
}

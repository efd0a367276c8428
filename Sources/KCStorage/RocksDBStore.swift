import CRocksDB
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The node's embedded store: RocksDB through its C API.
///
/// RocksDB holds a `LOCK` file in the data directory for as long as the database is open, so
/// a second process (or a second handle in this one) is refused with `StoreError.locked`.
/// The database closes when the last reference to the store and its snapshots goes away.
public final class RocksDBStore: KeyValueStore, @unchecked Sendable {
    // @unchecked: RocksDB's handle is thread-safe for concurrent reads and writes; the
    // option objects below are created once and only read afterwards; `spare` is used only
    // by the write that claimed `spareInUse`.
    public let path: String
    private let database: OpaquePointer
    private let options: OpaquePointer
    private let readOptions: OpaquePointer
    private let syncWrite: OpaquePointer
    private let asyncWrite: OpaquePointer
    /// One RocksDB batch kept from write to write, cleared with its buffer kept: a block's batch
    /// (several MiB) otherwise grows by doubling again at every height, copying itself and
    /// touching fresh pages each time. A write that finds it in use builds its own.
    private var spare: OpaquePointer
    private let spareInUse = Atomic<Bool>(false)
    /// A spare that held more than this is replaced, so one huge batch does not pin its buffer.
    static let spareKeepBytes = 32 << 20

    public struct Configuration: Sendable {
        /// Create the database if the directory holds none.
        public var createIfMissing = true
        /// Block cache for reads (data, index and filter blocks), in bytes.
        public var blockCacheBytes = 64 << 20
        /// Background threads for flushes and compactions.
        public var backgroundThreads: Int32 = 2
        /// Memtable size before a flush (up to two are held: one filling, one flushing).
        public var writeBufferBytes = 32 << 20
        public init() {}
    }

    public init(path: String, configuration: Configuration = Configuration()) throws(StoreError) {
        self.path = path
        let options = rocksdb_options_create()!
        rocksdb_options_set_create_if_missing(options, configuration.createIfMissing ? 1 : 0)
        // Check checksums aggressively: a damaged directory must fail to open, not return garbage.
        rocksdb_options_set_paranoid_checks(options, 1)
        rocksdb_options_increase_parallelism(options, configuration.backgroundThreads)
        rocksdb_options_set_write_buffer_size(options, configuration.writeBufferBytes)
        rocksdb_options_set_compression(options, Int32(rocksdb_lz4_compression))
        let tableOptions = rocksdb_block_based_options_create()!
        let cache = rocksdb_cache_create_lru(configuration.blockCacheBytes)!
        rocksdb_block_based_options_set_block_cache(tableOptions, cache)
        // Index and filter blocks live in the block cache, so the store's memory stays within
        // its budget however large the data grows (by default they sit outside it, one set
        // per table file). The filter answers most reads of absent keys (new events, new
        // votes) without reading a data block.
        rocksdb_block_based_options_set_cache_index_and_filter_blocks(tableOptions, 1)
        rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(tableOptions, 1)
        rocksdb_block_based_options_set_filter_policy(tableOptions, rocksdb_filterpolicy_create_bloom_full(10))  // owned by the options
        rocksdb_options_set_block_based_table_factory(options, tableOptions)
        rocksdb_cache_destroy(cache)  // the table options keep their own reference
        rocksdb_block_based_options_destroy(tableOptions)

        // A directory that already holds a database but will not open is damaged, whatever
        // RocksDB's wording (a missing manifest reads as a plain I/O error).
        let holdsDatabase = access(path + "/CURRENT", F_OK) == 0
        var error: UnsafeMutablePointer<CChar>?
        let handle = rocksdb_open(options, path, &error)
        if let message = RocksDBStore.take(error) {
            rocksdb_options_destroy(options)
            throw RocksDBStore.classify(path: path, message: message, holdsDatabase: holdsDatabase)
        }
        guard let handle else {
            rocksdb_options_destroy(options)
            throw .io(path: path, detail: "rocksdb_open returned no handle")
        }
        self.database = handle
        self.options = options
        self.readOptions = rocksdb_readoptions_create()!
        rocksdb_readoptions_set_verify_checksums(readOptions, 1)
        self.syncWrite = rocksdb_writeoptions_create()!
        rocksdb_writeoptions_set_sync(syncWrite, 1)
        self.asyncWrite = rocksdb_writeoptions_create()!
        rocksdb_writeoptions_set_sync(asyncWrite, 0)
        self.spare = rocksdb_writebatch_create()!
    }

    deinit {
        rocksdb_writebatch_destroy(spare)
        rocksdb_close(database)
        rocksdb_options_destroy(options)
        rocksdb_readoptions_destroy(readOptions)
        rocksdb_writeoptions_destroy(syncWrite)
        rocksdb_writeoptions_destroy(asyncWrite)
    }

    public func get(_ key: [UInt8]) throws(StoreError) -> [UInt8]? {
        try RocksDBStore.get(database: database, readOptions: readOptions, key: key, path: path)
    }

    public func scan(_ range: KeyRange, limit: Int, reverse: Bool) throws(StoreError) -> [KeyValuePair] {
        try RocksDBStore.scan(database: database, readOptions: readOptions, range: range,
                              limit: limit, reverse: reverse, path: path)
    }

    public func write(_ batch: WriteBatch, sync: Bool) throws(StoreError) {
        let claimed = spareInUse.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
        let rocksBatch = claimed ? spare : rocksdb_writebatch_create()!
        defer {
            if claimed {
                var size = 0
                _ = rocksdb_writebatch_data(spare, &size)
                if size > Self.spareKeepBytes {
                    rocksdb_writebatch_destroy(spare)
                    spare = rocksdb_writebatch_create()!
                } else {
                    rocksdb_writebatch_clear(spare)
                }
                spareInUse.store(false, ordering: .releasing)
            } else {
                rocksdb_writebatch_destroy(rocksBatch)
            }
        }
        // Handed to RocksDB in key order: the memtable's skip list remembers where its last
        // insert went, so ascending keys start their search nearby (measured: about 5% off
        // the write of a 3,500-key block). Ties keep their batch order, so a later operation
        // on a key still wins.
        for index in batch.keyOrder() {
            switch batch.operations[index] {
            case .put(let key, let value):
                key.withUnsafeBufferPointer { keyBuffer in
                    value.withUnsafeBufferPointer { valueBuffer in
                        keyBuffer.withMemoryRebound(to: CChar.self) { keyChars in
                            valueBuffer.withMemoryRebound(to: CChar.self) { valueChars in
                                rocksdb_writebatch_put(rocksBatch, keyChars.baseAddress, keyChars.count,
                                                       valueChars.baseAddress, valueChars.count)
                            }
                        }
                    }
                }
            case .delete(let key):
                key.withUnsafeBufferPointer { keyBuffer in
                    keyBuffer.withMemoryRebound(to: CChar.self) { keyChars in
                        rocksdb_writebatch_delete(rocksBatch, keyChars.baseAddress, keyChars.count)
                    }
                }
            }
        }
        var error: UnsafeMutablePointer<CChar>?
        rocksdb_write(database, sync ? syncWrite : asyncWrite, rocksBatch, &error)
        if let message = RocksDBStore.take(error) { throw .io(path: path, detail: message) }
    }

    public func snapshot() -> any KeyValueSnapshot {
        RocksDBSnapshot(store: self, database: database)
    }

    /// A RocksDB property (for example `rocksdb.estimate-num-keys`) for metrics.
    public func property(_ name: String) -> String? {
        guard let value = rocksdb_property_value(database, name) else { return nil }
        defer { rocksdb_free(value) }
        return String(cString: value)
    }

    // MARK: shared by the store and its snapshots

    static func take(_ error: UnsafeMutablePointer<CChar>?) -> String? {
        guard let error else { return nil }
        defer { rocksdb_free(error) }
        return String(cString: error)
    }

    static func classify(path: String, message: String, holdsDatabase: Bool) -> StoreError {
        let lowered = message.lowercased()
        if lowered.contains("lock") { return .locked(path: path, detail: message) }
        if holdsDatabase || lowered.contains("corruption") || lowered.contains("checksum") {
            return .damaged(path: path, detail: message)
        }
        return .io(path: path, detail: message)
    }

    static func get(database: OpaquePointer, readOptions: OpaquePointer, key: [UInt8], path: String) throws(StoreError) -> [UInt8]? {
        var error: UnsafeMutablePointer<CChar>?
        var length = 0
        let value = key.withUnsafeBufferPointer { keyBuffer in
            keyBuffer.withMemoryRebound(to: CChar.self) { keyChars in
                rocksdb_get(database, readOptions, keyChars.baseAddress, keyChars.count, &length, &error)
            }
        }
        if let message = take(error) { throw classifyRead(path: path, message: message) }
        guard let value else { return nil }
        defer { rocksdb_free(value) }
        return Array(UnsafeRawBufferPointer(start: value, count: length))
    }

    static func classifyRead(path: String, message: String) -> StoreError {
        message.lowercased().contains("corruption") ? .damaged(path: path, detail: message) : .io(path: path, detail: message)
    }

    static func scan(database: OpaquePointer, readOptions: OpaquePointer, range: KeyRange,
                     limit: Int, reverse: Bool, path: String) throws(StoreError) -> [KeyValuePair] {
        guard limit > 0 else { return [] }
        let iterator = rocksdb_create_iterator(database, readOptions)!
        defer { rocksdb_iter_destroy(iterator) }

        func currentKey() -> [UInt8] {
            var length = 0
            let pointer = rocksdb_iter_key(iterator, &length)!
            return Array(UnsafeRawBufferPointer(start: pointer, count: length))
        }
        func currentValue() -> [UInt8] {
            var length = 0
            let pointer = rocksdb_iter_value(iterator, &length)
            return pointer.map { Array(UnsafeRawBufferPointer(start: $0, count: length)) } ?? []
        }
        func seek(_ key: [UInt8], forPrevious: Bool) {
            key.withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { chars in
                    if forPrevious {
                        rocksdb_iter_seek_for_prev(iterator, chars.baseAddress, chars.count)
                    } else {
                        rocksdb_iter_seek(iterator, chars.baseAddress, chars.count)
                    }
                }
            }
        }

        var result: [KeyValuePair] = []
        if reverse {
            if let upper = range.upper {
                seek(upper, forPrevious: true)
                // seek_for_prev lands on a key <= upper; the range excludes upper itself.
                if rocksdb_iter_valid(iterator) != 0 && currentKey() == upper { rocksdb_iter_prev(iterator) }
            } else {
                rocksdb_iter_seek_to_last(iterator)
            }
            while rocksdb_iter_valid(iterator) != 0 && result.count < limit {
                let key = currentKey()
                guard !key.lexicographicallyPrecedes(range.lower) else { break }
                result.append(KeyValuePair(key: key, value: currentValue()))
                rocksdb_iter_prev(iterator)
            }
        } else {
            seek(range.lower, forPrevious: false)
            while rocksdb_iter_valid(iterator) != 0 && result.count < limit {
                let key = currentKey()
                if let upper = range.upper, !key.lexicographicallyPrecedes(upper) { break }
                result.append(KeyValuePair(key: key, value: currentValue()))
                rocksdb_iter_next(iterator)
            }
        }
        var error: UnsafeMutablePointer<CChar>?
        rocksdb_iter_get_error(iterator, &error)
        if let message = take(error) { throw classifyRead(path: path, message: message) }
        return result
    }
}

/// A RocksDB snapshot; it keeps its store open for as long as it lives.
final class RocksDBSnapshot: KeyValueSnapshot, @unchecked Sendable {
    private let store: RocksDBStore
    private let database: OpaquePointer
    private let snapshot: OpaquePointer
    private let readOptions: OpaquePointer

    init(store: RocksDBStore, database: OpaquePointer) {
        self.store = store
        self.database = database
        self.snapshot = rocksdb_create_snapshot(database)!
        self.readOptions = rocksdb_readoptions_create()!
        rocksdb_readoptions_set_snapshot(readOptions, snapshot)
        rocksdb_readoptions_set_verify_checksums(readOptions, 1)
    }

    deinit {
        rocksdb_readoptions_destroy(readOptions)
        rocksdb_release_snapshot(database, snapshot)
    }

    func get(_ key: [UInt8]) throws(StoreError) -> [UInt8]? {
        try RocksDBStore.get(database: database, readOptions: readOptions, key: key, path: store.path)
    }

    func scan(_ range: KeyRange, limit: Int, reverse: Bool) throws(StoreError) -> [KeyValuePair] {
        try RocksDBStore.scan(database: database, readOptions: readOptions, range: range,
                              limit: limit, reverse: reverse, path: store.path)
    }
}

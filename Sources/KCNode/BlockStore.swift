import KCCodec
import KCConsensus
import KCCrypto
import KCNetwork
import KCRuntime
import KCStorage
import KCTypes

/// Decided blocks, their commit certificates and the state they produce, in the node's store.
///
/// A block, its certificate, its state changes, its index writes and the new height marker
/// are one synced write batch: after a crash at any point either all of a height is there or
/// none of it, so block and state can never disagree (specs/storage.md).
public final class BlockStore: Sendable {
    public let store: any KeyValueStore
    static let heightKey: [UInt8] = Array("m/height".utf8)
    static let genesisKey: [UInt8] = Array("m/genesis-hash".utf8)
    static let formatKey: [UInt8] = Array("m/format".utf8)
    static let baseKey: [UInt8] = Array("m/base".utf8)
    /// Present once the store has stopped keeping the query indexes: the first height stored
    /// without them (ADR 0027).
    public static let indexesOffKey: [UInt8] = Array("m/indexes-off".utf8)
    /// The layout of the store (specs/storage.md). 1: before this marker existed; 2: the
    /// author and kind indexes grouped per block; 3: the fixed electorate, votes under their
    /// own keys, paged registries and the dispute rounds (ADR 0011); 4: the state trie's nodes
    /// stored under `t/` (ADR 0018); 5: an event's first votes held in its record (ADR 0019);
    /// 6: attestation entries hold only pending events, and a record names its entry and
    /// whether children wait on it (ADR 0029); 7: no index of pending events (the attestation
    /// queue lists them) and the final statuses' index grouped per block (ADR 0030); 8: trie
    /// pages store their top three levels' branches without hashes (ADR 0031).
    /// A node opens its own format only: older event records lack fields this format's rules
    /// read (their state roots are not this chain's), a format-6 status index would list events
    /// this format no longer moves, and formats before 4 could only be moved to 4. Format 7 is
    /// the exception (`readableFormat`).
    public static let format: UInt32 = 8
    /// The one older format opened (and moved to `format` at its first open): its pages store
    /// every branch with its hashes, which this format still reads (ADR 0031).
    public static let readableFormat: UInt32 = 7
    /// The default budget of the state cache.
    public static let defaultStateCacheBytes = NodeConfig().stateCacheMiB << 20

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case storage(StoreError)
        case corrupt(String)
        case wrongChain(stored: Hash256, expected: Hash256)
        case outOfOrder(expected: UInt64, found: UInt64)
        case unsupportedFormat(found: UInt32, expected: UInt32)
        case indexesIncomplete(since: UInt64)

        public var description: String {
            switch self {
            case .storage(let error): return error.description
            case .corrupt(let what): return "the data directory is damaged: \(what)"
            case .wrongChain(let stored, let expected):
                return "the data directory belongs to the chain with genesis \(stored.hex.prefix(12))…, not \(expected.hex.prefix(12))…; use another home or reset this one"
            case .outOfOrder(let expected, let found): return "block \(found) cannot be stored before block \(expected)"
            case .unsupportedFormat(let found, let expected):
                return "the data directory has store format \(found) and this node reads format \(expected); there is no migration between them: move the data directory aside and let the node sync from its peers"
            case .indexesIncomplete(let since):
                return "the data directory has kept no query indexes since height \(since) (storage.indexes = false), so they cannot be turned on over the gap: keep storage.indexes = false, or rebuild them from the node's own blocks (`node reindex`, on a store that holds every block from genesis), or drop the chain data (`node unsafe-reset-all`) and sync again"
            }
        }
    }

    /// The newest stored state's hot entries and trie nodes. Every write of state goes through
    /// this store's methods, which advance it.
    public let stateCache: StateCache

    /// Whether blocks are stored with the query indexes (`storage.indexes`). Without them the
    /// pending events are still listed: the attestation queue in the state holds them.
    public let queryIndexes: Bool

    public init(store: any KeyValueStore, stateCacheBytes: Int = BlockStore.defaultStateCacheBytes, queryIndexes: Bool = true) {
        self.store = store
        stateCache = StateCache(budgetBytes: stateCacheBytes)
        self.queryIndexes = queryIndexes
    }

    /// The state the store holds now, read through the cache.
    public func storedState() -> ChainState { ChainState(source: stateSource()) }

    func stateSource() -> StoredStateSource {
        StoredStateSource(snapshot: store.snapshot(), cache: stateCache, version: stateCache.version)
    }

    static func key(_ prefix: String, _ height: UInt64) -> [UInt8] {
        var key = Array(prefix.utf8)
        ByteOrder.appendBigEndian(height, to: &key)
        return key
    }

    /// The events in each status (indexed by raw value): the pending ones from the attestation
    /// queue, the others from the `ix/status/` index, counted a page at a time (a chain with a
    /// million final events would otherwise hold every index key in memory at once). Without
    /// the query indexes only the pending events are counted.
    public func eventCountsByStatus() throws(StoreError) -> [UInt64] {
        var counts = [UInt64](repeating: 0, count: EventStatus.allCases.count)
        counts[Int(EventStatus.pending.rawValue)] = try PendingEvents.count(in: store)
        for status in EventStatus.allCases where queryIndexes && status != .pending {
            try StatePersistence.forEach(in: store, prefix: NodeIndexKey.statusPrefix(status)) { _, value in
                counts[Int(status.rawValue)] += NodeIndexKey.isGroupedPerBlock(status) ? UInt64(value.count / 32) : 1
            }
        }
        return counts
    }

    /// The height from which the store has kept no query indexes (nil: it has kept them all).
    public func indexesOffSince() throws(Failure) -> UInt64? { try Self.indexesOffSince(in: store) }

    /// The same, read from `reader` (a snapshot of a node's store).
    public static func indexesOffSince(in reader: any KeyValueReader) throws(Failure) -> UInt64? {
        let bytes: [UInt8]?
        do { bytes = try reader.get(Self.indexesOffKey) } catch { throw .storage(error) }
        guard let bytes else { return nil }
        do { return try UInt64.decode(exactly: bytes) } catch { throw .corrupt("the index marker: \(error)") }
    }

    /// Refuses to turn the indexes on over a gap; records where they stop when turned off.
    private func checkIndexMode() throws(Failure) {
        let offSince = try indexesOffSince()
        if queryIndexes, let offSince { throw .indexesIncomplete(since: offSince) }
        if !queryIndexes && offSince == nil {
            var batch = WriteBatch()
            batch.put(Self.indexesOffKey, (try height() + 1).canonicalBytes)
            do { try store.write(batch, sync: true) } catch { throw .storage(error) }
        }
    }

    /// The last stored height (0: only genesis).
    public func height() throws(Failure) -> UInt64 {
        let bytes: [UInt8]?
        do { bytes = try store.get(Self.heightKey) } catch { throw .storage(error) }
        guard let bytes else { return 0 }
        do { return try UInt64.decode(exactly: bytes) } catch { throw .corrupt("the height marker: \(error)") }
    }

    /// Opens the chain: writes the genesis state on first use, refuses a store that belongs to
    /// another genesis, and returns the state at the stored height.
    public func open(genesis: Genesis, runtime: Runtime) throws(Failure) -> ChainState {
        let stored: [UInt8]?
        do { stored = try store.get(Self.genesisKey) } catch { throw .storage(error) }
        if let stored {
            guard stored.count == 32 else { throw .corrupt("the genesis hash marker") }
            guard stored == genesis.hash.bytes else { throw .wrongChain(stored: Hash256(stored), expected: genesis.hash) }
            let formatBytes: [UInt8]?
            do { formatBytes = try store.get(Self.formatKey) } catch { throw .storage(error) }
            var format: UInt32 = 1  // written before the marker existed
            if let formatBytes {
                do { format = try UInt32.decode(exactly: formatBytes) } catch { throw .corrupt("the store format marker: \(error)") }
            }
            guard format == Self.format || format == Self.readableFormat else {
                throw .unsupportedFormat(found: format, expected: Self.format)
            }
            try checkIndexMode()
            if format == Self.readableFormat {
                // Format 7's pages are read as they are and rewritten in this format's form when a
                // block changes them: the marker moves forward before anything is written (an open
                // refused above leaves the store as it was), and an older node then refuses it.
                var batch = WriteBatch()
                batch.put(Self.formatKey, Self.format.canonicalBytes)
                do { try store.write(batch, sync: true) } catch { throw .storage(error) }
            }
            do {
                // Stopped during state sync: the restore starts over from the genesis state.
                if try isRestoring() { try resetToGenesisState(runtime.genesisState()) }
            } catch {
                throw .storage(error)
            }
            stateCache.advanceClearing()
            let state = storedState()
            let height = try height()
            guard state.global.height == height else {
                throw .corrupt("the state is at height \(state.global.height) but the block store at \(height)")
            }
            return state
        }
        let state = runtime.genesisState()
        var batch = WriteBatch()
        StatePersistence.add(state, to: &batch)
        batch.put(Self.genesisKey, genesis.hash.bytes)
        batch.put(Self.formatKey, Self.format.canonicalBytes)
        batch.put(Self.heightKey, UInt64(0).canonicalBytes)
        if !queryIndexes { batch.put(Self.indexesOffKey, UInt64(1).canonicalBytes) }
        do { try store.write(batch, sync: true) } catch { throw .storage(error) }
        stateCache.advanceClearing()
        return storedState()
    }

    /// Stores a decided block with everything it produced, in one synced batch.
    /// `sync: false` is for a run of blocks whose last is synced: rebuilding a store offline
    /// (ChainReplay), and block sync within a run of fetched blocks.
    /// `change`: the light block to keep when the validator set changes after this block
    /// (`LightClient.changeRecord`), written in the same batch.
    public func commit(_ block: Block, certificate: CommitCertificate, executed: ExecutedBlock, change: LightBlock? = nil,
                       sync: Bool = true) throws(Failure) {
        let height = block.header.height
        let expected = try self.height() + 1
        guard height == expected else { throw .outOfOrder(expected: expected, found: height) }
        precondition(certificate.height == height && certificate.blockID == block.id, "certificate of another block")
        var batch = WriteBatch()
        batch.put(Self.key("b/", height), block.canonicalBytes)
        batch.put(Self.key("c/", height), certificate.canonicalBytes)
        let outcome = executed.outcome
        batch.put(Self.key("r/", height), BlockResults(outcome).canonicalBytes)
        if queryIndexes {
            for (index, receipt) in outcome.receipts.enumerated() {
                batch.put(NodeIndexKey.transaction(receipt.transactionHash), TransactionLocation(height: height, index: UInt32(index)).canonicalBytes)
            }
        }
        if queryIndexes { Self.addStatusIndex(outcome.eventChanges, height: height, to: &batch) }
        if let change {
            precondition(change.header.id == block.id, "light block of another block")
            batch.put(Self.key("lb/", height), change.canonicalBytes)
        }
        // The pages the block's node writes change, read from the stored state it was executed on.
        let base = stateSource()
        precondition(ChainState(source: base).root == executed.baseRoot, "storing a block executed against another state")
        let pages = TriePage.changes(executed.trieWrites) { base.page($0) }
        StatePersistence.add(executed, pages: pages, indexes: queryIndexes, to: &batch)
        batch.put(Self.heightKey, height.canonicalBytes)
        do { try store.write(batch, sync: sync) } catch { throw .storage(error) }
        stateCache.advance(storing: executed, pages: pages)
    }

    /// Makes every earlier write durable: one synced batch that writes `m/height` as it
    /// stands (the store's log is sequential, so its sync covers what came before). For a run
    /// of unsynced commits that ended before its last block.
    public func syncWrites() throws(Failure) {
        var batch = WriteBatch()
        batch.put(Self.heightKey, try height().canonicalBytes)
        do { try store.write(batch, sync: true) } catch { throw .storage(error) }
    }

    /// The status index's writes for a block's status changes (ADR 0030): an accepted or
    /// disputed event has a key while it stays so; the events that reached a final status are
    /// grouped into one key per status; pending events are not indexed (the attestation queue
    /// lists them).
    static func addStatusIndex(_ changes: [EventStatusChange], height: UInt64, to batch: inout WriteBatch) {
        var reachedFinal: [(EventStatus, Hash256)] = []
        for change in changes {
            if let from = change.from, NodeIndexKey.isKeyedByEvent(from) { batch.delete(NodeIndexKey.status(from, event: change.eventID)) }
            if NodeIndexKey.isKeyedByEvent(change.to) {
                batch.put(NodeIndexKey.status(change.to, event: change.eventID), [])
            } else if NodeIndexKey.isGroupedPerBlock(change.to) {
                reachedFinal.append((change.to, change.eventID))
            }
        }
        for (key, value) in EventIndexKey.grouped(reachedFinal, key: { NodeIndexKey.statusGroup($0, height: height) }) {
            batch.put(key, value)
        }
    }

    /// Stores a decided block (`commit`) and moves `state`, the state it was executed on, onto
    /// the store's new version.
    public func commit(_ block: Block, certificate: CommitCertificate, executed: ExecutedBlock, change: LightBlock? = nil,
                       sync: Bool = true, state: inout ChainState) throws(Failure) {
        try commit(block, certificate: certificate, executed: executed, change: change, sync: sync)
        state.commit(executed, storedIn: stateSource())
    }

    /// What the next block is checked against: the state, the last block with its certificate,
    /// and the validator sets that signed it and sign the next height.
    public func tip(for state: ChainState) throws(Failure) -> BlockFactory.Tip {
        let height = state.global.height
        let sets = state.validatorSets()
        var previous: (header: BlockHeader, certificate: CommitCertificate)? = nil
        if height > 0 {
            if let block = try block(at: height), let certificate = try certificate(at: height) {
                previous = (block.header, certificate)
            } else if let restored = try restoredLightBlock(), restored.header.height == height {
                previous = (restored.header, restored.certificate)  // the height state sync started from
            } else {
                throw .corrupt("block \(height) or its certificate is missing")
            }
        }
        return BlockFactory.Tip(state: state, previous: previous,
                                previousValidators: height == 0 ? nil : ValidatorSet(sets.previous),
                                validators: ValidatorSet(sets.current))
    }

    /// The lowest height whose block, certificate and results are kept (1 unless pruned).
    public func base() throws(Failure) -> UInt64 {
        let bytes: [UInt8]?
        do { bytes = try store.get(Self.baseKey) } catch { throw .storage(error) }
        guard let bytes else { return 1 }
        do { return try UInt64.decode(exactly: bytes) } catch { throw .corrupt("the base marker: \(error)") }
    }

    /// Deletes the blocks, certificates and results of the heights from the base up to (not
    /// including) `below`, at most `limit` heights per call, and moves the base: one unsynced
    /// batch (a crash loses a pruning step, which the next one redoes). The transaction index
    /// is kept, so a pruned transaction is still located and answered as pruned. Returns the
    /// new base. Never prunes the last stored height (the next block's checks need it).
    @discardableResult
    public func prune(below: UInt64, limit: UInt64) throws(Failure) -> UInt64 {
        let base = try base()
        let top = min(below, try height(), base &+ limit)
        guard top > base else { return base }
        var batch = WriteBatch()
        for height in base..<top {
            batch.delete(Self.key("b/", height))
            batch.delete(Self.key("c/", height))
            batch.delete(Self.key("r/", height))
        }
        batch.put(Self.baseKey, top.canonicalBytes)
        do { try store.write(batch, sync: false) } catch { throw .storage(error) }
        return top
    }

    public func block(at height: UInt64) throws(Failure) -> Block? {
        try read(Block.self, Self.key("b/", height), what: "block \(height)")
    }

    public func certificate(at height: UInt64) throws(Failure) -> CommitCertificate? {
        try read(CommitCertificate.self, Self.key("c/", height), what: "commit certificate \(height)")
    }

    public func results(at height: UInt64) throws(Failure) -> BlockResults? {
        try read(BlockResults.self, Self.key("r/", height), what: "block results \(height)")
    }

    public func location(of transaction: Hash256) throws(Failure) -> TransactionLocation? {
        try read(TransactionLocation.self, NodeIndexKey.transaction(transaction), what: "transaction location")
    }

    private func read<T: CanonicalDecodable>(_ type: T.Type, _ key: [UInt8], what: String) throws(Failure) -> T? {
        let bytes: [UInt8]?
        do { bytes = try store.get(key) } catch { throw .storage(error) }
        guard let bytes else { return nil }
        do { return try T.decode(exactly: bytes) } catch { throw .corrupt("\(what): \(error)") }
    }
}

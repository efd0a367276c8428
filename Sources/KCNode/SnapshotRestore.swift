import KCCrypto
import KCRuntime
import KCStorage

/// Writes the state a snapshot restores into the node's store as its chunks are verified
/// (specs/storage.md, "State sync"), so a joining node never holds the state in memory: the
/// entries of the chunks added are gathered up to `flushBytes`, then written under `s/` with the
/// trie pages they change under `t/` in one unsynced batch. (Entry paths are hashes, so every
/// batch touches most of the trie's pages: a trie update for each 256 KiB chunk rewrote them
/// once a chunk and took three times as long as a rebuild in memory.) The first chunk
/// replaces the genesis state under the marker `m/restoring`; `BlockStore.finishRestore` writes
/// the markers of the restored height and deletes it in one synced batch. A node stopped
/// before that finds the marker on start and goes back to its genesis state
/// (`BlockStore.open`); an offer that proves false is discarded the same way.
public final class SnapshotRestore {
    /// Entries gathered before a batch is written: 4 MiB of keys and values. (At 300,000
    /// events in process, 4 MiB restored in 1.9 times the time of a rebuild in memory with
    /// 195 MiB above RSS at the peak, 16 MiB in 1.8 times with 360 MiB: docs/benchmarks.md.)
    public static let defaultFlushBytes = 4 << 20
    /// Entries gathered at most before a batch is written, whatever their size: a trie update
    /// holds about a dozen nodes per change, so a false offer's tiny entries must not make
    /// one batch of millions. (4 MiB of the chain's entries is about 9,000.)
    public static let maxBatchEntries = 16_384

    let blocks: BlockStore
    let runtime: Runtime
    let flushBytes: Int
    /// The root of the trie over every entry written since the last discard (`flush` first).
    public private(set) var root: Hash256 = .zero
    /// Entries added since the last discard, written or gathered.
    public private(set) var entries = 0
    private var started = false
    private var pending: [(StoreKey, [UInt8])] = []
    private var pendingBytes = 0

    public init(blocks: BlockStore, runtime: Runtime, flushBytes: Int = SnapshotRestore.defaultFlushBytes) {
        precondition(flushBytes > 0)
        self.blocks = blocks
        self.runtime = runtime
        self.flushBytes = flushBytes
    }

    /// Adds the entries of the next chunk (keys new to the state: the assembler checks they run
    /// ascending across chunks); writes them with what was gathered once that reaches
    /// `flushBytes`.
    public func add(_ pairs: [(StoreKey, [UInt8])]) throws(StoreError) {
        if !started {
            try blocks.clearState(marking: true)
            started = true
        }
        for (key, value) in pairs {
            pending.append((key, value))
            pendingBytes += key.count + value.count
            if pendingBytes >= flushBytes || pending.count >= Self.maxBatchEntries { try flush() }
        }
        entries += pairs.count
    }

    /// Writes the entries gathered and the trie pages they change, read back from the store.
    public func flush() throws(StoreError) {
        guard !pending.isEmpty else { return }
        var batch = WriteBatch()
        var changes: [StateTrie.Change] = []
        changes.reserveCapacity(pending.count)
        for (key, value) in pending {
            batch.put(StatePersistence.storeKey(key), value)
            changes.append(StateTrie.Change(path: Blake2b.hash256(key), valueHash: Blake2b.hash256(value)))
        }
        let reader = StoredTrie(snapshot: blocks.store.snapshot())
        let update = StateTrie.update(changes, over: reader)
        StatePersistence.add(pages: TriePage.changes(update.writes, current: reader.page), to: &batch)
        try blocks.store.write(batch, sync: false)
        root = update.rootHash
        pending.removeAll(keepingCapacity: true)
        pendingBytes = 0
    }

    /// The state written so far, read from the store (what `finishRestore` will keep).
    public func state() -> ChainState {
        blocks.stateCache.advanceClearing()
        return blocks.storedState()
    }

    /// Forgets what was added: the store holds the genesis state again, as before the first chunk.
    public func discard() throws(StoreError) {
        pending.removeAll()
        pendingBytes = 0
        guard started else { return }
        try blocks.resetToGenesisState(runtime.genesisState())
        started = false
        root = .zero
        entries = 0
    }
}

/// The trie nodes a store snapshot holds, read without the state cache (which serves the
/// node's current state, not the one being restored); each page is read and decoded once (an
/// update reads a page once for each of its nodes on a changed path). A read the store fails
/// stops the process, as for the node's own state (`StoredStateSource`): a missing node would
/// build a wrong trie.
final class StoredTrie: TrieNodeReading {
    let snapshot: any KeyValueSnapshot
    private var pages: [TriePosition: TriePage?] = [:]

    init(snapshot: any KeyValueSnapshot) { self.snapshot = snapshot }

    func page(_ root: TriePosition) -> TriePage? {
        if let known = pages[root] { return known }
        let page: TriePage?
        do { page = try StatePersistence.page(root, in: snapshot) } catch { StoredStateSource.stop(what: "state trie page \(root)", error) }
        pages[root] = page
        return page
    }

    func trieNode(at position: TriePosition) -> TrieNode? { page(TriePage.root(of: position))?.node(at: position) }
}

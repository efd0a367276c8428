import KCCodec
import KCCrypto
import KCRuntime
import KCStorage

/// How runtime state reaches the store: every state entry under `s/`, the state trie's nodes
/// under `t/` in pages of four levels (`TriePage`), the query indexes under their own `ix/` keys (see
/// specs/storage.md). One executed block becomes one write batch, which the node extends with
/// the block itself and writes synced.
public enum StatePersistence {
    public static let statePrefix: [UInt8] = Array("s/".utf8)
    public static let triePrefix: [UInt8] = Array("t/".utf8)

    /// Adds a block's state changes, trie pages and (unless `indexes` is false) index writes to
    /// `batch`; `pages` are the pages its node writes change (`TriePage.changes`).
    public static func add(_ executed: ExecutedBlock, pages: [TriePosition: TriePage?], indexes: Bool = true, to batch: inout WriteBatch) {
        // Keys are distinct, so the order inside the batch cannot change what is stored.
        for (key, value) in executed.changes {
            if let value { batch.put(storeKey(key), value) } else { batch.delete(storeKey(key)) }
        }
        add(pages: pages, to: &batch)
        if indexes { for (key, value) in executed.indexWrites { batch.put(key, value) } }
    }

    /// The same, reading the pages the block changes from `store` (which holds the state the
    /// block was executed on).
    public static func add(_ executed: ExecutedBlock, over store: any KeyValueReader, to batch: inout WriteBatch) throws(StoreError) {
        var failure: StoreError? = nil
        let pages = TriePage.changes(executed.trieWrites) { root in
            do throws(StoreError) { return try page(root, in: store) } catch { failure = error; return nil }
        }
        if let failure { throw failure }
        add(executed, pages: pages, to: &batch)
    }

    /// Adds a whole state held in memory (genesis: every entry and node in its layers) to
    /// `batch`, for a store that holds no state (a new one, or one `BlockStore.clearState` emptied).
    public static func add(_ state: ChainState, to batch: inout WriteBatch) {
        let unstored = state.unstored
        for (key, value) in unstored.entries {
            if let value { batch.put(storeKey(key), value) } else { batch.delete(storeKey(key)) }
        }
        add(pages: TriePage.changes(unstored.nodes) { _ in nil }, to: &batch)
    }

    static func add(pages: [TriePosition: TriePage?], to batch: inout WriteBatch) {
        for (root, page) in pages {
            if let page { batch.put(pageKey(root), page.bytes) } else { batch.delete(pageKey(root)) }
        }
    }

    /// The stored page rooted at `root`; a page that does not decode is damage.
    static func page(_ root: TriePosition, in store: any KeyValueReader) throws(StoreError) -> TriePage? {
        guard let bytes = try store.get(pageKey(root)) else { return nil }
        guard let page = TriePage(bytes: bytes) else {
            throw .damaged(path: "", detail: "the state trie page at \(root) does not decode")
        }
        return page
    }

    /// Where a state entry is stored: `s/` and the state key.
    public static func storeKey(_ key: StoreKey) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(statePrefix.count + key.count)
        bytes.append(contentsOf: statePrefix)
        key.withUnsafeBytes { bytes.append(contentsOf: $0) }
        return bytes
    }

    /// Where a trie page is stored: `t/` and its root's position.
    public static func pageKey(_ root: TriePosition) -> [UInt8] { triePrefix + root.bytes }

    /// Every pair under `prefix`, in key order, read a page at a time (a whole state does not
    /// fit in memory at once).
    static func forEach(in store: any KeyValueReader, prefix: [UInt8], page: Int = 4_096,
                        _ body: ([UInt8], [UInt8]) throws(StoreError) -> Void) throws(StoreError) {
        var range = KeyRange.prefix(prefix)
        while true {
            let pairs = try store.scan(range, limit: page, reverse: false)
            for pair in pairs { try body(pair.key, pair.value) }
            guard pairs.count == page, let last = pairs.last else { return }
            range = KeyRange(lower: last.key + [0], upper: range.upper)
        }
    }
}

/// The state a store snapshot holds, read through the store's `StateCache` while that version
/// is the newest (ADR 0018). A read the store fails stops the process: executing a block
/// against a state with a missing entry would diverge from the network.
public struct StoredStateSource: StateSource {
    let snapshot: any KeyValueSnapshot
    let cache: StateCache
    let version: UInt64

    public func entry(_ key: StoreKey) -> [UInt8]? {
        if let cached = cache.entry(key, version: version) { return cached }
        let value = Self.read(snapshot, StatePersistence.storeKey(key), what: "state entry \(key)")
        cache.remember(key, value, version: version)
        return value
    }

    public func trieNode(at position: TriePosition) -> TrieNode? {
        page(TriePage.root(of: position))?.node(at: position)
    }

    /// The stored page rooted at `root`, through the cache.
    func page(_ root: TriePosition) -> TriePage? {
        if let cached = cache.page(root, version: version) { return cached }
        let page: TriePage?
        do { page = try StatePersistence.page(root, in: snapshot) } catch { Self.stop(what: "state trie page \(root)", error) }
        cache.remember(root, page, version: version)
        return page
    }

    public func forEachEntry(_ body: (StoreKey, [UInt8]) throws -> Void) rethrows {
        var range = KeyRange.prefix(StatePersistence.statePrefix)
        while true {
            let pairs: [KeyValuePair]
            do { pairs = try snapshot.scan(range, limit: 4_096, reverse: false) } catch { Self.stop(what: "the state entries", error) }
            for pair in pairs {
                guard let key = StoreKey(validating: pair.key.dropFirst(StatePersistence.statePrefix.count)) else {
                    preconditionFailure("state key \(Hex.encode(pair.key)) in the store is too long: the data directory is damaged")
                }
                try body(key, pair.value)
            }
            guard pairs.count == 4_096, let last = pairs.last else { return }
            range = KeyRange(lower: last.key + [0], upper: range.upper)
        }
    }

    static func read(_ snapshot: any KeyValueSnapshot, _ key: [UInt8], what: String) -> [UInt8]? {
        do { return try snapshot.get(key) } catch { stop(what: what, error) }
    }

    static func stop(what: String, _ error: StoreError) -> Never {
        fatalError("the node stops: reading \(what) from the store failed (\(error)); check the disk and the data directory, then start the node again")
    }
}

/// The state entries of a store snapshot, read one by one (for the runtime's read-only rules,
/// such as a gateway's electoral weight, outside block execution). A read the store fails
/// reads as absent.
public struct StoredState: StateReading {
    let snapshot: any KeyValueSnapshot

    public init(_ snapshot: any KeyValueSnapshot) { self.snapshot = snapshot }

    public func get(_ key: StoreKey) -> [UInt8]? { (try? snapshot.get(StatePersistence.storeKey(key))) ?? nil }
}

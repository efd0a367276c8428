import KCRuntime
import Synchronization

/// The hot part of the newest stored state, in memory and bounded (ADR 0018): entries and
/// trie pages read from the store or written by a stored block, absences included.
///
/// Each kind has two generations. Reads and writes land in the young one; once it holds half
/// the kind's budget it becomes the old one and the previous old one is dropped; a hit in the
/// old generation moves the item back to the young one. That keeps what every block touches
/// (the trie's upper levels, the global record, busy accounts) and costs one hash look-up per
/// read, with no list to maintain.
///
/// The cache serves one version, the newest stored one: a stored block's writes go in as the
/// version advances, and a reader of an older version (a state value someone still holds) goes
/// past the cache to its own store snapshot, so no reader ever sees two versions mixed.
public final class StateCache: Sendable {
    /// Accounting per item besides its value: the key, the dictionary slot, the optional.
    static let entryOverhead = 112
    static let pageOverhead = 128
    static let pageSlotBytes = 72

    private let storage: Mutex<Storage>
    public let budgetBytes: Int

    struct Storage {
        var version: UInt64 = 0
        var entries: Generations<StoreKey, [UInt8]?>
        var pages: Generations<TriePosition, TriePage?>
    }

    /// Two-generation map; `limit` bytes for both generations together.
    struct Generations<Key: Hashable, Value> {
        let limit: Int
        var young: [Key: Value] = [:]
        var old: [Key: Value] = [:]
        var youngBytes = 0

        init(limit: Int) { self.limit = limit }

        mutating func get(_ key: Key, cost: (Value) -> Int) -> Value? {
            if let value = young[key] { return value }
            guard let value = old[key] else { return nil }
            put(key, value, cost: cost(value))
            return value
        }

        mutating func put(_ key: Key, _ value: Value, cost: Int) {
            if young.updateValue(value, forKey: key) == nil { youngBytes += cost }
            if youngBytes > limit / 2 {
                old = young
                young = [:]
                youngBytes = 0
            }
        }

        var count: Int { young.count + old.count }

        mutating func removeAll() {
            young = [:]
            old = [:]
            youngBytes = 0
        }
    }

    /// `budgetBytes`: for entries and pages together (half each).
    public init(budgetBytes: Int) {
        self.budgetBytes = budgetBytes
        storage = Mutex(Storage(entries: Generations(limit: budgetBytes / 2), pages: Generations(limit: budgetBytes / 2)))
    }

    static func entryCost(_ value: [UInt8]?) -> Int { entryOverhead + (value?.count ?? 0) }
    static func pageCost(_ page: TriePage?) -> Int { pageOverhead + pageSlotBytes * (page?.slots.count ?? 0) }

    public var version: UInt64 { storage.withLock { $0.version } }

    /// Items held (for tests and metrics).
    public var counts: (entries: Int, pages: Int) { storage.withLock { ($0.entries.count, $0.pages.count) } }

    /// Bytes held by each kind's young generation, as the budget counts them (for tests).
    var youngBytes: (entries: Int, pages: Int) { storage.withLock { ($0.entries.youngBytes, $0.pages.youngBytes) } }

    /// The cached entry of `version` (`.some(nil)`: cached as absent); nil when not cached or
    /// when `version` is not the newest.
    func entry(_ key: StoreKey, version: UInt64) -> [UInt8]?? {
        storage.withLock { storage in
            guard storage.version == version else { return nil }
            return storage.entries.get(key, cost: Self.entryCost)
        }
    }

    func remember(_ key: StoreKey, _ value: [UInt8]?, version: UInt64) {
        storage.withLock { storage in
            guard storage.version == version else { return }
            storage.entries.put(key, value, cost: Self.entryCost(value))
        }
    }

    func page(_ root: TriePosition, version: UInt64) -> TriePage?? {
        storage.withLock { storage in
            guard storage.version == version else { return nil }
            return storage.pages.get(root, cost: Self.pageCost)
        }
    }

    func remember(_ root: TriePosition, _ page: TriePage?, version: UInt64) {
        storage.withLock { storage in
            guard storage.version == version else { return }
            storage.pages.put(root, page, cost: Self.pageCost(page))
        }
    }

    /// A block's writes are stored: the next version, holding them. Returns that version.
    @discardableResult
    func advance(storing block: ExecutedBlock, pages: [TriePosition: TriePage?]) -> UInt64 {
        storage.withLock { storage in
            storage.version += 1
            for (key, value) in block.changes { storage.entries.put(key, value, cost: Self.entryCost(value)) }
            for (root, page) in pages { storage.pages.put(root, page, cost: Self.pageCost(page)) }
            return storage.version
        }
    }

    /// The store's state was replaced wholesale (genesis, a restore): the next version, empty.
    @discardableResult
    func advanceClearing() -> UInt64 {
        storage.withLock { storage in
            storage.version += 1
            storage.entries.removeAll()
            storage.pages.removeAll()
            return storage.version
        }
    }
}

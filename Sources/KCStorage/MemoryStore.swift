import KCCodec
import Synchronization

/// An in-memory store with the same behaviour as `RocksDBStore`, for tests and the simulator.
/// Writes are atomic under a lock; a snapshot is a copy-on-write copy of the map.
public final class MemoryStore: KeyValueStore {
    struct Contents: Sendable {
        var map: [[UInt8]: [UInt8]] = [:]
        /// Keys in ascending order; rebuilt lazily after a key is added or removed.
        var sortedKeys: [[UInt8]]? = []

        mutating func orderedKeys() -> [[UInt8]] {
            if let sortedKeys { return sortedKeys }
            let sorted = map.keys.sorted(by: ByteOrder.precedes)
            sortedKeys = sorted
            return sorted
        }

        mutating func scan(_ range: KeyRange, limit: Int, reverse: Bool) -> [KeyValuePair] {
            let keys = orderedKeys()
            // Binary search for the first key >= lower.
            var low = 0, high = keys.count
            while low < high {
                let middle = (low + high) / 2
                if ByteOrder.precedes(keys[middle], range.lower) { low = middle + 1 } else { high = middle }
            }
            var end = low
            while end < keys.count, range.contains(keys[end]) { end += 1 }
            var result: [KeyValuePair] = []
            let indices = reverse ? Array((low..<end).reversed()) : Array(low..<end)
            for index in indices {
                if result.count >= limit { break }
                result.append(KeyValuePair(key: keys[index], value: map[keys[index]]!))
            }
            return result
        }
    }

    private let contents = Mutex(Contents())

    public init() {}

    public func get(_ key: [UInt8]) throws(StoreError) -> [UInt8]? {
        contents.withLock { $0.map[key] }
    }

    public func scan(_ range: KeyRange, limit: Int, reverse: Bool) throws(StoreError) -> [KeyValuePair] {
        contents.withLock { $0.scan(range, limit: limit, reverse: reverse) }
    }

    public func write(_ batch: WriteBatch, sync: Bool) throws(StoreError) {
        contents.withLock { contents in
            for operation in batch.operations {
                switch operation {
                case .put(let key, let value):
                    if contents.map.updateValue(value, forKey: key) == nil { contents.sortedKeys = nil }
                case .delete(let key):
                    if contents.map.removeValue(forKey: key) != nil { contents.sortedKeys = nil }
                }
            }
        }
    }

    public func snapshot() -> any KeyValueSnapshot {
        MemorySnapshot(contents: contents.withLock { $0 })
    }

    /// Number of keys, for tests.
    public var count: Int { contents.withLock { $0.map.count } }
}

final class MemorySnapshot: KeyValueSnapshot {
    private let contents: Mutex<MemoryStore.Contents>

    init(contents: MemoryStore.Contents) { self.contents = Mutex(contents) }

    func get(_ key: [UInt8]) throws(StoreError) -> [UInt8]? { contents.withLock { $0.map[key] } }

    func scan(_ range: KeyRange, limit: Int, reverse: Bool) throws(StoreError) -> [KeyValuePair] {
        contents.withLock { $0.scan(range, limit: limit, reverse: reverse) }
    }
}

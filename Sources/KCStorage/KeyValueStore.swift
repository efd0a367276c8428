// The storage interface every part of the node writes through.
//
// Keys and values are byte strings; keys are ordered byte by byte (memcmp order), which is
// what both RocksDB's default comparator and the in-memory store use. The key prefixes that
// each layer owns are listed in specs/storage.md.

import KCCodec

/// Why a store operation failed.
public enum StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Another process (or another handle in this one) holds the data directory.
    case locked(path: String, detail: String)
    /// The data directory exists but its files are damaged.
    case damaged(path: String, detail: String)
    /// Any other failure of the underlying store.
    case io(path: String, detail: String)

    public var description: String {
        switch self {
        case .locked(let path, let detail):
            return "data directory \(path) is in use by another process (is a node already running with this home?): \(detail)"
        case .damaged(let path, let detail):
            return "data directory \(path) is damaged and cannot be opened: \(detail)"
        case .io(let path, let detail):
            return "storage error in \(path): \(detail)"
        }
    }
}

/// A half-open key range `[lower, upper)`; a nil `upper` means "to the end".
public struct KeyRange: Sendable, Equatable {
    public var lower: [UInt8]
    public var upper: [UInt8]?

    public init(lower: [UInt8], upper: [UInt8]?) {
        if let upper { precondition(!upper.lexicographicallyPrecedes(lower), "range upper bound below lower bound") }
        self.lower = lower
        self.upper = upper
    }

    /// Every key starting with `prefix`.
    public static func prefix(_ prefix: [UInt8]) -> KeyRange {
        KeyRange(lower: prefix, upper: successor(ofPrefix: prefix))
    }

    public static let all = KeyRange(lower: [], upper: nil)

    public func contains(_ key: [UInt8]) -> Bool {
        guard !key.lexicographicallyPrecedes(lower) else { return false }
        if let upper { return key.lexicographicallyPrecedes(upper) }
        return true
    }

    /// The smallest key greater than every key that starts with `prefix`, or nil if none
    /// exists (the prefix is empty or all 0xff).
    static func successor(ofPrefix prefix: [UInt8]) -> [UInt8]? {
        var bound = prefix
        while let last = bound.last {
            if last < 0xff {
                bound[bound.count - 1] = last + 1
                return bound
            }
            bound.removeLast()
        }
        return nil
    }
}

public struct KeyValuePair: Sendable, Equatable {
    public let key: [UInt8]
    public let value: [UInt8]
    public init(key: [UInt8], value: [UInt8]) { self.key = key; self.value = value }
}

/// Puts and deletes applied all together or not at all. Later operations on the same key win.
public struct WriteBatch: Sendable {
    public enum Operation: Sendable, Equatable {
        case put(key: [UInt8], value: [UInt8])
        case delete(key: [UInt8])
    }

    public private(set) var operations: [Operation] = []

    public init() {}

    public mutating func put(_ key: [UInt8], _ value: [UInt8]) { operations.append(.put(key: key, value: value)) }
    public mutating func delete(_ key: [UInt8]) { operations.append(.delete(key: key)) }

    public var isEmpty: Bool { operations.isEmpty }
    public var count: Int { operations.count }

    /// Positions of the operations sorted by key (memcmp order); operations on one key keep
    /// their order. Keys are compared by their first 16 bytes as two big-endian integers
    /// (which orders like memcmp), and only ties look at the rest.
    public func keyOrder() -> [Int] {
        struct Entry {
            let high: UInt64
            let low: UInt64
            let index: Int
        }
        func word(_ key: [UInt8], _ offset: Int) -> UInt64 {
            var value: UInt64 = 0
            for position in offset..<(offset + 8) {
                value = value << 8 | UInt64(position < key.count ? key[position] : 0)
            }
            return value
        }
        let keys = operations.map { operation -> [UInt8] in
            switch operation {
            case .put(let key, _), .delete(let key): return key
            }
        }
        var entries = keys.indices.map { Entry(high: word(keys[$0], 0), low: word(keys[$0], 8), index: $0) }
        entries.sort { left, right in
            if left.high != right.high { return left.high < right.high }
            if left.low != right.low { return left.low < right.low }
            let order = ByteOrder.compare(keys[left.index], keys[right.index])
            return order != 0 ? order < 0 : left.index < right.index
        }
        return entries.map(\.index)
    }
}

/// Read access: point reads and ordered range scans.
public protocol KeyValueReader: Sendable {
    func get(_ key: [UInt8]) throws(StoreError) -> [UInt8]?
    /// Pairs in `range`, in ascending key order (descending if `reverse`), at most `limit`.
    func scan(_ range: KeyRange, limit: Int, reverse: Bool) throws(StoreError) -> [KeyValuePair]
}

extension KeyValueReader {
    public func scan(_ range: KeyRange, limit: Int = .max) throws(StoreError) -> [KeyValuePair] {
        try scan(range, limit: limit, reverse: false)
    }
}

/// A consistent, read-only view of the store at one moment; later writes do not show in it.
public protocol KeyValueSnapshot: KeyValueReader {}

/// The store. Implementations: `RocksDBStore` (the node) and `MemoryStore` (tests, simulator).
/// The store closes when the last reference to it (and to its snapshots) is released.
public protocol KeyValueStore: KeyValueReader, AnyObject {
    /// Applies `batch` atomically. With `sync`, returns only once the batch is durable
    /// (it survives a power cut); without it, a crash may lose the batch, but never part of it.
    func write(_ batch: WriteBatch, sync: Bool) throws(StoreError)
    func snapshot() -> any KeyValueSnapshot
}

import KCCodec
import KCCrypto
import KCRuntime
import KCStorage

/// How runtime state reaches the store: every state entry under `s/`, the query indexes under
/// their own `ix/` keys (see specs/storage.md). One executed block becomes one write batch,
/// which the node extends with the block itself and writes synced.
public enum StatePersistence {
    public static let statePrefix: [UInt8] = Array("s/".utf8)

    /// Adds a block's state changes and index writes to `batch`.
    public static func add(_ executed: ExecutedBlock, to batch: inout WriteBatch) {
        // Keys are distinct, so the order inside the batch cannot change what is stored.
        for (key, value) in executed.changes {
            if let value { batch.put(storeKey(key), value) } else { batch.delete(storeKey(key)) }
        }
        for (key, value) in executed.indexWrites { batch.put(key, value) }
    }

    /// Adds a whole state (genesis) to `batch`.
    public static func add(_ state: ChainState, to batch: inout WriteBatch) {
        for (key, value) in state.entries {
            batch.put(storeKey(key), value)
        }
    }

    /// Where a state entry is stored: `s/` and the state key.
    public static func storeKey(_ key: StoreKey) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(statePrefix.count + key.count)
        bytes.append(contentsOf: statePrefix)
        key.withUnsafeBytes { bytes.append(contentsOf: $0) }
        return bytes
    }

    /// Reads the state back and rebuilds its Merkle tree.
    public static func load(from store: any KeyValueReader) throws(StoreError) -> ChainState {
        var entries: [StoreKey: [UInt8]] = [:]
        for pair in try store.scan(.prefix(statePrefix)) {
            guard let key = StoreKey(validating: pair.key.dropFirst(statePrefix.count)) else {
                throw .damaged(path: "", detail: "state key \(Hex.encode(pair.key)) is longer than \(StoreKey.capacity) bytes")
            }
            entries[key] = pair.value
        }
        return ChainState(entries: entries)
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

import KCCodec
import KCCrypto
import KCTypes

/// State keys: a short ASCII prefix, then fixed-size binary parts. Listed in specs/runtime.md.
public enum StateKey {
    public static let global: [UInt8] = Array("global".utf8)
    public static let validatorSets: [UInt8] = Array("vsets".utf8)
    public static let validatorRegistry: [UInt8] = Array("reg/validators".utf8)
    public static let gatewayRegistry: [UInt8] = Array("reg/gateways".utf8)

    public static func account(_ address: PublicKey) -> [UInt8] { Array("acct/".utf8) + address.bytes32.bytes }
    public static func stake(_ address: PublicKey) -> [UInt8] { Array("stake/".utf8) + address.bytes32.bytes }
    public static func validator(_ address: PublicKey) -> [UInt8] { Array("val/".utf8) + address.bytes32.bytes }
    public static func gateway(_ address: PublicKey) -> [UInt8] { Array("gw/".utf8) + address.bytes32.bytes }
    public static func consensusKey(_ key: PublicKey) -> [UInt8] { Array("ckey/".utf8) + key.bytes32.bytes }
    public static func event(_ id: Hash256) -> [UInt8] { Array("event/".utf8) + id.bytes }
    public static func dispute(_ id: Hash256) -> [UInt8] { Array("disp/".utf8) + id.bytes }
    public static func evidence(_ hash: Hash256) -> [UInt8] { Array("evid/".utf8) + hash.bytes }

    public enum Queue: String, Sendable {
        case attestation = "q/attest/"
        case challenge = "q/challenge/"
        case revote = "q/revote/"
    }

    public static func queueEntry(_ queue: Queue, _ position: UInt64) -> [UInt8] {
        var key = Array(queue.rawValue.utf8)
        withUnsafeBytes(of: position.bigEndian) { key.append(contentsOf: $0) }
        return key
    }
}

/// The committed chain state: every entry, and the Merkle trie over them.
///
/// Execution never mutates it: a block runs against an `ExecutionState` overlay, and `commit`
/// folds the overlay in once the block is decided. Because the entries are only mutated by
/// `commit` on a uniquely held value, no copy of the map is ever made.
public struct ChainState: Sendable {
    public private(set) var entries: [[UInt8]: [UInt8]] = [:]
    public private(set) var trie = StateTrie()

    public init() {}

    /// Rebuilds a state from stored entries (node start-up).
    public init(entries: [[UInt8]: [UInt8]]) {
        self.entries = entries
        trie.apply(entries.map { StateTrie.Change(path: Blake2b.hash256($0.key), valueHash: Blake2b.hash256($0.value)) })
    }

    public var root: Hash256 { trie.rootHash }

    public func get(_ key: [UInt8]) -> [UInt8]? { entries[key] }

    /// Folds an executed block in. Precondition: it was executed against this very state.
    public mutating func commit(_ block: ExecutedBlock) {
        precondition(block.baseRoot == trie.rootHash, "committing a block executed against another state")
        for (key, value) in block.changes {
            if let value { entries[key] = value } else { entries.removeValue(forKey: key) }
        }
        trie = block.trie
        precondition(trie.count == entries.count, "trie and entries disagree on the number of entries")
    }

    /// A proof for the entry at `key` (or its absence) against `root`.
    public func proof(key: [UInt8]) -> StateTrie.Proof { trie.proof(path: Blake2b.hash256(key)) }

    public func decode<T: CanonicalDecodable>(_ type: T.Type, at key: [UInt8]) -> T? {
        guard let bytes = entries[key] else { return nil }
        // Entries were written by the runtime in canonical form; failing to read one back
        // means the state is corrupt, and continuing would diverge from the network.
        do { return try T.decode(exactly: bytes) } catch { preconditionFailure("corrupt state entry: \(error)") }
    }
}

/// A block's writes on top of the committed state. Reads see the block's own writes first.
/// Writes made during one transaction's call are journaled so a failed call is undone while
/// the fee it paid stays.
struct ExecutionState {
    let base: ChainState
    private(set) var changes: [[UInt8]: [UInt8]?] = [:]
    private var journal: [([UInt8], [UInt8]??)]? = nil

    init(base: ChainState) { self.base = base }

    func get(_ key: [UInt8]) -> [UInt8]? {
        if let changed = changes[key] { return changed }
        return base.get(key)
    }

    func read<T: CanonicalDecodable>(_ type: T.Type, _ key: [UInt8]) -> T? {
        guard let bytes = get(key) else { return nil }
        do { return try T.decode(exactly: bytes) } catch { preconditionFailure("corrupt state entry: \(error)") }
    }

    mutating func write<T: CanonicalEncodable>(_ key: [UInt8], _ value: T) {
        record(key)
        changes[key] = .some(value.canonicalBytes)
    }

    mutating func delete(_ key: [UInt8]) {
        record(key)
        changes[key] = .some(nil)
    }

    private mutating func record(_ key: [UInt8]) {
        if journal != nil { journal!.append((key, changes[key])) }
    }

    mutating func beginCall() {
        precondition(journal == nil, "nested calls are not supported")
        journal = []
    }

    mutating func commitCall() {
        precondition(journal != nil, "no call in progress")
        journal = nil
    }

    mutating func rollbackCall() {
        guard let entries = journal else { preconditionFailure("no call in progress") }
        for (key, previous) in entries.reversed() {
            if let previous { changes[key] = previous } else { changes.removeValue(forKey: key) }
        }
        journal = nil
    }
}

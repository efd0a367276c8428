import KCCodec
import KCCrypto
import KCTypes


/// A state key's bytes, held inline (no heap buffer): up to `capacity` bytes.
///
/// The chain state is a dictionary of some hundred thousand entries; with the key bytes
/// inline, hashing and comparing a key during a look-up reads the dictionary's own storage
/// instead of chasing a pointer to a separate array (that miss was the largest single cost of
/// block execution). Every state key is a short ASCII prefix and at most 32 bytes of binary.
public struct StoreKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The longest key: "stake/" or "event/" and 32 bytes is 38; the limit leaves room.
    public static let capacity = 48

    /// The bytes, zero after `count` (a homogeneous tuple: laid out contiguously, in order).
    private var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
    public let count: Int

    /// Precondition: at most `capacity` bytes (keys come from `StateKey` or from a store the
    /// node wrote; `init?(validating:)` is for anything else).
    public init(_ bytes: [UInt8]) {
        precondition(bytes.count <= Self.capacity, "state key of \(bytes.count) bytes exceeds \(Self.capacity)")
        count = bytes.count
        bytes.withUnsafeBytes { source in
            guard let base = source.baseAddress else { return }
            withUnsafeMutableBytes(of: &words) { $0.baseAddress!.copyMemory(from: base, byteCount: source.count) }
        }
    }

    /// nil when the bytes are too long to be a state key.
    public init?<Bytes: Collection>(validating bytes: Bytes) where Bytes.Element == UInt8 {
        guard bytes.count <= Self.capacity else { return nil }
        self.init(Array(bytes))
    }

    /// A prefix and a 32-byte value, built in place.
    init(_ prefix: StaticString, _ value: Bytes32) {
        let prefixCount = prefix.utf8CodeUnitCount
        precondition(prefixCount + 32 <= Self.capacity, "state key prefix too long")
        count = prefixCount + 32
        withUnsafeMutableBytes(of: &words) { raw in
            raw.baseAddress!.copyMemory(from: prefix.utf8Start, byteCount: prefixCount)
            Swift.withUnsafeBytes(of: value) { raw.baseAddress!.advanced(by: prefixCount).copyMemory(from: $0.baseAddress!, byteCount: 32) }
        }
    }

    /// Calls `body` with the key's bytes, without copying them out.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var copy = words
        return try Swift.withUnsafeBytes(of: &copy) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }

    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Whether the key starts with `prefix`, without copying the key out.
    public func hasPrefix(_ prefix: [UInt8]) -> Bool {
        withUnsafeBytes { key in key.count >= prefix.count && prefix.withUnsafeBytes { ByteOrder.compare(UnsafeRawBufferPointer(rebasing: key[0..<prefix.count]), $0) == 0 } }
    }

    public func hash(into hasher: inout Hasher) {
        // Unused trailing bytes are zero, so equal keys feed equal words.
        hasher.combine(words.0); hasher.combine(words.1); hasher.combine(words.2)
        hasher.combine(words.3); hasher.combine(words.4); hasher.combine(words.5)
    }

    public static func == (lhs: StoreKey, rhs: StoreKey) -> Bool {
        lhs.count == rhs.count && lhs.words.0 == rhs.words.0 && lhs.words.1 == rhs.words.1 && lhs.words.2 == rhs.words.2
            && lhs.words.3 == rhs.words.3 && lhs.words.4 == rhs.words.4 && lhs.words.5 == rhs.words.5
    }

    public static func < (lhs: StoreKey, rhs: StoreKey) -> Bool { compare(lhs, rhs) < 0 }

    /// memcmp order (`ByteOrder`), as RocksDB sorts the stored keys.
    static func compare(_ lhs: StoreKey, _ rhs: StoreKey) -> Int {
        lhs.withUnsafeBytes { left in rhs.withUnsafeBytes { right in ByteOrder.compare(left, right) } }
    }

    public var description: String { withUnsafeBytes { Hex.encode($0) } }
}

extension StoreKey: ContiguousBytes {}

/// State keys: a short ASCII prefix, then fixed-size binary parts. Listed in specs/runtime.md.
public enum StateKey {
    public static let global = StoreKey(Array("global".utf8))
    public static let validatorSets = StoreKey(Array("vsets".utf8))

    public static func account(_ address: PublicKey) -> StoreKey { StoreKey("acct/", address.bytes32) }
    public static func stake(_ address: PublicKey) -> StoreKey { StoreKey("stake/", address.bytes32) }
    public static func validator(_ address: PublicKey) -> StoreKey { StoreKey("val/", address.bytes32) }
    public static func gateway(_ address: PublicKey) -> StoreKey { StoreKey("gw/", address.bytes32) }
    public static func consensusKey(_ key: PublicKey) -> StoreKey { StoreKey("ckey/", key.bytes32) }
    public static func event(_ id: Hash256) -> StoreKey { StoreKey("event/", id) }
    public static func dispute(_ id: Hash256) -> StoreKey { StoreKey("disp/", id) }
    /// `EventVote` of `voter` on `event`, under a hash of both (a key holds at most 48 bytes).
    public static func eventVote(_ event: Hash256, _ voter: PublicKey) -> StoreKey {
        StoreKey("evote/", Blake2b.hash256(event.bytes + voter.bytes32.bytes))
    }
    /// `VoterEntry` number `index` of an event's valid or invalid voter list.
    public static func voterEntry(_ event: Hash256, _ verdict: Verdict, _ index: UInt32) -> StoreKey {
        var key = Array("evl/".utf8) + event.bytes
        key.append(UInt8(verdict.rawValue))
        ByteOrder.appendBigEndian(index, to: &key)
        return StoreKey(key)
    }
    /// `JuryRecord` of a dispute decided by validators.
    public static func jury(_ dispute: Hash256) -> StoreKey { StoreKey("jury/", dispute) }
    /// `DisputeVote` of the juror at `position` in the dispute's jury.
    public static func disputeVote(_ dispute: Hash256, juror position: UInt16) -> StoreKey {
        var key = Array("dvote/".utf8) + dispute.bytes
        ByteOrder.appendBigEndian(position, to: &key)
        return StoreKey(key)
    }
    /// The first event waiting for `parent` to be final (the rest follow `next_waiting`).
    public static func waiting(on parent: Hash256) -> StoreKey { StoreKey("wait/", parent) }
    /// `GatewayHistory` of an account that has been a gateway.
    public static func gatewayHistory(_ address: PublicKey) -> StoreKey { StoreKey("gwh/", address.bytes32) }
    /// `EpochRecord` of a live epoch.
    public static func epoch(_ number: UInt64) -> StoreKey { numbered("epoch/", number) }
    /// `RegistryPage` number `page` of a registry.
    public static func registryPage(_ registry: Registry, _ page: UInt64) -> StoreKey { numbered(registry.prefix, page) }
    public static func evidence(_ hash: Hash256) -> StoreKey { StoreKey("evid/", hash) }
    /// `HeightRecord` of a committed height (kept inside the evidence window).
    public static func heightRecord(_ height: UInt64) -> StoreKey { numbered("height/", height) }
    /// `HistoricValidatorSet` that signs from `height` on.
    public static func validatorSet(since height: UInt64) -> StoreKey { numbered("vset/", height) }

    static func numbered(_ prefix: String, _ number: UInt64) -> StoreKey {
        var key = Array(prefix.utf8)
        ByteOrder.appendBigEndian(number, to: &key)
        return StoreKey(key)
    }

    public enum Queue: String, Sendable {
        case attestation = "q/attest/"
        case challenge = "q/challenge/"
        case revote = "q/revote/"
    }

    public static func queueEntry(_ queue: Queue, _ position: UInt64) -> StoreKey { numbered(queue.rawValue, position) }
}

/// The two registries: accounts registered as validators and as gateways. Each is paged
/// (`RegistryPage`) so that joining or leaving writes one or two pages, whatever its size.
public enum Registry: Sendable, CaseIterable {
    case validators
    case gateways

    var prefix: String { self == .validators ? "reg/v/" : "reg/g/" }

    /// Protocol constants: members a registry can hold (a full one refuses new members).
    public var capacity: UInt32 { self == .validators ? 10_000 : 100_000 }

    public var name: String { self == .validators ? "validator" : "gateway" }
}

/// A committed version of the state kept outside the process's memory (the node's store):
/// entries and trie nodes, read one at a time. Reads cannot fail: an implementation that
/// cannot read its store stops the process with the store's error rather than let a block
/// execute against a partial state (ADR 0018).
public protocol StateSource: Sendable {
    func entry(_ key: StoreKey) -> [UInt8]?
    func trieNode(at position: TriePosition) -> TrieNode?
    /// Every entry, in key order (whole-state tools and snapshots: slow).
    func forEachEntry(_ body: (StoreKey, [UInt8]) throws -> Void) rethrows
}

/// The committed chain state: its entries and the Merkle trie over them.
///
/// A state either lives in memory (tests, the simulator, a genesis or a restored snapshot
/// before it is stored) or reads through a `StateSource` (the node's store, ADR 0018) with the
/// changes of blocks not yet stored held in memory on top. Execution never mutates it: a block
/// runs against an `ExecutionState` overlay, and `commit` folds the result in once the block is
/// decided; a node that has stored the block moves the state onto the store's new version
/// instead, so what it holds in memory does not grow with history.
public struct ChainState: Sendable, TrieNodeReading {
    /// Entries written since `source` (all of them without one); nil: deleted.
    private var entryLayer: [StoreKey: [UInt8]?] = [:]
    /// Trie nodes written since `source` (all of them without one); nil: deleted.
    private var nodeLayer: [TriePosition: TrieNode?] = [:]
    private var source: (any StateSource)? = nil
    public private(set) var root: Hash256 = .zero

    public init() {}

    /// A state in memory holding `entries` (genesis, a restored snapshot).
    public init(entries: [StoreKey: [UInt8]]) {
        let update = StateTrie.update(entries.map { StateTrie.Change(path: Blake2b.hash256($0.key), valueHash: Blake2b.hash256($0.value)) },
                                      over: ChainState())
        for (key, value) in entries { entryLayer[key] = value }
        for (position, node) in update.writes { if let node { nodeLayer[position] = node } }
        root = update.rootHash
    }

    /// The version a store holds.
    public init(source: any StateSource) {
        self.source = source
        root = source.trieNode(at: .root)?.hash ?? .zero
    }

    public func get(_ key: StoreKey) -> [UInt8]? {
        if let layered = entryLayer[key] { return layered }
        return source?.entry(key)
    }

    public func trieNode(at position: TriePosition) -> TrieNode? {
        if let layered = nodeLayer[position] { return layered }
        return source?.trieNode(at: position)
    }

    /// Folds an executed block in, in memory. Precondition: it was executed against this very state.
    public mutating func commit(_ block: ExecutedBlock) {
        precondition(block.baseRoot == root, "committing a block executed against another state")
        for (key, value) in block.changes {
            if let value { entryLayer[key] = value } else if source == nil { entryLayer.removeValue(forKey: key) } else { entryLayer[key] = .some(nil) }
        }
        for (position, node) in block.trieWrites {
            if let node { nodeLayer[position] = node } else if source == nil { nodeLayer.removeValue(forKey: position) } else { nodeLayer[position] = .some(nil) }
        }
        root = block.stateRoot
    }

    /// Moves onto `source`, a store that now holds this state with `block` committed (and
    /// everything this value held in memory). Precondition: `block` was executed against this state.
    public mutating func commit(_ block: ExecutedBlock, storedIn source: any StateSource) {
        precondition(block.baseRoot == root, "committing a block executed against another state")
        self.source = source
        entryLayer = [:]
        nodeLayer = [:]
        root = block.stateRoot
    }

    /// What a store holding `source` (nothing, for a state in memory) lacks to hold this state:
    /// entries and trie nodes to write, nil to delete.
    public var unstored: (entries: [StoreKey: [UInt8]?], nodes: [TriePosition: TrieNode?]) { (entryLayer, nodeLayer) }

    /// Every entry, in no particular order (whole-state checks: slow on a stored state).
    public func forEachEntry(_ body: (StoreKey, [UInt8]) throws -> Void) rethrows {
        try source?.forEachEntry { key, value in
            if entryLayer[key] == nil { try body(key, value) }
        }
        for (key, value) in entryLayer { if let value { try body(key, value) } }
    }

    /// Every entry, in key order: streamed from the store when nothing is held on top of it (the
    /// node's state right after a commit), so the whole state is never in memory at once;
    /// otherwise gathered and sorted.
    public func forEachEntryInKeyOrder(_ body: (StoreKey, [UInt8]) throws -> Void) rethrows {
        if let source, entryLayer.isEmpty {
            try source.forEachEntry(body)
        } else {
            for (key, value) in sortedEntries() { try body(key, value) }
        }
    }

    /// Every entry, in key order.
    public func sortedEntries() -> [(key: StoreKey, value: [UInt8])] {
        var all: [(key: StoreKey, value: [UInt8])] = []
        forEachEntry { all.append(($0, $1)) }
        return all.sorted { $0.key < $1.key }
    }

    /// A proof for the entry at `key` (or its absence) against `root`.
    public func proof(key: StoreKey) -> StateTrie.Proof { StateTrie.proof(path: Blake2b.hash256(key), in: self) }

    /// A proof against the root of `block` executed on this state, before it is committed.
    public func proof(key: StoreKey, after block: ExecutedBlock) -> StateTrie.Proof {
        precondition(block.baseRoot == root, "a block executed against another state")
        return StateTrie.proof(path: Blake2b.hash256(key), in: Pending(base: self, writes: block.trieWrites))
    }

    /// A state's trie with a block's writes on top.
    private struct Pending: TrieNodeReading {
        let base: ChainState
        let writes: [TriePosition: TrieNode?]
        func trieNode(at position: TriePosition) -> TrieNode? {
            if let written = writes[position] { return written }
            return base.trieNode(at: position)
        }
    }

    public func decode<T: CanonicalDecodable>(_ type: T.Type, at key: StoreKey) -> T? {
        guard let bytes = get(key) else { return nil }
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
    private(set) var changes: [StoreKey: [UInt8]?] = [:]
    private var journal: [(StoreKey, [UInt8]??)]? = nil

    init(base: ChainState, expectedWrites: Int = 0) {
        self.base = base
        changes.reserveCapacity(expectedWrites)
    }

    func get(_ key: StoreKey) -> [UInt8]? {
        if let changed = changes[key] { return changed }
        return base.get(key)
    }

    func read<T: CanonicalDecodable>(_ type: T.Type, _ key: StoreKey) -> T? {
        guard let bytes = get(key) else { return nil }
        do { return try T.decode(exactly: bytes) } catch { preconditionFailure("corrupt state entry: \(error)") }
    }

    mutating func write<T: CanonicalEncodable>(_ key: StoreKey, _ value: T) { set(key, value.canonicalBytes) }

    mutating func delete(_ key: StoreKey) { set(key, nil) }

    /// Records the change, and what it replaces in the journal when a call is running (one
    /// hash of the key for both).
    private mutating func set(_ key: StoreKey, _ value: [UInt8]?) {
        let previous = changes.updateValue(value, forKey: key)
        if journal != nil { journal!.append((key, previous)) }
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

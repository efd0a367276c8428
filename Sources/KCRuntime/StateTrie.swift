import KCCodec
import KCCrypto
import Synchronization

/// The authenticated structure over the chain state: a compacted sparse Merkle tree
/// (see specs/adr/0002-state-commitment.md and specs/runtime.md, "State commitment").
///
/// Every state entry sits at the 256-bit path `BLAKE2b-256(state key)`. The hash of a subtree
/// at depth d holding the set S of entries is
///   - the zero hash if S is empty,
///   - `BLAKE2b-256(0x00 || path || BLAKE2b-256(value))` if S holds one entry (a leaf sits as
///     high as it can: no chain of single-child nodes below it),
///   - `BLAKE2b-256(0x01 || hash(S with bit d = 0) || hash(S with bit d = 1))` otherwise.
/// The root therefore depends only on the set of entries, never on the order of updates.
///
/// The tree is persistent (immutable nodes, shared between versions), so a speculative block
/// execution can build a new root while the committed tree stays intact. A batch update
/// writes and hashes only the nodes on changed paths, each once.
///
/// Nodes live in an append-only arena (`NodeArena`, ADR 0006) and refer to their children by
/// index, not by reference: building a new branch over an untouched sibling stores the
/// sibling's index and never touches its memory (a reference would be retained, a cache
/// miss per level), and an old version dies without a release per node. Versions derived
/// from one another share an arena; once most of it is dead (`needsCompaction`), an update
/// copies the live tree into a fresh arena and the old one goes when its last version does.
public struct StateTrie: Sendable {
    /// A node's position in its arena.
    typealias NodeIndex = UInt32
    /// No node: an empty subtree or an absent child.
    static let none: NodeIndex = .max
    /// Marks a slot as a leaf (in both child fields; a branch never has two equal children).
    static let leafMark: NodeIndex = .max - 1

    /// One node. A node does not store its own hash: its parent does (a branch keeps both
    /// children's hashes), so re-hashing a changed path never reads the untouched siblings,
    /// and the root's hash is kept beside the root.
    struct Slot {
        /// Leaf: the path. Branch: the left child's hash.
        var first: Hash256
        /// Leaf: the value hash. Branch: the right child's hash.
        var second: Hash256
        /// Branch: the children (`none` when absent, never both). Leaf: both `leafMark`.
        var left: NodeIndex
        var right: NodeIndex

        var isLeaf: Bool { left == StateTrie.leafMark }
    }

    /// A subtree: its root node and hash (`none` and the zero hash when empty).
    struct Subtree {
        let index: NodeIndex
        let hash: Hash256
        static let empty = Subtree(index: StateTrie.none, hash: .zero)
        var isEmpty: Bool { index == StateTrie.none }
    }

    /// One change: set the value hash at `path`, or remove the entry (nil).
    public struct Change: Sendable {
        public let path: Hash256
        public let valueHash: Hash256?
        public init(path: Hash256, valueHash: Hash256?) {
            self.path = path
            self.valueHash = valueHash
        }
    }

    private var arena: NodeArena
    private var root = Subtree.empty
    public private(set) var count: Int = 0

    public init() { arena = NodeArena() }

    public var rootHash: Hash256 { root.hash }

    /// Slots in this version's arena, live or dead (for tests of the compaction rule).
    var arenaSlotCount: Int { arena.count }
    /// Tells arenas apart (for tests: a compaction moves a version to a new one).
    var arenaIdentity: ObjectIdentifier { ObjectIdentifier(arena) }

    static func leafHash(path: Hash256, valueHash: Hash256) -> Hash256 {
        Blake2b.hash256(tag: 0, path, valueHash)
    }

    static func branchHash(left: Hash256, right: Hash256) -> Hash256 {
        Blake2b.hash256(tag: 1, left, right)
    }

    /// Applies a set of changes at once. Paths must be distinct.
    public mutating func apply(_ changes: [Change]) {
        guard !changes.isEmpty else { return }
        let sorted = changes.sorted { $0.path < $1.path }
        for index in sorted.indices.dropFirst() {
            precondition(sorted[index - 1].path != sorted[index].path, "duplicate path in one trie update")
        }
        var delta = 0
        let arena = self.arena
        let base = root
        root = arena.appending { builder in
            Self.update(base, depth: 0, changes: sorted[...], countDelta: &delta, builder: &builder)
        }
        count += delta
        precondition(count >= 0, "trie entry count went negative")
        compactIfMostlyGarbage()
    }

    /// A tree of n entries has n leaves and, for random paths, about 1.45 n branches (as
    /// measured in the runtime benchmark's tree; a branch with one child stays when that child
    /// is a branch: entries that share a prefix hang below a chain). When the arena holds more
    /// than 6 n slots plus a chunk (so well over half of it is dead: nodes of replaced paths
    /// and of proposals never decided), the live tree moves to a fresh arena. Memory stays
    /// within a few times the live tree, and the copy costs one walk of it every so many blocks.
    static func needsCompaction(arenaSlots: Int, entries: Int) -> Bool {
        arenaSlots > 6 * entries + NodeArena.chunkCapacity
    }

    private mutating func compactIfMostlyGarbage() {
        let old = arena
        let slotsBefore = old.count
        guard Self.needsCompaction(arenaSlots: slotsBefore, entries: count) else { return }
        let fresh = NodeArena()
        let oldRoot = root
        root = fresh.appending { builder in
            guard !oldRoot.isEmpty else { return .empty }
            return Subtree(index: Self.copy(oldRoot.index, from: old, builder: &builder), hash: oldRoot.hash)
        }
        arena = fresh
        precondition(fresh.count <= slotsBefore, "compaction copied more nodes than the arena held")
    }

    /// Copies the subtree at `index` into `builder`'s arena, children first; returns its new index.
    private static func copy(_ index: NodeIndex, from old: NodeArena, builder: inout NodeArena.Builder) -> NodeIndex {
        var slot = old[index]
        if !slot.isLeaf {
            if slot.left != none { slot.left = copy(slot.left, from: old, builder: &builder) }
            if slot.right != none { slot.right = copy(slot.right, from: old, builder: &builder) }
        }
        return builder.append(slot)
    }

    private static func update(_ subtree: Subtree, depth: Int, changes: ArraySlice<Change>, countDelta: inout Int,
                               builder: inout NodeArena.Builder) -> Subtree {
        if changes.isEmpty { return subtree }
        guard !subtree.isEmpty else {
            var inserts: [(Hash256, Hash256)] = []
            inserts.reserveCapacity(changes.count)
            for change in changes { if let valueHash = change.valueHash { inserts.append((change.path, valueHash)) } }
            countDelta += inserts.count
            return build(inserts[...], depth: depth, builder: &builder)
        }
        let node = builder.arena[subtree.index]
        if node.isLeaf {
            let path = node.first
            // Merge the existing leaf into the change list unless a change replaces it.
            var entries: [(Hash256, Hash256)] = []
            entries.reserveCapacity(changes.count + 1)
            var replaced = false
            for change in changes {
                if change.path == path {
                    replaced = true
                    if let newHash = change.valueHash { entries.append((path, newHash)) } else { countDelta -= 1 }
                } else if let newHash = change.valueHash {
                    entries.append((change.path, newHash))
                    countDelta += 1
                }
            }
            if !replaced {
                let position = entries.firstIndex { path < $0.0 } ?? entries.count
                entries.insert((path, node.second), at: position)
            }
            return build(entries[...], depth: depth, builder: &builder)
        }
        precondition(depth < 256, "trie deeper than the key length")
        let split = changes.firstIndex { $0.path.bit(at: depth) } ?? changes.endIndex
        let newLeft = update(Subtree(index: node.left, hash: node.first), depth: depth + 1,
                             changes: changes[..<split], countDelta: &countDelta, builder: &builder)
        let newRight = update(Subtree(index: node.right, hash: node.second), depth: depth + 1,
                              changes: changes[split...], countDelta: &countDelta, builder: &builder)
        return normalized(left: newLeft, right: newRight, builder: &builder)
    }

    /// A branch that holds a single leaf collapses into that leaf, keeping the tree compact.
    private static func normalized(left: Subtree, right: Subtree, builder: inout NodeArena.Builder) -> Subtree {
        switch (left.isEmpty, right.isEmpty) {
        case (true, true): return .empty
        case (false, true):
            return builder.arena[left.index].isLeaf ? left : branch(left: left, right: right, builder: &builder)
        case (true, false):
            return builder.arena[right.index].isLeaf ? right : branch(left: left, right: right, builder: &builder)
        case (false, false): return branch(left: left, right: right, builder: &builder)
        }
    }

    private static func leaf(path: Hash256, valueHash: Hash256, builder: inout NodeArena.Builder) -> Subtree {
        let index = builder.append(Slot(first: path, second: valueHash, left: leafMark, right: leafMark))
        return Subtree(index: index, hash: leafHash(path: path, valueHash: valueHash))
    }

    private static func branch(left: Subtree, right: Subtree, builder: inout NodeArena.Builder) -> Subtree {
        precondition(!left.isEmpty || !right.isEmpty, "a branch has at least one child")
        let index = builder.append(Slot(first: left.hash, second: right.hash, left: left.index, right: right.index))
        return Subtree(index: index, hash: branchHash(left: left.hash, right: right.hash))
    }

    /// Builds the subtree for sorted, distinct entries.
    private static func build(_ entries: ArraySlice<(Hash256, Hash256)>, depth: Int, builder: inout NodeArena.Builder) -> Subtree {
        if entries.isEmpty { return .empty }
        if entries.count == 1 { return leaf(path: entries.first!.0, valueHash: entries.first!.1, builder: &builder) }
        precondition(depth < 256, "two entries share a 256-bit path")
        let split = entries.firstIndex { $0.0.bit(at: depth) } ?? entries.endIndex
        let left = build(entries[..<split], depth: depth + 1, builder: &builder)
        let right = build(entries[split...], depth: depth + 1, builder: &builder)
        return branch(left: left, right: right, builder: &builder)
    }

    // MARK: proofs

    /// A proof that `path` holds a given value hash, or holds nothing.
    public struct Proof: Sendable, Equatable, CanonicalCodable {
        /// Hashes of the siblings met walking from the root down, one per level.
        public let siblings: [Hash256]
        /// What the walk ended on: nothing, or a leaf (the entry itself, or another entry
        /// whose presence at that position proves the path is empty).
        public let terminal: Terminal

        public enum Terminal: Sendable, Equatable {
            case empty
            case leaf(path: Hash256, valueHash: Hash256)
        }

        public func encode(to writer: inout CanonicalWriter) {
            writer.writeList(siblings)
            switch terminal {
            case .empty:
                writer.writeVarint(0)
            case .leaf(let path, let valueHash):
                writer.writeVarint(1)
                writer.write(path)
                writer.write(valueHash)
            }
        }

        public init(siblings: [Hash256], terminal: Terminal) {
            self.siblings = siblings
            self.terminal = terminal
        }

        public init(from reader: inout CanonicalReader) throws(DecodingError) {
            siblings = try reader.readList(Hash256.self, "proof siblings", limit: 256)
            let tag = try reader.readVarint("proof terminal tag")
            switch tag {
            case 0: terminal = .empty
            case 1: terminal = .leaf(path: try reader.read(Hash256.self), valueHash: try reader.read(Hash256.self))
            default: throw .unknownTag(what: "proof terminal", tag: tag)
            }
        }
    }

    public func proof(path: Hash256) -> Proof {
        var siblings: [Hash256] = []
        var index = root.index
        var depth = 0
        while index != Self.none {
            let node = arena[index]
            if node.isLeaf {
                return Proof(siblings: siblings, terminal: .leaf(path: node.first, valueHash: node.second))
            }
            let goRight = path.bit(at: depth)
            siblings.append(goRight ? node.first : node.second)
            index = goRight ? node.right : node.left
            depth += 1
        }
        return Proof(siblings: siblings, terminal: .empty)
    }

    /// Checks a proof against a root. `valueHash` nil asks "is `path` absent?".
    /// Needs nothing but the root, so a client that trusts only block headers can run it.
    public static func verify(proof: Proof, root: Hash256, path: Hash256, valueHash: Hash256?) -> Bool {
        guard proof.siblings.count <= 256 else { return false }
        let depth = proof.siblings.count
        var hash: Hash256
        switch proof.terminal {
        case .empty:
            guard valueHash == nil else { return false }
            hash = .zero
        case .leaf(let leafPath, let leafValueHash):
            if let valueHash {
                guard leafPath == path && leafValueHash == valueHash else { return false }
            } else {
                // Absence: a different leaf occupies the spot our path leads to.
                guard leafPath != path else { return false }
                for bit in 0..<depth where leafPath.bit(at: bit) != path.bit(at: bit) { return false }
            }
            hash = leafHash(path: leafPath, valueHash: leafValueHash)
        }
        for level in stride(from: depth - 1, through: 0, by: -1) {
            let sibling = proof.siblings[level]
            hash = path.bit(at: level) ? branchHash(left: sibling, right: hash) : branchHash(left: hash, right: sibling)
        }
        return hash == root
    }
}

/// The append-only node store of `StateTrie` versions (ADR 0006).
///
/// Slots live in fixed chunks that never move, so a slot, once written, can be read from any
/// thread that was handed a trie referring to it (the hand-over orders the write before the
/// read) without a lock. Appends hold the lock for a whole update, so versions built from
/// one arena on different threads never interleave their slots. Nothing is freed one by one:
/// the chunks go with the arena. Slots hold only integers and hashes (no references).
final class NodeArena: @unchecked Sendable {
    // @unchecked: the chunk table and the slots are written only under `appendLock`, each
    // slot once and before any trie refers to it; afterwards they are only read.
    static let chunkShift = 16
    static let chunkCapacity = 1 << chunkShift
    /// 4,096 chunks of 65,536 slots: 268 million nodes, far beyond a state held in memory.
    static let maxChunks = 4_096

    private let chunks: UnsafeMutablePointer<UnsafeMutablePointer<StateTrie.Slot>?>
    /// Guards appends; holds the number of slots written.
    private let appendLock = Mutex<Int>(0)

    init() {
        chunks = .allocate(capacity: Self.maxChunks)
        chunks.initialize(repeating: nil, count: Self.maxChunks)
    }

    deinit {
        for chunk in 0..<Self.maxChunks {
            guard let slots = chunks[chunk] else { break }
            slots.deallocate()
        }
        chunks.deallocate()
    }

    /// Slots written so far, by every version sharing the arena.
    var count: Int { appendLock.withLock { $0 } }

    /// Precondition: `index` came from this arena's `append`.
    subscript(index: StateTrie.NodeIndex) -> StateTrie.Slot {
        let position = Int(index)
        return chunks[position >> Self.chunkShift].unsafelyUnwrapped[position & (Self.chunkCapacity - 1)]
    }

    /// Appends through `body`, holding the lock throughout.
    func appending<Result>(_ body: (inout Builder) -> Result) -> Result {
        appendLock.withLock { count in
            var builder = Builder(arena: self, count: count)
            let result = body(&builder)
            count = builder.count
            return result
        }
    }

    /// Writes slots at the arena's end; exists only inside `appending`.
    struct Builder {
        let arena: NodeArena
        fileprivate(set) var count: Int

        mutating func append(_ slot: StateTrie.Slot) -> StateTrie.NodeIndex {
            let position = count
            precondition(position < Int(StateTrie.leafMark) && position < NodeArena.maxChunks << NodeArena.chunkShift,
                         "trie arena is full")
            let chunk = position >> NodeArena.chunkShift
            if arena.chunks[chunk] == nil { arena.chunks[chunk] = .allocate(capacity: NodeArena.chunkCapacity) }
            (arena.chunks[chunk].unsafelyUnwrapped + (position & (NodeArena.chunkCapacity - 1))).initialize(to: slot)
            count = position + 1
            return StateTrie.NodeIndex(position)
        }
    }
}

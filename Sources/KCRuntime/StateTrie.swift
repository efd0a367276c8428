import KCCodec
import KCCrypto

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
/// allocates and hashes only the nodes on changed paths, each once.
public struct StateTrie: Sendable {
    /// A node does not store its own hash: its parent does (a branch keeps both children's
    /// hashes), so re-hashing a changed path never reads the untouched siblings' memory, and
    /// the root's hash is kept beside the root.
    class Node: @unchecked Sendable {
        // @unchecked: immutable after construction; the subclasses hold only `let`s.
        let isLeaf: Bool
        init(isLeaf: Bool) { self.isLeaf = isLeaf }
    }

    final class Leaf: Node, @unchecked Sendable {
        let path: Hash256
        let valueHash: Hash256
        init(path: Hash256, valueHash: Hash256) {
            self.path = path
            self.valueHash = valueHash
            super.init(isLeaf: true)
        }
    }

    final class Branch: Node, @unchecked Sendable {
        let left: Node?, right: Node?
        let leftHash: Hash256, rightHash: Hash256
        init(left: Subtree, right: Subtree) {
            precondition(left.node != nil || right.node != nil, "a branch has at least one child")
            self.left = left.node
            self.right = right.node
            leftHash = left.hash
            rightHash = right.hash
            super.init(isLeaf: false)
        }
    }

    /// A subtree and its hash (the zero hash when empty).
    struct Subtree {
        let node: Node?
        let hash: Hash256
        static let empty = Subtree(node: nil, hash: .zero)

        static func leaf(path: Hash256, valueHash: Hash256) -> Subtree {
            Subtree(node: Leaf(path: path, valueHash: valueHash), hash: leafHash(path: path, valueHash: valueHash))
        }

        static func branch(left: Subtree, right: Subtree) -> Subtree {
            Subtree(node: Branch(left: left, right: right), hash: branchHash(left: left.hash, right: right.hash))
        }
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

    private var root = Subtree.empty
    public private(set) var count: Int = 0

    public init() {}

    public var rootHash: Hash256 { root.hash }

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
        root = StateTrie.update(root, depth: 0, changes: sorted[...], countDelta: &delta)
        count += delta
        precondition(count >= 0, "trie entry count went negative")
    }

    private static func update(_ subtree: Subtree, depth: Int, changes: ArraySlice<Change>, countDelta: inout Int) -> Subtree {
        if changes.isEmpty { return subtree }
        guard let node = subtree.node else {
            let inserts = changes.compactMap { change in change.valueHash.map { (change.path, $0) } }
            countDelta += inserts.count
            return build(inserts[...], depth: depth)
        }
        if node.isLeaf {
            let leaf = unsafeDowncast(node, to: Leaf.self)
            let path = leaf.path
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
                entries.insert((path, leaf.valueHash), at: position)
            }
            return build(entries[...], depth: depth)
        }
        let branch = unsafeDowncast(node, to: Branch.self)
        precondition(depth < 256, "trie deeper than the key length")
        let split = changes.firstIndex { $0.path.bit(at: depth) } ?? changes.endIndex
        let newLeft = update(Subtree(node: branch.left, hash: branch.leftHash), depth: depth + 1,
                             changes: changes[..<split], countDelta: &countDelta)
        let newRight = update(Subtree(node: branch.right, hash: branch.rightHash), depth: depth + 1,
                              changes: changes[split...], countDelta: &countDelta)
        return normalized(left: newLeft, right: newRight)
    }

    /// A branch that holds a single leaf collapses into that leaf, keeping the tree compact.
    private static func normalized(left: Subtree, right: Subtree) -> Subtree {
        switch (left.node, right.node) {
        case (nil, nil): return .empty
        case (let only?, nil):
            return only.isLeaf ? left : .branch(left: left, right: right)
        case (nil, let only?):
            return only.isLeaf ? right : .branch(left: left, right: right)
        case (_?, _?): return .branch(left: left, right: right)
        }
    }

    /// Builds the subtree for sorted, distinct entries.
    private static func build(_ entries: ArraySlice<(Hash256, Hash256)>, depth: Int) -> Subtree {
        if entries.isEmpty { return .empty }
        if entries.count == 1 { return .leaf(path: entries.first!.0, valueHash: entries.first!.1) }
        precondition(depth < 256, "two entries share a 256-bit path")
        let split = entries.firstIndex { $0.0.bit(at: depth) } ?? entries.endIndex
        return .branch(left: build(entries[..<split], depth: depth + 1), right: build(entries[split...], depth: depth + 1))
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
        var node = root.node
        var depth = 0
        while let current = node {
            if current.isLeaf {
                let leaf = unsafeDowncast(current, to: Leaf.self)
                return Proof(siblings: siblings, terminal: .leaf(path: leaf.path, valueHash: leaf.valueHash))
            }
            let branch = unsafeDowncast(current, to: Branch.self)
            let goRight = path.bit(at: depth)
            siblings.append(goRight ? branch.leftHash : branch.rightHash)
            node = goRight ? branch.right : branch.left
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

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
/// Nodes are named by their position (`TriePosition`), not by reference, so a version of the
/// tree is any `TrieNodeReading`: the node's store, or this in-memory map (tests, the
/// simulator, a state being assembled). `update(_:over:)` reads the nodes on the changed paths
/// of one version and returns the nodes to write and to delete to get the next (ADR 0018):
/// the version it read stays intact, so a speculative block leaves the committed tree alone.
public struct StateTrie: Sendable, TrieNodeReading {
    /// One change: set the value hash at `path`, or remove the entry (nil).
    public struct Change: Sendable {
        public let path: Hash256
        public let valueHash: Hash256?
        public init(path: Hash256, valueHash: Hash256?) {
            self.path = path
            self.valueHash = valueHash
        }
    }

    /// What one batch of changes does to a version: the nodes to write (nil: delete) and the
    /// new root.
    public struct Update: Sendable {
        public let writes: [TriePosition: TrieNode?]
        public let root: TrieNode?
        public let countDelta: Int
        public var rootHash: Hash256 { root?.hash ?? .zero }
    }

    public private(set) var nodes: [TriePosition: TrieNode] = [:]
    public private(set) var count = 0

    public init() {}

    public var rootHash: Hash256 { nodes[.root]?.hash ?? .zero }

    public func trieNode(at position: TriePosition) -> TrieNode? { nodes[position] }

    /// Applies a set of changes at once. Paths must be distinct.
    public mutating func apply(_ changes: [Change]) {
        let update = Self.update(changes, over: self)
        for (position, node) in update.writes {
            if let node { nodes[position] = node } else { nodes.removeValue(forKey: position) }
        }
        count += update.countDelta
        precondition(count >= 0, "trie entry count went negative")
    }

    public func proof(path: Hash256) -> Proof { Self.proof(path: path, in: self) }

    static func leafHash(path: Hash256, valueHash: Hash256) -> Hash256 {
        Blake2b.hash256(tag: 0, path, valueHash)
    }

    static func branchHash(left: Hash256, right: Hash256) -> Hash256 {
        Blake2b.hash256(tag: 1, left, right)
    }

    /// The writes that turn the version `reader` holds into the one with `changes` applied.
    /// Paths must be distinct. Reads only nodes on the changed paths and their siblings' tops.
    public static func update<Reader: TrieNodeReading>(_ changes: [Change], over reader: Reader) -> Update {
        let oldRoot = reader.trieNode(at: .root)
        guard !changes.isEmpty else { return Update(writes: [:], root: oldRoot, countDelta: 0) }
        let sorted = changes.sorted { $0.path < $1.path }
        for index in sorted.indices.dropFirst() {
            precondition(sorted[index - 1].path != sorted[index].path, "duplicate path in one trie update")
        }
        var updater = Updater(reader: reader)
        // Each change writes its path's nodes below the levels the changes share (about 9 a
        // change for 3,000 changes in 300,000 entries): reserving a dozen spares the map the
        // rehashes of growing (4 % of a block's execution and storing in a profile).
        updater.writes.reserveCapacity(sorted.count * 12)
        let result = updater.update(.root, old: oldRoot, changes: sorted[...])
        let root: TrieNode?
        switch result {
        case .empty:
            if oldRoot != nil { updater.writes[.root] = .some(nil) }
            root = nil
        case .unchanged:
            root = oldRoot
        case .node(let node, _):
            updater.writes[.root] = node
            root = node
        }
        return Update(writes: updater.writes, root: root, countDelta: updater.countDelta)
    }

    /// A subtree after an update, as its parent sees it.
    enum Subtree {
        case empty
        /// Untouched: the node stored at its position stays, with this hash.
        case unchanged(Hash256)
        /// A new node for its position (or for a position above, when a lone leaf moves up).
        case node(TrieNode, Hash256)

        var isEmpty: Bool { if case .empty = self { return true } else { return false } }

        var hash: Hash256 {
            switch self {
            case .empty: return .zero
            case .unchanged(let hash), .node(_, let hash): return hash
            }
        }
    }

    /// One update's walk. Contract of `update(position, …)`: on return every position strictly
    /// below `position` holds the new subtree's nodes (nothing at all when the result is empty
    /// or a leaf); the node at `position` itself is the caller's to write, move or delete.
    struct Updater<Reader: TrieNodeReading> {
        let reader: Reader
        var writes: [TriePosition: TrieNode?] = [:]
        var countDelta = 0

        func read(_ position: TriePosition) -> TrieNode {
            guard let node = reader.trieNode(at: position) else {
                preconditionFailure("state trie node missing at \(position): the state store is damaged")
            }
            return node
        }

        mutating func update(_ position: TriePosition, old: TrieNode?, changes: ArraySlice<Change>) -> Subtree {
            let depth = Int(position.depth)
            switch old {
            case nil:
                var inserts: [(Hash256, Hash256)] = []
                inserts.reserveCapacity(changes.count)
                for change in changes { if let valueHash = change.valueHash { inserts.append((change.path, valueHash)) } }
                countDelta += inserts.count
                return build(position, inserts[...])
            case .leaf(let path, let oldValueHash):
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
                    let insertAt = entries.firstIndex { path < $0.0 } ?? entries.count
                    entries.insert((path, oldValueHash), at: insertAt)
                }
                return build(position, entries[...])
            case .branch(let leftHash, let rightHash):
                precondition(depth < 256, "trie deeper than the key length")
                let split = changes.firstIndex { $0.path.bit(at: depth) } ?? changes.endIndex
                let left = side(position.child(right: false), hash: leftHash, changes: changes[..<split])
                let right = side(position.child(right: true), hash: rightHash, changes: changes[split...])
                return join(position, left: left, right: right, oldLeft: leftHash != .zero, oldRight: rightHash != .zero)
            }
        }

        private mutating func side(_ position: TriePosition, hash: Hash256, changes: ArraySlice<Change>) -> Subtree {
            if changes.isEmpty { return hash == .zero ? .empty : .unchanged(hash) }
            return update(position, old: hash == .zero ? nil : read(position), changes: changes)
        }

        /// The node at `position` over its two new sides; a lone leaf moves up (the tree keeps
        /// no branch over a single leaf), a lone branch keeps its place below a one-sided branch.
        private mutating func join(_ position: TriePosition, left: Subtree, right: Subtree, oldLeft: Bool, oldRight: Bool) -> Subtree {
            let leftPosition = position.child(right: false), rightPosition = position.child(right: true)
            var left = left, right = right
            // An untouched side next to an empty one: only a leaf moves, so look at it.
            if left.isEmpty, case .unchanged(let hash) = right, case let node = read(rightPosition), node.isLeaf { right = .node(node, hash) }
            if right.isEmpty, case .unchanged(let hash) = left, case let node = read(leftPosition), node.isLeaf { left = .node(node, hash) }
            switch (left, right) {
            case (.empty, .empty):
                if oldLeft { writes[leftPosition] = .some(nil) }
                if oldRight { writes[rightPosition] = .some(nil) }
                return .empty
            case (.node(let node, _), .empty) where node.isLeaf, (.empty, .node(let node, _)) where node.isLeaf:
                if oldLeft { writes[leftPosition] = .some(nil) }
                if oldRight { writes[rightPosition] = .some(nil) }
                return left.isEmpty ? right : left
            default:
                place(left, at: leftPosition, existed: oldLeft)
                place(right, at: rightPosition, existed: oldRight)
                let node = TrieNode.branch(left: left.hash, right: right.hash)
                return .node(node, node.hash)
            }
        }

        private mutating func place(_ subtree: Subtree, at position: TriePosition, existed: Bool) {
            switch subtree {
            case .empty: if existed { writes[position] = .some(nil) }
            case .unchanged: break
            case .node(let node, _): writes[position] = node
            }
        }

        /// The subtree for sorted, distinct entries where nothing was before.
        mutating func build(_ position: TriePosition, _ entries: ArraySlice<(Hash256, Hash256)>) -> Subtree {
            if entries.isEmpty { return .empty }
            if entries.count == 1 {
                let node = TrieNode.leaf(path: entries.first!.0, valueHash: entries.first!.1)
                return .node(node, node.hash)
            }
            let depth = Int(position.depth)
            precondition(depth < 256, "two entries share a 256-bit path")
            let split = entries.firstIndex { $0.0.bit(at: depth) } ?? entries.endIndex
            // Two or more entries: a side holding one is a leaf beside a non-empty side, so
            // nothing built here ever moves up.
            let left = build(position.child(right: false), entries[..<split])
            let right = build(position.child(right: true), entries[split...])
            place(left, at: position.child(right: false), existed: false)
            place(right, at: position.child(right: true), existed: false)
            let node = TrieNode.branch(left: left.hash, right: right.hash)
            return .node(node, node.hash)
        }
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

    /// The proof for `path` in the version `reader` holds.
    public static func proof<Reader: TrieNodeReading>(path: Hash256, in reader: Reader) -> Proof {
        var siblings: [Hash256] = []
        var position = TriePosition.root
        var next = reader.trieNode(at: .root)
        while let node = next {
            switch node {
            case .leaf(let leafPath, let valueHash):
                return Proof(siblings: siblings, terminal: .leaf(path: leafPath, valueHash: valueHash))
            case .branch(let left, let right):
                let goRight = path.bit(at: Int(position.depth))
                siblings.append(goRight ? left : right)
                position = position.child(right: goRight)
                guard (goRight ? right : left) != .zero else { next = nil; break }
                guard let child = reader.trieNode(at: position) else {
                    preconditionFailure("state trie node missing at \(position): the state store is damaged")
                }
                next = child
            }
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

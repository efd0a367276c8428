import KCCrypto
import KCRuntime

/// Trie nodes as the store keeps them: four levels to a value (ADR 0018).
///
/// The page rooted at a depth that is a multiple of four holds the nodes of that subtree down
/// to three levels below its root (at most 15). A block then writes and reads about a quarter
/// as many keys as it changes nodes: each key costs a search of RocksDB's memtable to write and
/// of its files to read, whatever its size, and a measured node-per-key layout spent more than a
/// third of the consensus thread there.
public struct TriePage: Sendable, Equatable {
    public static let levels = 4

    public struct Slot: Sendable, Equatable {
        /// (1 << k) - 1 + the k path bits below the page's root, for a node k levels down (0...14).
        public let index: UInt8
        public let node: TrieNode
    }

    /// By index, each index once.
    public private(set) var slots: [Slot] = []

    public init() {}

    public var isEmpty: Bool { slots.isEmpty }

    /// The page holding the node at `position`: the position of its root.
    public static func root(of position: TriePosition) -> TriePosition {
        TriePosition(depth: Int(position.depth) & ~(levels - 1), on: position.prefix)
    }

    /// Where in its page the node at `position` sits.
    static func index(of position: TriePosition) -> UInt8 {
        let depth = Int(position.depth)
        let below = depth & (levels - 1)
        let top = depth - below
        var bits = 0
        for offset in 0..<below { bits = bits << 1 | (position.prefix.bit(at: top + offset) ? 1 : 0) }
        return UInt8((1 << below) - 1 + bits)
    }

    public func node(at position: TriePosition) -> TrieNode? {
        let index = Self.index(of: position)
        return slots.first { $0.index == index }?.node
    }

    /// Sets (or, with nil, removes) the node at `position`, which must belong to this page.
    mutating func set(_ position: TriePosition, _ node: TrieNode?) {
        let index = Self.index(of: position)
        let at = slots.firstIndex { $0.index >= index } ?? slots.endIndex
        let present = at < slots.endIndex && slots[at].index == index
        switch (node, present) {
        case (let node?, true): slots[at] = Slot(index: index, node: node)
        case (let node?, false): slots.insert(Slot(index: index, node: node), at: at)
        case (nil, true): slots.remove(at: at)
        case (nil, false): break
        }
    }

    /// Slots of the page's top three levels (indexes 0 to 6): their children are in the page.
    static let innerSlots = 7

    /// The stored form, by index (ADR 0031): per node its index (one byte), then a tag and the
    /// node: 0 leaf ‖ path ‖ value hash, 1 branch ‖ left hash ‖ right hash (65 bytes), or 2 alone
    /// for a branch of the top three levels whose sides are its children in this page (or
    /// empty): their hashes are computed again when the page is read. Only the bottom level's
    /// branches, whose children are the roots of the pages below, carry their hashes.
    public var bytes: [UInt8] {
        var present: UInt16 = 0
        for slot in slots { present |= 1 << slot.index }
        var out: [UInt8] = []
        out.reserveCapacity(slots.count * 66)
        for slot in slots {
            out.append(slot.index)
            if isDerived(slot, present: present) { out.append(Self.derivedTag) } else { out.append(contentsOf: slot.node.bytes) }
        }
        return out
    }

    static let derivedTag: UInt8 = 2

    /// Whether `slot` is a branch of the top three levels whose sides are exactly its children
    /// in the page (`present`: a bit per index held): present where the side is not empty,
    /// absent where it is.
    func isDerived(_ slot: Slot, present: UInt16) -> Bool {
        guard Int(slot.index) < Self.innerSlots, case .branch(let left, let right) = slot.node else { return false }
        let index = Int(slot.index)
        return isSide(left, child: 2 * index + 1, present: present) && isSide(right, child: 2 * index + 2, present: present)
    }

    private func isSide(_ side: Hash256, child: Int, present: UInt16) -> Bool {
        guard (side == .zero) == (present & (1 << child) == 0) else { return false }
        // The trie writes a branch with its children, so a present child is the side: checked
        // in debug builds (every test); a release build does not hash each child again.
        assert(side == .zero || slots.first { Int($0.index) == child }?.node.hash == side,
               "a branch in a page disagrees with its child in the page")
        return true
    }

    /// Reads a stored page; nil when the bytes are not one.
    public init?(bytes: [UInt8]) {
        guard !bytes.isEmpty else { return nil }
        var slots: [Slot] = []
        slots.reserveCapacity(bytes.count / 66 + 1)
        var derived: [Int] = []
        var offset = 0
        while offset < bytes.count {
            guard bytes.count - offset >= 2 else { return nil }
            let index = bytes[offset]
            guard index < 15, slots.last.map({ $0.index < index }) ?? true else { return nil }
            if bytes[offset + 1] == Self.derivedTag {
                guard Int(index) < Self.innerSlots else { return nil }
                derived.append(slots.count)
                slots.append(Slot(index: index, node: .branch(left: .zero, right: .zero)))  // its hashes below
                offset += 2
            } else {
                guard bytes.count - offset >= 66, let node = TrieNode(bytes: Array(bytes[(offset + 1)..<(offset + 66)])) else { return nil }
                slots.append(Slot(index: index, node: node))
                offset += 66
            }
        }
        var positionOf = [Int?](repeating: nil, count: 15)
        for (position, slot) in slots.enumerated() { positionOf[Int(slot.index)] = position }
        // Deepest first: a derived branch's children (higher indexes) already hold their hashes.
        for position in derived.reversed() {
            let index = Int(slots[position].index)
            let left = positionOf[2 * index + 1].map { slots[$0].node.hash } ?? .zero
            let right = positionOf[2 * index + 2].map { slots[$0].node.hash } ?? .zero
            guard left != .zero || right != .zero else { return nil }  // a branch with no side
            slots[position] = Slot(index: UInt8(index), node: .branch(left: left, right: right))
        }
        self.slots = slots
    }

    /// The pages a set of node writes changes: each touched page as it will be stored (nil:
    /// delete it), from its current content (`current`) with the writes applied.
    public static func changes(_ writes: [TriePosition: TrieNode?], current: (TriePosition) -> TriePage?) -> [TriePosition: TriePage?] {
        var pages: [TriePosition: TriePage] = [:]
        for (position, node) in writes {
            // Mutated in place: one copy of a page's slots per page, not per node written.
            let root = root(of: position)
            pages[root, default: current(root) ?? TriePage()].set(position, node)
        }
        return pages.mapValues { $0.isEmpty ? nil : $0 }
    }
}

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

    /// The stored form: per node, its index (one byte) and its 65 bytes, by index.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(slots.count * 66)
        for slot in slots {
            out.append(slot.index)
            out.append(contentsOf: slot.node.bytes)
        }
        return out
    }

    /// Reads a stored page; nil when the bytes are not one.
    public init?(bytes: [UInt8]) {
        guard !bytes.isEmpty, bytes.count % 66 == 0 else { return nil }
        var slots: [Slot] = []
        slots.reserveCapacity(bytes.count / 66)
        var offset = 0
        while offset < bytes.count {
            let index = bytes[offset]
            guard index < 15, slots.last.map({ $0.index < index }) ?? true,
                  let node = TrieNode(bytes: Array(bytes[(offset + 1)..<(offset + 66)])) else { return nil }
            slots.append(Slot(index: index, node: node))
            offset += 66
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

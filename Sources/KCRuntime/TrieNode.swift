import KCCodec
import KCCrypto

/// Where a node of the state trie sits: its depth and the path bits above it.
///
/// In a compacted sparse Merkle tree every node stands for the set of entries whose paths
/// start with its prefix, so (depth, prefix) names it uniquely in one version of the tree.
/// Nodes are stored under their position (specs/storage.md, `t/`): an update overwrites the
/// nodes on the changed paths in place and deletes the ones that vanish, so the store holds
/// exactly one tree and nothing is left to collect (ADR 0018).
public struct TriePosition: Hashable, Sendable, CustomStringConvertible {
    /// 0 (the root) to 256.
    public let depth: UInt16
    /// The first `depth` bits of the paths below; the other bits are zero.
    public let prefix: Hash256

    public static let root = TriePosition(depth: 0, prefix: .zero)

    /// Precondition: `prefix` has no bit set at `depth` or below.
    init(depth: Int, prefix: Hash256) {
        precondition(depth >= 0 && depth <= 256, "trie depth out of range")
        self.depth = UInt16(depth)
        self.prefix = prefix
    }

    /// The position at `depth` on the walk to `path`.
    public init(depth: Int, on path: Hash256) {
        self.init(depth: depth, prefix: path.keepingLeadingBits(depth))
    }

    /// The child on the side the bit at this depth selects.
    func child(right: Bool) -> TriePosition {
        TriePosition(depth: Int(depth) + 1, prefix: right ? prefix.settingBit(Int(depth)) : prefix)
    }

    /// The stored form: the depth (u16, big-endian), then the prefix's first ⌈depth / 8⌉ bytes.
    public var bytes: [UInt8] {
        var out: [UInt8] = [UInt8(depth >> 8), UInt8(depth & 0xff)]
        let count = (Int(depth) + 7) / 8
        prefix.withUnsafeBytes { out.append(contentsOf: $0[0..<count]) }
        return out
    }

    /// Reads a stored position; nil when the bytes are not one (wrong length, bits past the depth).
    public init?(bytes: some Collection<UInt8>) {
        let raw = Array(bytes)
        guard raw.count >= 2 else { return nil }
        let depth = Int(raw[0]) << 8 | Int(raw[1])
        guard depth <= 256, raw.count == 2 + (depth + 7) / 8 else { return nil }
        let prefix = Hash256(raw[2...] + [UInt8](repeating: 0, count: 32 - (raw.count - 2)))
        guard prefix.keepingLeadingBits(depth) == prefix else { return nil }
        self.init(depth: depth, prefix: prefix)
    }

    public var description: String { "\(depth):\(prefix.hex.prefix((Int(depth) + 3) / 4))" }
}

/// One node of the state trie, as stored.
public enum TrieNode: Sendable, Equatable {
    /// One entry: its path and the hash of its value.
    case leaf(path: Hash256, valueHash: Hash256)
    /// Two subtrees, by hash; the zero hash is an empty side (never both).
    case branch(left: Hash256, right: Hash256)

    public var hash: Hash256 {
        switch self {
        case .leaf(let path, let valueHash): return StateTrie.leafHash(path: path, valueHash: valueHash)
        case .branch(let left, let right): return StateTrie.branchHash(left: left, right: right)
        }
    }

    public var isLeaf: Bool { if case .leaf = self { return true } else { return false } }

    /// 65 bytes: a tag (0 leaf, 1 branch) and the two hashes.
    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: 65)
        let (tag, first, second): (UInt8, Hash256, Hash256)
        switch self {
        case .leaf(let path, let valueHash): (tag, first, second) = (0, path, valueHash)
        case .branch(let left, let right): (tag, first, second) = (1, left, right)
        }
        out[0] = tag
        out.withUnsafeMutableBytes { raw in
            first.withUnsafeBytes { raw.baseAddress!.advanced(by: 1).copyMemory(from: $0.baseAddress!, byteCount: 32) }
            second.withUnsafeBytes { raw.baseAddress!.advanced(by: 33).copyMemory(from: $0.baseAddress!, byteCount: 32) }
        }
        return out
    }

    /// Reads a stored node; nil when the bytes are not one.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 65 else { return nil }
        let first = Hash256(bytes[1..<33]), second = Hash256(bytes[33..<65])
        switch bytes[0] {
        case 0: self = .leaf(path: first, valueHash: second)
        case 1:
            guard first != .zero || second != .zero else { return nil }
            self = .branch(left: first, right: second)
        default: return nil
        }
    }
}

/// Read access to one version of the trie's nodes.
public protocol TrieNodeReading {
    func trieNode(at position: TriePosition) -> TrieNode?
}

import Foundation
import KCCrypto
@testable import KCNode
import KCRuntime
import KCStorage
import Testing

/// The node's state reads through its store (ADR 0018): nothing of the state stays in memory
/// beyond a bounded cache, an older version someone still holds keeps reading its own
/// entries and nodes, and what comes back is what the store holds.
struct StoredStateTests {
    static let validator = BlockStoreTests.validator

    @Test func aCommittedStateHoldsNothingInMemory() throws {
        let blocks = BlockStore(store: MemoryStore())
        let runtime = Runtime(genesis: BlockStoreTests.genesis)
        let opened = try blocks.open(genesis: BlockStoreTests.genesis, runtime: runtime)
        #expect(opened.unstored.entries.isEmpty && opened.unstored.nodes.isEmpty)
        let state = try BlockStoreTests.produce(5, into: blocks, from: opened, runtime: runtime)
        #expect(state.unstored.entries.isEmpty && state.unstored.nodes.isEmpty)
        #expect(state.global.height == 5)
    }

    /// A state value held across later commits (a block factory's tip, a reply being built)
    /// reads its own version: values, trie nodes and proofs, even for entries the later
    /// blocks rewrote and the cache now holds in their new form.
    @Test func anOlderVersionKeepsReadingItself() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kc-stored-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let blocks = BlockStore(store: try RocksDBStore(path: directory))
        let runtime = Runtime(genesis: BlockStoreTests.genesis)
        let old = try BlockStoreTests.produce(3, into: blocks, from: try blocks.open(genesis: BlockStoreTests.genesis, runtime: runtime),
                                              runtime: runtime)
        let oldEntries = old.sortedEntries()
        let new = try BlockStoreTests.produce(3, into: blocks, from: old, runtime: runtime)
        let account = StateKey.account(Self.validator.publicKey)
        #expect(old.account(Self.validator.publicKey).nonce == 3)
        #expect(new.account(Self.validator.publicKey).nonce == 6)
        #expect(old.root != new.root)
        for (state, label) in [(old, "old"), (new, "new")] {
            let value = try #require(state.get(account))
            #expect(StateTrie.verify(proof: state.proof(key: account), root: state.root, path: Blake2b.hash256(account),
                                     valueHash: Blake2b.hash256(value)), "\(label) proof")
        }
        // The old version, enumerated after the new blocks, is still exactly itself.
        let again = old.sortedEntries()
        #expect(again.map(\.key) == oldEntries.map(\.key) && again.map(\.value) == oldEntries.map(\.value))
        let rebuilt = ChainState(entries: Dictionary(uniqueKeysWithValues: again.map { ($0.key, $0.value) }))
        #expect(rebuilt.root == old.root)
    }

    /// A small cache stays within its budget over many blocks, and every read through it
    /// answers what the store holds.
    @Test func theCacheStaysWithinItsBudgetAndAnswersAsTheStore() throws {
        let store = MemoryStore()
        let budget = 4 << 10
        let blocks = BlockStore(store: store, stateCacheBytes: budget)
        let runtime = Runtime(genesis: BlockStoreTests.genesis)
        let state = try BlockStoreTests.produce(40, into: blocks, from: try blocks.open(genesis: BlockStoreTests.genesis, runtime: runtime),
                                                runtime: runtime)
        let counts = blocks.stateCache.counts
        #expect(counts.pages > 0 && counts.entries > 0)
        // Each kind has half the budget: two generations of at most a quarter each, plus the
        // item that tips a generation over (a full page: 15 nodes; an entry: a few KiB).
        #expect(counts.pages * 128 <= budget / 2 + 2 * (128 + 15 * 72), "\(counts.pages) pages cached")
        #expect(counts.entries * 112 <= budget / 2 + 2 * 4_096, "\(counts.entries) entries cached")
        let young = blocks.stateCache.youngBytes
        #expect(young.pages <= budget / 4 && young.entries <= budget / 4)
        // Read every entry and every proof through the small cache; compare with the store.
        let unCached = BlockStore(store: store, stateCacheBytes: 0).storedState()
        #expect(unCached.root == state.root)
        for (key, value) in unCached.sortedEntries() {
            #expect(state.get(key) == value, "\(key)")
            #expect(state.proof(key: key) == unCached.proof(key: key), "\(key)")
        }
    }
}

/// The stored form of the trie: four levels to a page (ADR 0018).
struct TriePageTests {
    static let path = Blake2b.hash256(Array("page-path".utf8))
    static func leaf(_ n: UInt8) -> TrieNode { .leaf(path: Blake2b.hash256([n]), valueHash: Blake2b.hash256([n, n])) }

    @Test func nodesLandInTheirPageAndReadBack() throws {
        for depth in 0...12 {
            let position = TriePosition(depth: depth, on: Self.path)
            let root = TriePage.root(of: position)
            #expect(Int(root.depth) == depth - depth % 4)
            let pages = TriePage.changes([position: Self.leaf(UInt8(depth))]) { _ in nil }
            let page = try #require(pages[root] ?? nil)
            #expect(page.node(at: position) == Self.leaf(UInt8(depth)))
            #expect(TriePage(bytes: page.bytes) == page)
        }
        // The fifteen positions of one page are distinct slots, written in any order.
        var writes: [TriePosition: TrieNode?] = [:]
        for depth in 4..<8 {
            for bits in 0..<(1 << (depth - 4)) {
                var prefix = TriePosition(depth: 4, on: Self.path).prefix
                for offset in 0..<(depth - 4) where bits >> (depth - 5 - offset) & 1 == 1 { prefix = prefix.settingBit(4 + offset) }
                writes[TriePosition(depth: depth, on: prefix)] = Self.leaf(UInt8(writes.count))
            }
        }
        let pages = TriePage.changes(writes) { _ in nil }
        #expect(pages.count == 1)
        let page = try #require(pages.values.first ?? nil)
        #expect(page.slots.map(\.index) == Array(0..<15))
        for (position, node) in writes { #expect(page.node(at: position) == node) }
        // Deleting every node of a stored page deletes the page.
        let emptied = TriePage.changes(writes.mapValues { _ in nil }) { _ in page }
        #expect(emptied.count == 1 && emptied.values.first! == nil)
    }

    /// A real trie's pages: the branches of each page's top three levels are stored as a tag
    /// alone and read back with the same hashes, so every page reads back equal.
    @Test func innerBranchesAreStoredWithoutTheirHashes() throws {
        let entries = Dictionary(uniqueKeysWithValues: (0..<3_000).map { index in
            (StoreKey(Array("entry/\(index)".utf8)), Array("value \(index)".utf8))
        })
        let state = ChainState(entries: entries)
        let pages = TriePage.changes(state.unstored.nodes) { _ in nil }
        var stored = 0, full = 0, derived = 0
        for (root, page) in pages {
            let page = try #require(page)
            let bytes = page.bytes
            #expect(TriePage(bytes: bytes) == page, "page \(root)")
            stored += bytes.count
            full += page.slots.count * 66
            derived += page.slots.filter { Int($0.index) < 7 && !$0.node.isLeaf }.count
            for slot in page.slots where Int(slot.index) >= 7 || slot.node.isLeaf {
                #expect(bytes.firstRange(of: [slot.index] + slot.node.bytes) != nil, "a bottom branch or a leaf keeps its bytes")
            }
        }
        #expect(derived > 1_000)
        #expect(stored == full - derived * 64, "each inner branch stored in 2 bytes instead of 66")
        #expect(pages[.root]??.node(at: .root)?.hash == state.root)
    }

    @Test func malformedPagesAreRefused() {
        let node = Self.leaf(1).bytes
        #expect(TriePage(bytes: []) == nil, "empty")
        #expect(TriePage(bytes: [0] + node.dropLast()) == nil, "short")
        #expect(TriePage(bytes: [15] + node) == nil, "index past the page")
        #expect(TriePage(bytes: [3] + node + [3] + node) == nil, "an index twice")
        #expect(TriePage(bytes: [4] + node + [3] + node) == nil, "out of order")
        #expect(TriePage(bytes: [0, 9] + node.dropFirst()) == nil, "unknown node tag")
        #expect(TriePage(bytes: [3] + node + [4] + node) != nil)
        // A branch stored without hashes: only in the top three levels, and with a child.
        #expect(TriePage(bytes: [0, 2] + [1] + node) != nil)
        #expect(TriePage(bytes: [0, 2] + [1] + node)?.node(at: .root) == .branch(left: Self.leaf(1).hash, right: .zero))
        #expect(TriePage(bytes: [7, 2]) == nil, "index 7's children are in the page below")
        #expect(TriePage(bytes: [0, 2] + [3] + node) == nil, "a branch with no child in the page")
        #expect(TriePage(bytes: [0, 2, 1]) == nil, "cut short")
    }
}

import Foundation
import KCCrypto
import KCNode
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
        #expect(counts.nodes > 0 && counts.entries > 0)
        // Each kind has half the budget: two generations of at most a quarter each, plus the
        // item that tips a generation over.
        #expect(counts.nodes * 160 <= budget / 2 + 2 * 160, "\(counts.nodes) nodes cached")
        #expect(counts.entries * 112 <= budget / 2 + 2 * 4_096, "\(counts.entries) entries cached")
        // Read every entry and every proof through the small cache; compare with the store.
        let unCached = BlockStore(store: store, stateCacheBytes: 0).storedState()
        #expect(unCached.root == state.root)
        for (key, value) in unCached.sortedEntries() {
            #expect(state.get(key) == value, "\(key)")
            #expect(state.proof(key: key) == unCached.proof(key: key), "\(key)")
        }
    }
}

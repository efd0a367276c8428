import Foundation
import KCCodec
import KCConsensus
import KCCrypto
import KCNode
import KCRuntime
import KCStorage
import KCTypes
import Testing

struct BlockStoreTests {
    static let validator = SigningKey(seed: Blake2b.hash256(Array("store-validator".utf8)))
    static let genesis = Genesis(
        chainID: "membria-store-test", genesisTimeUnixMilliseconds: 1_000, parameters: LocalGenesis.developmentParameters,
        accounts: [GenesisAccount(address: validator.publicKey, balance: .acti(1_000))],
        validators: [GenesisValidator(moniker: "v", address: validator.publicKey, consensusKey: validator.publicKey,
                                      nodeID: validator.publicKey, stake: .acti(10_000), gateway: true)])

    /// Builds, executes and stores `count` blocks of one validator; returns the final state.
    static func produce(_ count: UInt64, into blocks: BlockStore, from start: ChainState, runtime: Runtime) throws -> ChainState {
        var state = start
        for _ in 0..<count {
            let height = state.global.height + 1
            let time = state.global.timeMilliseconds + 1_000
            let transfer = TransactionBody(chainID: genesis.chainID, sender: validator.publicKey, nonce: state.account(validator.publicKey).nonce,
                                           fee: runtime.parameters.fees.minFee,
                                           call: .transfer(to: SigningKey(seed: Blake2b.hash256([UInt8(height)])).publicKey, amount: .acti(1)))
                .signed(with: validator)
            let executed = try runtime.execute([try transfer.verified(chainID: genesis.chainID)],
                                               context: BlockContext(height: height, timeMilliseconds: time), on: state)
            let header = BlockHeader(chainID: genesis.chainID, height: height, timeMilliseconds: time, previousBlockID: .zero,
                                     lastCommitHash: .zero, transactionsHash: .zero, evidenceHash: .zero,
                                     stateRoot: executed.outcome.stateRoot, validatorsHash: .zero, proposer: validator.publicKey)
            let block = Block(header: header, transactions: [transfer], evidence: [], lastCommit: nil)
            let precommit = Vote(kind: .precommit, height: height, round: 0, blockID: block.id, timestampMilliseconds: time,
                                 validator: validator.publicKey).signed(with: validator, chainID: genesis.chainID)
            try blocks.commit(block, certificate: CommitCertificate(height: height, round: 0, blockID: block.id, precommits: [precommit]),
                              executed: executed, state: &state)
        }
        return state
    }

    @Test func blocksAndStateSurviveAReopen() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kc-blockstore-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let runtime = Runtime(genesis: Self.genesis)
        let finalRoot: Hash256
        do {
            let blocks = BlockStore(store: try RocksDBStore(path: directory))
            let state = try blocks.open(genesis: Self.genesis, runtime: runtime)
            #expect(state.root == runtime.genesisState().root)
            finalRoot = try Self.produce(5, into: blocks, from: state, runtime: runtime).root
        }
        let reopened = BlockStore(store: try RocksDBStore(path: directory))
        let state = try reopened.open(genesis: Self.genesis, runtime: runtime)
        #expect(try reopened.height() == 5)
        #expect(state.root == finalRoot)
        #expect(state.global.height == 5)
        let block = try #require(try reopened.block(at: 3))
        #expect(block.header.height == 3)
        #expect(try reopened.certificate(at: 3)?.blockID == block.id)
        #expect(try reopened.block(at: 6) == nil)
        // Carrying on from the reopened state works.
        _ = try Self.produce(1, into: reopened, from: state, runtime: runtime)
        #expect(try reopened.height() == 6)
    }

    /// A format-7 store (every page's branches with their hashes) opens: the marker moves to this
    /// format, the old pages read as they are (the same root and proofs), and a block rewrites
    /// the pages it changes in the new form.
    @Test func aFormatSevenStoreIsReadAndMovedForward() throws {
        let store = MemoryStore()
        let runtime = Runtime(genesis: Self.genesis)
        let written = try Self.produce(4, into: BlockStore(store: store), from: try BlockStore(store: store).open(genesis: Self.genesis, runtime: runtime),
                                       runtime: runtime)
        // Every page back in format 7's form: each node with its 65 bytes.
        var batch = WriteBatch()
        let pages = try store.scan(.prefix(StatePersistence.triePrefix))
        for pair in pages {
            let page = try #require(TriePage(bytes: pair.value))
            batch.put(pair.key, page.slots.flatMap { [$0.index] + $0.node.bytes })
        }
        batch.put(Array("m/format".utf8), UInt32(7).canonicalBytes)
        try store.write(batch, sync: true)
        let old = try store.scan(.prefix(StatePersistence.triePrefix))
        #expect(old.contains { $0.value.count % 66 == 0 && TriePage(bytes: $0.value)!.bytes.count < $0.value.count }, "some page had inner branches")

        // An open refused for another reason (here: indexes asked for over a gap) leaves it format 7.
        batch = WriteBatch()
        batch.put(Array("m/indexes-off".utf8), UInt64(5).canonicalBytes)
        try store.write(batch, sync: true)
        #expect(throws: BlockStore.Failure.indexesIncomplete(since: 5)) {
            _ = try BlockStore(store: store).open(genesis: Self.genesis, runtime: runtime)
        }
        #expect(try store.get(Array("m/format".utf8)) == UInt32(7).canonicalBytes)
        batch = WriteBatch()
        batch.delete(Array("m/indexes-off".utf8))
        try store.write(batch, sync: true)

        let blocks = BlockStore(store: store, stateCacheBytes: 0)  // every read from the store
        let state = try blocks.open(genesis: Self.genesis, runtime: runtime)
        #expect(try store.get(Array("m/format".utf8)) == BlockStore.format.canonicalBytes)
        #expect(state.root == written.root)
        let account = StateKey.account(Self.validator.publicKey)
        #expect(StateTrie.verify(proof: state.proof(key: account), root: state.root, path: Blake2b.hash256(account),
                                 valueHash: Blake2b.hash256(try #require(state.get(account)))))
        let next = try Self.produce(1, into: blocks, from: state, runtime: runtime)
        let rootPage = try #require(try store.get(StatePersistence.pageKey(.root)))
        let page = try #require(TriePage(bytes: rootPage))
        #expect(page.bytes == rootPage && rootPage.count < page.slots.count * 66, "the root page rewritten in the new form")
        #expect(page.node(at: .root)?.hash == next.root)
        let reopened = BlockStore(store: store)
        #expect(try reopened.open(genesis: Self.genesis, runtime: runtime).root == next.root)
    }

    @Test func outOfOrderAndForeignChainsAreRefused() throws {
        let store = MemoryStore()
        let runtime = Runtime(genesis: Self.genesis)
        let blocks = BlockStore(store: store)
        let state = try blocks.open(genesis: Self.genesis, runtime: runtime)
        _ = try Self.produce(2, into: blocks, from: state, runtime: runtime)
        // Replaying block production from genesis tries to store height 1 again.
        #expect(throws: BlockStore.Failure.outOfOrder(expected: 3, found: 1)) {
            _ = try Self.produce(1, into: blocks, from: state, runtime: runtime)
        }
        var other = Self.genesis
        other.chainID = "membria-other"
        #expect(throws: BlockStore.Failure.self) { _ = try BlockStore(store: store).open(genesis: other, runtime: Runtime(genesis: other)) }
    }

    @Test func aStoreOfAnotherFormatIsRefusedWithTheReason() throws {
        let store = MemoryStore()
        let runtime = Runtime(genesis: Self.genesis)
        _ = try BlockStore(store: store).open(genesis: Self.genesis, runtime: runtime)
        #expect(try store.get(Array("m/format".utf8)) == BlockStore.format.canonicalBytes)
        // A store written before the marker existed is format 1.
        var batch = WriteBatch()
        batch.delete(Array("m/format".utf8))
        try store.write(batch, sync: true)
        #expect(throws: BlockStore.Failure.unsupportedFormat(found: 1, expected: BlockStore.format)) {
            _ = try BlockStore(store: store).open(genesis: Self.genesis, runtime: runtime)
        }
        // Format 4 kept every vote under its own keys, format 5 decided events in the
        // attestation queue: their state roots are not this node's; format 6 indexed pending
        // events and each final event under its own key.
        for old in [UInt32(4), 5, 6] {
            batch = WriteBatch()
            batch.put(Array("m/format".utf8), old.canonicalBytes)
            try store.write(batch, sync: true)
            #expect(throws: BlockStore.Failure.unsupportedFormat(found: old, expected: BlockStore.format)) {
                _ = try BlockStore(store: store).open(genesis: Self.genesis, runtime: runtime)
            }
        }
        batch = WriteBatch()
        batch.put(Array("m/format".utf8), UInt32(99).canonicalBytes)
        try store.write(batch, sync: true)
        do {
            _ = try BlockStore(store: store).open(genesis: Self.genesis, runtime: runtime)
            Issue.record("a store of format 99 was opened")
        } catch {
            #expect("\(error)".contains("store format 99"))
        }
        batch = WriteBatch()
        batch.put(Array("m/format".utf8), [1, 2])
        try store.write(batch, sync: true)
        #expect(throws: BlockStore.Failure.self) { _ = try BlockStore(store: store).open(genesis: Self.genesis, runtime: runtime) }
    }
}

struct PruningTests {
    /// Pruning deletes blocks, certificates and results below the asked height, a step at a
    /// time, moves the base, keeps the transaction index and never reaches the last height.
    @Test func pruneDropsOldHeightsKeepsTheIndexAndTheTip() throws {
        let store = MemoryStore()
        let runtime = Runtime(genesis: BlockStoreTests.genesis)
        let blocks = BlockStore(store: store)
        let state = try blocks.open(genesis: BlockStoreTests.genesis, runtime: runtime)
        _ = try BlockStoreTests.produce(30, into: blocks, from: state, runtime: runtime)
        #expect(try blocks.base() == 1)
        let firstTransaction = try #require(try blocks.block(at: 1)).transactions[0].hash
        #expect(try blocks.prune(below: 21, limit: 8) == 9, "one step of 8 heights")
        #expect(try blocks.block(at: 8) == nil && blocks.certificate(at: 8) == nil && blocks.results(at: 8) == nil)
        #expect(try blocks.block(at: 9) != nil)
        #expect(try blocks.prune(below: 21, limit: 100) == 21)
        #expect(try blocks.base() == 21)
        #expect(try blocks.block(at: 20) == nil && blocks.block(at: 21) != nil)
        // The transaction index still says where a pruned transaction was committed.
        #expect(try blocks.location(of: firstTransaction)?.height == 1)
        // Asked to prune past the tip, it keeps the last height (the next block's checks need it).
        #expect(try blocks.prune(below: 1_000, limit: 1_000) == 30)
        #expect(try blocks.block(at: 30) != nil && blocks.tip(for: blocks.storedState()).previous != nil)
        // A pruned store still takes new blocks.
        _ = try BlockStoreTests.produce(1, into: blocks, from: blocks.storedState(), runtime: runtime)
        #expect(try blocks.height() == 31)
    }

    /// Counts per status cross the walk's pages (4,096 keys) and no status borrows another's:
    /// pending from the attestation queue's entries, accepted one key each, finalized from
    /// per-block groups.
    @Test func eventCountsByStatusWalkEveryPage() throws {
        let store = MemoryStore()
        var batch = WriteBatch()
        func id(_ label: String) -> Hash256 { Blake2b.hash256(Array(label.utf8)) }
        for entry in UInt64(0)..<3 {  // 2 + 0 + 2 pending
            let ids = entry == 1 ? [] : [id("pending \(entry) a"), id("pending \(entry) b")]
            batch.put(StatePersistence.storeKey(StateKey.queueEntry(.attestation, entry)),
                      QueueEntry(timeMilliseconds: 1, ids: ids).canonicalBytes)
        }
        for index in 0..<4_097 { batch.put(NodeIndexKey.status(.accepted, event: id("accepted \(index)")), []) }
        for height in UInt64(1)...4_500 {  // 9,000 finalized, two a block
            batch.put(NodeIndexKey.statusGroup(.finalized, height: height), id("final \(height) a").bytes + id("final \(height) b").bytes)
        }
        try store.write(batch, sync: false)
        let counts = try BlockStore(store: store).eventCountsByStatus()
        let sizes: [EventStatus: UInt64] = [.pending: 4, .accepted: 4_097, .finalized: 9_000]
        for status in EventStatus.allCases {
            #expect(counts[Int(status.rawValue)] == sizes[status] ?? 0, "\(status)")
        }
    }
}

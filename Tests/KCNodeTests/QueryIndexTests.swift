import KCCodec
import KCConsensus
import KCCrypto
import KCNode
import KCRuntime
import KCStorage
import KCTypes
import Testing

/// `storage.indexes = false` (ADR 0027): a store keeps no `ix/` key (its pending events are
/// listed by the attestation queue, ADR 0030), the state and blocks are the same, and the
/// indexes cannot be turned on again over the gap. And the status index: one key per accepted
/// or disputed event, the final statuses grouped per block, nothing for pending events.
struct QueryIndexTests {
    static let author = SigningKey(seed: Blake2b.hash256(Array("index-author".utf8)))
    static let voter = SigningKey(seed: Blake2b.hash256(Array("index-voter".utf8)))
    /// Two gateways; the voter holds three quarters of the gateway stake, so its vote accepts.
    static let genesis = Genesis(
        chainID: "membria-index-test", genesisTimeUnixMilliseconds: 1_000, parameters: LocalGenesis.developmentParameters,
        accounts: [GenesisAccount(address: author.publicKey, balance: .acti(1_000)),
                   GenesisAccount(address: voter.publicKey, balance: .acti(1_000))],
        validators: [GenesisValidator(moniker: "a", address: author.publicKey, consensusKey: author.publicKey,
                                      nodeID: author.publicKey, stake: .acti(10_000), gateway: true),
                     GenesisValidator(moniker: "v", address: voter.publicKey, consensusKey: voter.publicKey,
                                      nodeID: voter.publicKey, stake: .acti(30_000), gateway: true)])
    static let runtime = Runtime(genesis: genesis)

    /// Executes one block of `calls` (each from its signer, next nonce) and stores it.
    static func store(_ calls: [(SigningKey, Call)], in blocks: BlockStore, state: inout ChainState) throws -> BlockOutcome {
        let height = state.global.height + 1
        let time = state.global.timeMilliseconds + 1_000
        var nonces: [PublicKey: UInt64] = [:]
        let transactions = calls.map { key, call -> SignedTransaction in
            let nonce = nonces[key.publicKey, default: state.account(key.publicKey).nonce]
            nonces[key.publicKey] = nonce + 1
            return TransactionBody(chainID: genesis.chainID, sender: key.publicKey, nonce: nonce,
                                   fee: runtime.parameters.fees.minFee, call: call).signed(with: key)
        }
        let executed = try runtime.execute(try transactions.map { try $0.verified(chainID: genesis.chainID) },
                                           context: BlockContext(height: height, timeMilliseconds: time), on: state)
        let header = BlockHeader(chainID: genesis.chainID, height: height, timeMilliseconds: time, previousBlockID: .zero,
                                 lastCommitHash: .zero, transactionsHash: .zero, evidenceHash: .zero,
                                 stateRoot: executed.outcome.stateRoot, validatorsHash: .zero, proposer: author.publicKey)
        let block = Block(header: header, transactions: transactions, evidence: [], lastCommit: nil)
        try blocks.commit(block, certificate: CommitCertificate(height: height, round: 0, blockID: block.id, precommits: []),
                          executed: executed, state: &state)
        return executed.outcome
    }

    static func propose(_ label: String) -> Call {
        .proposeEvent(parents: [], arTxID: ArTxID(Blake2b.hash256(Array(label.utf8))),
                      contentHash: Blake2b.hash256(Array("content \(label)".utf8)), kind: "schema:Note")
    }

    /// Three blocks: event one proposed, then accepted by the voter, then event two proposed.
    /// Returns the two event ids and the transaction hashes.
    static func history(_ blocks: BlockStore, state: inout ChainState) throws -> (accepted: Hash256, pending: Hash256, transactions: [Hash256]) {
        let first = try store([(author, propose("one"))], in: blocks, state: &state)
        let accepted = try #require(first.eventChanges.first?.eventID)
        let second = try store([(voter, .attest(votes: [AttestationVote(eventID: accepted, verdict: .valid)]))], in: blocks, state: &state)
        #expect(second.eventChanges.map(\.to) == [.accepted])
        let third = try store([(author, propose("two"))], in: blocks, state: &state)
        let pending = try #require(third.eventChanges.first?.eventID)
        return (accepted, pending, [first, second, third].map { $0.receipts[0].transactionHash })
    }

    static func keys(_ store: MemoryStore, _ prefix: String) throws -> [[UInt8]] {
        try store.scan(.prefix(Array(prefix.utf8))).map(\.key)
    }

    static func pending(_ store: MemoryStore) throws -> [Hash256] {
        try PendingEvents.page(in: store, after: nil, limit: 100).events.map(\.id)
    }

    @Test func withoutQueryIndexesNoIndexKeyIsWritten() throws {
        let full = MemoryStore(), lean = MemoryStore()
        let fullBlocks = BlockStore(store: full), leanBlocks = BlockStore(store: lean, queryIndexes: false)
        var fullState = try fullBlocks.open(genesis: Self.genesis, runtime: Self.runtime)
        var leanState = try leanBlocks.open(genesis: Self.genesis, runtime: Self.runtime)
        let events = try Self.history(fullBlocks, state: &fullState)
        _ = try Self.history(leanBlocks, state: &leanState)
        #expect(leanState.root == fullState.root, "indexes are not state")

        // The full store: every transaction located, both events under their status, the
        // ArTxID, author and kind indexes.
        #expect(try Self.keys(full, "tx/").count == 3)
        #expect(try fullBlocks.location(of: events.transactions[1])?.height == 2)
        #expect(try Self.keys(full, "ix/status/") == [NodeIndexKey.status(.accepted, event: events.accepted)])
        #expect(try Self.keys(full, "ix/artx/").count == 2 && Self.keys(full, "ix/author/").count == 2)

        // The lean one: no index key at all.
        #expect(try Self.keys(lean, "tx/").isEmpty)
        #expect(try leanBlocks.location(of: events.transactions[1]) == nil)
        #expect(try Self.keys(lean, "ix/").isEmpty)
        // Both list the pending event from the attestation queue and count it.
        #expect(try Self.pending(full) == [events.pending] && Self.pending(lean) == [events.pending])
        var counts = [UInt64](repeating: 0, count: EventStatus.allCases.count)
        counts[Int(EventStatus.pending.rawValue)] = 1
        #expect(try leanBlocks.eventCountsByStatus() == counts)
        counts[Int(EventStatus.accepted.rawValue)] = 1
        #expect(try fullBlocks.eventCountsByStatus() == counts)
        #expect(try leanBlocks.indexesOffSince() == 1 && fullBlocks.indexesOffSince() == nil)
    }

    /// Past the attestation period and the challenge window: the accepted event's key is gone
    /// and it is listed under finalized in the group of the block that finalized it; the
    /// pending one left the queue for the expired group of its own block. Per block one key per
    /// final status, whatever the number of events.
    @Test func finalStatusesAreGroupedPerBlockAndPendingIsNotIndexed() throws {
        let store = MemoryStore()
        let blocks = BlockStore(store: store)
        var state = try blocks.open(genesis: Self.genesis, runtime: Self.runtime)
        let events = try Self.history(blocks, state: &state)
        #expect(try Self.keys(store, "ix/status/") == [NodeIndexKey.status(.accepted, event: events.accepted)])
        var reached: [EventStatus: UInt64] = [:]
        while reached.count < 2 && state.global.height < 60 {
            for change in try Self.store([], in: blocks, state: &state).eventChanges {
                #expect(change.to.isFinal, "only final moves are left: \(change.to.name)")
                reached[change.to] = state.global.height
            }
        }
        let finalized = try #require(reached[.finalized]), expired = try #require(reached[.expired])
        let groups = try store.scan(.prefix(Array("ix/status/".utf8)))
        let expected = [(NodeIndexKey.statusGroup(.expired, height: expired), events.pending.bytes),
                        (NodeIndexKey.statusGroup(.finalized, height: finalized), events.accepted.bytes)]
        #expect(groups.map(\.key) == expected.map(\.0) && groups.map(\.value) == expected.map(\.1))
        #expect(try Self.pending(store).isEmpty)
        var counts = [UInt64](repeating: 0, count: EventStatus.allCases.count)
        counts[Int(EventStatus.expired.rawValue)] = 1
        counts[Int(EventStatus.finalized.rawValue)] = 1
        #expect(try blocks.eventCountsByStatus() == counts)
    }

    @Test func indexesTurnedOffCannotBeTurnedOnAgain() throws {
        let store = MemoryStore()
        var state = try BlockStore(store: store).open(genesis: Self.genesis, runtime: Self.runtime)
        _ = try Self.history(BlockStore(store: store), state: &state)
        // Turned off at height 3: the store records that it keeps none from height 4.
        let lean = BlockStore(store: store, queryIndexes: false)
        state = try lean.open(genesis: Self.genesis, runtime: Self.runtime)
        #expect(try lean.indexesOffSince() == 4)
        let outcome = try Self.store([(Self.author, Self.propose("three"))], in: lean, state: &state)
        #expect(try lean.location(of: outcome.receipts[0].transactionHash) == nil)
        #expect(try Self.keys(store, "tx/").count == 3, "the earlier locations stay; no new one")
        // Off again: still from height 4.
        _ = try BlockStore(store: store, queryIndexes: false).open(genesis: Self.genesis, runtime: Self.runtime)
        #expect(try lean.indexesOffSince() == 4)
        // On again: refused, naming the setting and the way back.
        let failure = #expect(throws: BlockStore.Failure.self) {
            _ = try BlockStore(store: store).open(genesis: Self.genesis, runtime: Self.runtime)
        }
        #expect(failure == .indexesIncomplete(since: 4))
        #expect(failure?.description.contains("storage.indexes = false") == true)
        #expect(failure?.description.contains("node reindex") == true && failure?.description.contains("node unsafe-reset-all") == true)
    }
}

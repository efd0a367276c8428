import KCCodec
import KCCrypto
import KCNode
@testable import KCRPC
import KCRuntime
import KCStorage
import KCTypes
import Testing

/// Paging through the grouped author and kind indexes (one key per author or kind per block)
/// when many events share a block: every event once, in (height, id) order, whatever the limit;
/// and through the pending events, which the attestation queue lists in proposal order.
struct IndexPageTests {
    static let gateways = (0..<2).map { DevnetKeys.key(.account, index: $0) }

    /// Two blocks: the first with `perBlock` events by gateway 0 and one by gateway 1, the
    /// second with `perBlock` more by gateway 0. Returns the store, gateway 0's ids by block and
    /// every event in the order proposed.
    static func chain(perBlock: Int) throws -> (MemoryStore, Genesis, [[Hash256]], [Hash256]) {
        let genesis = LocalGenesis.devnet(validatorCount: gateways.count, userCount: 0)
        let runtime = Runtime(genesis: genesis)
        var state = runtime.genesisState()
        let store = MemoryStore()
        var nonces = [UInt64](repeating: 0, count: gateways.count)
        var ids: [[Hash256]] = []
        for height in UInt64(1)...2 {
            var transactions: [VerifiedTransaction] = []
            let authors = Array(repeating: 0, count: perBlock) + (height == 1 ? [1] : [])
            for (index, author) in authors.enumerated() {
                let label = Array("payload-\(height)-\(index)".utf8)
                let body = TransactionBody(chainID: genesis.chainID, sender: gateways[author].publicKey, nonce: nonces[author],
                                           fee: genesis.parameters.fees.minFee,
                                           call: .proposeEvent(parents: [], arTxID: ArTxID(Blake2b.hash256(label)),
                                                               contentHash: SHA256.hash(label), kind: "page-test"))
                nonces[author] += 1
                transactions.append(.assumingVerified(body.signed(with: gateways[author])))
            }
            let executed = try runtime.execute(transactions, context: BlockContext(height: height, timeMilliseconds: genesis.genesisTimeUnixMilliseconds + height * 1_000,
                                                                                   lastCommitSigners: []), on: state)
            #expect(executed.outcome.receipts.allSatisfy { $0.succeeded })
            ids.append(executed.outcome.eventChanges.filter { $0.from == nil }.map(\.eventID))
            state.commit(executed)
            var batch = WriteBatch()
            try StatePersistence.add(executed, over: store, to: &batch)
            try store.write(batch, sync: false)
        }
        // Gateway 0's events of each block, as the index orders them.
        let mine = ids.map { block in block.filter { state.event($0)?.header.author == gateways[0].publicKey }.sorted() }
        return (store, genesis, mine, ids.flatMap { $0 })
    }

    static func walk(_ queries: ChainQueries, prefix: [UInt8], limit: Int) throws -> (ids: [String], pages: Int) {
        var seen: [String] = []
        var cursor: String? = nil
        var pages = 0
        repeat {
            let page = try queries.eventPage(prefix: prefix, grouped: true, cursor: cursor, limit: limit)
            seen += (page["events"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }
            cursor = page["next_cursor"]?.stringValue
            pages += 1
        } while cursor != nil && pages < 100
        return (seen, pages)
    }

    @Test(arguments: [1, 2, 3, 5, 7, 50])
    func everyEventOnceInOrderWhateverTheLimit(limit: Int) throws {
        let (store, genesis, mine, proposed) = try Self.chain(perBlock: 5)
        let queries = ChainQueries(store: store, genesis: genesis)
        let expected = mine.flatMap { $0 }.map(\.hex)
        #expect(expected.count == 10)
        let byAuthor = try Self.walk(queries, prefix: EventIndexKey.authorPrefix(Self.gateways[0].publicKey), limit: limit)
        #expect(byAuthor.ids == expected)
        #expect(byAuthor.pages == (expected.count + limit - 1) / limit, "no empty last page")
        let byKind = try Self.walk(queries, prefix: EventIndexKey.kindPrefix("page-test"), limit: limit)
        #expect(byKind.ids.count == 11, "both authors' events")
        #expect(Set(byKind.ids).count == 11)
        // The pending list comes from the attestation queue: proposal order, across entries.
        var pending: [String] = []
        var cursor: String? = nil
        var pages = 0
        repeat {
            let page = try queries.pendingPage(cursor: cursor, limit: limit)
            pending += (page["events"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }
            cursor = page["next_cursor"]?.stringValue
            pages += 1
        } while cursor != nil && pages < 100
        #expect(pending == proposed.map(\.hex))
        #expect(pages == (proposed.count + limit - 1) / limit, "no empty last page")
    }

    @Test func aPendingCursorThatIsNotAPositionIsRefused() throws {
        let (store, genesis, _, _) = try Self.chain(perBlock: 1)
        let queries = ChainQueries(store: store, genesis: genesis)
        for cursor in ["zz", Hex.encode([UInt8](repeating: 0, count: 44)), "00"] {
            #expect(throws: RPCError.self) { try queries.pendingPage(cursor: cursor, limit: 3) }
        }
    }

    @Test func oneKeyPerAuthorAndBlock() throws {
        let (store, _, mine, _) = try Self.chain(perBlock: 5)
        let pairs = try store.scan(.prefix(EventIndexKey.authorPrefix(Self.gateways[0].publicKey)), limit: 100, reverse: false)
        #expect(pairs.count == 2)
        #expect(pairs.map { EventIndexKey.groupedIDs($0.value) ?? [] } == mine)
    }

    @Test func aCursorFromAnotherListIsRefused() throws {
        let (store, genesis, _, _) = try Self.chain(perBlock: 2)
        let queries = ChainQueries(store: store, genesis: genesis)
        let foreign = Hex.encode(EventIndexKey.kindPrefix("other") + [UInt8](repeating: 0, count: 40))
        #expect(throws: RPCError.self) {
            try queries.eventPage(prefix: EventIndexKey.kindPrefix("page-test"), grouped: true, cursor: foreign, limit: 3)
        }
    }
}

/// While state sync writes a restored state over the genesis state (`m/restoring` in the store),
/// the store's state is neither: state reads are answered 503, other reads as usual.
struct RestoringReadTests {
    @Test func stateReadsWaitForTheRestoreToFinish() throws {
        let (store, genesis, _, _) = try IndexPageTests.chain(perBlock: 1)
        let address = IndexPageTests.gateways[0].publicKey
        #expect(try ChainQueries(store: store, genesis: genesis).accountJSON(address)["address"] != nil)
        var batch = WriteBatch()
        batch.put(BlockStore.restoringKey, [])
        try store.write(batch, sync: false)
        let restoring = ChainQueries(store: store, genesis: genesis)
        do {
            _ = try restoring.accountJSON(address)
            Issue.record("a state read answered during a restore")
        } catch let error as RPCError {
            #expect(error.status == .serviceUnavailable && error.code == "restoring", "\(error)")
        }
        #expect(try restoring.height == 0, "reads outside the state still answer")
        // The pending list is the state's attestation queue: refused the same way.
        let refused = #expect(throws: RPCError.self) { try restoring.pendingPage(cursor: nil, limit: 5) }
        #expect(refused?.code == "restoring")
        batch = WriteBatch()
        batch.delete(BlockStore.restoringKey)
        try store.write(batch, sync: false)
        #expect(try ChainQueries(store: store, genesis: genesis).accountJSON(address)["address"] != nil)
    }
}

import KCCodec
import KCCrypto
import KCNode
import KCRuntime
import KCTypes
import Testing

struct MempoolTests {
    static let alice = SigningKey(seed: Blake2b.hash256(Array("mempool-alice".utf8)))
    static let bob = SigningKey(seed: Blake2b.hash256(Array("mempool-bob".utf8)))
    static let runtime: Runtime = {
        var parameters = LocalGenesis.developmentParameters
        parameters.fees.minFee = Amount(units: 10)
        let validator = SigningKey(seed: Blake2b.hash256(Array("mempool-validator".utf8)))
        return Runtime(genesis: Genesis(
            chainID: "membria-mempool-test", genesisTimeUnixMilliseconds: 1_000, parameters: parameters,
            accounts: [GenesisAccount(address: alice.publicKey, balance: .acti(100)),
                       GenesisAccount(address: bob.publicKey, balance: .acti(100))],
            validators: [GenesisValidator(moniker: "v", address: validator.publicKey, consensusKey: validator.publicKey,
                                          nodeID: validator.publicKey, stake: .acti(10_000), gateway: true)]))
    }()

    static func transfer(_ key: SigningKey, nonce: UInt64, fee: UInt128 = 10, chainID: String = "membria-mempool-test") -> SignedTransaction {
        TransactionBody(chainID: chainID, sender: key.publicKey, nonce: nonce, fee: Amount(units: fee),
                        call: .transfer(to: bob.publicKey, amount: .acti(1))).signed(with: key)
    }

    @Test func admitsInNonceOrderAndRejectsWithReasons() throws {
        let cache = SignatureCache()
        let pool = Mempool(runtime: Self.runtime, signatures: cache)
        let state = Self.runtime.genesisState()
        try pool.add(Self.transfer(Self.alice, nonce: 0), state: state)
        #expect(throws: MempoolRejection.duplicate) { try pool.add(Self.transfer(Self.alice, nonce: 0), state: state) }
        #expect(throws: MempoolRejection.nonce(expected: 1, found: 70)) { try pool.add(Self.transfer(Self.alice, nonce: 70), state: state) }
        try pool.add(Self.transfer(Self.alice, nonce: 1), state: state)
        #expect(throws: MempoolRejection.self) { try pool.add(Self.transfer(Self.alice, nonce: 2, fee: 1), state: state) }
        #expect(throws: MempoolRejection.invalid("transaction is for chain other, this chain is membria-mempool-test")) {
            try pool.add(Self.transfer(Self.alice, nonce: 2, chainID: "other"), state: state)
        }
        let forged = SignedTransaction(body: Self.transfer(Self.alice, nonce: 2).body, signature: Self.transfer(Self.bob, nonce: 0).signature)
        #expect(throws: MempoolRejection.invalid("signature does not verify against the sender's key")) { try pool.add(forged, state: state) }
        #expect(throws: MempoolRejection.self) { try pool.add(bytes: [1, 2, 3], state: state) }
        #expect(pool.count == 2)
        // A transaction seen again (a peer re-sending it) is not verified a second time.
        let verifications = cache.verifications
        #expect(throws: MempoolRejection.self) { try pool.add(Self.transfer(Self.alice, nonce: 70), state: state) }
        #expect(cache.verifications == verifications)
        #expect(throws: MempoolRejection.self) { try pool.add(Self.transfer(Self.bob, nonce: 500), state: state) }
        #expect(cache.verifications == verifications + 1, "a new signature is verified")
    }

    @Test func capsByCountBytesAndPeer() throws {
        let state = Self.runtime.genesisState()
        let small = Mempool(runtime: Self.runtime, limits: .init(maxTransactions: 2, maxBytes: 1 << 20, maxPerPeer: 1), signatures: SignatureCache())
        try small.add(Self.transfer(Self.alice, nonce: 0), from: "peer-a", state: state)
        #expect(throws: MempoolRejection.peerQuota(limit: 1)) { try small.add(Self.transfer(Self.alice, nonce: 1), from: "peer-a", state: state) }
        try small.add(Self.transfer(Self.bob, nonce: 0), from: "peer-b", state: state)
        #expect(throws: MempoolRejection.full("2 transactions")) { try small.add(Self.transfer(Self.alice, nonce: 1), state: state) }
        let tiny = Mempool(runtime: Self.runtime, limits: .init(maxTransactions: 10, maxBytes: 300), signatures: SignatureCache())
        try tiny.add(Self.transfer(Self.alice, nonce: 0), state: state)
        #expect(throws: MempoolRejection.self) { try tiny.add(Self.transfer(Self.alice, nonce: 1), state: state) }
    }

    @Test func reapTakesTurnsAndUpdateDropsIncluded() throws {
        let pool = Mempool(runtime: Self.runtime, signatures: SignatureCache())
        var state = Self.runtime.genesisState()
        for nonce in 0..<3 as Range<UInt64> { try pool.add(Self.transfer(Self.alice, nonce: nonce), state: state) }
        for nonce in 0..<2 as Range<UInt64> { try pool.add(Self.transfer(Self.bob, nonce: nonce), state: state) }
        let reaped = pool.reap(maxCount: 4, maxBytes: 1 << 20)
        #expect(reaped.map(\.body.sender) == [Self.alice, Self.bob, Self.alice, Self.bob].map(\.publicKey))
        #expect(reaped.filter { $0.body.sender == Self.alice.publicKey }.map(\.body.nonce) == [0, 1])

        // Commit the reaped block; the mempool keeps only alice's nonce 2.
        let executed = try Self.runtime.execute(reaped, context: BlockContext(height: 1, timeMilliseconds: 2_000), on: state)
        state.commit(executed)
        pool.update(after: state)
        #expect(pool.count == 1)
        #expect(pool.reap(maxCount: 10, maxBytes: 1 << 20).map(\.body.nonce) == [2])
        // The byte limit holds back whole senders' tails, never reorders nonces.
        #expect(pool.reap(maxCount: 10, maxBytes: 10).isEmpty)
    }

    /// Nonces sent at once that arrive out of order: the ones ahead wait beside the line (not
    /// reaped, not counted in it) and join it, in nonce order, when the gap fills.
    @Test func aNonceAheadWaitsUntilTheOnesBeforeItArrive() throws {
        let pool = Mempool(runtime: Self.runtime, signatures: SignatureCache())
        let state = Self.runtime.genesisState()
        #expect(try pool.add(Self.transfer(Self.alice, nonce: 0), state: state).ready.map(\.body.nonce) == [0])
        for nonce in [3, 2] as [UInt64] {
            let admission = try pool.add(Self.transfer(Self.alice, nonce: nonce), state: state)
            #expect(admission.queued && admission.ready.isEmpty)
        }
        #expect(pool.count == 1 && pool.queuedCount == 2)
        #expect(pool.contains(Self.transfer(Self.alice, nonce: 3).hash), "a waiting transaction is held (a copy is a duplicate)")
        #expect(throws: MempoolRejection.duplicate) { try pool.add(Self.transfer(Self.alice, nonce: 3), state: state) }
        #expect(pool.reap(maxCount: 10, maxBytes: 1 << 20).map(\.body.nonce) == [0], "only the line goes into blocks")
        let filled = try pool.add(Self.transfer(Self.alice, nonce: 1), state: state)
        #expect(!filled.queued && filled.ready.map(\.body.nonce) == [1, 2, 3])
        #expect(filled.promoted.map(\.body.nonce) == [2, 3], "the waiting ones it let in, without itself")
        #expect(pool.count == 4 && pool.queuedCount == 0 && pool.queuedBytes == 0)
        #expect(pool.reap(maxCount: 10, maxBytes: 1 << 20).map(\.body.nonce) == [0, 1, 2, 3])
    }

    /// The gap filled by a block (the missing nonce reached another proposer): after the commit
    /// the waiting run joins the line, and `update` hands it back to be passed on.
    @Test func aBlockThatFillsTheGapLetsTheWaitingRunIn() throws {
        let pool = Mempool(runtime: Self.runtime, signatures: SignatureCache())
        var state = Self.runtime.genesisState()
        for nonce in [1, 2] as [UInt64] { try pool.add(Self.transfer(Self.alice, nonce: nonce), state: state) }
        #expect(pool.queuedCount == 2 && pool.count == 0)
        let executed = try Self.runtime.execute([try Self.transfer(Self.alice, nonce: 0).verified(chainID: Self.runtime.chainID)],
                                                context: BlockContext(height: 1, timeMilliseconds: 2_000), on: state)
        state.commit(executed)
        // A commit looks at the waiting transactions of the senders it moved (and the expired).
        #expect(pool.update(after: state, moved: [Self.bob.publicKey]).isEmpty && pool.queuedCount == 2)
        let promoted = pool.update(after: state, moved: [Self.alice.publicKey])
        #expect(promoted.map(\.body.nonce) == [1, 2])
        #expect(pool.queuedCount == 0 && pool.count == 2)
        #expect(pool.reap(maxCount: 10, maxBytes: 1 << 20).map(\.body.nonce) == [1, 2])
    }

    /// What an attacker who never fills the gap gets: transactions that wait only so far ahead,
    /// one per nonce, only with a fee their balance can pay, within a share of the mempool,
    /// counted against their peer's quota, and for a bounded number of heights.
    /// `mempool.max_nonce_gap = 0` or `max_queued = 0`: nothing waits; a nonce ahead is refused
    /// as before ADR 0026 (as a nonce from the future, not as a full queue).
    @Test func aZeroGapOrQueueTurnsTheWaitingOff() throws {
        for limits in [Mempool.Limits(maxNonceGap: 0), Mempool.Limits(maxQueued: 0)] {
            let pool = Mempool(runtime: Self.runtime, limits: limits, signatures: SignatureCache())
            let state = Self.runtime.genesisState()
            #expect(throws: MempoolRejection.nonce(expected: 0, found: 1)) { try pool.add(Self.transfer(Self.alice, nonce: 1), state: state) }
            #expect(pool.queuedCount == 0)
            #expect(try pool.add(Self.transfer(Self.alice, nonce: 0), state: state).ready.count == 1)
        }
    }

    @Test func waitingIsBoundedInDistanceNumberPeerAndTime() throws {
        let limits = Mempool.Limits(maxTransactions: 100, maxPerPeer: 2, maxNonceGap: 4, maxQueued: 3, queuedHeights: 2)
        let pool = Mempool(runtime: Self.runtime, limits: limits, signatures: SignatureCache())
        var state = Self.runtime.genesisState()
        #expect(throws: MempoolRejection.nonce(expected: 0, found: 5)) { try pool.add(Self.transfer(Self.alice, nonce: 5), state: state) }
        try pool.add(Self.transfer(Self.alice, nonce: 4), state: state)
        #expect(throws: MempoolRejection.nonceQueued(4)) { try pool.add(Self.transfer(Self.alice, nonce: 4, fee: 11), state: state) }
        #expect(throws: MempoolRejection.self, "a fee the balance cannot pay is refused as it would be in line") {
            try pool.add(Self.transfer(Self.alice, nonce: 3, fee: Amount.acti(1_000).units), state: state)
        }
        try pool.add(Self.transfer(Self.alice, nonce: 2), from: "peer-a", state: state)
        try pool.add(Self.transfer(Self.bob, nonce: 1), from: "peer-a", state: state)
        #expect(throws: MempoolRejection.peerQuota(limit: 2), "waiting transactions count against their peer's quota") {
            try pool.add(Self.transfer(Self.bob, nonce: 0), from: "peer-a", state: state)
        }
        #expect(throws: MempoolRejection.full("3 transactions wait for an earlier nonce of their sender; send the nonces before this one")) {
            try pool.add(Self.transfer(Self.bob, nonce: 2), state: state)
        }
        #expect(pool.queuedCount == 3 && pool.count == 0)
        // Two heights pass and nothing fills the gaps: the waiting ones leave, their peer's
        // quota with them.
        for height in 1...2 as ClosedRange<UInt64> {
            state.commit(try Self.runtime.execute([], context: BlockContext(height: height, timeMilliseconds: 1_000 + height * 1_000), on: state))
            #expect(pool.update(after: state, moved: []).isEmpty, "expiry does not wait for the sender to move")
            #expect(pool.queuedCount == (height < 2 ? 3 : 0))
        }
        #expect(!pool.contains(Self.transfer(Self.alice, nonce: 4).hash) && pool.queuedBytes == 0)
        try pool.add(Self.transfer(Self.bob, nonce: 0), from: "peer-a", state: state)
        try pool.add(Self.transfer(Self.bob, nonce: 1), from: "peer-a", state: state)
        #expect(pool.count == 2)
    }

    /// Every refusal has its own metric series: the two kinds of nonce refusal are told apart,
    /// no two other reasons share one, and a refusal is counted under its own.
    @Test func everyRefusalHasItsOwnMetricSeries() {
        let all: [MempoolRejection] = [.malformed("x"), .invalid("x"), .duplicate, .full("x"), .nonce(expected: 1, found: 2),
                                       .nonce(expected: 2, found: 1), .nonceQueued(3), .stateful("x"), .peerQuota(limit: 1)]
        let reasons = Set(all.map(\.reason))
        #expect(reasons.count == all.count && reasons == Set(MempoolRejection.Reason.allCases))
        let metrics = NodeMetrics()
        metrics.countRefusal(.nonce(expected: 1, found: 5))
        let text = metrics.registry.emitToString()
        #expect(text.contains("membria_mempool_refused_transactions_total{reason=\"future_nonce\"} 1"))
        #expect(text.contains("membria_mempool_refused_transactions_total{reason=\"used_nonce\"} 0"))
    }
}

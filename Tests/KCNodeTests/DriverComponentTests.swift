@testable import KCNode
import KCConsensus
import KCCrypto
import KCRuntime
import KCTypes
import Testing

struct TimerQueueTests {
    /// Timers fire by deadline, ties in the order they were set, only once due; the wait
    /// never exceeds the limit; clearing forgets them all.
    @Test func firesByDeadlineThenOrderSet() {
        var timers = TimerQueue()
        #expect(timers.wait(now: 0, limit: 100) == 100)
        timers.set(.beginHeight, at: 50)
        timers.set(.timeout(.prevote, height: 3, round: 1), at: 20)
        timers.set(.timeout(.propose, height: 3, round: 1), at: 20)
        #expect(timers.wait(now: 5, limit: 100) == 15)
        let fired = [19, 20, 20, 49].map { timers.due(now: UInt64($0)) }
        #expect(fired == [nil, .timeout(.prevote, height: 3, round: 1), .timeout(.propose, height: 3, round: 1), nil])
        #expect(timers.wait(now: 60, limit: 100) == 0, "overdue: no wait")
        let last = timers.due(now: 60)
        #expect(last == .beginHeight)
        timers.set(.beginHeight, at: 1)
        timers.removeAll()
        let none = timers.due(now: 1_000)
        #expect(timers.count == 0 && none == nil)
    }
}

struct EarlyInputsTests {
    static let key = SigningKey(seed: Blake2b.hash256(Array("early".utf8)))

    func vote(height: UInt64) -> (ConsensusInput<Block>, WALRecord) {
        let signed = Vote(kind: .prevote, height: height, round: 0, blockID: nil, timestampMilliseconds: 1, validator: Self.key.publicKey)
            .signed(with: Self.key, chainID: "c")
        return (.vote(signed), .vote(signed))
    }

    /// Held in order up to the bound; a commit drops what it made stale; taking empties.
    @Test func holdsBoundedDropsStaleAndTakesAll() {
        var early = EarlyInputs()
        for height in [5, 6, 6, 7] as [UInt64] {
            let (input, record) = vote(height: height)
            let held = early.hold(input, record: record, from: Self.key.publicKey, verified: height != 7)
            #expect(held)
        }
        early.committed(5)
        #expect(early.count == 3)
        let taken = early.take()
        #expect(taken.map(\.verified) == [true, true, false] && early.isEmpty)
        let (input, record) = vote(height: 9)
        for _ in 0..<EarlyInputs.capacity { early.hold(input, record: record, from: nil, verified: true) }
        let overflow = early.hold(input, record: record, from: nil, verified: true)
        #expect(!overflow, "full: dropped")
        #expect(early.count == EarlyInputs.capacity)
    }

    /// One sender's unchecked messages stop at its limit; checked ones and other senders' are
    /// still held; taking resets the counts.
    @Test func uncheckedMessagesAreLimitedPerSender() {
        var early = EarlyInputs()
        let liar = SigningKey(seed: Blake2b.hash256(Array("liar".utf8))).publicKey
        let (input, record) = vote(height: 4)
        let held = (0..<10).filter { _ in early.hold(input, record: record, from: liar, verified: false, perPeerLimit: 6) }.count
        #expect(held == 6)
        let checked = early.hold(input, record: record, from: liar, verified: true, perPeerLimit: 6)
        let other = early.hold(input, record: record, from: Self.key.publicKey, verified: false, perPeerLimit: 6)
        #expect(checked && other)
        _ = early.take()
        let again = early.hold(input, record: record, from: liar, verified: false, perPeerLimit: 6)
        #expect(again)
    }
}

struct ConsensusGossipTests {
    /// A stall report is answered with what the peer lacks, and at most once per stall
    /// interval: a peer sending reports back to back gets nothing more (a report costs it 100
    /// bytes; an answer can cost this node a round of votes).
    @Test func stallReportsAreAnsweredOncePerInterval() {
        let keys = (0..<3).map { SigningKey(seed: Blake2b.hash256(Array("gossip-\($0)".utf8))) }
        let validators = ValidatorSet(keys.map { .init(key: $0.publicKey, power: 10) })
        var core = ConsensusCore<Block>(height: 7, validators: validators, me: nil, timeouts: TimeoutConfig())
        _ = core.start()
        for key in keys {
            let vote = Vote(kind: .prevote, height: 7, round: 0, blockID: nil, timestampMilliseconds: 1, validator: key.publicKey)
            _ = core.apply(.vote(vote.signed(with: key, chainID: "c")))
        }
        var gossip = ConsensusGossip()
        let peer = SigningKey(seed: Blake2b.hash256(Array("peer".utf8))).publicKey
        gossip.connected(peer, validatorKey: nil)
        let report = RoundState(height: 7, round: 0, phase: .prevote, hasProposal: false, prevotes: ValidatorBits(count: 3),
                                precommits: ValidatorBits(count: 3), links: ValidatorBits(count: 3), stalled: true)
        let first = gossip.received(report, from: peer, core: core, nextHeight: 7, setSize: 3, proposals: [:], now: 1_000)
        #expect(first.count == 3, "the three prevotes it lacks")
        let soon = gossip.received(report, from: peer, core: core, nextHeight: 7, setSize: 3, proposals: [:], now: 1_100)
        #expect(soon.isEmpty)
        let later = gossip.received(report, from: peer, core: core, nextHeight: 7, setSize: 3, proposals: [:], now: 1_000 + ConsensusGossip.stallIntervalMilliseconds)
        #expect(later.count == 3, "authoritative: it still says it lacks them")
    }
}

struct ServeBudgetTests {
    /// Each peer gets its own allowance per second; the next second starts afresh.
    @Test func eachPeerGetsItsAllowancePerSecond() {
        var budget = ServeBudget(perSecond: 3)
        let a = SigningKey(seed: Blake2b.hash256(Array("budget-a".utf8))).publicKey
        let b = SigningKey(seed: Blake2b.hash256(Array("budget-b".utf8))).publicKey
        var answers: [Bool] = []
        for _ in 0..<5 { answers.append(budget.allow(a, now: 10_000)) }
        #expect(answers == [true, true, true, false, false])
        let other = budget.allow(b, now: 10_999)
        #expect(other, "another peer is not charged for the first")
        let again = budget.allow(a, now: 10_999)
        #expect(!again)
        let next = budget.allow(a, now: 11_000)
        #expect(next, "a new second")
    }
}

struct HeightRunTests {
    /// What a height learns stays with it: executions and block times of its own blocks, the
    /// first signed proposal of each round (of this height only), and step durations that
    /// never run backwards.
    @Test func aHeightKeepsItsBlocksProposalsAndStepTimes() throws {
        let chain = try StateSyncChain()
        let tip = try chain.blocks.tip(for: chain.state)
        let (block, executed) = try #require(chain.factory.build(on: tip, proposer: chain.keys[0].publicKey, candidates: [],
                                                                 maxTransactions: 10, evidence: []))
        var run = HeightRun(core: ConsensusCore(height: 1, validators: tip.validators, me: nil, timeouts: .init()), now: 1_000)
        #expect(run.execution(of: block.id) == nil && run.blockTime(of: block.id) == nil)
        run.remember(block, executed: executed)
        #expect(run.execution(of: block.id)?.outcome.stateRoot == block.header.stateRoot)
        #expect(run.blockTime(of: block.id) == block.header.timeMilliseconds)

        func signed(_ height: UInt64, round: UInt32, by index: Int) -> SignedProposal {
            let proposal = Proposal(height: height, round: round, value: block, validRound: nil, proposer: chain.keys[index].publicKey)
            return SignedProposal(proposal: proposal, signature: chain.keys[index].sign(domain: .proposal, chainID: chain.genesis.chainID,
                                                                                        message: ProposalSigning.bytes(proposal)))
        }
        run.keep(signed(1, round: 0, by: 0))
        run.keep(signed(1, round: 0, by: 1))
        run.keep(signed(2, round: 1, by: 1))
        #expect(run.signedProposals.count == 1)
        #expect(run.signedProposals[0]?.proposal.proposer == chain.keys[0].publicKey, "the first of a round is kept")

        #expect(run.stepEnded(now: 1_250) == 250)
        #expect(run.stepEnded(now: 1_200) == 0, "a clock read out of order counts nothing")
        #expect(run.stepEnded(now: 1_300) == 100)
        #expect(run.startedAt == 1_000)
    }
}

struct TransactionRelayTests {
    /// Relayed transactions go out in order, in messages within the count and byte limits; one
    /// larger than the byte limit goes alone rather than never.
    @Test func relayedTransactionsAreCutIntoMessagesWithinTheLimits() throws {
        let key = SigningKey(seed: Blake2b.hash256(Array("relay".utf8)))
        let transactions = try (0..<25).map { nonce in
            try TransactionBody(chainID: "relay", sender: key.publicKey, nonce: UInt64(nonce), fee: Amount(units: 1),
                                call: .transfer(to: key.publicKey, amount: Amount(units: 1))).signed(with: key).verified(chainID: "relay")
        }
        let size = transactions[0].encodedSize
        let byCount = NodeDriver.messages(transactions, maxCount: 10, maxBytes: 1 << 20)
        #expect(byCount.map(\.count) == [10, 10, 5])
        #expect(byCount.flatMap { $0 }.map(\.hash) == transactions.map(\.hash))
        let byBytes = NodeDriver.messages(transactions, maxCount: 100, maxBytes: 3 * size)
        #expect(byBytes.map(\.count) == [3, 3, 3, 3, 3, 3, 3, 3, 1])
        #expect(NodeDriver.messages(Array(transactions.prefix(2)), maxCount: 100, maxBytes: size - 1).map(\.count) == [1, 1])
        #expect(NodeDriver.messages([], maxCount: 10, maxBytes: 10).isEmpty)
    }
}

struct MempoolQueueRecordTests {
    /// A sender that keeps sending each nonce after the one ahead of it (every transaction waits,
    /// then joins the line) leaves an arrival record each time: they are compacted, so what the
    /// mempool keeps for expiry stays bounded by the waiting transactions, not by the traffic.
    @Test func arrivalRecordsOfTransactionsThatLeftAreCompacted() throws {
        let key = SigningKey(seed: Blake2b.hash256(Array("queue-records".utf8)))
        var parameters = LocalGenesis.developmentParameters
        parameters.fees.minFee = Amount(units: 1)
        let validator = SigningKey(seed: Blake2b.hash256(Array("queue-records-validator".utf8)))
        let runtime = Runtime(genesis: Genesis(
            chainID: "membria-queue-records", genesisTimeUnixMilliseconds: 1_000, parameters: parameters,
            accounts: [GenesisAccount(address: key.publicKey, balance: .acti(1_000))],
            validators: [GenesisValidator(moniker: "v", address: validator.publicKey, consensusKey: validator.publicKey,
                                          nodeID: validator.publicKey, stake: .acti(10_000), gateway: true)]))
        let pool = Mempool(runtime: runtime, limits: .init(maxTransactions: 10_000, maxQueued: 1), signatures: SignatureCache())
        let state = runtime.genesisState()
        func transfer(_ nonce: UInt64) -> SignedTransaction {
            TransactionBody(chainID: "membria-queue-records", sender: key.publicKey, nonce: nonce, fee: Amount(units: 1),
                            call: .transfer(to: validator.publicKey, amount: Amount(units: 1))).signed(with: key)
        }
        for round in 0..<300 as Range<UInt64> {
            #expect(try pool.add(transfer(2 * round + 1), state: state).queued)
            #expect(try pool.add(transfer(2 * round), state: state).ready.count == 2)
        }
        #expect(pool.count == 600 && pool.queuedCount == 0)
        #expect(pool.queuedArrivalRecords <= 4 * 64 + 1, "records: \(pool.queuedArrivalRecords)")
    }
}

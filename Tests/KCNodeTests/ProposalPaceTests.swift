import Foundation
import KCCrypto
import KCTestSupport
@testable import KCNode
import KCTypes
import Synchronization
import Testing

/// ADR 0025: a node's proposals hold no more transactions than it executes within its budget.
struct ProposalPaceTests {
    @Test func theCapFollowsTheMeasuredPaceWithinItsBounds() {
        var pace = ProposalPace(budgetMilliseconds: 250)
        // Before any sample: the initial cap, or the genesis limit when that is lower.
        #expect(pace.limit(maxTransactions: 10_000) == ProposalPace.initialLimit)
        #expect(pace.limit(maxTransactions: 100) == 100)
        // Too few transactions to say what one costs.
        pace.observe(transactions: ProposalPace.sampleMinimum - 1, nanoseconds: 1_000_000_000)
        #expect(pace.nanosecondsPerTransaction == nil)
        // 1,000 transactions in 100 ms: 100 µs each, so 2,500 fit in 250 ms.
        pace.observe(transactions: 1_000, nanoseconds: 100_000_000)
        #expect(pace.nanosecondsPerTransaction == 100_000)
        #expect(pace.limit(maxTransactions: 10_000) == 2_500)
        #expect(pace.limit(maxTransactions: 2_000) == 2_000)
        // Each sample moves the estimate a quarter of the way: 100 µs toward 500 µs is 200 µs.
        pace.observe(transactions: 100, nanoseconds: 50_000_000)
        #expect(pace.nanosecondsPerTransaction == 200_000)
        #expect(pace.limit(maxTransactions: 10_000) == 1_250)
        // ... and back down: 200 µs toward 40 µs is 160 µs.
        pace.observe(transactions: 1_000, nanoseconds: 40_000_000)
        #expect(pace.nanosecondsPerTransaction == 160_000)
        // A very slow block drops the cap to the floor, never below it.
        pace.observe(transactions: 64, nanoseconds: 64_000_000_000)
        #expect(pace.limit(maxTransactions: 10_000) == ProposalPace.floor)
        #expect(pace.limit(maxTransactions: 10) == 10)
    }

    @Test func noBudgetMeansTheGenesisLimitAndExtremesDoNotTrap() {
        var unlimited = ProposalPace(budgetMilliseconds: 0)
        unlimited.observe(transactions: 1_000, nanoseconds: 1_000_000_000_000)
        #expect(unlimited.limit(maxTransactions: 10_000) == 10_000)

        var pace = ProposalPace(budgetMilliseconds: 3_600_000)
        pace.observe(transactions: 1_000_000, nanoseconds: 0)  // faster than the clock
        #expect(pace.nanosecondsPerTransaction == 0)
        #expect(pace.limit(maxTransactions: 1_000_000) == 1_000_000)
        pace.observe(transactions: Int.max, nanoseconds: .max)
        pace.observe(transactions: 32, nanoseconds: .max)
        #expect(pace.limit(maxTransactions: 1_000_000) == ProposalPace.floor)
        #expect(ProposalPace(budgetMilliseconds: .max).budgetNanoseconds == .max)
    }

    @Test func theBudgetDefaultsToAQuarterOfTheProposeTimeoutAndIsRead() throws {
        #expect(NodeConfig().effectiveProposalBudgetMilliseconds == 250)
        let config = try NodeConfig.parse("[consensus]\ntimeout_propose_ms = 2000")
        #expect(config.proposalBudgetMilliseconds == nil && config.effectiveProposalBudgetMilliseconds == 500)
        #expect(try NodeConfig.parse("[consensus]\nproposal_budget_ms = 0").effectiveProposalBudgetMilliseconds == 0)
        #expect(try NodeConfig.parse("[consensus]\nproposal_budget_ms = 40").effectiveProposalBudgetMilliseconds == 40)
        #expect(throws: NodeConfig.ParseError.self) { try NodeConfig.parse("[consensus]\nproposal_budget_ms = -1") }
    }

    /// A clock a second later at every reading: each timed execution takes a second.
    final class SecondClock: Sendable {
        let readings = Mutex<UInt64>(0)
        func read() -> UInt64 { readings.withLock { $0 += 1_000_000_000; return $0 } }
        var count: UInt64 { readings.withLock { $0 } / 1_000_000_000 }
    }

    /// Validator 0 of a devnet of `validators` (four funded users) with a 100 ms proposal
    /// budget, its driver on a `SecondClock`. `removeDevnetHome(home)` when done.
    static func pacedNode(validators: Int, name: String) throws -> (driver: NodeDriver, genesis: Genesis, home: String, clock: SecondClock) {
        var genesis = LocalGenesis.devnet(validatorCount: validators, userCount: 4)
        genesis.chainID = "membria-devnet-\(name)"
        let home = try makeDevnetHome(genesis: genesis, moniker: name, commitMilliseconds: 10, consensusLines: ["proposal_budget_ms = 100"])
        let driver = try NodeDriver(home: NodeHome(path: home)) { _ in }
        let clock = SecondClock()
        driver.executionClock = { clock.read() }
        return (driver, genesis, home, clock)
    }

    /// `perUser` transfers from each of the four devnet users to the next, nonces from 0.
    static func transfers(_ genesis: Genesis, perUser: Int) -> [SignedTransaction] {
        (0..<4).flatMap { index in
            (0..<perUser).map { nonce in
                TransactionBody(chainID: genesis.chainID, sender: DevnetKeys.user(index: index).publicKey, nonce: UInt64(nonce),
                                fee: genesis.parameters.fees.minFee,
                                call: .transfer(to: DevnetKeys.user(index: (index + 1) % 4).publicKey, amount: .acti(1)))
                    .signed(with: DevnetKeys.user(index: index))
            }
        }
    }

    /// A validator with a backlog of 1,500 transfers, on a clock where every execution takes a
    /// second: its first block holds the initial cap, the next what the first's pace allows,
    /// and the rest the floor (without the pace, the first would hold all 1,500).
    @Test func aNodeSizesItsProposalsToItsBudget() throws {
        let (driver, genesis, home, _) = try Self.pacedNode(validators: 1, name: "pace-test")
        defer { removeDevnetHome(home) }
        let perUser = 375
        let answers = Mutex(0)
        for transfer in Self.transfers(genesis, perUser: perUser) {
            driver.handle.send(transfer) { result in
                if case .success = result { answers.withLock { $0 += 1 } }
            }
        }
        let stop = Mutex(false)
        let finished = Mutex(false)
        // The driver runs on its own thread; this one only reads the store (thread-safe) and
        // the flags.
        final class Running: @unchecked Sendable {
            let driver: NodeDriver
            init(_ driver: NodeDriver) { self.driver = driver }
        }
        let running = Running(driver)
        let thread = Thread {
            try? running.driver.run { stop.withLock { $0 } }
            finished.withLock { $0 = true }
        }
        thread.start()
        defer {
            stop.withLock { $0 = true }
            for _ in 0..<1_000 where !finished.withLock({ $0 }) { usleep(10_000) }
        }
        let total = 4 * perUser
        var counts: [Int] = []
        for _ in 0..<6_000 {
            counts = []
            let blocks = running.driver.blocks
            let height = (try? blocks.height()) ?? 0
            for h in stride(from: UInt64(1), through: height, by: 1) {
                if let block = try? blocks.block(at: h), !block.transactions.isEmpty { counts.append(block.transactions.count) }
            }
            if counts.reduce(0, +) >= total { break }
            usleep(10_000)
        }
        #expect(answers.withLock { $0 } == total, "every transfer admitted")
        #expect(counts.reduce(0, +) == total, "every transfer committed: \(counts)")
        try #require(counts.count >= 3, "the backlog goes in several blocks: \(counts)")
        let first = counts[0]
        #expect(first == ProposalPace.initialLimit, "the first block takes the initial cap of the backlog: \(counts)")
        // A second per block: the first sample says 1 s / 1,024 per transaction, so 102 fit in
        // 100 ms; the second moves the estimate toward 1 s / 102 and the cap to the floor.
        #expect(counts[1] == Int(100_000_000 / (1_000_000_000 / UInt64(first))), "\(counts)")
        let later = counts.dropFirst(2)
        #expect(later.allSatisfy { $0 <= ProposalPace.floor } && later.contains(ProposalPace.floor), "\(counts)")
    }

    /// A peer's block costs this node what the peer chooses (transactions it never gossiped are
    /// checked here), so validating one must leave the pace alone (ADR 0025): on a clock where
    /// every reading is a second later, validating a peer's block of 400 transfers keeps the
    /// initial cap, while building the same 400 itself brings the cap down to the floor.
    @Test func aPeersBlockLeavesThePaceAlone() throws {
        let (driver, genesis, home, clock) = try Self.pacedNode(validators: 2, name: "pace-peer")
        defer { removeDevnetHome(home) }
        let transfers = Self.transfers(genesis, perUser: 100)
        let limit = Int(genesis.parameters.block.maxTransactions)

        let peer = DevnetKeys.key(.validator, index: 1).publicKey
        let built = try #require(driver.factory.build(on: try driver.tip(), proposer: peer, candidates: transfers.map(VerifiedTransaction.assumingVerified),
                                                      maxTransactions: limit, evidence: []))
        #expect(built.block.transactions.count == transfers.count)
        let readingsBefore = clock.count
        #expect(try driver.validate(built.block), "the peer's block is valid")
        #expect(clock.count == readingsBefore, "validating does not time the execution")
        #expect(driver.pace.limit(maxTransactions: limit) == ProposalPace.initialLimit, "a peer's block is no sample")

        // The control: the same transactions built by this node are a sample (400 in 1 s, so 40
        // in 100 ms: the floor).
        for transfer in transfers { _ = try driver.mempool.add(transfer, state: driver.state) }
        let own = try #require(try driver.buildBlock())
        #expect(own.transactions.count == transfers.count)
        #expect(driver.pace.limit(maxTransactions: limit) == ProposalPace.floor, "an own build is a sample")
    }
}

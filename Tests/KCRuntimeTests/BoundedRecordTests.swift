import KCCodec
import KCCrypto
@testable import KCRuntime
import KCTypes
import Testing

/// Every list in state is bounded where it is written: each test pushes one to its limit and
/// past it, through the calls, and the state still decodes entry by entry (the chain's audit
/// after every block runs `decodeEveryEntry`). Before, the 10,001st vote wrote an event record
/// its decoder refused, and every node trapped at that height.
struct BoundedRecordTests {
    @Test func unbondingEntriesStopAt32() throws {
        var chain = TestChain()
        #expect(try chain.submit(u[0], .bond(amount: .acti(100))).succeeded)
        let unbonds = (0..<32).map { _ in chain.transaction(u[0], .unbond(amount: .acti(1))) }
        #expect(try chain.block(unbonds).receipts.allSatisfy(\.succeeded))
        let refused = try chain.submit(u[0], .unbond(amount: .acti(1)))
        #expect(refused.code == .tooManyUnbondingEntries)
        #expect(chain.state.stake(u[0].publicKey).unbonding.count == StakeRecord.maxUnbondingEntries)
    }

    /// A gateway whose stake changes in 64 live epochs has a full history: an increase is
    /// refused with its own code, a decrease goes through unrecorded (and only lowers the
    /// weight older electorates read for it), and once old epochs retire there is room again.
    @Test func electorateHistoryStopsAt64LiveEpochs() throws {
        var parameters = TestChain.parameters()
        parameters.staking.epochLengthBlocks = 1
        var chain = TestChain(genesis: TestChain.genesis(parameters: parameters))
        // Blocks 1 ms apart: 70 epochs pass well inside one attestation period, all live.
        for _ in 0..<GatewayHistory.maxEntries {
            #expect(try chain.submit(g[1], .bond(amount: .acti(1)), advance: 1).succeeded)
        }
        #expect(chain.state.gatewayHistory(g[1].publicKey)?.entries.count == GatewayHistory.maxEntries)
        let full = try chain.submit(g[1], .bond(amount: .acti(1)), advance: 1)
        #expect(full.code == .electorateHistoryFull)
        #expect(full.message.contains("changed in 64 epochs"))
        let weightAtFirst = chain.state.electoralWeight(g[1].publicKey, epoch: chain.state.global.oldestLiveEpoch)
        #expect(try chain.submit(g[1], .unbond(amount: .acti(50_000)), advance: 1).succeeded, "a decrease is never refused")
        #expect(chain.state.gatewayHistory(g[1].publicKey)?.entries.count == GatewayHistory.maxEntries)
        #expect(chain.state.electoralWeight(g[1].publicKey, epoch: chain.state.global.oldestLiveEpoch) <= weightAtFirst)
        // A whole attestation period later the old epochs are retired: room again.
        try chain.block(advance: chain.parameters.events.attestationPeriodMilliseconds)
        try chain.block(advance: 1)
        #expect(chain.state.global.oldestLiveEpoch > 60)
        #expect(try chain.submit(g[1], .bond(amount: .acti(1)), advance: 1).succeeded)
        #expect((chain.state.gatewayHistory(g[1].publicKey)?.entries.count ?? 99) < 4, "entries of retired epochs dropped")
    }

    /// Bonds at least double with each round, and an event has at most 32 disputes.
    @Test func disputesOfOneEventStopAt32() throws {
        var parameters = TestChain.parameters()
        parameters.events.minDisputeBond = Amount(units: 1)
        parameters.events.challengeWindowMilliseconds = 100_000
        var chain = TestChain(genesis: TestChain.genesis(parameters: parameters))
        let event = try accepted(&chain, label: "contested")
        var bond = Amount(units: 1)
        for number in 0..<Int(EventRecord.maxDisputes) {
            let dispute = DisputeRecord.id(forEvent: event, sequence: UInt32(number))
            // Each round in one block: a dispute (a bond round: every validator is accused), its defence.
            let outcome = try chain.block([chain.transaction(u[0], .dispute(eventID: event, bond: bond, reason: arTxID("r\(number)"))),
                                           chain.transaction(u[1], .defend(disputeID: dispute, bond: bond))], advance: 100)
            let messages = outcome.receipts.map(\.message)
            #expect(try outcome.receipts.allSatisfy(\.succeeded), "round \(number): \(messages)")
            bond = Amount(units: bond.units * 2)
        }
        #expect(chain.state.event(event)?.disputeCount == EventRecord.maxDisputes)
        let refused = try chain.submit(u[0], .dispute(eventID: event, bond: bond, reason: arTxID("one-more")), advance: 100)
        #expect(refused.code == .tooManyDisputes)
        let underbid = try chain.submit(u[2], .dispute(eventID: event, bond: Amount(units: 1), reason: arTxID("x")), advance: 100)
        #expect(underbid.code == .tooManyDisputes)
        // The defence bonds of all 32 rounds come back to the defender at finality.
        let defender = chain.balance(u[1])
        try chain.advance(to: chain.state.event(event)!.challengeWindowCloses(chain.parameters))
        #expect(chain.status(event) == .finalized)
        #expect(chain.balance(u[1]) > defender)
        #expect(chain.state.global.disputeEscrow == .zero)
    }

    /// More ids than an entry holds due at one deadline: the block writes several entries.
    @Test func queueEntriesSplitPastTheirLimit() throws {
        var chain = TestChain()
        chain.auditing = false
        let count = 2 * QueueEntry.maxIDs + 44
        let proposals = (0..<count).map { index in
            chain.transaction(g[index % 4], .proposeEvent(parents: [], arTxID: arTxID("q\(index)"),
                                                          contentHash: SHA256.hash(Array("q\(index)".utf8)), kind: "q"))
        }
        let outcome = try chain.block(proposals)
        #expect(outcome.receipts.allSatisfy { $0.succeeded })
        chain.audit(outcome)  // every pending event sits in the entry its record names
        let bounds = chain.state.global.attestationQueue
        let sizes = (bounds.head..<bounds.tail).map {
            chain.state.decode(QueueEntry.self, at: StateKey.queueEntry(.attestation, $0))?.ids.count
        }
        #expect(sizes == [QueueEntry.maxIDs, QueueEntry.maxIDs, 44])
        try chain.advance(to: chain.time + chain.parameters.events.attestationPeriodMilliseconds)
        #expect(chain.outcomes.last?.eventChanges.count == count, "every one expired at its deadline")
        #expect(chain.state.global.attestationQueue.isEmpty)
        chain.audit(chain.outcomes.last!)
    }

    /// Messages of failed calls are cut to what a receipt's decoder accepts.
    @Test func receiptMessagesAreClippedToTheirDecoderLimit() throws {
        let long = String(repeating: "é", count: 2_000)
        let error = CallError(.overflow, long)
        #expect(error.message.utf8.count <= Receipt.maxMessageBytes)
        #expect(long.hasPrefix(error.message))
        let receipt = Receipt(transactionHash: Blake2b.hash256([1]), code: error.code, message: error.message, feePaid: .zero)
        #expect(try Receipt.decode(exactly: receipt.canonicalBytes) == receipt)
    }
}

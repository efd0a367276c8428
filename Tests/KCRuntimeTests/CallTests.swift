import KCCodec
import KCCrypto
@testable import KCRuntime
import KCTypes
import Testing

let fee = TestChain.fee
let g = TestChain.gateways
let u = TestChain.users

struct TransferAndBlockRuleTests {
    @Test func transferMovesMoneyAndChargesTheFee() throws {
        var chain = TestChain()
        let receipt = try chain.submit(u[0], .transfer(to: u[1].publicKey, amount: .acti(10)))
        #expect(receipt.succeeded)
        #expect(chain.balance(u[0]) == Amount.acti(1_000_000 - 10).subtracting(fee)!)
        #expect(chain.balance(u[1]) == .acti(1_000_010))
        #expect(chain.state.account(u[0].publicKey).nonce == 1)
    }

    @Test func failedCallPaysItsFeeAndChangesNothingElse() throws {
        var chain = TestChain()
        let rootBefore = chain.state.root
        let zero = try chain.submit(u[0], .transfer(to: u[1].publicKey, amount: .zero))
        #expect(zero.code == .invalidAmount)
        let tooMuch = try chain.submit(u[0], .transfer(to: u[1].publicKey, amount: .acti(2_000_000)))
        #expect(tooMuch.code == .insufficientBalance)
        #expect(tooMuch.message.contains("less than the transfer of 2,000,000 ACTI"))
        #expect(chain.balance(u[0]) == Amount.acti(1_000_000).subtracting(Amount(units: fee.units * 2))!)
        #expect(chain.balance(u[1]) == .acti(1_000_000))
        #expect(chain.state.account(u[0].publicKey).nonce == 2)
        #expect(chain.state.root != rootBefore)
        #expect(chain.outcomes.last!.receipts[0].feePaid == fee)
    }

    @Test func blocksWithBadNonceFeeOrHeightAreRefused() throws {
        var chain = TestChain()
        let body = TransactionBody(chainID: TestChain.chainID, sender: u[0].publicKey, nonce: 5, fee: fee,
                                   call: .transfer(to: u[1].publicKey, amount: .acti(1)))
        let wrongNonce = try body.signed(with: u[0]).verified(chainID: TestChain.chainID)
        #expect(throws: BlockError.wrongNonce(index: 0, expected: 0, found: 5)) { try chain.block([wrongNonce]) }

        let cheap = chain.transaction(u[0], .transfer(to: u[1].publicKey, amount: .acti(1)), fee: Amount(units: 1))
        #expect(throws: BlockError.feeBelowMinimum(index: 0, fee: Amount(units: 1), minimum: fee)) { try chain.block([cheap]) }

        let poor = testKey("poor")
        let broke = chain.transaction(poor, .transfer(to: u[1].publicKey, amount: .acti(1)))
        #expect(throws: BlockError.cannotPayFee(index: 0, fee: fee, balance: .zero)) { try chain.block([broke]) }

        // Two transactions with the same nonce: the second is refused.
        let first = chain.transaction(u[0], .transfer(to: u[1].publicKey, amount: .acti(1)))
        chain.nonces[u[0].publicKey] = 0
        let replay = chain.transaction(u[0], .transfer(to: u[2].publicKey, amount: .acti(1)))
        #expect(throws: BlockError.wrongNonce(index: 1, expected: 1, found: 0)) { try chain.block([first, replay]) }

        let state = chain.state
        #expect(throws: BlockError.wrongHeight(expected: 1, found: 3)) {
            try chain.runtime.execute([], context: BlockContext(height: 3, timeMilliseconds: chain.time + 1), on: state)
        }
        #expect(throws: BlockError.timeNotIncreasing(previous: TestChain.startTime, found: TestChain.startTime)) {
            try chain.runtime.execute([], context: BlockContext(height: 1, timeMilliseconds: TestChain.startTime), on: state)
        }
        #expect(chain.height == 0, "refused blocks must not advance the chain")
    }

    @Test func blockLimitsAreEnforced() throws {
        var parameters = TestChain.parameters()
        parameters.block.maxTransactions = 2
        var chain = TestChain(genesis: TestChain.genesis(parameters: parameters))
        let transactions = (0..<3).map { _ in chain.transaction(u[0], .transfer(to: u[1].publicKey, amount: .acti(1))) }
        #expect(throws: BlockError.tooManyTransactions(count: 3, limit: 2)) { try chain.block(transactions) }
    }

    @Test func wrongChainAndBadSignatureNeverVerify() {
        let body = TransactionBody(chainID: "other-chain", sender: u[0].publicKey, nonce: 0, fee: fee, call: .withdrawUnbonded)
        #expect(throws: SignedTransaction.VerificationError.wrongChain(expected: TestChain.chainID, found: "other-chain")) {
            try body.signed(with: u[0]).verified(chainID: TestChain.chainID)
        }
        let good = TransactionBody(chainID: TestChain.chainID, sender: u[0].publicKey, nonce: 0, fee: fee, call: .withdrawUnbonded)
        #expect(throws: Never.self) { try good.signed(with: u[0]).verified(chainID: TestChain.chainID) }
        let wrongSigner = SignedTransaction(body: good, signature: u[1].sign(domain: .transaction, chainID: TestChain.chainID,
                                                                             message: good.canonicalBytes))
        #expect(throws: SignedTransaction.VerificationError.badSignature) { try wrongSigner.verified(chainID: TestChain.chainID) }
    }

    @Test func transactionEncodingRoundTripsForEveryCall() throws {
        let calls: [Call] = [
            .transfer(to: u[1].publicKey, amount: .acti(3)), .bond(amount: .acti(1)), .unbond(amount: .acti(2)),
            .withdrawUnbonded, .registerValidator(consensusKey: testKey("ck").publicKey), .registerGateway, .unjail,
            .proposeEvent(parents: [Blake2b.hash256([1])], arTxID: arTxID("x"), contentHash: SHA256.hash([2]), kind: "k"),
            .attest(votes: [AttestationVote(eventID: Blake2b.hash256([3]), verdict: .invalid)]),
            .dispute(eventID: Blake2b.hash256([4]), bond: .acti(100), reason: arTxID("why")),
            .voteDispute(disputeID: Blake2b.hash256([5]), uphold: true),
        ]
        for (tag, call) in calls.enumerated() {
            let signed = TransactionBody(chainID: TestChain.chainID, sender: u[0].publicKey, nonce: 7, fee: fee, call: call).signed(with: u[0])
            #expect(try SignedTransaction.decode(exactly: signed.canonicalBytes) == signed)
            #expect(call.canonicalBytes.first == UInt8(tag), "call \(call.name) has tag \(tag)")
        }
        #expect(throws: DecodingError.unknownTag(what: "call", tag: 11)) { try Call.decode(exactly: [11]) }
    }
}

struct StakingTests {
    @Test func bondUnbondAndWithdrawAfterTheUnbondingPeriod() throws {
        var chain = TestChain()
        #expect(try chain.submit(u[0], .bond(amount: .acti(20_000))).succeeded)
        #expect(chain.bonded(u[0]) == .acti(20_000))
        #expect(try chain.submit(u[0], .unbond(amount: .acti(5_000))).succeeded)
        #expect(chain.bonded(u[0]) == .acti(15_000))
        let unbondedAt = chain.time
        let early = try chain.submit(u[0], .withdrawUnbonded)
        #expect(early.code == .nothingToWithdraw)
        #expect(early.message.contains("\(unbondedAt + 60_000)"))
        try chain.advance(to: unbondedAt + 60_000)
        let before = chain.balance(u[0])
        #expect(try chain.submit(u[0], .withdrawUnbonded).succeeded)
        #expect(chain.balance(u[0]) == before.adding(.acti(5_000))!.subtracting(fee)!)
        #expect(chain.state.stake(u[0].publicKey).unbonding.isEmpty)
    }

    @Test func stakingErrors() throws {
        var chain = TestChain()
        #expect(try chain.submit(u[0], .bond(amount: .zero)).code == .invalidAmount)
        #expect(try chain.submit(u[0], .bond(amount: .acti(5_000_000))).code == .insufficientBalance)
        #expect(try chain.submit(u[0], .unbond(amount: .acti(1))).code == .insufficientBonded)
        #expect(try chain.submit(u[0], .unbond(amount: .zero)).code == .invalidAmount)
        #expect(try chain.submit(u[0], .withdrawUnbonded).code == .nothingToWithdraw)
        // A gateway may not keep its role on less than the minimum.
        let partial = try chain.submit(g[0], .unbond(amount: .acti(95_000)))
        #expect(partial.code == .belowMinimumStake)
        #expect(partial.message.contains("below the minimum gateway stake 10,000 ACTI"))
    }

    @Test func unbondingEverythingLeavesTheRoles() throws {
        var chain = TestChain()
        #expect(try chain.submit(g[3], .unbond(amount: .acti(100_000))).succeeded)
        #expect(!chain.state.gatewayRegistry.contains(g[3].publicKey))
        #expect(!chain.state.validatorRegistry.contains(g[3].publicKey))
        #expect(chain.state.global.gatewayStake == .acti(300_000))
    }

    @Test func registerValidatorAndGateway() throws {
        var chain = TestChain()
        let consensus = testKey("user-0-consensus").publicKey
        #expect(try chain.submit(u[0], .registerValidator(consensusKey: consensus)).code == .belowMinimumStake)
        #expect(try chain.submit(u[0], .registerGateway).code == .belowMinimumStake)
        #expect(try chain.submit(u[0], .bond(amount: .acti(10_000))).succeeded)
        #expect(try chain.submit(u[0], .registerValidator(consensusKey: TestChain.consensusKeys[0].publicKey)).code == .consensusKeyInUse)
        #expect(try chain.submit(u[0], .registerValidator(consensusKey: consensus)).succeeded)
        #expect(try chain.submit(u[0], .registerValidator(consensusKey: consensus)).code == .alreadyValidator)
        #expect(try chain.submit(u[0], .registerGateway).succeeded)
        #expect(try chain.submit(u[0], .registerGateway).code == .alreadyGateway)
        #expect(chain.state.global.gatewayStake == .acti(410_000))
        #expect(chain.state.validatorRegistry.contains(u[0].publicKey))
    }

    @Test func unjailErrors() throws {
        var chain = TestChain()
        #expect(try chain.submit(u[0], .unjail).code == .notValidator)
        #expect(try chain.submit(g[0], .unjail).code == .notJailed)
    }
}

struct EventTests {
    @Test func proposeStoresIndexesAndChecksParents() throws {
        var chain = TestChain()
        let first = try chain.propose(g[0], label: "a")
        let second = try chain.propose(g[1], label: "b")
        let child = try chain.propose(g[2], parents: [first, second], label: "c")
        let record = try #require(chain.state.event(child))
        #expect(record.status == .pending)
        #expect(record.header.parents == [first, second])
        #expect(record.header.author == g[2].publicKey)
        let writes = chain.outcomes.last!.eventChanges
        #expect(writes == [EventStatusChange(eventID: child, from: nil, to: .pending, height: chain.height)])
    }

    @Test func proposeErrors() throws {
        var chain = TestChain()
        let parent = try chain.propose(g[0], label: "p")
        func propose(_ key: SigningKey, parents: [Hash256], kind: String = "k") throws -> Receipt {
            try chain.submit(key, .proposeEvent(parents: parents, arTxID: arTxID("e"), contentHash: SHA256.hash([1]), kind: kind))
        }
        #expect(try propose(u[0], parents: []).code == .notGateway)
        #expect(try propose(g[0], parents: Array(repeating: parent, count: 5)).code == .tooManyParents)
        #expect(try propose(g[0], parents: [parent, parent]).code == .duplicateParent)
        #expect(try propose(g[0], parents: [Blake2b.hash256([9])]).code == .unknownParent)
        #expect(try propose(g[0], parents: [], kind: "").code == .invalidKind)
        #expect(try propose(g[0], parents: [], kind: "has space").code == .invalidKind)
        #expect(try propose(g[0], parents: [], kind: String(repeating: "k", count: 33)).code == .invalidKind)
    }

    @Test func rejectedParentIsRefused() throws {
        var chain = TestChain()
        let bad = try chain.propose(g[0], label: "bad")
        for voter in [g[1], g[2]] {
            #expect(try chain.submit(voter, .attest(votes: [AttestationVote(eventID: bad, verdict: .invalid)])).succeeded)
        }
        #expect(chain.state.event(bad)?.status == .rejected)
        let receipt = try chain.submit(g[0], .proposeEvent(parents: [bad], arTxID: arTxID("x"), contentHash: SHA256.hash([1]), kind: "k"))
        #expect(receipt.code == .rejectedParent)
    }

    @Test func acceptanceNeedsMoreThanTwoThirdsOfGatewayStake() throws {
        var chain = TestChain()
        let id = try chain.propose(g[0], label: "accept")
        #expect(try chain.submit(g[1], .attest(votes: [AttestationVote(eventID: id, verdict: .valid)])).succeeded)
        #expect(try chain.submit(g[2], .attest(votes: [AttestationVote(eventID: id, verdict: .valid)])).succeeded)
        #expect(chain.state.event(id)?.status == .pending, "2/4 of the stake is not more than 2/3")
        #expect(try chain.submit(g[3], .attest(votes: [AttestationVote(eventID: id, verdict: .valid)])).succeeded)
        let record = try #require(chain.state.event(id))
        #expect(record.status == .accepted)
        #expect(record.validStake == .acti(300_000))
        #expect(record.validVoters == [g[1], g[2], g[3]].map(\.publicKey).sorted())
    }

    @Test func rejectionNeedsMoreThanOneThirdInvalid() throws {
        var chain = TestChain()
        let id = try chain.propose(g[0], label: "reject")
        #expect(try chain.submit(g[1], .attest(votes: [AttestationVote(eventID: id, verdict: .invalid)])).succeeded)
        #expect(chain.state.event(id)?.status == .pending, "1/4 is not more than 1/3")
        #expect(try chain.submit(g[2], .attest(votes: [AttestationVote(eventID: id, verdict: .invalid)])).succeeded)
        #expect(chain.state.event(id)?.status == .rejected)
    }

    @Test func attestErrorsAndBatches() throws {
        var chain = TestChain()
        let a = try chain.propose(g[0], label: "a")
        let b = try chain.propose(g[0], label: "b")
        #expect(try chain.submit(u[0], .attest(votes: [AttestationVote(eventID: a, verdict: .valid)])).code == .notGateway)
        #expect(try chain.submit(g[1], .attest(votes: [])).code == .emptyAttestation)
        #expect(try chain.submit(g[0], .attest(votes: [AttestationVote(eventID: a, verdict: .valid)])).code == .ownEvent)
        #expect(try chain.submit(g[1], .attest(votes: [AttestationVote(eventID: Blake2b.hash256([7]), verdict: .valid)])).code == .unknownEvent)
        // One transaction, many verdicts.
        let batch = try chain.submit(g[1], .attest(votes: [AttestationVote(eventID: a, verdict: .valid),
                                                           AttestationVote(eventID: b, verdict: .invalid)]))
        #expect(batch.succeeded)
        #expect(chain.state.event(a)?.validStake == .acti(100_000))
        #expect(chain.state.event(b)?.invalidStake == .acti(100_000))
        let again = try chain.submit(g[1], .attest(votes: [AttestationVote(eventID: a, verdict: .invalid)]))
        #expect(again.code == .alreadyVoted)
        #expect(chain.state.event(a)?.invalidStake == .zero, "a refused vote must not count")
    }

    @Test func pendingEventExpiresAtItsDeadline() throws {
        var chain = TestChain()
        let id = try chain.propose(g[0], label: "late")
        let proposedAt = chain.time
        try chain.advance(to: proposedAt + 19_000)
        #expect(chain.state.event(id)?.status == .pending)
        try chain.advance(to: proposedAt + 20_000)
        #expect(chain.state.event(id)?.status == .expired)
        // A verdict after the deadline is skipped, not counted.
        #expect(try chain.submit(g[1], .attest(votes: [AttestationVote(eventID: id, verdict: .valid)])).succeeded)
        #expect(chain.state.event(id)?.validStake == .zero)
    }

    @Test func acceptedEventIsFinalizedAfterTheChallengeWindow() throws {
        var chain = TestChain()
        let id = try accepted(&chain, label: "final")
        let acceptedAt = chain.state.event(id)!.statusChangedAtMilliseconds
        try chain.advance(to: acceptedAt + 29_000)
        #expect(chain.state.event(id)?.status == .accepted)
        try chain.advance(to: acceptedAt + 30_000)
        #expect(chain.state.event(id)?.status == .finalized)
        let late = try chain.submit(u[0], .dispute(eventID: id, bond: .acti(100), reason: arTxID("why")))
        #expect(late.code == .notInChallengeWindow)
        #expect(late.message.contains("closed at block time \(acceptedAt + 30_000)"))
    }

    @Test func onlyTheLifecycleEdgesExist() {
        let allowed: Set<String> = ["pending>accepted", "pending>rejected", "pending>expired", "accepted>finalized",
                                    "accepted>disputed", "disputed>rejected", "disputed>finalized"]
        for from in EventStatus.allCases {
            for to in EventStatus.allCases {
                #expect(from.canMove(to: to) == allowed.contains("\(from.name)>\(to.name)"), "\(from.name) -> \(to.name)")
            }
        }
    }
}

/// Proposes from g0 and has g1..g3 attest valid: accepted.
func accepted(_ chain: inout TestChain, label: String) throws -> Hash256 {
    let id = try chain.propose(g[0], label: label)
    let votes = [g[1], g[2], g[3]].map { chain.transaction($0, .attest(votes: [AttestationVote(eventID: id, verdict: .valid)])) }
    let outcome = try chain.block(votes)
    #expect(outcome.receipts.allSatisfy { $0.succeeded })
    #expect(chain.state.event(id)?.status == .accepted)
    return id
}

struct DisputeTests {
    @Test func upheldDisputeRejectsSlashesAndRewardsExactly() throws {
        var chain = TestChain()
        let id = try accepted(&chain, label: "disputed")
        let disputerBefore = chain.balance(u[0])
        let burnedBefore = chain.state.global.burned
        #expect(try chain.submit(u[0], .dispute(eventID: id, bond: .acti(100), reason: arTxID("proof"))).succeeded)
        #expect(chain.state.event(id)?.status == .disputed)
        #expect(chain.state.global.disputeEscrow == .acti(100))
        let disputeID = DisputeRecord.id(forEvent: id)
        for voter in [g[0], g[1]] {
            #expect(try chain.submit(voter, .voteDispute(disputeID: disputeID, uphold: true)).succeeded)
        }
        #expect(chain.state.event(id)?.status == .disputed, "2/4 uphold is not more than 2/3")
        #expect(try chain.submit(g[2], .voteDispute(disputeID: disputeID, uphold: true)).succeeded)

        #expect(chain.state.event(id)?.status == .rejected)
        let dispute = try #require(chain.state.dispute(disputeID))
        #expect(dispute.status == .upheld)
        // g1..g3 attested valid: each loses 10% of 100,000 ACTI. g0 (the author) did not attest.
        for voter in [g[1], g[2], g[3]] { #expect(chain.bonded(voter) == .acti(90_000)) }
        #expect(chain.bonded(g[0]) == .acti(100_000))
        #expect(dispute.slashedTotal == .acti(30_000))
        #expect(dispute.disputerReward == .acti(15_000))
        #expect(chain.balance(u[0]) == disputerBefore.adding(.acti(15_000))!.subtracting(fee)!)
        #expect(chain.state.global.burned == burnedBefore.adding(.acti(15_000))!)
        #expect(chain.state.global.disputeEscrow == .zero)
        #expect(chain.state.global.gatewayStake == .acti(370_000))
        let slashes = chain.outcomes.last!.slashes
        #expect(slashes.count == 3 && slashes.allSatisfy { $0.reason == .lostDispute && $0.amount == .acti(10_000) })
    }

    @Test func disputeNotUpheldFinalizesAndBurnsTheBond() throws {
        var chain = TestChain()
        let id = try accepted(&chain, label: "survives")
        let disputerBefore = chain.balance(u[1])
        #expect(try chain.submit(u[1], .dispute(eventID: id, bond: .acti(250), reason: arTxID("weak"))).succeeded)
        let openedAt = chain.time
        let disputeID = DisputeRecord.id(forEvent: id)
        #expect(try chain.submit(g[0], .voteDispute(disputeID: disputeID, uphold: true)).succeeded)
        #expect(try chain.submit(g[1], .voteDispute(disputeID: disputeID, uphold: false)).succeeded)
        let burnedBefore = chain.state.global.burned
        try chain.advance(to: openedAt + 15_000)
        #expect(chain.state.event(id)?.status == .finalized)
        #expect(chain.state.dispute(disputeID)?.status == .notUpheld)
        #expect(chain.balance(u[1]) == disputerBefore.subtracting(.acti(250))!.subtracting(fee)!)
        #expect(chain.state.global.burned == burnedBefore.adding(.acti(250))!)
        for voter in g { #expect(chain.bonded(voter) == .acti(100_000)) }
        let late = try chain.submit(g[2], .voteDispute(disputeID: disputeID, uphold: true))
        #expect(late.code == .disputeClosed)
    }

    @Test func disputeErrors() throws {
        var chain = TestChain()
        let pending = try chain.propose(g[0], label: "pending")
        #expect(try chain.submit(u[0], .dispute(eventID: pending, bond: .acti(100), reason: arTxID("r"))).code == .notInChallengeWindow)
        #expect(try chain.submit(u[0], .dispute(eventID: Blake2b.hash256([1]), bond: .acti(100), reason: arTxID("r"))).code == .unknownEvent)
        let id = try accepted(&chain, label: "target")
        let small = try chain.submit(u[0], .dispute(eventID: id, bond: .acti(99), reason: arTxID("r")))
        #expect(small.code == .bondTooSmall)
        #expect(small.message == "bond 99 ACTI is below the minimum dispute bond 100 ACTI")
        #expect(try chain.submit(u[2], .dispute(eventID: id, bond: .acti(2_000_000), reason: arTxID("r"))).code == .insufficientBalance)
        #expect(try chain.submit(g[0], .voteDispute(disputeID: Blake2b.hash256([2]), uphold: true)).code == .unknownDispute)
        #expect(try chain.submit(u[0], .dispute(eventID: id, bond: .acti(100), reason: arTxID("r"))).succeeded)
        #expect(try chain.submit(u[1], .dispute(eventID: id, bond: .acti(100), reason: arTxID("r"))).code == .notInChallengeWindow)
        let disputeID = DisputeRecord.id(forEvent: id)
        #expect(try chain.submit(u[0], .voteDispute(disputeID: disputeID, uphold: true)).code == .notGateway)
        #expect(try chain.submit(g[0], .voteDispute(disputeID: disputeID, uphold: true)).succeeded)
        #expect(try chain.submit(g[0], .voteDispute(disputeID: disputeID, uphold: true)).code == .alreadyVoted)
    }
}

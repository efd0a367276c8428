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
            .defend(disputeID: Blake2b.hash256([6]), bond: .acti(200)),
        ]
        for (tag, call) in calls.enumerated() {
            let signed = TransactionBody(chainID: TestChain.chainID, sender: u[0].publicKey, nonce: 7, fee: fee, call: call).signed(with: u[0])
            #expect(try SignedTransaction.decode(exactly: signed.canonicalBytes) == signed)
            #expect(call.canonicalBytes.first == UInt8(tag), "call \(call.name) has tag \(tag)")
        }
        #expect(throws: DecodingError.unknownTag(what: "call", tag: 12)) { try Call.decode(exactly: [12]) }
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
        let period = chain.parameters.staking.unbondingPeriodMilliseconds
        #expect(early.message.contains(UTCTime.rfc3339(milliseconds: unbondedAt + period)))
        try chain.advance(to: unbondedAt + period)
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

    @Test func acceptanceNeedsMoreThanTwoThirdsOfTheElectorate() throws {
        var chain = TestChain()
        let id = try chain.propose(g[0], label: "accept")
        #expect(try chain.attest(g[1], id).succeeded)
        #expect(try chain.attest(g[2], id).succeeded)
        #expect(chain.status(id) == .pending, "2/4 of the stake is not more than 2/3")
        #expect(try chain.attest(g[3], id).succeeded)
        let record = try #require(chain.state.event(id))
        #expect(record.status == .accepted)
        #expect(record.electorateTotal == .acti(400_000))
        #expect(record.validWeight == .acti(300_000))
        #expect(record.validCount == 3)
        #expect(chain.state.voters(id, .valid) == [g[1], g[2], g[3]].map { VoterEntry(voter: $0.publicKey, weight: .acti(100_000)) })
    }

    @Test func rejectionNeedsMoreThanOneThirdInvalid() throws {
        var chain = TestChain()
        let id = try chain.propose(g[0], label: "reject")
        #expect(try chain.attest(g[1], id, .invalid).succeeded)
        #expect(chain.status(id) == .pending, "1/4 is not more than 1/3")
        #expect(try chain.attest(g[2], id, .invalid).succeeded)
        #expect(chain.status(id) == .rejected)
        #expect(chain.state.event(id)?.resolution == .attestation)
    }

    @Test func attestErrorsAndBatches() throws {
        var chain = TestChain()
        let a = try chain.propose(g[0], label: "a")
        let b = try chain.propose(g[0], label: "b")
        let outsider = try chain.attest(u[0], a)
        #expect(outsider.code == .notInElectorate)
        #expect(outsider.message.contains("gateways of epoch 0"))
        #expect(try chain.submit(g[1], .attest(votes: [])).code == .emptyAttestation)
        #expect(try chain.attest(g[0], a).code == .ownEvent)
        #expect(try chain.attest(g[1], Blake2b.hash256([7])).code == .unknownEvent)
        // One transaction, many verdicts.
        let batch = try chain.submit(g[1], .attest(votes: [AttestationVote(eventID: a, verdict: .valid),
                                                           AttestationVote(eventID: b, verdict: .invalid)]))
        #expect(batch.succeeded)
        #expect(chain.state.event(a)?.validWeight == .acti(100_000))
        #expect(chain.state.event(b)?.invalidWeight == .acti(100_000))
        let again = try chain.attest(g[1], a, .invalid)
        #expect(again.code == .alreadyVoted)
        #expect(chain.state.event(a)?.invalidWeight == .zero, "a refused vote must not count")
        // Two verdicts on one event in one batch: the second is a double vote and fails the call.
        let twice = try chain.submit(g[2], .attest(votes: [AttestationVote(eventID: b, verdict: .valid),
                                                           AttestationVote(eventID: b, verdict: .invalid)]))
        #expect(twice.code == .alreadyVoted)
        #expect(chain.state.event(b)?.validWeight == .zero)
    }

    /// A refused call between two good ones in the same block undoes its own writes only: the
    /// event's record keeps the vote written before it in that block, not the stored record.
    @Test func aRefusedCallInsideABlockKeepsTheVotesBeforeIt() throws {
        var chain = TestChain()
        let a = try chain.propose(g[0], label: "a")
        let outcome = try chain.block([
            chain.transaction(g[1], .attest(votes: [AttestationVote(eventID: a, verdict: .valid)])),
            chain.transaction(g[2], .attest(votes: [AttestationVote(eventID: a, verdict: .valid),
                                                    AttestationVote(eventID: a, verdict: .invalid)])),
            chain.transaction(g[3], .attest(votes: [AttestationVote(eventID: a, verdict: .invalid)])),
        ])
        #expect(outcome.receipts.map(\.code) == [.ok, .alreadyVoted, .ok])
        let record = try #require(chain.state.event(a))
        #expect(record.inlineVotes.map(\.voter) == [g[1].publicKey, g[3].publicKey])
        #expect(record.validCount == 1 && record.validWeight == .acti(100_000))
        #expect(record.invalidCount == 1 && record.invalidWeight == .acti(100_000))
        #expect(try chain.attest(g[2], a).succeeded, "the refused voter's vote left no trace")
    }

    @Test func pendingEventExpiresAtItsDeadline() throws {
        var chain = TestChain()
        let id = try chain.propose(g[0], label: "late")
        let proposedAt = chain.time
        try chain.advance(to: proposedAt + 19_000)
        #expect(chain.status(id) == .pending)
        try chain.advance(to: proposedAt + 20_000)
        #expect(chain.status(id) == .expired)
        #expect(chain.state.event(id)?.resolution == .deadline)
        // A verdict after the deadline is skipped, not counted.
        #expect(try chain.attest(g[1], id).succeeded)
        #expect(chain.state.event(id)?.validWeight == .zero)
    }

    @Test func acceptedEventIsFinalizedAfterTheChallengeWindow() throws {
        var chain = TestChain()
        let id = try accepted(&chain, label: "final")
        let acceptedAt = chain.state.event(id)!.acceptedAtMilliseconds
        try chain.advance(to: acceptedAt + 29_000)
        #expect(chain.status(id) == .accepted)
        try chain.advance(to: acceptedAt + 30_000)
        #expect(chain.status(id) == .finalized)
        let late = try chain.submit(u[0], .dispute(eventID: id, bond: .acti(100), reason: arTxID("why")))
        #expect(late.code == .notInChallengeWindow)
        #expect(late.message.contains("closed at block time \(UTCTime.rfc3339(milliseconds: acceptedAt + 30_000))"))
    }

    @Test func onlyTheLifecycleEdgesExist() {
        let allowed: Set<String> = ["pending>accepted", "pending>rejected", "pending>expired", "accepted>finalized",
                                    "accepted>disputed", "accepted>rejected", "disputed>accepted", "disputed>rejected",
                                    "disputed>finalized"]
        for from in EventStatus.allCases {
            for to in EventStatus.allCases {
                #expect(from.canMove(to: to) == allowed.contains("\(from.name)>\(to.name)"), "\(from.name) -> \(to.name)")
            }
        }
    }
}

/// Proposes from g0 and has g1..g3 attest valid in one block: accepted.
func accepted(_ chain: inout TestChain, label: String, parents: [Hash256] = []) throws -> Hash256 {
    let id = try chain.propose(g[0], parents: parents, label: label)
    let votes = [g[1], g[2], g[3]].map { chain.transaction($0, .attest(votes: [AttestationVote(eventID: id, verdict: .valid)])) }
    let outcome = try chain.block(votes)
    #expect(outcome.receipts.allSatisfy { $0.succeeded })
    #expect(chain.status(id) == .accepted)
    return id
}

extension TestChain {
    /// The id of the event's latest dispute.
    func disputeID(of event: Hash256) throws -> Hash256 { try #require(state.event(event)?.disputeID) }
}

struct DisputeTests {
    /// In the test chain every validator is a gateway, and g0 authored while g1..g3 attested:
    /// every validator is accused, so nobody may judge and the dispute is a bond round.
    @Test func undefendedBondRoundIsUpheldAndSlashesEveryAccused() throws {
        var chain = TestChain()
        let id = try accepted(&chain, label: "disputed")
        let disputerBefore = chain.balance(u[0])
        let burnedBefore = chain.state.global.burned
        #expect(try chain.submit(u[0], .dispute(eventID: id, bond: .acti(100), reason: arTxID("proof"))).succeeded)
        let openedAt = chain.time
        #expect(chain.status(id) == .disputed)
        #expect(chain.state.global.disputeEscrow == .acti(100))
        let disputeID = try chain.disputeID(of: id)
        let record = try #require(chain.state.dispute(disputeID))
        #expect(record.mode == .bonds)
        #expect(record.eligiblePower == 0 && record.setPower == 400_000)
        let vote = try chain.submit(g[1], .voteDispute(disputeID: disputeID, uphold: false))
        #expect(vote.code == .notJuror)
        #expect(vote.message.contains("bond round"))
        try chain.advance(to: openedAt + 14_000)
        #expect(chain.status(id) == .disputed)
        try chain.advance(to: openedAt + 15_000)

        #expect(chain.status(id) == .rejected)
        #expect(chain.state.event(id)?.resolution == .dispute)
        let dispute = try #require(chain.state.dispute(disputeID))
        #expect(dispute.status == .upheld)
        // g1..g3 attested valid with 100,000 each and g0 proposed with 100,000: each loses 10%.
        for accused in [g[0], g[1], g[2], g[3]] { #expect(chain.bonded(accused) == .acti(90_000)) }
        #expect(dispute.slashedTotal == .acti(40_000))
        #expect(dispute.disputerReward == .acti(20_000))
        #expect(chain.balance(u[0]) == disputerBefore.adding(.acti(20_000))!.subtracting(fee)!)
        #expect(chain.state.global.burned == burnedBefore.adding(.acti(20_000))!)
        #expect(chain.state.global.disputeEscrow == .zero)
        #expect(chain.state.global.gatewayStake == .acti(360_000))
        let slashes = chain.outcomes.last!.slashes.filter { $0.reason == .lostDispute }
        #expect(slashes.count == 4 && slashes.allSatisfy { $0.amount == .acti(10_000) })
    }

    @Test func defendedBondRoundKeepsTheEventAndPaysTheDefenderAtFinality() throws {
        var chain = TestChain()
        let id = try accepted(&chain, label: "survives")
        let acceptedAt = chain.state.event(id)!.acceptedAtMilliseconds
        let disputerBefore = chain.balance(u[1]), defenderBefore = chain.balance(u[2])
        #expect(try chain.submit(u[1], .dispute(eventID: id, bond: .acti(250), reason: arTxID("weak"))).succeeded)
        let disputeID = try chain.disputeID(of: id)
        let small = try chain.submit(u[2], .defend(disputeID: disputeID, bond: .acti(249)))
        #expect(small.code == .bondTooSmall)
        #expect(small.message == "defence bond 249 ACTI is below the dispute's bond 250 ACTI")
        let burnedBefore = chain.state.global.burned
        #expect(try chain.submit(u[2], .defend(disputeID: disputeID, bond: .acti(500))).succeeded)
        #expect(chain.state.dispute(disputeID)?.status == .defended)
        #expect(chain.status(id) == .accepted, "the window is still open: the event stands, disputable again")
        #expect(chain.balance(u[1]) == disputerBefore.subtracting(.acti(250))!.subtracting(fee)!)
        // Half the disputer's bond to the defender now, half burned; the defence bond is held.
        #expect(chain.balance(u[2]) == defenderBefore.subtracting(.acti(375))!.subtracting(Amount(units: fee.units * 2))!)
        #expect(chain.state.global.burned == burnedBefore.adding(.acti(125))!)
        #expect(chain.state.global.disputeEscrow == .acti(500))
        #expect(try chain.submit(u[2], .defend(disputeID: disputeID, bond: .acti(500))).code == .disputeClosed)
        try chain.advance(to: acceptedAt + 30_000)
        #expect(chain.status(id) == .finalized)
        #expect(chain.balance(u[2]) == defenderBefore.adding(.acti(125))!.subtracting(Amount(units: fee.units * 3))!)
        #expect(chain.state.global.disputeEscrow == .zero)
        for gateway in g { #expect(chain.bonded(gateway) == .acti(100_000)) }
    }

    /// With validators that are not gateways (j0..j3, 600,000 of 1,000,000 power) the
    /// unaccused hold more than half the set: they judge, and above 2/3 of them upholds.
    @Test func aJuryOfUnaccusedValidatorsDecides() throws {
        var chain = TestChain(genesis: TestChain.genesis(judges: 4))
        let j = TestChain.judges
        let id = try accepted(&chain, label: "judged")
        #expect(try chain.submit(u[0], .dispute(eventID: id, bond: .acti(100), reason: arTxID("proof"))).succeeded)
        let disputeID = try chain.disputeID(of: id)
        let record = try #require(chain.state.dispute(disputeID))
        #expect(record.mode == .validators)
        #expect(record.setPower == 1_000_000 && record.eligiblePower == 600_000)
        #expect(chain.state.jury(disputeID)?.members.map(\.address) == j.map(\.publicKey).sorted())
        for accused in [g[0], g[1]] {
            let refused = try chain.submit(accused, .voteDispute(disputeID: disputeID, uphold: false))
            #expect(refused.code == .notJuror)
        }
        #expect(try chain.submit(u[3], .voteDispute(disputeID: disputeID, uphold: true)).code == .notJuror)
        #expect(try chain.submit(u[0], .defend(disputeID: disputeID, bond: .acti(200))).code == .notBondRound)
        #expect(try chain.submit(j[0], .voteDispute(disputeID: disputeID, uphold: true)).succeeded)
        #expect(try chain.submit(j[1], .voteDispute(disputeID: disputeID, uphold: true)).succeeded)
        #expect(chain.status(id) == .disputed, "300,000 of 600,000 is not above 2/3")
        #expect(try chain.submit(j[1], .voteDispute(disputeID: disputeID, uphold: true)).code == .alreadyVoted)
        #expect(try chain.submit(j[2], .voteDispute(disputeID: disputeID, uphold: true)).succeeded)
        #expect(chain.status(id) == .rejected)
        #expect(chain.state.dispute(disputeID)?.status == .upheld)
        for accused in [g[0], g[1], g[2], g[3]] { #expect(chain.bonded(accused) == .acti(90_000)) }
        for judge in j { #expect(chain.bonded(judge) == .acti(150_000)) }
    }

    @Test func aJuryThatCannotUpholdFailsTheDisputeAndTheWindowStaysOpen() throws {
        var chain = TestChain(genesis: TestChain.genesis(judges: 4))
        let j = TestChain.judges
        let id = try accepted(&chain, label: "stands")
        let acceptedAt = chain.state.event(id)!.acceptedAtMilliseconds
        #expect(try chain.submit(u[0], .dispute(eventID: id, bond: .acti(100), reason: arTxID("weak"))).succeeded)
        let first = try chain.disputeID(of: id)
        let burnedBefore = chain.state.global.burned
        #expect(try chain.submit(j[0], .voteDispute(disputeID: first, uphold: false)).succeeded)
        #expect(chain.status(id) == .disputed)
        #expect(try chain.submit(j[1], .voteDispute(disputeID: first, uphold: false)).succeeded)
        // 300,000 against: the other 300,000 can no longer pass 2/3 of 600,000.
        #expect(chain.state.dispute(first)?.status == .notUpheld)
        #expect(chain.status(id) == .accepted)
        #expect(chain.state.global.burned == burnedBefore.adding(.acti(100))!)
        // A second dispute is possible inside the window, with at least twice the bond.
        let cheap = try chain.submit(u[1], .dispute(eventID: id, bond: .acti(150), reason: arTxID("again")))
        #expect(cheap.code == .bondTooSmall)
        #expect(cheap.message == "bond 150 ACTI is below 200 ACTI: twice the largest bond of its earlier rounds (100 ACTI)")
        #expect(try chain.submit(u[1], .dispute(eventID: id, bond: .acti(200), reason: arTxID("again"))).succeeded)
        let second = try chain.disputeID(of: id)
        #expect(second != first)
        #expect(chain.state.dispute(second)?.sequence == 1)
        try chain.advance(to: chain.state.dispute(second)!.deadlineMilliseconds)
        #expect(chain.state.dispute(second)?.status == .notUpheld, "nobody upheld it before its deadline")
        #expect(chain.status(id) == .accepted, "the window is still open")
        try chain.advance(to: acceptedAt + 30_000)
        #expect(chain.status(id) == .finalized)
    }

    /// A dispute opened at the end of the window holds finality until it is decided, and an
    /// upheld one rejects the event even after the window has closed.
    @Test func aDisputeOpenWhenTheWindowClosesHoldsFinalityUntilDecided() throws {
        var chain = TestChain(genesis: TestChain.genesis(judges: 4))
        let j = TestChain.judges
        let id = try accepted(&chain, label: "late-dispute")
        let acceptedAt = chain.state.event(id)!.acceptedAtMilliseconds
        try chain.advance(to: acceptedAt + 28_000)
        #expect(try chain.submit(u[0], .dispute(eventID: id, bond: .acti(100), reason: arTxID("late"))).succeeded)
        let disputeID = try chain.disputeID(of: id)
        try chain.advance(to: acceptedAt + 35_000)
        #expect(chain.status(id) == .disputed, "past the window, the open dispute holds it")
        let late = try chain.submit(u[1], .dispute(eventID: id, bond: .acti(200), reason: arTxID("later")))
        #expect(late.code == .notInChallengeWindow)
        for judge in j.prefix(3) { #expect(try chain.submit(judge, .voteDispute(disputeID: disputeID, uphold: true)).succeeded) }
        #expect(chain.status(id) == .rejected)
    }

    @Test func disputeErrors() throws {
        var chain = TestChain()
        let pending = try chain.propose(g[0], label: "pending")
        let early = try chain.submit(u[0], .dispute(eventID: pending, bond: .acti(100), reason: arTxID("r")))
        #expect(early.code == .notInChallengeWindow)
        #expect(early.message.contains("it is pending"))
        #expect(try chain.submit(u[0], .dispute(eventID: Blake2b.hash256([1]), bond: .acti(100), reason: arTxID("r"))).code == .unknownEvent)
        let id = try accepted(&chain, label: "target")
        let small = try chain.submit(u[0], .dispute(eventID: id, bond: .acti(99), reason: arTxID("r")))
        #expect(small.code == .bondTooSmall)
        #expect(small.message == "bond 99 ACTI is below 100 ACTI: the minimum dispute bond")
        #expect(try chain.submit(u[2], .dispute(eventID: id, bond: .acti(2_000_000), reason: arTxID("r"))).code == .insufficientBalance)
        #expect(try chain.submit(g[0], .voteDispute(disputeID: Blake2b.hash256([2]), uphold: true)).code == .unknownDispute)
        #expect(try chain.submit(g[0], .defend(disputeID: Blake2b.hash256([2]), bond: .acti(200))).code == .unknownDispute)
        #expect(try chain.submit(u[0], .dispute(eventID: id, bond: .acti(100), reason: arTxID("r"))).succeeded)
        let disputeID = try chain.disputeID(of: id)
        let busy = try chain.submit(u[1], .dispute(eventID: id, bond: .acti(200), reason: arTxID("r")))
        #expect(busy.code == .notInChallengeWindow)
        #expect(busy.message.contains("dispute \(disputeID.hex) is open until block time \(UTCTime.rfc3339(milliseconds: chain.state.dispute(disputeID)!.deadlineMilliseconds))"))
    }
}

import KCCodec
import KCCrypto
@testable import KCRuntime
import KCTypes
import Testing

/// The attacks of issue 16, each played as the attacker would against the runtime's public
/// interface, with the rule that now stops it (specs/runtime.md; ADR 0011).
struct AttackScenarioTests {
    /// A chain in epoch 1 whose electorate is g0..g3 (100,000 each) plus u0 and u1, who
    /// registered as gateways with 10,000 each during epoch 0: 420,000 in all.
    static func chainWithSmallGateways() throws -> TestChain {
        var chain = TestChain()
        for user in [u[0], u[1]] {
            #expect(try chain.submit(user, .bond(amount: .acti(10_000))).succeeded)
            #expect(try chain.submit(user, .registerGateway).succeeded)
        }
        while chain.state.global.epoch < 1 { try chain.block() }
        #expect(chain.state.epoch(1)?.gatewayTotal == .acti(420_000))
        return chain
    }

    /// Before: a vote weighed the voter's stake when cast, the threshold used the gateway stake
    /// of the moment; voting, unbonding and letting a small gateway vote accepted an event with
    /// 310k of 620k. Now the total and every weight are those of the epoch's opening.
    @Test func votersWhoUnbondCannotShrinkTheElectorateUnderTheirVote() throws {
        var chain = try Self.chainWithSmallGateways()
        let event = try chain.propose(u[0], label: "false-claim")
        // The coalition (g1, g2: 200,000 of 420,000) votes valid, then unbonds most of its stake.
        #expect(try chain.attest(g[1], event).succeeded)
        #expect(try chain.attest(g[2], event).succeeded)
        #expect(try chain.submit(g[1], .unbond(amount: .acti(90_000))).succeeded)
        #expect(try chain.submit(g[2], .unbond(amount: .acti(90_000))).succeeded)
        #expect(chain.state.global.gatewayStake == .acti(240_000))
        // A small gateway of the coalition votes to trigger the tally: 210,000 of 240,000 now.
        #expect(try chain.attest(u[1], event).succeeded)
        let record = try #require(chain.state.event(event))
        #expect(record.status == .pending, "210,000 of the electorate's 420,000 is not above 2/3")
        #expect(record.electorateTotal == .acti(420_000))
        #expect(record.validWeight == .acti(210_000))
        // A gateway that joins now is not in this electorate: its vote is refused.
        #expect(try chain.submit(u[2], .bond(amount: .acti(50_000))).succeeded)
        #expect(try chain.submit(u[2], .registerGateway).succeeded)
        #expect(try chain.attest(u[2], event).code == .notInElectorate)
        let deadline = record.proposedAtMilliseconds + chain.parameters.events.attestationPeriodMilliseconds
        try chain.advance(to: deadline)
        #expect(chain.status(event) == .expired)
    }

    /// The mirror: a true event rejected with 27% by shrinking the total after an invalid vote.
    @Test func aMinorityCannotRejectByShrinkingTheElectorate() throws {
        var chain = try Self.chainWithSmallGateways()
        let event = try chain.propose(u[0], label: "true-claim")
        #expect(try chain.attest(g[1], event, .invalid).succeeded)       // 100,000
        #expect(try chain.submit(g[2], .unbond(amount: .acti(90_000))).succeeded)
        #expect(try chain.submit(g[3], .unbond(amount: .acti(90_000))).succeeded)
        #expect(try chain.attest(u[1], event, .invalid).succeeded)       // 110,000 of 420,000
        #expect(chain.status(event) == .pending, "110,000 is not above 1/3 of 420,000")
        // A slash of a voter mid-vote does not move the total either.
        try chain.block(evidence: [doubleSign(ck[1], height: chain.height)])
        #expect(chain.state.event(event)?.electorateTotal == .acti(420_000))
        // The honest gateways still decide with the weight they had when the epoch opened.
        for voter in [g[0], g[2], g[3]] { #expect(try chain.attest(voter, event).succeeded) }
        #expect(chain.state.event(event)?.validWeight == .acti(300_000))
        #expect(chain.status(event) == .accepted, "300,000 of 420,000 is above 2/3")
    }

    /// Before: a partial unbond kept the full power until the epoch ended, and a double-sign
    /// slash reached only the stake still bonded: 90% of the power was out of reach. Now power
    /// drops at the next set update and the slash takes from the stake that backed the power.
    @Test func powerNeverOutlivesTheStakeThatBacksIt() throws {
        var parameters = TestChain.parameters()
        parameters.slashing.doubleSignSlashBasisPoints = 5_000
        var chain = TestChain(genesis: TestChain.genesis(parameters: parameters))
        try chain.block()
        let unbond = try chain.block([chain.transaction(g[1], .unbond(amount: .acti(90_000)))])
        let update = try #require(unbond.validatorSetUpdate, "a partial unbond schedules the lower power")
        #expect(update.validators.first { $0.address == g[1].publicKey }?.power == 10_000)
        #expect(update.effectiveHeight == chain.height + 2)
        // It signs twice at the next height, still with 100,000 power.
        let infraction = chain.height + 1
        try chain.block()
        try chain.block()
        try chain.block(evidence: [doubleSign(ck[1], height: infraction)])
        // Half of the 100,000 it signed with: all 10,000 bonded and 40,000 of the unbonding entry.
        #expect(chain.bonded(g[1]) == .zero)
        #expect(chain.state.stake(g[1].publicKey).unbonding.map(\.amount) == [.acti(50_000)])
        #expect(chain.outcomes.last?.slashes.first?.amount == .acti(50_000))
    }

    /// A validator whose power dropped cannot withdraw before evidence about the blocks it
    /// signed with the old power has expired.
    @Test func lostPowerIsLockedForTheEvidenceWindow() throws {
        var parameters = TestChain.parameters()
        parameters.slashing.maxEvidenceAgeMilliseconds = parameters.staking.unbondingPeriodMilliseconds
        var chain = TestChain(genesis: TestChain.genesis(parameters: parameters))
        #expect(try chain.submit(g[1], .unbond(amount: .acti(90_000))).succeeded)
        let unbondedAt = chain.time
        let period = parameters.staking.unbondingPeriodMilliseconds
        try chain.block()  // ends with the rotation to the set with 10,000 power: locked for the evidence age
        let lockedUntil = chain.state.stake(g[1].publicKey).lockedUntilMilliseconds
        #expect(lockedUntil == chain.time + parameters.slashing.maxEvidenceAgeMilliseconds)
        #expect(lockedUntil > unbondedAt + period, "the lock outlasts the unbonding period here")
        try chain.advance(to: unbondedAt + period - 1_000)
        let early = try chain.submit(g[1], .withdrawUnbonded)  // at unbondedAt + period: matured, but locked
        #expect(early.code == .stakeLocked)
        #expect(early.message.contains("locked until block time \(UTCTime.rfc3339(milliseconds: lockedUntil))"))
        try chain.advance(to: lockedUntil - 1_000)
        #expect(try chain.submit(g[1], .withdrawUnbonded).succeeded)
    }

    /// Before: a gateway could unbond, vote with the weight its electorate still gave it, and
    /// withdraw before a dispute judged the vote. Now the vote locks the stake until the
    /// event's votes settle, and an upheld dispute reaches it, unbonding or not.
    @Test func stakeThatVotedStaysUntilTheVoteIsJudged() throws {
        var parameters = TestChain.parameters()
        let events = parameters.events
        parameters.staking.unbondingPeriodMilliseconds = events.attestationPeriodMilliseconds + events.challengeWindowMilliseconds + events.revotePeriodMilliseconds
        parameters.slashing.maxEvidenceAgeMilliseconds = 30_000
        parameters.slashing.disputeSlashBasisPoints = 5_000
        parameters.staking.epochLengthBlocks = 200
        var chain = TestChain(genesis: TestChain.genesis(parameters: parameters))
        // g1 unbonds 90% first: its weight in this epoch's electorate stays 100,000.
        #expect(try chain.submit(g[1], .unbond(amount: .acti(90_000))).succeeded)
        let matures = chain.state.stake(g[1].publicKey).unbonding[0].completionTimeMilliseconds
        try chain.advance(to: chain.time + 30_000)
        let event = try chain.propose(g[0], label: "vote-then-leave")
        for voter in [g[1], g[2], g[3]] { #expect(try chain.attest(voter, event).succeeded) }
        #expect(chain.state.eventVote(event, g[1].publicKey)?.weight == .acti(100_000))
        let record = try #require(chain.state.event(event))
        #expect(record.status == .accepted)
        let settles = record.votesSettle(parameters)
        #expect(chain.state.stake(g[1].publicKey).lockedUntilMilliseconds == settles)
        #expect(matures < settles, "the unbonding matures before the vote can be judged")
        // A dispute near the end of the window: a bond round (every validator is accused).
        try chain.advance(to: record.challengeWindowCloses(parameters) - 2_000)
        #expect(try chain.submit(u[0], .dispute(eventID: event, bond: .acti(100), reason: arTxID("late-proof"))).succeeded)
        try chain.advance(to: matures)
        let early = try chain.submit(g[1], .withdrawUnbonded)
        #expect(early.code == .stakeLocked, "matured, but its vote is still open to judgement: \(early.message)")
        #expect(early.message.contains(UTCTime.rfc3339(milliseconds: settles)))
        // Undefended, the dispute is upheld at its deadline: half of the 100,000 g1 voted with
        // is taken, its 10,000 bonded first, then 40,000 of the unbonding entry.
        let deadline = try #require(chain.state.dispute(chain.disputeID(of: event))?.deadlineMilliseconds)
        try chain.advance(to: deadline)
        #expect(chain.status(event) == .rejected)
        let stake = chain.state.stake(g[1].publicKey)
        #expect(stake.bonded == .zero && stake.unbondingTotal == .acti(50_000))
        // The slash also cut g1's validator power: that power stays answerable to evidence
        // for max_evidence_age_ms, so the lock now ends at the later of the two.
        try chain.advance(to: settles)
        let lock = chain.state.stake(g[1].publicKey).lockedUntilMilliseconds
        #expect(lock >= settles)
        try chain.advance(to: lock - 1_000)
        let late = try chain.submit(g[1], .withdrawUnbonded)
        #expect(late.succeeded, "\(late.message)")
        #expect(chain.balance(g[1]) > .acti(1_000_000) && chain.state.stake(g[1].publicKey).unbonding.isEmpty)
    }

    /// Before: upholding needed 2/3 of all gateway stake, the accused included, so an accused
    /// group above 1/3 blocked every dispute against itself, and the author was never slashed.
    /// Now the accused (75% of the gateway stake here) do not judge; the unaccused validators do.
    @Test func theAccusedDoNotJudgeTheirOwnDispute() throws {
        var chain = TestChain(genesis: TestChain.genesis(judges: 4))
        let j = TestChain.judges
        let event = try accepted(&chain, label: "false-by-the-majority")  // g0 authored, g1..g3 attested
        #expect(try chain.submit(u[0], .dispute(eventID: event, bond: .acti(100), reason: arTxID("proof"))).succeeded)
        let dispute = try chain.disputeID(of: event)
        for accused in [g[0], g[1], g[2], g[3]] {
            let refused = try chain.submit(accused, .voteDispute(disputeID: dispute, uphold: false))
            #expect(refused.code == .notJuror, "an accused gateway-validator may not judge")
        }
        for judge in j.prefix(3) { #expect(try chain.submit(judge, .voteDispute(disputeID: dispute, uphold: true)).succeeded) }
        #expect(chain.status(event) == .rejected)
        for accused in [g[0], g[1], g[2], g[3]] { #expect(chain.bonded(accused) == .acti(90_000), "author and attesters slashed") }
    }

    /// Before: a bogus dispute right after acceptance, voted by nobody, finalized the event when
    /// its re-vote ended (24 h became 6 h) and no second dispute was possible. Now a failed
    /// dispute leaves the window open, and finality waits for it.
    @Test func aBogusDisputeCannotShortenTheChallengeWindow() throws {
        var chain = TestChain(genesis: TestChain.genesis(judges: 4))
        let event = try accepted(&chain, label: "rush-me")
        let record = try #require(chain.state.event(event))
        let closes = record.challengeWindowCloses(chain.parameters)
        #expect(try chain.submit(u[0], .dispute(eventID: event, bond: .acti(100), reason: arTxID("bogus"))).succeeded)
        let first = try chain.disputeID(of: event)
        let busy = try chain.submit(u[1], .dispute(eventID: event, bond: .acti(200), reason: arTxID("honest")))
        #expect(busy.message.contains("dispute \(first.hex) is open until block time \(UTCTime.rfc3339(milliseconds: chain.state.dispute(first)!.deadlineMilliseconds))"))
        #expect(busy.message.contains("challenge window closes at block time \(UTCTime.rfc3339(milliseconds: closes))"))
        try chain.advance(to: chain.state.dispute(first)!.deadlineMilliseconds)
        #expect(chain.state.dispute(first)?.status == .notUpheld)
        #expect(chain.status(event) == .accepted, "not final: the window runs until \(closes)")
        #expect(try chain.submit(u[1], .dispute(eventID: event, bond: .acti(200), reason: arTxID("honest"))).succeeded)
        let second = try chain.disputeID(of: event)
        for judge in TestChain.judges.prefix(3) {
            #expect(try chain.submit(judge, .voteDispute(disputeID: second, uphold: true)).succeeded)
        }
        #expect(chain.status(event) == .rejected, "a real dispute inside the window still rejects it")
        #expect(chain.time < closes)
    }

    /// Before: one `attest` with hundreds of votes earned most of an epoch's reward weight.
    /// Now a vote earns only when its event is decided its way: votes on events a minority
    /// pushes earn nothing, and the honest decision earns the gateway pool.
    @Test func oneTransactionOfManyVotesEarnsNothingUndecided() throws {
        var chain = try Self.chainWithSmallGateways()
        // One farmer proposes 300 events; its partner attests them all in one transaction.
        let proposals = (0..<300).map { index in
            chain.transaction(u[0], .proposeEvent(parents: [], arTxID: arTxID("farm-\(index)"),
                                                  contentHash: SHA256.hash(Array("farm-\(index)".utf8)), kind: "farm"))
        }
        let farmed = try chain.block(proposals).eventChanges.map(\.eventID)
        #expect(farmed.count == 300)
        let votes = farmed.map { AttestationVote(eventID: $0, verdict: .valid) }
        #expect(try chain.submit(u[1], .attest(votes: votes)).succeeded)
        let farmers = [u[0], u[1]].map { chain.balance($0) }
        // Meanwhile the honest gateways decide one event.
        let honest = try chain.propose(g[0], label: "real-work")
        for voter in [g[1], g[2], g[3]] { #expect(try chain.attest(voter, honest).succeeded) }
        try chain.advance(to: chain.state.event(farmed[0])!.proposedAtMilliseconds + chain.parameters.events.attestationPeriodMilliseconds)
        #expect(farmed.allSatisfy { chain.status($0) == .expired })
        #expect(chain.state.gateway(u[1].publicKey)?.winningVotesThisEpoch == 0, "300 votes on undecided events earn nothing")
        while chain.status(honest) != .finalized { try chain.block() }
        #expect(chain.state.gateway(g[1].publicKey)?.rewardWeightThisEpoch == 100_000)
        let epoch = chain.state.global.epoch
        let before = [g[0], g[1]].map { chain.balance($0) }
        while chain.state.global.epoch == epoch { try chain.block() }
        #expect([u[0], u[1]].map { chain.balance($0) } == farmers, "the farmers are paid nothing")
        let authorGain = chain.balance(g[0]).subtracting(before[0])!, voterGain = chain.balance(g[1]).subtracting(before[1])!
        #expect(voterGain > authorGain, "the honest voter earns the gateway pool on top of its validator share")
    }

    /// Before: a child proposed before its parent was rejected still finalized, while a new
    /// child of the same parent was refused. Now the child is rejected with its parent.
    @Test func aChildIsNeverFinalUnderARejectedParent() throws {
        var chain = TestChain()
        let parent = try accepted(&chain, label: "parent")
        let child = try accepted(&chain, label: "child", parents: [parent])
        // The parent is disputed; nobody defends it (every validator is accused: a bond round).
        #expect(try chain.submit(u[0], .dispute(eventID: parent, bond: .acti(100), reason: arTxID("wrong"))).succeeded)
        while chain.status(parent) == .disputed { try chain.block() }
        #expect(chain.status(parent) == .rejected)
        let refused = try chain.submit(g[0], .proposeEvent(parents: [parent], arTxID: arTxID("late-child"),
                                                           contentHash: SHA256.hash([1]), kind: "k"))
        #expect(refused.code == .rejectedParent)
        let closes = chain.state.event(child)!.challengeWindowCloses(chain.parameters)
        try chain.advance(to: closes)
        let record = try #require(chain.state.event(child))
        #expect(record.status == .rejected)
        #expect(record.resolution == .parent && record.rejectedParent == parent)
    }

    /// A child whose window passes while its parent is still disputed waits, and is final in
    /// the block the parent is.
    @Test func aChildWaitsForItsUndecidedParent() throws {
        var chain = TestChain()
        let parent = try accepted(&chain, label: "late-parent")
        let child = try accepted(&chain, label: "waiting-child", parents: [parent])
        // A dispute of the parent at the end of its window (a bond round: every validator is accused).
        try chain.advance(to: chain.state.event(parent)!.challengeWindowCloses(chain.parameters) - 2_000)
        #expect(try chain.submit(u[0], .dispute(eventID: parent, bond: .acti(100), reason: arTxID("late"))).succeeded)
        let dispute = try chain.disputeID(of: parent)
        try chain.advance(to: chain.state.event(child)!.challengeWindowCloses(chain.parameters))
        let record = try #require(chain.state.event(child))
        #expect(record.status == .accepted && record.waitingOn == parent, "its window passed, its parent is undecided")
        // The parent's record says a list waits on it (only such an event reads one when final).
        #expect(chain.state.event(parent)?.hasWaitingChildren == true && !record.hasWaitingChildren)
        #expect(chain.state.decode(Hash256.self, at: StateKey.waiting(on: parent)) == child)
        #expect(try chain.submit(u[1], .defend(disputeID: dispute, bond: .acti(100))).succeeded)
        #expect(chain.status(parent) == .finalized, "defended after its window: final at once")
        #expect(chain.status(child) == .finalized, "and the waiting child in the same block")
        #expect(chain.state.event(child)?.waitingOn == nil)
        #expect(chain.state.decode(Hash256.self, at: StateKey.waiting(on: parent)) == nil)
    }

    /// A deregistered validator's counters restart: it is not paid in an epoch it was not in.
    @Test func reRegisteringStartsFromEmptyCounters() throws {
        var chain = TestChain()
        for _ in 0..<4 { try chain.block() }
        #expect((chain.state.validator(g[3].publicKey)?.signedThisEpoch ?? 0) > 0)
        #expect(try chain.submit(g[3], .unbond(amount: .acti(100_000))).succeeded)
        #expect(chain.state.validator(g[3].publicKey)?.signedThisEpoch == 0)
        #expect(chain.state.validator(g[3].publicKey)?.registryIndex == nil)
        while chain.state.global.epoch < 1 { try chain.block() }
        #expect(try chain.submit(g[3], .bond(amount: .acti(50_000))).succeeded)
        #expect(try chain.submit(g[3], .registerValidator(consensusKey: ck[3].publicKey)).succeeded)
        let record = try #require(chain.state.validator(g[3].publicKey))
        #expect(record.signedThisEpoch == 0 && record.missedCount == 0 && record.windowFilled == 0)
        let before = chain.balance(g[3])
        while chain.state.global.epoch < 2 { try chain.block() }
        #expect(chain.balance(g[3]) == before, "not in the set this epoch: paid nothing")
    }

    /// The checks run in the order the spec lists: parents distinct before each one exists.
    @Test func proposeChecksDistinctParentsBeforeTheyExist() throws {
        var chain = TestChain()
        let unknown = Blake2b.hash256([42])
        let receipt = try chain.submit(g[0], .proposeEvent(parents: [unknown, unknown], arTxID: arTxID("x"),
                                                           contentHash: SHA256.hash([1]), kind: "k"))
        #expect(receipt.code == .duplicateParent)
        let expiredParent = try chain.propose(g[0], label: "expires")
        try chain.advance(to: chain.time + chain.parameters.events.attestationPeriodMilliseconds)
        #expect(chain.status(expiredParent) == .expired)
        let child = try chain.submit(g[0], .proposeEvent(parents: [expiredParent], arTxID: arTxID("y"),
                                                         contentHash: SHA256.hash([2]), kind: "k"))
        #expect(child.code == .expiredParent)
    }
}

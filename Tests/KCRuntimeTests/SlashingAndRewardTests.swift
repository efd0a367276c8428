import KCCodec
import KCCrypto
@testable import KCRuntime
import KCTypes
import Testing

let ck = TestChain.consensusKeys

/// Two conflicting precommits by `key` at `height`.
func doubleSign(_ key: SigningKey, height: UInt64) -> DoubleSignEvidence {
    let a = Vote(kind: .precommit, height: height, round: 0, blockID: Blake2b.hash256([1]), timestampMilliseconds: 1, validator: key.publicKey)
    let b = Vote(kind: .precommit, height: height, round: 0, blockID: Blake2b.hash256([2]), timestampMilliseconds: 1, validator: key.publicKey)
    return DoubleSignEvidence(a.signed(with: key, chainID: TestChain.chainID), b.signed(with: key, chainID: TestChain.chainID))!
}

struct DoubleSignTests {
    @Test func evidenceSlashesOnceTombstonesAndTakesFromThePowerItSignedWith() throws {
        var chain = TestChain()
        try chain.block()  // height 1: the infraction height, signed with 100,000 power
        #expect(try chain.submit(g[1], .unbond(amount: .acti(10_000))).succeeded)  // height 2, after the infraction
        let evidence = doubleSign(ck[1], height: 1)
        let outcome = try chain.block(evidence: [evidence])
        // 5% of the 100,000 it signed with, taken from bonded stake first.
        #expect(chain.bonded(g[1]) == .acti(85_000))
        #expect(chain.state.stake(g[1].publicKey).unbonding.first?.amount == .acti(10_000))
        #expect(outcome.slashes == [SlashRecord(address: g[1].publicKey, reason: .doubleSign, amount: .acti(5_000), height: chain.height)])
        let record = try #require(chain.state.validator(g[1].publicKey))
        #expect(record.tombstoned && record.jailed)
        // The jailed validator leaves the set two heights later.
        let update = try #require(outcome.validatorSetUpdate)
        #expect(update.effectiveHeight == chain.height + 2)
        #expect(!update.validators.contains { $0.consensusKey == ck[1].publicKey })

        // The same evidence again, or another infraction by the tombstoned validator: ignored.
        let again = try chain.block(evidence: [evidence, doubleSign(ck[1], height: 2)])
        #expect(again.slashes.isEmpty)
        #expect(again.ignoredEvidence == 2)
        #expect(chain.bonded(g[1]) == .acti(85_000))
        #expect(try chain.submit(g[1], .unjail).code == .tombstoned)
    }

    @Test func invalidEvidenceMakesTheBlockInvalid() throws {
        var chain = TestChain()
        try chain.block()
        let vote = Vote(kind: .prevote, height: 1, round: 0, blockID: nil, timestampMilliseconds: 1, validator: ck[0].publicKey)
        let other = Vote(kind: .prevote, height: 1, round: 0, blockID: Blake2b.hash256([1]), timestampMilliseconds: 1, validator: ck[0].publicKey)
        let forged = SignedVote(vote: other, signature: ck[1].sign(domain: .vote, chainID: TestChain.chainID, message: other.canonicalBytes))
        let bad = try #require(DoubleSignEvidence(vote.signed(with: ck[0], chainID: TestChain.chainID), forged))
        #expect(throws: BlockError.invalidEvidence(index: 0, reason: "a vote's signature does not verify")) { try chain.block(evidence: [bad]) }
        let stranger = testKey("stranger")
        #expect(throws: BlockError.self) { try chain.block(evidence: [doubleSign(stranger, height: 1)]) }
        #expect(throws: BlockError.self) { try chain.block(evidence: [doubleSign(ck[0], height: 5)]) }
        // Same value twice is no equivocation.
        let same = vote.signed(with: ck[0], chainID: TestChain.chainID)
        #expect(DoubleSignEvidence(same, same) == nil)
    }
}

struct DowntimeTests {
    @Test func missingTooManyBlocksSlashesJailsAndUnjailWorks() throws {
        var chain = TestChain()
        chain.signers = [ck[0], ck[1], ck[2]].map(\.publicKey)  // g3 stops signing
        var jailedAt: UInt64? = nil
        for _ in 0..<12 {
            let outcome = try chain.block()
            if let slash = outcome.slashes.first {
                #expect(slash == SlashRecord(address: g[3].publicKey, reason: .downtime, amount: .acti(1_000), height: outcome.height))
                #expect(jailedAt == nil, "downtime must be slashed once")
                jailedAt = chain.time
            }
        }
        // Window 10, at least 50% signed: the 10th recorded miss (height 11) triggers it.
        let jailedTime = try #require(jailedAt)
        #expect(chain.outcomes[10].slashes.count == 1)
        #expect(chain.bonded(g[3]) == .acti(99_000))
        #expect(chain.state.validator(g[3].publicKey)?.jailed == true)
        #expect(!chain.state.validatorSets().current.contains { $0.consensusKey == ck[3].publicKey })

        let early = try chain.submit(g[3], .unjail)
        #expect(early.code == .jailNotExpired)
        try chain.advance(to: jailedTime + 30_000)
        chain.signers = nil
        #expect(try chain.submit(g[3], .unjail).succeeded)
        #expect(chain.state.validator(g[3].publicKey)?.jailed == false)
        try chain.block()
        try chain.block()
        #expect(chain.state.validatorSets().current.contains { $0.consensusKey == ck[3].publicKey })
    }
}

extension DowntimeTests {
    /// A validator that was down long enough for its window to cross the threshold, but signs
    /// again by then, is neither slashed nor jailed while it signs: removing a signing validator
    /// (by a jail, or a slash below the minimum stake) can cost the others their quorum (with
    /// another validator down, that halted a network). A block it misses while still over the
    /// threshold slashes and jails it; staying online until the misses leave the window clears it.
    @Test func aValidatorBackOnlineIsPenalisedOnlyIfItMissesAgain() throws {
        var chain = TestChain()
        let down = [ck[0], ck[1], ck[2]].map(\.publicKey)
        chain.signers = down  // g3 misses heights 1..8
        for _ in 0..<9 { try chain.block() }
        chain.signers = nil  // back: signs from height 9 on
        for _ in 0..<3 {
            #expect(try chain.block().slashes.isEmpty, "no penalty while it signs")
        }
        #expect(chain.state.validator(g[3].publicKey)?.jailed == false)
        #expect(chain.state.validatorSets().current.contains { $0.consensusKey == ck[3].publicKey })
        // It misses one block while its window still holds more than half misses.
        chain.signers = down
        let outcome = try chain.block()
        #expect(outcome.slashes.map(\.address) == [g[3].publicKey])
        #expect(chain.state.validator(g[3].publicKey)?.jailed == true)

        // Another validator back online and staying online: its misses age out, no penalty.
        var other = TestChain()
        other.signers = [ck[0], ck[1], ck[3]].map(\.publicKey)  // g2 misses heights 1..8
        for _ in 0..<9 { try other.block() }
        other.signers = nil
        for _ in 0..<20 { #expect(try other.block().slashes.isEmpty) }
        #expect(other.state.validator(g[2].publicKey)?.jailed == false)
        #expect(other.state.validator(g[2].publicKey)?.missedCount ?? 99 <= 5)
    }
}

struct RewardTests {
    @Test func validatorPoolIsSplitByStakeTimesBlocksSignedToTheUnit() throws {
        var chain = TestChain()
        chain.signers = [ck[0], ck[1], ck[2]].map(\.publicKey)  // g3 earns nothing this epoch
        for _ in 0..<9 { try chain.block() }
        #expect(chain.state.global.rewardPot == .acti(9))
        let treasuryBefore = chain.state.global.treasury
        try chain.block()  // height 10: epoch end
        // Pot: 10 block rewards = 10 ACTI; operators 70% = 7 ACTI, of which the gateway pool
        // (50%, 3.5 ACTI) was earned by nobody (no event was decided) and the validator pool
        // (3.5 ACTI) goes to g0..g2 with equal weight (100,000 × 9 signed blocks): 3.5e18 / 3
        // each, rounded down. The treasury gets 30%, the unearned pool and the 2-unit remainder.
        let share = Amount(units: 3_500_000_000_000_000_000 / 3)
        for index in 0..<3 { #expect(chain.balance(g[index]) == Amount.acti(1_000_000).adding(share)!) }
        #expect(chain.balance(g[3]) == .acti(1_000_000))
        #expect(chain.state.global.treasury == treasuryBefore.adding(Amount(units: 6_500_000_000_000_000_002))!)
        #expect(chain.state.global.rewardPot == .zero)
        #expect(chain.state.global.epoch == 1)
    }

    /// The gateway pool pays the votes on the side that won an event's final decision, each
    /// with the weight it was cast with; the author and non-voters get none of it.
    @Test func gatewayPoolPaysVotesOnTheWinningSideOfDecidedEvents() throws {
        var chain = TestChain()
        let id = try accepted(&chain, label: "rewarded")  // heights 1 and 2
        while chain.status(id) != .finalized { try chain.block() }
        for account in [g[1], g[2], g[3]] {
            let record = try #require(chain.state.gateway(account.publicKey))
            #expect(record.winningVotesThisEpoch == 1 && record.rewardWeightThisEpoch == 100_000)
        }
        #expect(chain.state.gateway(g[0].publicKey)?.rewardWeightThisEpoch == 0)
        while (chain.height + 1) % 10 != 0 { try chain.block() }
        let before = g.map { chain.balance($0) }
        let treasuryBefore = chain.state.global.treasury
        try chain.block()  // the epoch end that pays it
        let operators = Amount.acti(10).fraction(basisPoints: 7_000)
        let gatewayPool = operators.fraction(basisPoints: 5_000)
        let validatorShare = Amount(units: operators.subtracting(gatewayPool)!.units / 4)
        let gatewayShare = Amount(units: gatewayPool.units / 3)
        #expect(chain.balance(g[0]) == before[0].adding(validatorShare)!)
        for index in 1...3 { #expect(chain.balance(g[index]) == before[index].adding(validatorShare)!.adding(gatewayShare)!) }
        let paid = Amount(units: validatorShare.units * 4 + gatewayShare.units * 3)
        #expect(chain.state.global.treasury == treasuryBefore.adding(Amount.acti(10).subtracting(paid)!)!)
        #expect(chain.state.gateway(g[1].publicKey)?.rewardWeightThisEpoch == 0, "counters restart")
    }
}

struct ValidatorSetTests {
    @Test func epochEndRotatesToTheTopStakeAfterTheDelay() throws {
        var chain = TestChain()
        let newKey = testKey("new-consensus").publicKey
        #expect(try chain.submit(u[0], .bond(amount: .acti(200_000))).succeeded)
        #expect(try chain.submit(u[0], .registerValidator(consensusKey: newKey)).succeeded)
        while chain.height < 9 { try chain.block() }
        #expect(!chain.state.validatorSets().current.contains { $0.consensusKey == newKey })
        let epochEnd = try chain.block()  // height 10
        let update = try #require(epochEnd.validatorSetUpdate)
        #expect(update.effectiveHeight == 12)
        #expect(update.validators.count == 4)
        #expect(update.validators.contains { $0.consensusKey == newKey && $0.power == 200_000 })
        // max_validators = 4: one of the equal 100,000 ACTI validators drops out (highest key loses the tie).
        let dropped = ck.map(\.publicKey).max()!
        #expect(!update.validators.contains { $0.consensusKey == dropped })
        try chain.block()  // height 11: the state now names the set for height 12
        #expect(chain.state.validatorSets().current == update.validators)
        #expect(chain.outcomes.last?.nextValidators == update.validators)
    }

    @Test func genesisSetIsEveryGenesisValidatorByPower() {
        let chain = TestChain()
        let sets = chain.state.validatorSets()
        #expect(sets.current.map(\.consensusKey) == ck.map(\.publicKey).sorted())
        #expect(sets.current.allSatisfy { $0.power == 100_000 })
    }
}

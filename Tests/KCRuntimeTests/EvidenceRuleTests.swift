import KCCodec
import KCCrypto
@testable import KCRuntime
import KCTypes
import Testing

/// The evidence rule (specs/runtime.md, "Evidence"): a pair is slashable only if its key was a
/// validator at the pair's height and the height is inside the evidence window, judged from the
/// validator-set history the state keeps for that window.
struct EvidenceRuleTests {
    func check(_ chain: TestChain, _ evidence: DoubleSignEvidence, advance: UInt64 = 1_000) -> EvidenceCheck {
        chain.runtime.checkEvidence(evidence, height: chain.height + 1, timeMilliseconds: chain.time + advance, in: chain.state)
    }

    @Test func aStrangersDoubleSignIsInvalidAndNoBlockMayCarryIt() throws {
        var chain = TestChain()
        try chain.block()
        try chain.block()
        let stranger = doubleSign(testKey("stranger"), height: 1)
        guard case .invalid(let reason) = check(chain, stranger) else {
            Issue.record("a stranger's evidence was not invalid: \(check(chain, stranger))")
            return
        }
        #expect(reason.contains("was not a validator at height 1"))
        #expect(throws: BlockError.invalidEvidence(index: 0, reason: reason)) { try chain.block(evidence: [stranger]) }
    }

    @Test func evidenceAboutAHeightNotYetBelowTheBlockIsRefused() throws {
        var chain = TestChain()
        try chain.block()
        #expect(check(chain, doubleSign(ck[0], height: 2)) == .notYet)
        #expect(check(chain, doubleSign(ck[0], height: 0)) == .invalid("height 0 has no votes"))
    }

    @Test func evidenceExpiresAfterTheWindowInBlocks() throws {
        var chain = TestChain()
        let window = chain.runtime.parameters.slashing.maxEvidenceAgeBlocks
        try chain.block()  // height 1: the infraction
        while chain.height + 1 - 1 < window { try chain.block(advance: 10) }
        // The next block is exactly `window` above height 1: still in.
        #expect(check(chain, doubleSign(ck[2], height: 1), advance: 10) == .admissible(address: g[2].publicKey, power: 100_000))
        try chain.block(advance: 10)
        guard case .expired = check(chain, doubleSign(ck[2], height: 1), advance: 10) else {
            Issue.record("evidence one block past the window is not expired")
            return
        }
        #expect(throws: BlockError.self) { try chain.block(advance: 10, evidence: [doubleSign(ck[2], height: 1)]) }
        // The history holds exactly the window: heights older than it are gone.
        #expect(chain.state.get(StateKey.heightRecord(1)) == nil)
        #expect(chain.state.get(StateKey.heightRecord(chain.height + 1 - window)) != nil)
    }

    @Test func evidenceExpiresAfterTheWindowInBlockTime() throws {
        var chain = TestChain()
        let window = chain.runtime.parameters.slashing.maxEvidenceAgeMilliseconds
        try chain.block()
        let evidence = doubleSign(ck[3], height: 1)
        #expect(check(chain, evidence, advance: window) == .admissible(address: g[3].publicKey, power: 100_000))
        guard case .expired(let reason) = check(chain, evidence, advance: window + 1) else {
            Issue.record("evidence older than the time window is not expired")
            return
        }
        #expect(reason.contains("ms of block time"))
        #expect(throws: BlockError.invalidEvidence(index: 0, reason: reason)) { try chain.block(advance: window + 1, evidence: [evidence]) }
    }

    @Test func aValidatorIsJudgedByTheSetOfTheInfractionHeight() throws {
        var chain = TestChain()
        try chain.block()  // height 1, signed by all four
        // g3 leaves: unbonding everything deregisters it; it leaves the set two heights later.
        #expect(try chain.submit(g[3], .unbond(amount: .acti(100_000))).succeeded)  // height 2
        try chain.block()
        try chain.block()
        try chain.block()
        #expect(!chain.state.validatorSets().current.contains { $0.consensusKey == ck[3].publicKey })
        let since = chain.state.validatorSets().currentSince
        #expect(since == 4, "decided at height 2, effective two heights later")
        // At height 1 it was a validator: its double sign there is still slashable...
        #expect(check(chain, doubleSign(ck[3], height: 1)) == .admissible(address: g[3].publicKey, power: 100_000))
        // ... but not one at height 4, where it no longer was.
        guard case .invalid = check(chain, doubleSign(ck[3], height: 4)) else {
            Issue.record("a pair from a height where the key was not in the set is not invalid")
            return
        }
        let outcome = try chain.block(evidence: [doubleSign(ck[3], height: 1)])
        #expect(outcome.slashes.map(\.address) == [g[3].publicKey])
    }

    @Test func theHistoryStaysBoundedThroughSetChanges() throws {
        var chain = TestChain()
        let window = chain.runtime.parameters.slashing.maxEvidenceAgeBlocks
        // Sets change twice: g3 leaves, then comes back.
        #expect(try chain.submit(g[3], .unbond(amount: .acti(100_000))).succeeded)
        for _ in 0..<5 { try chain.block() }
        #expect(try chain.submit(g[3], .bond(amount: .acti(20_000))).succeeded)
        #expect(try chain.submit(g[3], .registerValidator(consensusKey: ck[3].publicKey)).succeeded)
        for _ in 0..<(3 * window) { try chain.block() }
        #expect(chain.state.validatorSets().current.contains { $0.consensusKey == ck[3].publicKey }, "g3 is back in the set")
        let heights = chain.state.count(prefix: "height/")
        let sets = chain.state.count(prefix: "vset/")
        #expect(heights == Int(window))
        #expect(sets == 1, "only the set that signed the kept heights remains")
        #expect(chain.state.get(StateKey.validatorSet(since: chain.state.validatorSets().currentSince)) != nil)
    }
}

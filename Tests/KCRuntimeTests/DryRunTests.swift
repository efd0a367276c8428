import KCCodec
import KCCrypto
@testable import KCRuntime
import KCTypes
import Testing

/// `Runtime.dryRun`: what a transaction would do if it were next in line, committing nothing.
struct DryRunTests {
    func body(_ key: SigningKey, _ call: Call, nonce: UInt64 = 999, fee: Amount = TestChain.fee) -> TransactionBody {
        TransactionBody(chainID: TestChain.chainID, sender: key.publicKey, nonce: nonce, fee: fee, call: call)
    }

    @Test func answersWhatTheCallWouldDoAndChangesNothing() throws {
        var chain = TestChain()
        try chain.block()
        let before = chain.state.root
        let now = chain.time + 1_000
        // Succeeds (whatever nonce the body carries: it is taken as the next one).
        let stake = try chain.runtime.dryRun(body(u[0], .bond(amount: .acti(10_000))), on: chain.state, timeMilliseconds: now).get()
        #expect(stake.succeeded && stake.feePaid == TestChain.fee)
        // Fails with the runtime's own code and message.
        let tooMuch = try chain.runtime.dryRun(body(u[0], .transfer(to: u[1].publicKey, amount: .acti(2_000_000))), on: chain.state,
                                               timeMilliseconds: now).get()
        #expect(tooMuch.code == .insufficientBalance, "\(tooMuch.message)")
        let withdraw = try chain.runtime.dryRun(body(u[0], .withdrawUnbonded), on: chain.state, timeMilliseconds: now).get()
        #expect(!withdraw.succeeded && withdraw.code == .nothingToWithdraw)
        // Refused at block level: a fee below the minimum.
        let cheap = chain.runtime.dryRun(body(u[0], .bond(amount: .acti(1)), fee: .zero), on: chain.state, timeMilliseconds: now)
        guard case .failure(.feeBelowMinimum) = cheap else { Issue.record("expected a fee refusal, got \(cheap)"); return }
        #expect(chain.state.root == before, "a dry run commits nothing")
    }

    /// Time-dependent rules are judged at the time given: a withdraw before maturity fails,
    /// after it succeeds; a time before the latest block is raised to just after it.
    @Test func judgesLocksAndWindowsAtTheGivenTime() throws {
        var chain = TestChain()
        #expect(try chain.submit(u[0], .bond(amount: .acti(20_000))).succeeded)
        #expect(try chain.submit(u[0], .unbond(amount: .acti(5_000))).succeeded)
        let matures = chain.state.stake(u[0].publicKey).unbonding[0].completionTimeMilliseconds
        let early = try chain.runtime.dryRun(body(u[0], .withdrawUnbonded), on: chain.state, timeMilliseconds: 0).get()
        #expect(!early.succeeded)
        let late = try chain.runtime.dryRun(body(u[0], .withdrawUnbonded), on: chain.state, timeMilliseconds: matures).get()
        #expect(late.succeeded, "\(late.message)")
    }
}

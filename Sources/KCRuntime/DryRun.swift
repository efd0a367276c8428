import KCCodec
import KCCrypto
import KCTypes

/// A transaction's checks run without committing anything: what the node's `POST /txs/check`
/// answers, so that a client can refuse a doomed transaction before signing and paying for it
/// (Cosmos SDK's simulate, Ethereum's `eth_call`).
extension Runtime {
    /// Runs `body`'s call as the first transaction of the next block on `state`, and returns
    /// its receipt, or the reason a block holding it would be refused (a fee below the minimum
    /// or beyond the balance, a transaction over the size limit). Nothing is committed.
    ///
    /// The nonce is taken as the account's next one and the signature is not checked: the
    /// question is whether the call would succeed if it were next in line. The block's time is
    /// `timeMilliseconds` (at least just after the latest block). Only the call runs: a block's
    /// downtime bookkeeping, evidence and end-of-block work (expiries, dispute deadlines, the
    /// epoch end) come before or after every call and do not change its receipt here, and
    /// skipping them keeps a dry run at the cost of one call, whatever the block would cost.
    public func dryRun(_ body: TransactionBody, on state: ChainState, timeMilliseconds: UInt64) -> Result<Receipt, BlockError> {
        guard var global = state.decode(GlobalRecord.self, at: StateKey.global) else { preconditionFailure("state has no global record") }
        let aligned = TransactionBody(chainID: body.chainID, sender: body.sender, nonce: state.account(body.sender).nonce,
                                      fee: body.fee, call: body.call)
        let transaction = VerifiedTransaction.assumingVerified(SignedTransaction(body: aligned, signature: Signature([UInt8](repeating: 0, count: 64))))
        let context = BlockContext(height: global.height.addingSaturating(1),
                                   timeMilliseconds: max(timeMilliseconds, global.timeMilliseconds.addingSaturating(1)))
        global.height = context.height
        global.timeMilliseconds = context.timeMilliseconds
        var executor = BlockExecutor(runtime: self, state: ExecutionState(base: state, expectedWrites: 16), global: global, context: context)
        do {
            try checkLimits([transaction])
            try executor.apply(transaction, index: 0)
        } catch {
            return .failure(error)
        }
        return .success(executor.receipts[0])
    }
}

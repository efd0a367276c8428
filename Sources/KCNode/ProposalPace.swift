/// How many transactions this node puts in a block it proposes (ADR 0025): what the genesis
/// limits allow, but no more than this machine executes in `budgetNanoseconds` at the pace it
/// built its recent proposals.
///
/// Why: the other validators prevote nil when a proposal has not reached them within
/// `timeout_propose`, and a proposal reaches them only after its proposer executed it. With
/// the count capped by the genesis limits alone, a backlog of costly transactions (thousands
/// of events) makes a proposal that takes longer to build than the timeout: the round fails,
/// the next proposer builds from a larger backlog, and heights take seconds. A budget well
/// under the timeout keeps every proposal in time on a machine of about this one's speed.
///
/// A local policy, not a rule: validators check a block against the genesis limits only, so
/// nodes may set different budgets. The estimate is an average of wall time per transaction
/// over the node's recent builds, each moving it a quarter of the way to what it measured; a
/// build of fewer than `sampleMinimum` transactions is mostly fixed costs and is ignored.
/// Peers' blocks are not samples: a peer chooses what its block costs to validate here.
/// Pure: the caller measures and hands in the durations.
public struct ProposalPace: Sendable, Equatable {
    /// Executions of fewer transactions are not samples.
    public static let sampleMinimum = 32
    /// The cap never falls below this, so the chain moves on while a high estimate recovers
    /// (each block of at least `sampleMinimum` transactions is a new sample).
    public static let floor = 64
    /// The cap before the first sample: a first block of the whole limit could already be late.
    public static let initialLimit = 1_024

    /// 0: no cap but the genesis limits.
    public let budgetNanoseconds: UInt64
    public private(set) var nanosecondsPerTransaction: UInt64? = nil

    public init(budgetMilliseconds: UInt64) {
        // The config allows an hour at most; a budget past 584 years of nanoseconds saturates.
        budgetNanoseconds = budgetMilliseconds.multipliedReportingOverflow(by: 1_000_000).overflow
            ? UInt64.max : budgetMilliseconds * 1_000_000
    }

    /// One block of `transactions` executed in `nanoseconds` of wall time.
    public mutating func observe(transactions: Int, nanoseconds: UInt64) {
        guard transactions >= Self.sampleMinimum else { return }
        let sample = nanoseconds / UInt64(transactions)
        guard let estimate = nanosecondsPerTransaction else {
            nanosecondsPerTransaction = sample
            return
        }
        // A quarter of the way: the result lies between the two, so nothing overflows.
        nanosecondsPerTransaction = sample >= estimate ? estimate + (sample - estimate) / 4 : estimate - (estimate - sample) / 4
    }

    /// The most transactions the next proposal may hold, given the genesis limit.
    public func limit(maxTransactions: Int) -> Int {
        guard budgetNanoseconds > 0 else { return maxTransactions }
        guard let estimate = nanosecondsPerTransaction else { return min(maxTransactions, Self.initialLimit) }
        let fit = budgetNanoseconds / max(estimate, 1)
        return min(maxTransactions, max(Self.floor, Int(clamping: fit)))
    }
}

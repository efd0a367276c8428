import KCConsensus
import KCCrypto
import KCRuntime

/// The height being decided (specs/consensus.md, "Driver contract"): its consensus core and
/// what the node learns while it runs: the blocks it validated or built, with their
/// executions (the decided one is committed from there) and block times (a vote for a block
/// is timed after it), the signed proposal of each round (stall answers resend them), and when
/// the height and its current step began. Made when a height starts, dropped when it is
/// decided: nothing of it outlives its height.
struct HeightRun {
    var core: ConsensusCore<Block>
    /// Monotonic milliseconds.
    let startedAt: UInt64
    private(set) var stepStartedAt: UInt64
    /// While the WAL of this height is replayed after a restart.
    var replaying = false
    private(set) var executions: [Hash256: ExecutedBlock] = [:]
    private(set) var blockTimes: [Hash256: UInt64] = [:]
    private(set) var signedProposals: [UInt32: SignedProposal] = [:]

    init(core: ConsensusCore<Block>, now: UInt64) {
        self.core = core
        startedAt = now
        stepStartedAt = now
    }

    var height: UInt64 { core.height }

    /// A block of this height found valid (or built here), with its execution.
    mutating func remember(_ block: Block, executed: ExecutedBlock) {
        precondition(block.header.height == core.height, "a block of another height")
        executions[block.id] = executed
        blockTimes[block.id] = block.header.timeMilliseconds
    }

    func execution(of block: Hash256) -> ExecutedBlock? { executions[block] }
    func blockTime(of block: Hash256) -> UInt64? { blockTimes[block] }

    /// Keeps the first signed proposal seen for its round (the proposer signs one per round;
    /// a second one is equivocation, which the core's evidence reports).
    mutating func keep(_ proposal: SignedProposal) {
        guard proposal.proposal.height == core.height, signedProposals[proposal.proposal.round] == nil else { return }
        signedProposals[proposal.proposal.round] = proposal
    }

    /// The step changed at `now`: how long the one that ended lasted.
    mutating func stepEnded(now: UInt64) -> UInt64 {
        let elapsed = now >= stepStartedAt ? now - stepStartedAt : 0
        stepStartedAt = now
        return elapsed
    }
}

import KCTypes

#if canImport(Glibc)
import Glibc
#endif

/// The figures of one load run, as text for people and as one JSON object for scripts.
struct LoadReport {
    let workload: String
    let offeredPerSecond: Int
    let seconds: Int
    let nodes: Int
    let sent: Int
    let committed: Int
    let blocks: Int
    let blockTransactions: Int
    /// From the first send to the last commit of a sent transaction (at least 1 µs).
    let spanMicroseconds: UInt64
    /// From the first send to the last block received (at least 1 µs).
    let blockSpanMicroseconds: UInt64
    let latencies: [UInt64]
    let nonces: [UInt64]
    /// CPU this generator used (user + system) per second of its run, in percent of one core.
    let generatorCPUPercent: Int
    /// Frames of transactions this generator's P2P host dropped because a node's connection
    /// was not taking more (the node read slower than the run sent).
    let droppedFrames: Int
    /// Sent transactions that could never commit (an earlier nonce of their sender was
    /// refused), and how often a sender started again from the chain's nonce.
    let lost: Int
    let resyncs: Int

    init(workload: String, offeredPerSecond: Int, seconds: Int, nodes: Int, sent: Int, began: UInt64, follower: ChainFollower, nonces: [UInt64]) {
        self.workload = workload
        self.offeredPerSecond = offeredPerSecond
        self.seconds = seconds
        self.nodes = nodes
        self.sent = sent
        committed = follower.committed
        blocks = follower.blocks
        blockTransactions = follower.blockTransactions
        // Nothing committed leaves the last commit at 0, before the start: the rates are then
        // over the whole run (a span of 1 µs turned a few blocks' transactions into millions a second).
        let elapsed = max(1, LoadClock.microseconds() - began)
        spanMicroseconds = follower.lastCommitAt > began ? follower.lastCommitAt - began : elapsed
        blockSpanMicroseconds = follower.lastBlockAt > began ? follower.lastBlockAt - began : elapsed
        latencies = follower.latencies.sorted()
        self.nonces = nonces
        generatorCPUPercent = Self.cpuPercent(since: began)
        droppedFrames = Int(clamping: follower.host.droppedOutboundFrames.load(ordering: .relaxed))
        lost = follower.lost
        resyncs = follower.resyncs
    }

    /// This process's CPU time since `began` (monotonic µs) as a percentage of one core.
    static func cpuPercent(since began: UInt64) -> Int {
        var usage = rusage()
        guard getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) == 0 else { return 0 }
        let used = UInt64(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1_000_000 + UInt64(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec)
        let wall = max(LoadClock.microseconds() - began, 1)
        return Int(used * 100 / wall)
    }

    /// Per second over the span, in whole units.
    func perSecond(_ count: Int) -> Int { Int(UInt64(count) * 1_000_000 / spanMicroseconds) }

    /// The latency at percentile `p` in milliseconds (one decimal), nil when nothing committed.
    func percentile(_ p: Int) -> (whole: UInt64, tenth: UInt64)? {
        guard !latencies.isEmpty else { return nil }
        let value = latencies[min(latencies.count - 1, latencies.count * p / 100)]
        return (value / 1_000, (value % 1_000) / 100)
    }

    func milliseconds(_ p: Int) -> String { percentile(p).map { "\($0.whole).\($0.tenth) ms" } ?? "-" }

    var text: String {
        var lines = [
            "sent \(sent) \(workload) transactions at \(offeredPerSecond)/s for \(seconds) s to \(nodes) node(s); committed \(committed) in \(blocks) block(s) holding \(blockTransactions) transactions",
            "committed throughput: \(perSecond(committed)) tx/s sent by this run, \(perSecond(blockTransactions)) tx/s in all (from the first send to the last commit)",
            "send-to-commit latency: p50 \(milliseconds(50)), p90 \(milliseconds(90)), p99 \(milliseconds(99)), max \(milliseconds(100))",
        ]
        lines.append("this generator used \(generatorCPUPercent) % of a core (signing before the run included)")
        if committed < sent { lines.append("not committed when the run ended: \(sent - committed)") }
        if lost > 0 {
            lines.append("lost: \(lost) (an earlier nonce of their sender was refused on the way; \(resyncs) time(s) a sender started again from the chain's nonce)")
        }
        if droppedFrames > 0 {
            lines.append("frames dropped by this generator because a node was not reading them: \(droppedFrames) (their senders' later nonces cannot commit)")
        }
        lines.append("next nonces: \(nonces.map(String.init).joined(separator: ","))")
        return lines.joined(separator: "\n")
    }

    var json: JSONValue {
        func number(_ value: Int) -> JSONValue { .number("\(value)") }
        func latency(_ p: Int) -> JSONValue { percentile(p).map { .number("\($0.whole).\($0.tenth)") } ?? .null }
        let blockTenths = UInt64(blocks) * 10_000_000 / blockSpanMicroseconds
        return .object([
            ("workload", .string(workload)), ("offered_per_s", number(offeredPerSecond)), ("seconds", number(self.seconds)),
            ("nodes", number(nodes)), ("sent", number(sent)), ("committed", number(committed)),
            ("committed_per_s", number(perSecond(committed))), ("block_tx_per_s", number(perSecond(blockTransactions))),
            ("blocks", number(blocks)), ("block_transactions", number(blockTransactions)),
            ("blocks_per_s", .number("\(blockTenths / 10).\(blockTenths % 10)")),
            ("tx_per_block", number(blocks > 0 ? blockTransactions / blocks : 0)),
            ("p50_ms", latency(50)), ("p90_ms", latency(90)), ("p99_ms", latency(99)), ("max_ms", latency(100)),
            ("generator_cpu_percent", number(generatorCPUPercent)), ("dropped_frames", number(droppedFrames)),
            ("lost", number(lost)), ("resyncs", number(resyncs)),
            ("next_nonces", .string(nonces.map(String.init).joined(separator: ","))),
        ])
    }
}

import Prometheus
import Synchronization

/// The node's Prometheus metrics (swift-prometheus; `GET /metrics` writes the registry). Base
/// units: seconds and bytes. Events are recorded where they happen (histograms, counters);
/// levels are set from the monitor's snapshot when scraped. One registry per node, so that
/// nodes in one process (tests) keep their figures apart; `node start` also makes it the
/// swift-metrics backend, for libraries that report through swift-metrics.
public final class NodeMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    /// Time between two commits, and from the start of a height to its commit.
    public let blockInterval: DurationHistogram
    public let commitLatency: DurationHistogram
    /// Durations of the propose, prevote and precommit steps (index: the step's raw value).
    public let stepDurations: [DurationHistogram]
    public let committedTransactions: Counter
    public let slashes: Counter
    public let signatureChecks: Counter
    public let peerBans: Counter
    public let signatureStageRefusals: Counter
    public let p2pSentBytes: Counter
    public let p2pReceivedBytes: Counter
    /// Gossip (transactions, status, round state) dropped under load: from peers because the
    /// node's inbox was full, and to peers because their connection was not taking more.
    public let p2pDroppedInbound: Counter
    public let p2pDroppedOutbound: Counter
    /// Transactions the mempool refused, by `MempoolRejection.Reason`.
    private let mempoolRefusals: [MempoolRejection.Reason: Counter]
    /// How long each heap trim took (ADR 0021): the allocator's arenas are locked meanwhile.
    public let heapTrimDuration: DurationHistogram
    /// The most transactions the node's next proposal may hold (ADR 0025).
    public let proposalLimit: Gauge
    /// Rounds that ended without a decision at their height, as this node saw them.
    public let failedRounds: Counter
    /// Block writes that waited for the disk (one per run of blocks fetched by block sync).
    public let syncedBlockWrites: Counter
    /// CPU seconds already added to this registry's `process_cpu_seconds_total` (a counter
    /// only goes up: each scrape adds what was used since the one before).
    public let countedCPUSeconds = Mutex<Double>(0)
    private let requestHistograms = Mutex<[RouteAndMethod: DurationHistogram]>([:])

    static let blockBuckets: [Duration] = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60].map { .milliseconds(Int64($0 * 1_000)) }
    static let stepBuckets: [Duration] = [1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000].map { .milliseconds($0) }
    public static let requestBuckets: [Duration] = [250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000, 5_000_000]
        .map { .microseconds($0) }

    public init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        blockInterval = registry.makeDurationHistogram(descriptor: Self.named("membria_block_interval_seconds", "Time between two consecutive commits of this node."), labels: [], buckets: Self.blockBuckets)
        commitLatency = registry.makeDurationHistogram(descriptor: Self.named("membria_commit_latency_seconds", "Time from the start of a height to its commit."), labels: [], buckets: Self.blockBuckets)
        stepDurations = ["propose", "prevote", "precommit"].map { step in
            registry.makeDurationHistogram(descriptor: Self.named("membria_step_duration_seconds", "How long each consensus step lasted."),
                                           labels: [("step", step)], buckets: Self.stepBuckets)
        }
        committedTransactions = registry.makeCounter(descriptor: Self.named("membria_committed_transactions_total", "Transactions committed since start."), labels: [])
        slashes = registry.makeCounter(descriptor: Self.named("membria_slashes_total", "Slashes in blocks committed since start."), labels: [])
        signatureChecks = registry.makeCounter(descriptor: Self.named("membria_signature_checks_total", "Ed25519 verifications run (cache misses)."), labels: [])
        peerBans = registry.makeCounter(descriptor: Self.named("membria_peer_bans_total", "Peers banned since start."), labels: [])
        signatureStageRefusals = registry.makeCounter(descriptor: Self.named("membria_signature_stage_refused_batches_total",
                                                                             "Transaction batches from peers dropped because the signature stage was full (in all, or the sending peer's share)."),
                                                      labels: [])
        p2pSentBytes = registry.makeCounter(descriptor: Self.named("membria_p2p_sent_bytes_total", "Bytes written to peers (frames with their length)."), labels: [])
        p2pReceivedBytes = registry.makeCounter(descriptor: Self.named("membria_p2p_received_bytes_total", "Bytes read from peers (frames with their length)."), labels: [])
        let dropped = Self.named("membria_p2p_dropped_messages_total",
                                 "Gossip messages (transactions, status, round state) dropped under load: inbound, from peers while the node's inbox was full (a dropped transaction arrives again only if it is sent again); outbound, to peers whose connection was not taking more.")
        p2pDroppedInbound = registry.makeCounter(descriptor: dropped, labels: [("direction", "inbound")])
        p2pDroppedOutbound = registry.makeCounter(descriptor: dropped, labels: [("direction", "outbound")])
        let refused = Self.named("membria_mempool_refused_transactions_total",
                                 "Transactions the mempool refused, from peers and from the RPC, by reason: future_nonce (an earlier nonce of the sender is missing), used_nonce, duplicate, full, peer_quota, stateful (fee, balance or a rule), invalid, malformed.")
        mempoolRefusals = Dictionary(uniqueKeysWithValues: MempoolRejection.Reason.allCases.map {
            ($0, registry.makeCounter(descriptor: refused, labels: [("reason", $0.rawValue)]))
        })
        heapTrimDuration = registry.makeDurationHistogram(descriptor: Self.named("membria_heap_trim_duration_seconds",
                                                                                 "How long each return of free memory to the system took (the allocator waits meanwhile)."),
                                                          labels: [], buckets: Self.stepBuckets)
        proposalLimit = registry.makeGauge(descriptor: Self.named("membria_proposal_max_transactions",
                                                                  "Most transactions this node's next proposal may hold: the genesis limit, capped by consensus.proposal_budget_ms at the pace it built its recent proposals."),
                                           labels: [])
        failedRounds = registry.makeCounter(descriptor: Self.named("membria_failed_rounds_total",
                                                                   "Rounds that ended without a decision (the height moved on to a later round), as this node saw them; each is also logged."),
                                            labels: [])
        syncedBlockWrites = registry.makeCounter(descriptor: Self.named("membria_synced_block_writes_total",
                                                                        "Block writes that waited for the disk (fsync): one per height decided by consensus; a run of blocks fetched by block sync is synced once, where it ends."),
                                                 labels: [])
        registry.makeGauge(descriptor: Self.named("membria_build_info", "The node software: always 1, with its version, commit and compiler as labels."),
                           labels: [("version", BuildInfo.version), ("commit", BuildInfo.commit), ("swift", BuildInfo.swiftVersion)]).set(to: 1.0)
    }

    /// Counts one transaction the mempool refused.
    public func countRefusal(_ rejection: MempoolRejection) {
        mempoolRefusals[rejection.reason]?.increment()
    }

    public func gauge(_ name: String, _ help: String, labels: [(String, String)] = []) -> Gauge {
        registry.makeGauge(descriptor: Self.named(name, help), labels: labels)
    }

    public func counter(_ name: String, _ help: String) -> Counter {
        registry.makeCounter(descriptor: Self.named(name, help), labels: [])
    }

    /// A metric by its full name (namespace, unit and all: `membria_block_interval_seconds`).
    static func named(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// One request-latency histogram per route template and method (a bounded set), made once
    /// and kept: the registry's own look-up builds the metric's name and labels on every call.
    public func requestDuration(route: String, method: String) -> DurationHistogram {
        let key = RouteAndMethod(route: route, method: method)
        if let histogram = requestHistograms.withLock({ $0[key] }) { return histogram }
        let histogram = registry.makeDurationHistogram(
            descriptor: Self.named("membria_rpc_request_duration_seconds", "Time to answer an RPC request, by route and method."),
            labels: [("route", route), ("method", method)], buckets: Self.requestBuckets)
        requestHistograms.withLock { $0[key] = histogram }
        return histogram
    }

    struct RouteAndMethod: Hashable {
        let route: String
        let method: String
    }
}

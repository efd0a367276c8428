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
    /// CPU seconds already added to this registry's `process_cpu_seconds_total` (a counter
    /// only goes up: each scrape adds what was used since the one before).
    public let countedCPUSeconds = Mutex<Double>(0)

    static let blockBuckets: [Duration] = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60].map { .milliseconds(Int64($0 * 1_000)) }
    static let stepBuckets: [Duration] = [1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000].map { .milliseconds($0) }
    public static let requestBuckets: [Duration] = [250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000, 5_000_000]
        .map { .microseconds($0) }

    public init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        blockInterval = registry.makeDurationHistogram(name: "membria_block_interval_seconds", buckets: Self.blockBuckets,
                                                       help: "Time between two consecutive commits of this node.")
        commitLatency = registry.makeDurationHistogram(name: "membria_commit_latency_seconds", buckets: Self.blockBuckets,
                                                       help: "Time from the start of a height to its commit.")
        stepDurations = ["propose", "prevote", "precommit"].map { step in
            registry.makeDurationHistogram(name: "membria_step_duration_seconds", labels: [("step", step)], buckets: Self.stepBuckets,
                                           help: "How long each consensus step lasted.")
        }
        committedTransactions = registry.makeCounter(name: "membria_committed_transactions_total", help: "Transactions committed since start.")
        slashes = registry.makeCounter(name: "membria_slashes_total", help: "Slashes in blocks committed since start.")
        signatureChecks = registry.makeCounter(name: "membria_signature_checks_total", help: "Ed25519 verifications run (cache misses).")
        peerBans = registry.makeCounter(name: "membria_peer_bans_total", help: "Peers banned since start.")
        registry.makeGauge(name: "membria_build_info", labels: [("version", BuildInfo.version), ("commit", BuildInfo.commit),
                                                              ("swift", BuildInfo.swiftVersion)],
                           help: "The node software: always 1, with its version, commit and compiler as labels.").set(to: 1.0)
    }

    public func gauge(_ name: String, _ help: String, labels: [(String, String)] = []) -> Gauge {
        registry.makeGauge(name: name, labels: labels, help: help)
    }

    public func counter(_ name: String, _ help: String) -> Counter {
        registry.makeCounter(name: name, help: help)
    }

    /// One request-latency histogram per route template and method (a bounded set).
    public func requestDuration(route: String, method: String) -> DurationHistogram {
        registry.makeDurationHistogram(name: "membria_rpc_request_duration_seconds", labels: [("route", route), ("method", method)],
                                       buckets: Self.requestBuckets, help: "Time to answer an RPC request, by route and method.")
    }
}

import KCNode
import KCRuntime
import KCStorage

/// The Prometheus text exposition of the node's figures (`GET /metrics`).
enum Metrics {
    /// RocksDB properties reported, read at scrape time (never on the consensus thread).
    static let storeProperties = ["estimate-num-keys", "estimate-live-data-size", "total-sst-files-size", "cur-size-all-mem-tables"]

    static func render(_ s: NodeMonitor.Snapshot, store: any KeyValueStore) -> String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ value: String, labels: String = "") {
            if !out.contains("# TYPE membria_\(name) ") {
                out += "# HELP membria_\(name) \(help)\n# TYPE membria_\(name) \(type)\n"
            }
            out += "membria_\(name)\(labels) \(value)\n"
        }
        metric("height", "gauge", "Last committed height.", "\(s.height)")
        metric("round", "gauge", "Consensus round of the height being decided.", "\(s.round)")
        metric("block_interval_milliseconds", "gauge", "Time between the last two commits.", "\(s.lastBlockIntervalMilliseconds)")
        metric("commit_latency_milliseconds", "gauge", "Time from the start of the last height to its commit.", "\(s.lastCommitLatencyMilliseconds)")
        for (index, name) in ["propose", "prevote", "precommit"].enumerated() {
            metric("step_duration_milliseconds", "gauge", "How long the last step of each kind lasted.",
                   "\(s.lastStepMilliseconds[index])", labels: "{step=\"\(name)\"}")
        }
        metric("block_transactions", "gauge", "Transactions in the last block.", "\(s.lastBlockTransactions)")
        metric("committed_transactions_total", "counter", "Transactions committed since start.", "\(s.committedTransactions)")
        metric("mempool_transactions", "gauge", "Transactions waiting in the mempool.", "\(s.mempoolTransactions)")
        metric("mempool_bytes", "gauge", "Bytes waiting in the mempool.", "\(s.mempoolBytes)")
        metric("peers", "gauge", "Connected peers.", "\(s.peers)")
        metric("syncing", "gauge", "1 while block sync runs, 0 in consensus.", s.syncing ? "1" : "0")
        metric("validator", "gauge", "1 if this node's key is in the validator set.", s.isValidator ? "1" : "0")
        metric("slashes_total", "counter", "Slashes in blocks committed since start.", "\(s.slashes)")
        metric("signature_checks_total", "counter", "Ed25519 verifications run (cache misses).", "\(s.signatureChecks)")
        metric("peer_bans_total", "counter", "Peers banned since start.", "\(s.bannedPeers)")
        for status in EventStatus.allCases {
            metric("events", "gauge", "Events by status.", "\(s.eventsByStatus[Int(status.rawValue)])", labels: "{status=\"\(status.name)\"}")
        }
        if let rocks = store as? RocksDBStore {
            for name in storeProperties {
                guard let value = rocks.property("rocksdb." + name).flatMap({ UInt64($0) }) else { continue }
                metric("rocksdb_" + name.replacingOccurrences(of: "-", with: "_"), "gauge", "RocksDB property rocksdb.\(name).", "\(value)")
            }
        }
        return out
    }
}

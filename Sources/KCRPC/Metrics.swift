import KCNode
import KCRuntime
import KCStorage

#if canImport(Glibc)
import Glibc
#endif

/// `GET /metrics`: the node's registry (swift-prometheus) in the Prometheus text format, after
/// setting the levels that are read at scrape time: the monitor's figures, the store's size,
/// and the process's memory, CPU and descriptors. Nothing here runs on the consensus thread.
enum Metrics {
    /// RocksDB properties reported, as (property, metric, help).
    static let storeProperties = [
        ("estimate-num-keys", "membria_rocksdb_estimated_keys", "Estimated number of keys in the store (RocksDB)."),
        ("estimate-live-data-size", "membria_rocksdb_live_data_bytes", "Estimated live data in the store (RocksDB)."),
        ("total-sst-files-size", "membria_rocksdb_sst_files_bytes", "Size of the store's table files (RocksDB)."),
        ("cur-size-all-mem-tables", "membria_rocksdb_memtables_bytes", "Size of the store's memtables (RocksDB)."),
    ]

    static func render(_ node: NodeHandle) -> String {
        let metrics = node.metrics
        let s = node.monitor.snapshot
        func set(_ name: String, _ help: String, _ value: Double, labels: [(String, String)] = []) {
            metrics.gauge(name, help, labels: labels).set(to: value)
        }
        set("membria_height", "Last committed height.", Double(s.height))
        set("membria_round", "Consensus round of the height being decided.", Double(s.round))
        let age = s.committedAtMilliseconds == 0 ? 0 : NodeHandle.wallMilliseconds() &- s.committedAtMilliseconds
        set("membria_last_commit_age_seconds", "Time since this node last committed a block (or started).", Double(age) / 1_000)
        set("membria_block_transactions", "Transactions in the last block.", Double(s.lastBlockTransactions))
        set("membria_mempool_transactions", "Transactions waiting in the mempool.", Double(s.mempoolTransactions))
        set("membria_mempool_bytes", "Bytes waiting in the mempool.", Double(s.mempoolBytes))
        set("membria_mempool_queued_transactions", "Transactions in the mempool waiting for an earlier nonce of their sender.", Double(s.mempoolQueued))
        set("membria_peers", "Connected peers.", Double(s.peers))
        set("membria_syncing", "1 while block sync runs, 0 in consensus.", s.syncing ? 1 : 0)
        set("membria_validator", "1 if this node's key is in the validator set.", s.isValidator ? 1 : 0)
        for status in EventStatus.allCases {
            set("membria_events", "Knowledge events by status.", Double(s.eventsByStatus[Int(status.rawValue)]), labels: [("status", status.name)])
        }
        if let rocks = node.store as? RocksDBStore {
            for (property, name, help) in storeProperties {
                guard let value = rocks.property("rocksdb." + property).flatMap({ UInt64($0) }) else { continue }
                set(name, help, Double(value))
            }
        }
        ProcessFigures.read()?.publish(to: metrics)
        return metrics.registry.emitToString()
    }
}

/// The process's own figures, read from /proc/self (Linux), under the names every Prometheus
/// client library uses (`process_*`), so standard dashboards and alerts work unchanged.
struct ProcessFigures {
    var residentBytes: Double
    var virtualBytes: Double
    var cpuSeconds: Double
    var startTimeSeconds: Double
    var openFileDescriptors: Double
    var maxFileDescriptors: Double

    static func read() -> ProcessFigures? {
        #if os(Linux)
        guard let stat = text("/proc/self/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command name, from field 3 (state) on.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 22, let utime = Double(fields[11]), let stime = Double(fields[12]),
              let start = Double(fields[19]), let virtualSize = Double(fields[20]), let rss = Double(fields[21]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let page = Double(sysconf(Int32(_SC_PAGESIZE)))
        let bootTime = text("/proc/stat")?.split(separator: "\n").first { $0.hasPrefix("btime ") }
            .flatMap { Double($0.dropFirst(6).trimmingCharacters(in: .whitespaces)) } ?? 0
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return ProcessFigures(residentBytes: rss * page, virtualBytes: virtualSize, cpuSeconds: (utime + stime) / ticks,
                              startTimeSeconds: bootTime + start / ticks, openFileDescriptors: Double(openDescriptors()),
                              maxFileDescriptors: Double(limit.rlim_cur))
        #else
        return nil
        #endif
    }

    func publish(to metrics: NodeMetrics) {
        metrics.gauge("process_resident_memory_bytes", "Resident memory size in bytes.").set(to: residentBytes)
        metrics.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.").set(to: virtualBytes)
        metrics.gauge("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.").set(to: startTimeSeconds)
        metrics.gauge("process_open_fds", "Number of open file descriptors.").set(to: openFileDescriptors)
        metrics.gauge("process_max_fds", "Maximum number of open file descriptors.").set(to: maxFileDescriptors)
        // A counter only goes up: add what was used since the last scrape.
        let cpu = metrics.counter("process_cpu_seconds_total", "Total user and system CPU time spent, in seconds.")
        let seen = metrics.countedCPUSeconds.withLock { counted -> Double in
            defer { counted = max(counted, cpuSeconds) }
            return counted
        }
        if cpuSeconds > seen { cpu.increment(by: cpuSeconds - seen) }
    }

    static func text(_ path: String) -> String? {
        guard case .success(let bytes) = FileIO.read(path: path, limit: 1 << 20) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func openDescriptors() -> Int {
        guard let directory = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(directory) }
        var count = 0
        while readdir(directory) != nil { count += 1 }
        return max(0, count - 3)  // ".", ".." and the directory's own descriptor
    }
}

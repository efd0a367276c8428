import ArgumentParser
import KCNode
import KCNetwork
import KCRPC
import KCAttester
import Metrics
import Prometheus
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Set by the SIGINT and SIGTERM handlers. An atomic store is safe in a signal handler; a
/// plain global `var` is not (in debug builds its accesses go through the runtime's
/// exclusivity checks, and a signal landing while the main loop reads it aborted the node).
let stopSignal = Atomic<Bool>(false)

/// Installs the SIGINT/SIGTERM handlers that set `stopSignal`, and unblocks both signals (a
/// parent may have started us with them blocked; the mask is inherited).
func installStopHandlers() {
    // Initialise the global before any handler can touch it.
    _ = stopSignal.load(ordering: .relaxed)
    signal(SIGINT) { _ in stopSignal.store(true, ordering: .relaxed) }
    signal(SIGTERM) { _ in stopSignal.store(true, ordering: .relaxed) }
    var mask = sigset_t()
    sigemptyset(&mask)
    sigaddset(&mask, SIGINT)
    sigaddset(&mask, SIGTERM)
    sigprocmask(SIG_UNBLOCK, &mask, nil)
}

var stopRequested: Bool { stopSignal.load(ordering: .relaxed) }

struct StartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Run the node.",
        discussion: """
        Runs the node in --home until SIGINT or SIGTERM, which stop it after the current \
        step with everything committed made durable. It connects to the persistent peers in \
        config.toml, catches up by block sync when behind, and votes when its validator key \
        is in the validator set (a full node otherwise). Log lines go to standard output.
        """
    )

    @Option(name: .long, help: ArgumentHelp("Node home directory.", valueName: "dir"))
    var home: String

    @Option(name: .long, help: ArgumentHelp("Lowest level written: trace, debug, info, notice, warning, error or critical (default: log.level in config.toml).",
                                            valueName: "level"))
    var logLevel: String?

    @Option(name: .long, help: ArgumentHelp("text or json (default: log.format in config.toml).", valueName: "format"))
    var logFormat: String?

    func validate() throws {
        if let logLevel, LogLevel(name: logLevel) == nil {
            throw ValidationError("--log-level \(logLevel) is not one of \(LogLevel.allCases.map(\.name).joined(separator: ", ")).")
        }
        if let logFormat, LogFormat(rawValue: logFormat) == nil {
            throw ValidationError("--log-format \(logFormat) is not one of \(LogFormat.allCases.map(\.rawValue).joined(separator: ", ")).")
        }
    }

    func run() throws {
        installStopHandlers()
        let allocator = Allocator.configure(cores: Cores.available())
        try runReportingErrors {
            let write: @Sendable (String) -> Void = { line in
                print(line)
                flushStandardOutput()
            }
            let driver = try NodeDriver(home: NodeHome(path: home), logLevel: logLevel.flatMap { LogLevel(name: $0) },
                                        logFormat: logFormat.flatMap { LogFormat(rawValue: $0) }, output: write)
            let trimInterval = driver.config.heapTrimIntervalMilliseconds
            let trimDuration = driver.metrics.heapTrimDuration
            let trimmer = trimInterval > 0 ? HeapTrimmer(intervalMilliseconds: Int(trimInterval), observe: { trimDuration.record($0) }) : nil
            trimmer?.start()
            driver.log.info("allocator set (the environment's MALLOC_* settings override)",
                            ["arenas": allocator.arenas.map { "\($0)" } ?? "unchanged",
                             "mmap_threshold_bytes": allocator.mmapThresholdBytes.map { "\($0)" } ?? "unchanged",
                             "trim_threshold_bytes": allocator.trimThresholdBytes.map { "\($0)" } ?? "unchanged",
                             "heap_trim_interval_ms": "\(trimInterval)"])
            defer { trimmer?.stop() }
            // Libraries that report through swift-metrics land in the node's registry.
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: driver.metrics.registry))
            // The libraries' loggers (Hummingbird's) write through the node's handler too.
            NodeLogHandler.bootstrap(level: driver.log.minimum, format: logFormat.flatMap { LogFormat(rawValue: $0) } ?? driver.config.logFormat,
                                     sink: write)
            // Services start in dependency order (store, signer and WAL inside the driver,
            // then the RPC, then P2P and consensus in `run`) and stop in reverse.
            var settings = RPCSettings()
            (settings.host, settings.port) = try NodeDriver.split(driver.config.rpcListenAddress)
            settings.maxBodyBytes = driver.config.rpcMaxBodyBytes
            settings.rateLimitPerSecond = driver.config.rpcRateLimitPerSecond
            settings.limits.maxConnections = driver.config.rpcMaxConnections
            settings.limits.maxConnectionsPerAddress = driver.config.rpcMaxConnectionsPerAddress
            settings.limits.requestTimeoutMilliseconds = Int64(clamping: driver.config.rpcRequestTimeoutMilliseconds)
            settings.limits.idleTimeoutMilliseconds = Int64(clamping: driver.config.rpcIdleTimeoutMilliseconds)
            settings.maxConcurrentChecks = driver.config.rpcMaxConcurrentChecks
            settings.health = HealthCheck(maxBlockAgeMilliseconds: driver.config.rpcHealthMaxBlockAgeMilliseconds,
                                          needsPeers: driver.handle.genesis.validators.count > 1)
            let rpc = RPCServer(node: driver.handle, settings: settings, log: driver.log)
            try rpc.start()
            defer { rpc.stop() }
            let config = driver.config
            var attester: Attester? = nil
            if config.attesterMode != .off {
                let settings = Attester.Settings(mode: config.attesterMode == .fetch ? .fetch : .format, gateway: config.arweaveGateway,
                                                 timeoutMilliseconds: config.arweaveTimeoutMilliseconds,
                                                 maxPayloadBytes: config.arweaveMaxPayloadBytes)
                attester = Attester(node: driver.handle, key: try NodeHome(path: home).loadKey(.account, passphrase: driver.keyPassphrase),
                                    settings: settings, log: driver.log)
                attester?.start()
            }
            defer { attester?.stop() }
            try driver.run { stopRequested }
        }
    }
}

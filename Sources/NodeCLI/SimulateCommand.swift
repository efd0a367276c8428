import Foundation
import ArgumentParser
import KCSimulator

struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run the deterministic multi-validator simulator.",
        discussion: """
        One 64-bit seed decides everything: validators and stake, latencies, faults, crash \
        points, Byzantine roles and transactions. The same seed gives the same trace hash on \
        every run. A run has a safety phase with faults, then a liveness phase in which the \
        network heals and the honest validators must commit new heights within a bound. \
        Exits non-zero on any violation and prints the command that reproduces it.
        """
    )

    @Option(name: .long, help: ArgumentHelp("The seed of one run.", valueName: "s"))
    var seed: UInt64?

    @Option(name: .long, help: ArgumentHelp("A range of seeds to sweep, as A..B (inclusive).", valueName: "A..B"))
    var seeds: String?

    @Option(name: .long, help: ArgumentHelp("Number of validators (default: chosen by the seed, 4 to 7).", valueName: "n"))
    var validators: Int?

    @Option(name: .long, help: ArgumentHelp("Number of Byzantine validators (default: chosen by the seed; always below a third of the power).", valueName: "f"))
    var byzantine: Int?

    @Option(name: .long, help: ArgumentHelp("Heights every honest validator must commit.", valueName: "h"))
    var heights: UInt64 = 30

    @Option(name: .long, help: ArgumentHelp("Comma-separated faults to inject (default: all), or none: \(SimulationFault.allCases.map(\.rawValue).joined(separator: ",")).", valueName: "list"))
    var faults: String?

    @Option(name: .long, help: ArgumentHelp("Transactions injected per virtual second; 0 gives empty blocks.", valueName: "n"))
    var transactionsPerSecond: UInt64 = SimulationConfig.defaultTransactionsPerSecond

    @Option(name: .long, help: ArgumentHelp("Link latency: seeded (from the seed and the faults), wan (six regions, 35 to 165 ms one way between them), or uniform:LOW-HIGH (ms per link).", valueName: "model"))
    var links: String = "seeded"

    @Option(name: .long, help: ArgumentHelp("Peers each validator dials (default: a full mesh).", valueName: "n"))
    var peers: Int?

    @Flag(name: .long, help: "Print traffic per height and finality (virtual time) after each run.")
    var figures = false

    @Flag(name: .long, help: "Print the parameters each seed chose.")
    var verbose = false

    @Flag(name: .long, help: ArgumentHelp("Run honest validators with a core that ignores its lock (checker self-test).", visibility: .hidden))
    var brokenLock = false

    func validate() throws {
        guard (seed == nil) != (seeds == nil) else { throw ValidationError("give exactly one of --seed S or --seeds A..B") }
        if let seeds, parseRange(seeds) == nil { throw ValidationError("--seeds must look like 1..200") }
        if let validators, !(1...SimulationConfig.maxValidators).contains(validators) {
            throw ValidationError("--validators must be between 1 and \(SimulationConfig.maxValidators)")
        }
        if LinkModel(links) == nil { throw ValidationError("--links must be seeded, wan or uniform:LOW-HIGH (milliseconds, 1 <= LOW <= HIGH <= 10000)") }
        if let peers, peers < 1 { throw ValidationError("--peers must be at least 1") }
        if let faults, faults != "none" {
            for name in faults.split(separator: ",") where SimulationFault(rawValue: String(name)) == nil {
                throw ValidationError("unknown fault '\(name)'; known: \(SimulationFault.allCases.map(\.rawValue).joined(separator: ","))")
            }
        }
        guard (1...100_000).contains(heights) else { throw ValidationError("--heights must be between 1 and 100000") }
        guard transactionsPerSecond <= 10_000 else { throw ValidationError("--transactions-per-second must be at most 10000") }
    }

    func parseRange(_ text: String) -> ClosedRange<UInt64>? {
        guard let dots = text.firstRange(of: "..") else { return nil }
        guard let low = UInt64(text[..<dots.lowerBound]), let high = UInt64(text[dots.upperBound...]), low <= high else { return nil }
        return low...high
    }

    func config(seed: UInt64) -> SimulationConfig {
        var config = SimulationConfig(seed: seed)
        config.validators = validators
        config.byzantine = byzantine
        config.heights = heights
        config.brokenLock = brokenLock
        config.transactionsPerSecond = transactionsPerSecond
        if let faults { config.faults = Set(faults.split(separator: ",").compactMap { SimulationFault(rawValue: String($0)) }) }
        config.links = LinkModel(links) ?? .seeded
        config.outboundPeers = peers
        if let interval = ProcessInfo.processInfo.environment["KC_SIM_GOSSIP_MS"].flatMap(UInt64.init) { config.gossipIntervalMilliseconds = interval }
        return config
    }

    func run() throws {
        let range = seed.map { $0...$0 } ?? parseRange(seeds!)!
        var passed = 0, failed = 0
        for value in range {
            let simulation = Simulation(config: config(seed: value))
            if verbose || range.count == 1 { print(simulation.parameters) }
            let result = simulation.run()
            if result.passed {
                passed += 1
                if verbose || range.count == 1 { print(result.summary) }
                if figures { print(result.scaleSummary) }
            } else {
                failed += 1
                print(result.summary)
                for violation in result.violations { print("  violation: \(violation)") }
                print("  reproduce: \(result.config.reproduceCommand)")
            }
            flushStandardOutput()
        }
        if range.count > 1 { print("\(passed) passed, \(failed) failed") }
        if failed > 0 { throw ExitCode.failure }
    }
}

import KCSimulator
import Testing

struct SimulatorTests {
    @Test func sameSeedSameTrace() {
        let first = Simulation(config: SimulationConfig(seed: 7)).run()
        let second = Simulation(config: SimulationConfig(seed: 7)).run()
        #expect(first.traceHash == second.traceHash)
        #expect(first.heightsCommitted == second.heightsCommitted)
        #expect(first.messagesDelivered == second.messagesDelivered)
        let other = Simulation(config: SimulationConfig(seed: 8)).run()
        #expect(other.traceHash != first.traceHash)
    }

    @Test func parametersNameTheSeedAndReproduceCommandIsComplete() {
        var config = SimulationConfig(seed: 42)
        config.validators = 5
        config.byzantine = 1
        config.heights = 12
        config.faults = [.loss, .crash]
        let simulation = Simulation(config: config)
        #expect(simulation.parameters.hasPrefix("seed=42 validators=5"))
        #expect(config.reproduceCommand == "node simulate --seed 42 --validators 5 --byzantine 1 --heights 12 --faults crash,loss")
    }

    /// The CI sweep: 70 seeds for each of n = 4, 5 and 7, one Byzantine validator, every
    /// network fault, crashes and drift. Zero violations allowed.
    @Test(arguments: [4, 5, 7])
    func sweepHasNoViolations(validators: Int) {
        var failures: [String] = []
        var slashes = 0
        for seed in 1...70 as ClosedRange<UInt64> {
            var config = SimulationConfig(seed: seed &+ UInt64(validators) &* 1_000)
            config.validators = validators
            config.byzantine = 1
            config.heights = 15
            let result = Simulation(config: config).run()
            slashes += result.doubleSignSlashes
            if !result.passed { failures.append("\(result.summary) \(result.violations) reproduce: \(config.reproduceCommand)") }
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        // The Byzantine roles include equivocators: the sweep must have seen them punished.
        #expect(slashes > 0, "no double-sign slash in 70 seeds")
    }

    /// A core that ignores its lock must be caught by the checkers within a bounded sweep.
    @Test func brokenLockIsCaught() {
        var caught: SimulationResult? = nil
        for seed in 1...300 as ClosedRange<UInt64> {
            var config = SimulationConfig(seed: seed)
            config.brokenLock = true
            config.byzantine = nil
            config.heights = 15
            let result = Simulation(config: config).run()
            if result.violations.contains(where: { $0.contains("fork") || $0.contains("lock broken") }) {
                caught = result
                break
            }
        }
        #expect(caught != nil, "300 seeds with a lock-ignoring core produced no safety violation")
        if let caught { print("broken lock caught: \(caught.summary) \(caught.violations.first ?? "")") }
    }
}

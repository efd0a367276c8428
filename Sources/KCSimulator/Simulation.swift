import KCCodec
import KCConsensus
import KCCrypto
import KCNode
import KCRuntime
import KCStorage
import KCTypes

/// Fault families a run may inject. All are on unless a list is given.
public enum SimulationFault: String, CaseIterable, Sendable {
    case delay, loss, duplicate, reorder, partition, crash, drift, byzantine
    /// A short downtime window: one validator is down long enough to be jailed, comes back and
    /// is unjailed by its operator, while another goes down for good (set changes, jailing and
    /// crashes combined; the rest must stay live whenever they hold a quorum).
    case downtime
    /// One to three peers without stake: their own evidence, votes and proposals, heights far
    /// ahead, forged blocks, and a fresh identity after each ban (`Outsider`).
    case outsiders
}

public struct SimulationConfig: Sendable {
    public var seed: UInt64
    /// Validator count; nil lets the seed choose 4...7.
    public var validators: Int?
    /// Byzantine validator count; nil lets the seed choose (always below a third of the power).
    public var byzantine: Int?
    /// Heights every honest node must reach.
    public var heights: UInt64 = 30
    public var faults: Set<SimulationFault> = Set(SimulationFault.allCases)
    /// Test-only: honest cores ignore their lock, to prove the checkers catch a broken rule.
    public var brokenLock = false
    /// Transactions injected per virtual second (0: none, empty blocks).
    public var transactionsPerSecond: UInt64 = SimulationConfig.defaultTransactionsPerSecond
    public static let defaultTransactionsPerSecond: UInt64 = 5
    /// The liveness bound: after healing, new heights must come within this virtual time.
    public var livenessBoundMilliseconds: UInt64 = 60_000
    /// Link latency (`seeded`: from the seed and the fault families).
    public var links: LinkModel = .seeded
    /// The gossip interval: a node that did not move for this long sends a stall report.
    public var gossipIntervalMilliseconds: UInt64 = 250
    /// Peers each validator dials; nil: a full mesh.
    public var outboundPeers: Int? = nil
    /// Largest validator count a run takes.
    public static let maxValidators = 200

    public init(seed: UInt64) { self.seed = seed }

    /// The command line that reproduces this run.
    public var reproduceCommand: String {
        var parts = ["node simulate --seed \(seed)"]
        if let validators { parts.append("--validators \(validators)") }
        if let byzantine { parts.append("--byzantine \(byzantine)") }
        parts.append("--heights \(heights)")
        if faults != Set(SimulationFault.allCases) {
            parts.append("--faults \(faults.isEmpty ? "none" : faults.map(\.rawValue).sorted().joined(separator: ","))")
        }
        if transactionsPerSecond != Self.defaultTransactionsPerSecond {
            parts.append("--transactions-per-second \(transactionsPerSecond)")
        }
        if links != .seeded { parts.append("--links \(links)") }
        if let outboundPeers { parts.append("--peers \(outboundPeers)") }
        if brokenLock { parts.append("--broken-lock") }
        return parts.joined(separator: " ")
    }
}

public struct SimulationResult: Sendable {
    public let config: SimulationConfig
    /// The parameters the seed chose, printed before the run.
    public let parameters: String
    public let violations: [String]
    public let traceHash: Hash256
    /// Traffic and finality over the run.
    public let figures: ScaleFigures
    public let heightsCommitted: UInt64
    public let virtualMilliseconds: UInt64
    public let messagesDelivered: UInt64
    public let doubleSignSlashes: Int
    /// Downtime slashes and jailings, and successful unjails, over the committed chain.
    public let downtimeSlashes: Int
    public let downtimeJails: Int
    public let unjails: Int
    /// Bans of outsiders by honest validators.
    public let outsiderBans: Int
    /// Knowledge events accepted and finalized, and disputes opened, over the committed chain.
    public let eventsAccepted: Int
    public let eventsFinalized: Int
    public let disputesOpened: Int
    public var passed: Bool { violations.isEmpty }

    public var summary: String {
        let status = passed ? "ok" : "VIOLATION"
        return "seed=\(config.seed) \(status) heights=\(heightsCommitted) virtual_ms=\(virtualMilliseconds) messages=\(messagesDelivered) double_sign_slashes=\(doubleSignSlashes) downtime_slashes=\(downtimeSlashes) jails=\(downtimeJails) unjails=\(unjails) outsider_bans=\(outsiderBans) events_accepted=\(eventsAccepted) events_finalized=\(eventsFinalized) disputes=\(disputesOpened) trace=\(traceHash.hex.prefix(16))"
    }

    /// Messages and bytes each validator received per height, and finality (height start to
    /// each honest commit) in virtual time.
    public var scaleSummary: String {
        "validators=\(figures.validators) links=\(config.links) mean_degree=\(figures.meanDegree) heights=\(heightsCommitted) messages_per_height_per_node=\(figures.messagesPerHeightPerNode(heightsCommitted)) bytes_per_height_per_node=\(figures.bytesPerHeightPerNode(heightsCommitted)) finality_p50_ms=\(figures.finalityPercentile(50)) finality_p99_ms=\(figures.finalityPercentile(99)) per_kind: \(figures.breakdown(heightsCommitted))"
    }
}

enum Behaviour: String, Sendable {
    case honest
    /// Signs two different votes per step and, as proposer, two different blocks.
    case equivocate
    /// Votes nil on everything.
    case nilVoter = "nil-voter"
    /// Sends nothing at all.
    case silent
}

// Boxed (indirect): events move through the event heap by the thousands, and a block inline
// would be copied on every heap swap.
indirect enum Message {
    case proposal(Proposal<Block>)
    case vote(SignedVote)
    case decided(Block, CommitCertificate)
    case evidence(DoubleSignEvidence)
    case syncRequest(from: Int, height: UInt64)
    case transaction(VerifiedTransaction)
    /// A node's consensus position and what it holds (the wire message `round state`).
    case roundState(RoundState)
}

indirect enum SimEvent {
    case deliver(to: Int, from: Int, Message)
    case timeout(node: Int, TimeoutStep, height: UInt64, round: UInt32, epoch: UInt64)
    case crash(Int)
    case restart(Int)
    case partition([Set<Int>], oneWay: (from: Set<Int>, to: Set<Int>)?)
    case heal
    case injectTransaction
    case startLiveness
    /// Operators at work: honest validators whose downtime jail has expired send `unjail`.
    case operators
    /// An outsider's next move.
    case outsider(Int)
    /// A height start put off to the queue (see `commit`).
    case begin(Int, epoch: UInt64)
    /// The gossip interval: a node that did not move since the last one announces its round
    /// state again (a stall report), and its peers send what it lacks.
    case regossip(Int)
}

/// N validators running the real consensus core and the real runtime on a virtual clock,
/// over a simulated network that delays, loses, duplicates and reorders messages, with
/// partitions, crashes and restarts, clock drift and Byzantine validators. One seed decides it
/// all. Checkers run after every step.
public final class Simulation {
    public let config: SimulationConfig
    var random: SimulationRandom
    var networkRandom: SimulationRandom
    var queue = EventQueue<SimEvent>()
    var now: UInt64 = 0
    var trace = TraceHash()
    var nodes: [SimNode] = []
    let runtime: Runtime
    let chainID = "membria-sim-1"
    let users: [SigningKey]
    let gateways: [SigningKey]
    var checker: Checker
    /// One cache for the whole simulated network: a signature is verified once per run.
    let signatures = SignatureCache()
    let factory: BlockFactory
    public private(set) var parameters = ""
    var messagesDelivered: UInt64 = 0
    var figures: ScaleFigures
    /// When the first honest node started each height (finality is counted from there).
    var heightStarted: [UInt64: UInt64] = [:]
    /// Which node runs each consensus key.
    var nodeOfKey: [PublicKey: Int] = [:]
    /// Encoded block sizes, for the byte counts.
    var blockSizes: [Hash256: Int] = [:]
    let topology: Topology
    let linkLatency: LinkLatency?

    // Network model.
    var baseLatency: UInt64 = 10
    var jitter: UInt64 = 20
    var lossPerMille: UInt64 = 0
    var duplicatePerMille: UInt64 = 0
    var groups: [Set<Int>]? = nil
    var oneWay: (from: Set<Int>, to: Set<Int>)? = nil
    var inLiveness = false
    var livenessStartHeight: UInt64 = 0
    var livenessStartTime: UInt64 = 0
    var injectorNonces: [PublicKey: (nonce: UInt64, time: UInt64)] = [:]
    /// The newest events and disputes on the chain, in the order they appeared.
    var recentEvents: [Hash256] = []
    var recentDisputes: [Hash256] = []
    /// Crashed for good: not restarted in the liveness phase if the honest validators that are
    /// up hold a quorum without them (the chain must then go on without them).
    var keptDown: Set<Int> = []
    /// When an honest node last committed, and since when the honest validators that are up
    /// have held a quorum of the set with no partition (the live-quorum checker).
    var lastHonestCommit: UInt64 = 0
    var liveQuorumSince: UInt64? = nil
    /// A live quorum must commit within this much virtual time.
    static let liveQuorumBoundMilliseconds: UInt64 = 30_000
    /// Peers without stake (the `outsiders` fault), and how often validators banned them.
    var outsiders: [Outsider] = []
    var outsiderBans = 0
    /// Height starts nested inside commits right now (see `commit`).
    var startDepth = 0

    public init(config: SimulationConfig) {
        self.config = config
        var root = SimulationRandom(seed: config.seed)
        var setup = root.fork()
        random = root.fork()
        networkRandom = root.fork()

        let count = config.validators ?? setup.int(4...7)
        precondition(count >= 1 && count <= SimulationConfig.maxValidators, "validators must be 1...\(SimulationConfig.maxValidators)")
        let keys = (0..<count).map { SigningKey(seed: Blake2b.hash256(Array("sim/\(config.seed)/validator/\($0)".utf8))) }
        let accountKeys = (0..<count).map { SigningKey(seed: Blake2b.hash256(Array("sim/\(config.seed)/account/\($0)".utf8))) }
        gateways = accountKeys
        users = (0..<3).map { SigningKey(seed: Blake2b.hash256(Array("sim/\(config.seed)/user/\($0)".utf8))) }
        // Stake: 10,000 to 40,000 ACTI each.
        let stakes = (0..<count).map { _ in UInt64(setup.int(10...40)) * 1_000 }
        let totalStake = stakes.reduce(0, +)

        // Byzantine validators: the smallest stakes, while their power stays below a third.
        var byzantineIndices: [Int] = []
        let wanted = config.faults.contains(.byzantine) ? (config.byzantine ?? setup.int(0...max(0, (count - 1) / 3))) : 0
        var byzantinePower: UInt64 = 0
        for index in (0..<count).sorted(by: { stakes[$0] < stakes[$1] }) where byzantineIndices.count < wanted {
            if (byzantinePower + stakes[index]) * 3 < totalStake {
                byzantineIndices.append(index)
                byzantinePower += stakes[index]
            }
        }
        let behaviours: [Behaviour] = [.equivocate, .nilVoter, .silent]
        var parameters = LocalGenesis.developmentParameters
        parameters.staking.maxValidators = UInt32(max(100, count))
        parameters.staking.epochLengthBlocks = 20
        if config.faults.contains(.downtime) {
            // Jailed after missing more than 10 of the last 20 blocks; out for 1.5 s of block time.
            parameters.slashing.signedBlocksWindow = 20
            parameters.slashing.minSignedBasisPoints = 5_000
            parameters.slashing.downtimeJailMilliseconds = 1_500
        } else {
            parameters.slashing.signedBlocksWindow = 1_000  // downtime stays out of short runs
        }
        parameters.block.maxTransactions = 200
        // Event windows short enough that a run of a few dozen heights sees events attested,
        // disputed, judged and finalized (the unbonding period still covers all three).
        parameters.events.attestationPeriodMilliseconds = 6_000
        parameters.events.challengeWindowMilliseconds = 4_000
        parameters.events.revotePeriodMilliseconds = 3_000
        let genesis = Genesis(
            chainID: chainID, genesisTimeUnixMilliseconds: 1_767_225_600_000, parameters: parameters,
            accounts: (accountKeys + users).map { GenesisAccount(address: $0.publicKey, balance: .acti(1_000_000)) },
            validators: (0..<count).map { index in
                GenesisValidator(moniker: "sim-\(index)", address: accountKeys[index].publicKey, consensusKey: keys[index].publicKey,
                                 nodeID: PublicKey(Blake2b.hash256(Array("sim-node-\(index)".utf8))),
                                 stake: .acti(stakes[index]), gateway: true)
            })
        runtime = Runtime(genesis: genesis)
        factory = BlockFactory(runtime: runtime, signatures: signatures, executions: ExecutionMemo())
        let genesisState = runtime.genesisState()
        checker = Checker(genesis: genesisState, parameters: parameters)
        var links = root.fork()
        topology = Topology(count: count, outbound: config.outboundPeers, random: &links)
        linkLatency = config.links == .seeded ? nil : LinkLatency(model: config.links, count: count, random: &links)
        figures = ScaleFigures(validators: count, meanDegree: topology.averageDegree)

        let drift = config.faults.contains(.drift)
        for index in 0..<count {
            let behaviour = byzantineIndices.contains(index) ? behaviours[setup.int(0...2)] : .honest
            let offset = drift ? Int64(setup.int(0...600)) - 300 : 0
            let rate = drift ? UInt64(setup.int(900...1_100)) : 1_000
            nodes.append(SimNode(index: index, key: keys[index], behaviour: behaviour, state: genesisState,
                                 clockOffset: offset, timerRatePerMille: rate, chainID: chainID, signatures: signatures))
        }
        for node in nodes {
            nodeOfKey[node.key.publicKey] = node.index
            node.neighbours = topology.neighbours[node.index]
            node.linkKeys = Set(node.neighbours.map { keys[$0].publicKey })
            for peer in node.neighbours { node.gossip.connected(peer) }
        }
        if config.faults.contains(.delay) {
            baseLatency = UInt64(setup.int(1...60))
            jitter = UInt64(setup.int(0...120))
        } else {
            baseLatency = 5
            jitter = 0
        }
        if !config.faults.contains(.reorder) { jitter = 0 }
        lossPerMille = config.faults.contains(.loss) ? UInt64(setup.int(0...80)) : 0
        duplicatePerMille = config.faults.contains(.duplicate) ? UInt64(setup.int(0...50)) : 0

        let roles = nodes.map { "\($0.index):\($0.behaviour.rawValue)" }.joined(separator: ",")
        self.parameters = "seed=\(config.seed) validators=\(count) stakes=\(stakes) byzantine=[\(nodes.filter { $0.behaviour != .honest }.map { "\($0.index):\($0.behaviour.rawValue)" }.joined(separator: ","))] latency=\(baseLatency)+\(jitter)ms loss=\(lossPerMille)‰ dup=\(duplicatePerMille)‰ faults=\(config.faults.map(\.rawValue).sorted().joined(separator: ","))"
            + (config.links == .seeded ? "" : " links=\(config.links)")
            + (config.outboundPeers.map { " outbound_peers=\($0) mean_degree=\(topology.averageDegree)" } ?? "")
        _ = roles
        scheduleFaults(&setup)
    }

    var honest: [SimNode] { nodes.filter { $0.behaviour == .honest } }

    /// Crashes, restarts and partitions during the safety phase, all from the seed.
    func scheduleFaults(_ setup: inout SimulationRandom) {
        let safetyEnd = safetyPhaseMilliseconds
        if config.faults.contains(.crash) {
            for _ in 0..<setup.int(0...3) {
                let node = setup.int(0...(nodes.count - 1))
                let at = setup.below(safetyEnd)
                queue.push(.crash(node), at: at)
                queue.push(.restart(node), at: at + 500 + setup.below(4_000))
            }
        }
        if config.faults.contains(.partition) {
            for _ in 0..<setup.int(0...3) {
                let at = setup.below(safetyEnd)
                let members = Array(0..<nodes.count)
                var partition: [Set<Int>]
                var oneWay: (from: Set<Int>, to: Set<Int>)? = nil
                switch setup.int(0...2) {
                case 0:  // halves
                    let cut = nodes.count / 2
                    partition = [Set(members[..<cut]), Set(members[cut...])]
                case 1:  // a lone node
                    let lone = setup.int(0...(nodes.count - 1))
                    partition = [[lone], Set(members.filter { $0 != lone })]
                default:  // one-way: a node hears nobody but is heard
                    let lone = setup.int(0...(nodes.count - 1))
                    partition = [Set(members)]
                    oneWay = (from: Set(members.filter { $0 != lone }), to: [lone])
                }
                queue.push(.partition(partition, oneWay: oneWay), at: at)
                queue.push(.heal, at: at + 1_000 + setup.below(5_000))
            }
        }
        if config.faults.contains(.outsiders) {
            for index in 0..<setup.int(1...3) {
                outsiders.append(Outsider(peer: nodes.count + index, seed: config.seed))
                queue.push(.outsider(index), at: 300 + UInt64(index) * 50)
            }
            parameters += " outsiders=\(outsiders.count)"
        }
        if config.faults.contains(.downtime) && nodes.count >= 4 {
            // One validator down long enough to be jailed; soon after it is back, another goes
            // down for good.
            let jailed = setup.int(0...(nodes.count - 1))
            var lost = setup.int(0...(nodes.count - 2))
            if lost >= jailed { lost += 1 }
            let crashAt = 500 + setup.below(2_000)
            let back = crashAt + 5_000 + setup.below(5_000)
            queue.push(.crash(jailed), at: crashAt)
            queue.push(.restart(jailed), at: back)
            queue.push(.crash(lost), at: back + setup.below(3_000))
            keptDown.insert(lost)
            queue.push(.operators, at: 1_000)
            parameters += " downtime=down:\(jailed)@\(crashAt)-\(back)ms,lost:\(lost)"
        }
    }

    var safetyPhaseMilliseconds: UInt64 { 10_000 + config.heights * 300 }

    public func run() -> SimulationResult {
        for node in nodes {
            startHeight(node)
            queue.push(.regossip(node.index), at: config.gossipIntervalMilliseconds + UInt64(node.index) * 37 % config.gossipIntervalMilliseconds)
        }
        queue.push(.injectTransaction, at: 100)
        queue.push(.startLiveness, at: safetyPhaseMilliseconds)
        let deadline = safetyPhaseMilliseconds + config.livenessBoundMilliseconds + config.heights * 2_000
        var steps: UInt64 = 0
        while let (time, event) = queue.pop() {
            precondition(time >= now, "virtual time went backwards")
            now = time
            steps += 1
            if steps > 400_000_000 || now > deadline { break }
            handle(event)
            if config.faults.contains(.downtime), case .regossip(0) = event {
                if inLiveness { restoreKeptDownIfNeeded() }
                checkLiveQuorum()
            }
            if !checker.violations.isEmpty { break }
            if inLiveness && minimumHonestHeight > config.heights
                && minimumHonestHeight > livenessStartHeight + 3 { break }
            // Enough heights under faults: heal early rather than run the whole safety window.
            if !inLiveness && now >= 5_000 && minimumHonestHeight * 3 >= config.heights * 2 { handle(.startLiveness) }
        }
        trace.flush()
        var violations = checker.violations
        if violations.isEmpty {
            if !inLiveness {
                violations.append("liveness: the run ended before the liveness phase")
            } else if minimumHonestHeight <= livenessStartHeight + 3 || minimumHonestHeight <= config.heights {
                let states = nodes.map { node in
                    let core = node.core
                    let lock = core?.lockedRound.map { "lock@\($0)=\(core!.lockedValue!.id.hex.prefix(4))" } ?? "unlocked"
                    let valid = core?.validRound.map { "valid@\($0)=\(core!.validValue!.id.hex.prefix(4))" } ?? "-"
                    return "\(node.index):h\(node.height - 1)/r\(core?.round ?? 0)/\(core.map { "\($0.step)" } ?? "-")/\(lock)/\(valid)\(node.crashed ? "(down)" : "")"
                }.joined(separator: " ")
                violations.append("liveness: after healing at \(livenessStartTime) ms honest nodes reached only height \(minimumHonestHeight - 1) by \(now) ms (needed \(max(config.heights, livenessStartHeight + 3))); nodes \(states); \(setDescription())")
            }
            var addressOf: [PublicKey: PublicKey] = [:]
            for (index, node) in nodes.enumerated() { addressOf[node.key.publicKey] = gateways[index].publicKey }
            violations += checker.evidenceViolations(before: livenessStartTime, addressOf: addressOf)
            violations += outsiderViolations()
        }
        return SimulationResult(config: config, parameters: parameters, violations: violations, traceHash: trace.value,
                                figures: figures,
                                heightsCommitted: minimumHonestHeight - 1, virtualMilliseconds: now,
                                messagesDelivered: messagesDelivered, doubleSignSlashes: checker.doubleSignSlashes.values.reduce(0, +),
                                downtimeSlashes: checker.downtimeSlashes, downtimeJails: checker.downtimeJails, unjails: checker.unjails,
                                outsiderBans: outsiderBans, eventsAccepted: checker.eventsAccepted, eventsFinalized: checker.eventsFinalized,
                                disputesOpened: checker.disputesOpened)
    }

    /// The next height of the slowest honest node.
    /// Read after every event, so it walks the nodes without building arrays.
    var minimumHonestHeight: UInt64 {
        var lowest: UInt64? = nil
        for node in nodes where node.behaviour == .honest && !keptDown.contains(node.index) {
            lowest = min(lowest ?? node.height, node.height)
        }
        return lowest ?? 0
    }

    /// The most advanced honest node: its state gives the set of the height being decided.
    var leadingHonest: SimNode? {
        nodes.filter { $0.behaviour == .honest }.max { $0.height < $1.height }
    }

    /// Whether the honest validators that are up hold more than 2/3 of the power of the set
    /// signing the leading honest node's next height and, with `scheduled`, of every set
    /// already scheduled after it (a jailing decided now removes its validator two heights on).
    func honestUpHoldQuorum(scheduled: Bool = false) -> Bool {
        guard let leader = leadingHonest else { return false }
        let sets = leader.state.validatorSets()
        for set in [sets.current] + (scheduled ? sets.scheduled.map(\.validators) : []) {
            let total = set.reduce(UInt64(0)) { $0 + $1.power }
            var up: UInt64 = 0
            for entry in set {
                guard let node = nodes.first(where: { $0.key.publicKey == entry.consensusKey }) else { continue }
                if node.behaviour == .honest && !node.crashed { up += entry.power }
            }
            if UInt128(up) * 3 <= UInt128(total) * 2 { return false }
        }
        return true
    }

    /// A node kept down stays down only while the others hold a quorum without it, in the
    /// running set and in every set scheduled: when a jailing makes it needed, its operator
    /// brings it back (a chain whose live validators hold 2/3 or less halts by design).
    func restoreKeptDownIfNeeded() {
        guard !keptDown.isEmpty, !honestUpHoldQuorum(scheduled: true) else { return }
        for index in keptDown.sorted() { restart(nodes[index]) }
        keptDown = []
    }

    /// The live-quorum checker: once the honest validators that are up have held a quorum of
    /// the set, with no partition, for the bound, an honest node must have committed within it.
    /// (A halt with four of five validators running, one of them just jailed, went unexplained
    /// on a real network; this is the property it broke.)
    func checkLiveQuorum() {
        guard groups == nil && oneWay == nil && honestUpHoldQuorum() else {
            liveQuorumSince = nil
            return
        }
        let since = liveQuorumSince ?? now
        liveQuorumSince = since
        let quiet = now - max(since, lastHonestCommit)
        if quiet > Self.liveQuorumBoundMilliseconds {
            let states = nodes.map { node in
                "\(node.index):h\(node.height - 1)/r\(node.core?.round ?? 0)\(node.crashed ? "(down)" : "")\(node.behaviour == .honest ? "" : "(\(node.behaviour.rawValue))")"
            }.joined(separator: " ")
            checker.violation("liveness: the honest validators that are up held a quorum since \(since) ms, yet nothing was committed for \(quiet) ms (by \(now) ms); nodes \(states)")
        }
    }

    /// The set signing the leading honest node's next height, and who is jailed, for reports.
    func setDescription() -> String {
        guard let leader = leadingHonest else { return "no honest node" }
        let sets = leader.state.validatorSets()
        func name(_ key: PublicKey) -> String { nodes.firstIndex { $0.key.publicKey == key }.map { "\($0)" } ?? key.hex.prefix(8).description }
        let current = sets.current.map { "\(name($0.consensusKey))=\($0.power)" }.joined(separator: ",")
        let scheduled = sets.scheduled.map { "\($0.effectiveHeight):[\($0.validators.map { name($0.consensusKey) }.joined(separator: ","))]" }
        let jailed = nodes.indices.filter { leader.state.validator(gateways[$0].publicKey)?.jailed == true }
        return "set at h\(leader.height) [\(current)] since \(sets.currentSince), scheduled \(scheduled), jailed \(jailed)"
    }

    /// Operators of honest validators send `unjail` once their downtime jail has expired.
    func unjailExpired() {
        guard let leader = leadingHonest else { return }
        for (index, node) in nodes.enumerated() where node.behaviour == .honest && !node.crashed {
            let account = gateways[index]
            guard let record = leader.state.validator(account.publicKey), record.jailed, !record.tombstoned,
                  record.jailedUntilMilliseconds <= leader.state.global.timeMilliseconds else { continue }
            let nonce = leader.state.account(account.publicKey).nonce
            if let last = injectorNonces[account.publicKey], last.nonce == nonce, now - last.time < 5_000 { continue }
            injectorNonces[account.publicKey] = (nonce, now)
            let body = TransactionBody(chainID: chainID, sender: account.publicKey, nonce: nonce, fee: runtime.parameters.fees.minFee,
                                       call: .unjail)
            let transaction = try! body.signed(with: account, remembering: signatures).verified(chainID: chainID, cache: signatures)
            trace.record(now, 11, UInt64(index))
            for target in nodes where !target.crashed { target.addToMempool(transaction) }
        }
    }

    // MARK: events

    func handle(_ event: SimEvent) {
        switch event {
        case .deliver(let to, let from, let message):
            let node = nodes[to]
            guard !node.crashed, listens(node, to: from) else { return }
            messagesDelivered += 1
            if to < nodes.count { figures.delivered(kind: message.kind, bytes: wireBytes(message)) }
            trace.record(now, 1, UInt64(to), UInt64(from))
            receive(node, from: from, message)
            announceIfMoved(node)
        case .timeout(let index, let step, let height, let round, let epoch):
            let node = nodes[index]
            guard !node.crashed, node.epoch == epoch, node.height == height else { return }
            trace.record(now, 2, UInt64(index), height, UInt64(round))
            feed(node, .timeout(step, height: height, round: round))
            announceIfMoved(node)
        case .crash(let index):
            guard !inLiveness else { return }
            trace.record(now, 3, UInt64(index))
            nodes[index].crash()
        case .restart(let index):
            trace.record(now, 4, UInt64(index))
            restart(nodes[index])
        case .partition(let partition, let oneWayCut):
            guard !inLiveness else { return }
            trace.record(now, 5, UInt64(partition.count))
            groups = partition
            oneWay = oneWayCut
        case .heal:
            trace.record(now, 6)
            groups = nil
            oneWay = nil
        case .injectTransaction:
            guard config.transactionsPerSecond > 0 else { return }
            injectTransaction()
            let interval = max(1, 1_000 / config.transactionsPerSecond)
            queue.push(.injectTransaction, at: now + interval)
        case .regossip(let index):
            let node = nodes[index]
            queue.push(.regossip(index), at: now + config.gossipIntervalMilliseconds)
            guard !node.crashed, node.behaviour != .silent else { return }
            trace.record(now, 10, UInt64(index))
            gossipTick(node)
        case .startLiveness:
            guard !inLiveness else { return }
            // Heal everything: the honest core (more than 2/3 of the power) must now progress.
            trace.record(now, 7)
            inLiveness = true
            livenessStartTime = now
            groups = nil
            oneWay = nil
            lossPerMille = 0
            duplicatePerMille = 0
            for node in nodes where node.crashed && !keptDown.contains(node.index) { restart(node) }
            restoreKeptDownIfNeeded()
            livenessStartHeight = minimumHonestHeight
        case .operators:
            queue.push(.operators, at: now + 1_000)
            unjailExpired()
        case .outsider(let index):
            outsiderAct(index)
        case .begin(let index, let epoch):
            let node = nodes[index]
            guard !node.crashed, node.epoch == epoch, node.core == nil else { return }
            startHeight(node)
            announceIfMoved(node)
        }
    }

    func restart(_ node: SimNode) {
        guard node.crashed else { return }
        node.crashed = false
        node.epoch += 1
        reconnect(node)
        startHeight(node, replayingWAL: true)
        announceIfMoved(node)
        broadcast(from: node, .syncRequest(from: node.index, height: node.height))
    }

    // MARK: network

    func canReach(_ from: Int, _ to: Int) -> Bool {
        if from == to { return true }
        if let oneWay, oneWay.from.contains(from), oneWay.to.contains(to) { return false }
        guard let groups else { return true }
        return groups.contains { $0.contains(from) && $0.contains(to) }
    }

    func send(from: Int, to: Int, _ message: Message) {
        // Outsiders listen to nothing.
        guard to < nodes.count else { return }
        if from == to {
            queue.push(.deliver(to: to, from: from, message), at: now)
            return
        }
        guard canReach(from, to) else { return }
        // Outsiders dial whom they like; validators talk to their peers only.
        guard from >= nodes.count || topology.linked(from, to) else { return }
        if networkRandom.chance(perMille: lossPerMille) {
            // A lost message is a broken connection: both ends start their knowledge afresh.
            if from < nodes.count { resetLink(from, to) }
            return
        }
        let delay = linkLatency.map { $0.delay(from: from, to: to, random: &networkRandom) }
            ?? baseLatency + (jitter > 0 ? networkRandom.below(jitter + 1) : 0)
        queue.push(.deliver(to: to, from: from, message), at: now + delay)
        if networkRandom.chance(perMille: duplicatePerMille) {
            queue.push(.deliver(to: to, from: from, message), at: now + delay + networkRandom.below(50))
        }
    }

    func broadcast(from node: SimNode, _ message: Message, includingSelf: Bool = false) {
        if includingSelf { send(from: node.index, to: node.index, message) }
        for peer in node.neighbours { send(from: node.index, to: peer, message) }
    }

    // MARK: transactions

    func injectTransaction() {
        let leader = honest.filter { !$0.crashed }.max { $0.height < $1.height }
        guard let reference = leader else { return }
        let useGateway = random.chance(perMille: 500)
        let sender = useGateway ? gateways[random.int(0...(gateways.count - 1))] : users[random.int(0...(users.count - 1))]
        let nonce = reference.state.account(sender.publicKey).nonce
        if let last = injectorNonces[sender.publicKey], last.nonce == nonce, now - last.time < 5_000 { return }
        injectorNonces[sender.publicKey] = (nonce, now)
        let call = useGateway ? gatewayCall(sender, reference.state) : userCall(sender, reference.state)
        let body = TransactionBody(chainID: chainID, sender: sender.publicKey, nonce: nonce, fee: runtime.parameters.fees.minFee, call: call)
        // Signed through the shared cache: the nodes' checks of it are cache hits, as they are
        // for a transaction a real node receives once and then sees again in a block.
        let transaction = try! body.signed(with: sender, remembering: signatures).verified(chainID: chainID, cache: signatures)
        trace.record(now, 8, nonce)
        for node in nodes where !node.crashed { node.addToMempool(transaction) }
    }

    /// A gateway attests the pending events (three calls in four), proposes an event it has not voted on (all
    /// true: the workload is honest), or judges an open dispute it sits on the jury of.
    func gatewayCall(_ sender: SigningKey, _ state: ChainState) -> Call {
        let roll = random.int(0...999)
        if roll >= 250 {
            let unvoted = recentEvents.filter { id in
                state.event(id).map { $0.status == .pending && $0.header.author != sender.publicKey } == true
                    && state.eventVote(id, sender.publicKey) == nil
            }
            if !unvoted.isEmpty {
                return .attest(votes: unvoted.prefix(8).map { AttestationVote(eventID: $0, verdict: .valid) })
            }
            for id in recentDisputes where state.dispute(id)?.status == .open {
                if let jury = state.jury(id), let position = jury.index(of: sender.publicKey),
                   state.get(StateKey.disputeVote(id, juror: UInt16(position))) == nil {
                    return .voteDispute(disputeID: id, uphold: false)
                }
            }
        }
        let label = Array("sim-payload-\(now)".utf8)
        return .proposeEvent(parents: [], arTxID: ArTxID(Blake2b.hash256(label)), contentHash: SHA256.hash(label), kind: "sim:Event")
    }

    /// A user now and then disputes an accepted event (with the least bond allowed) or
    /// defends a bond round; otherwise it transfers.
    func userCall(_ sender: SigningKey, _ state: ChainState) -> Call {
        let roll = random.int(0...999)
        if roll < 40 {
            let accepted = recentEvents.filter { state.event($0)?.status == .accepted }
            if !accepted.isEmpty, let record = state.event(accepted[random.int(0...(accepted.count - 1))]) {
                let minimum = runtime.parameters.events.minDisputeBond
                let bond = max(minimum, record.largestBond.adding(record.largestBond) ?? minimum)
                return .dispute(eventID: record.header.id, bond: bond, reason: ArTxID(Blake2b.hash256(Array("sim-reason-\(now)".utf8))))
            }
        } else if roll < 100 {
            for id in recentDisputes {
                if let record = state.dispute(id), record.status == .open, record.mode == .bonds, record.defender == nil {
                    return .defend(disputeID: id, bond: record.bond)
                }
            }
        }
        return .transfer(to: users[random.int(0...(users.count - 1))].publicKey, amount: .acti(UInt64(random.int(1...100))))
    }

    /// Notes the events and disputes a committed block created (the workload's targets).
    func noteTargets(_ outcome: BlockOutcome, _ state: ChainState) {
        for change in outcome.eventChanges {
            if change.from == nil && !recentEvents.contains(change.eventID) { recentEvents.append(change.eventID) }
            if change.to == .disputed, let id = state.event(change.eventID)?.disputeID, !recentDisputes.contains(id) {
                recentDisputes.append(id)
            }
        }
        if recentEvents.count > 64 { recentEvents.removeFirst(recentEvents.count - 64) }
        if recentDisputes.count > 16 { recentDisputes.removeFirst(recentDisputes.count - 16) }
    }

    // MARK: node logic

    func startHeight(_ node: SimNode, replayingWAL: Bool = false) {
        if node.behaviour == .honest && heightStarted[node.height] == nil { heightStarted[node.height] = now }
        let sets = node.state.validatorSets()
        let members = sets.current.map { ValidatorSet.Member(key: $0.consensusKey, power: $0.power) }
        let validators = ValidatorSet(members)
        node.previousValidators = node.blocks.isEmpty ? nil
            : ValidatorSet(sets.previous)
        var core = ConsensusCore<Block>(height: node.height, validators: validators, me: node.key.publicKey,
                                        timeouts: TimeoutConfig())
        core.faultIgnoreLock = config.brokenLock && node.behaviour == .honest
        node.core = core
        node.validators = validators
        // Driver contract 3: a new height starts an empty WAL; a restart replays this height's
        // inputs first. The signer never signs conflicting bytes, so replayed votes go out as
        // stored.
        let inputs = replayingWAL ? node.wal : []
        node.wal.removeAll()
        let effects = node.core!.start()
        perform(node, effects)
        for input in inputs where node.core != nil && node.core!.height == core.height {
            // A replayed proposal is validated again: that rebuilds the executed block (and its
            // time) that the crash wiped from memory.
            if case .proposal(let proposal, _) = input {
                feed(node, .proposal(proposal, valid: validate(node, proposal.value)))
                continue
            }
            node.wal.append(input)
            let effects = node.core!.apply(input)
            perform(node, effects)
        }
        // Messages that arrived early for this height go back on the queue, due now: handled
        // here directly, a node catching up many heights from buffered blocks would recurse
        // through commit and startHeight once per height.
        let buffered = node.future.filter { $0.height == node.height }
        node.future.removeAll { $0.height <= node.height }
        for entry in buffered { queue.push(.deliver(to: node.index, from: entry.from, entry.message), at: now) }
    }

    /// The node's screening of a proposal or vote for its running height (as the node
    /// driver's): a forbidden one bans the sender, a redundant one is dropped. True to go on.
    func screen(_ node: SimNode, _ input: ConsensusInput<Block>, from: Int) -> Bool {
        guard let core = node.core else { return false }
        switch core.screen(input) {
        case .useful: return true
        case .redundant: return false
        case .forbidden(let reason):
            ban(node, from, reason: reason)
            return false
        }
    }

    func feed(_ node: SimNode, _ input: ConsensusInput<Block>) {
        guard node.core != nil else { return }
        if node.behaviour == .honest {
            // What the node's WAL takes: never a message from outside the set.
            switch input {
            case .vote(let signed) where !node.validators.contains(signed.vote.validator):
                checker.violation("node \(node.index) fed (and logged) a vote by non-validator \(signed.vote.validator.hex.prefix(8))")
            case .proposal(let proposal, _) where !node.validators.contains(proposal.proposer):
                checker.violation("node \(node.index) fed (and logged) a proposal by non-validator \(proposal.proposer.hex.prefix(8))")
            default: break
            }
        }
        node.wal.append(input)
        let effects = node.core!.apply(input)
        perform(node, effects)
    }

    func receive(_ node: SimNode, from: Int, _ message: Message) {
        switch message {
        case .proposal(let proposal):
            if proposal.height > node.height { return deferMessage(node, from: from, height: proposal.height, message) }
            guard proposal.height == node.height, screen(node, .proposal(proposal, valid: false), from: from) else { return }
            let valid = validate(node, proposal.value)
            feed(node, .proposal(proposal, valid: valid))
            relay(node, proposal: proposal, from: from)
        case .vote(let vote):
            if vote.vote.height > node.height { return deferMessage(node, from: from, height: vote.vote.height, message) }
            guard vote.vote.height == node.height, screen(node, .vote(vote), from: from) else { return }
            let id = node.core?.voteID(vote)
            feed(node, .vote(vote))
            if let id { relay(node, vote: vote, id: id, from: from) }
        case .decided(let block, let certificate):
            if block.header.height > node.height { return deferMessage(node, from: from, height: block.header.height, message) }
            guard block.header.height == node.height else { return }
            guard certificate.blockID == block.id,
                  (try? certificate.verify(validators: node.validators, chainID: chainID, cache: signatures)) != nil else {
                return ban(node, from, reason: "a block whose certificate does not verify")
            }
            guard validate(node, block) else { return }
            commit(node, block, certificate)
        case .evidence(let evidence):
            if case .invalid(let reason) = node.evidence.add(evidence, runtime: runtime, state: node.state, cache: signatures) {
                ban(node, from, reason: "invalid evidence: \(reason)")
            }
        case .syncRequest(let requester, let height):
            guard height < node.height else { return }
            for h in height..<min(node.height, height + 20) {
                let (block, certificate) = node.blocks[Int(h - 1)]
                send(from: node.index, to: requester, .decided(block, certificate))
            }
        case .transaction(let transaction):
            node.addToMempool(transaction)
        case .roundState(let state):
            receive(node, roundState: state, from: from)
        }
    }

    /// A message for a later height. Decided blocks and messages for the very next height are
    /// kept (bounded); anything further only tells us we are behind. Either way we ask the
    /// sender for the blocks we lack, at most every 500 ms per peer (a lost request or answer
    /// is simply asked again).
    func deferMessage(_ node: SimNode, from: Int, height: UInt64, _ message: Message) {
        var keep = height == node.height + 1
        // Blocks are kept a window ahead only: a liar's blocks for heights far away would
        // crowd out the real ones.
        if case .decided = message { keep = height <= node.height + 64 }
        if keep && node.future.count < 2_000 { node.future.append((height, from, message)) }
        let last = node.lastSyncRequest[from]
        if last == nil || now >= last! + 500 {
            node.lastSyncRequest[from] = now
            send(from: node.index, to: from, .syncRequest(from: node.index, height: node.height))
        }
    }

    /// The chain below the node's next height, as the block factory sees it.
    func tip(_ node: SimNode) -> BlockFactory.Tip {
        BlockFactory.Tip(state: node.state, previous: node.blocks.last.map { ($0.0.header, $0.1) },
                         previousValidators: node.previousValidators, validators: node.validators)
    }

    /// valid(v), by the shared block factory; the execution is kept for the commit.
    func validate(_ node: SimNode, _ block: Block) -> Bool {
        if let cached = node.executed[block.id] { return cached.outcome.stateRoot == block.header.stateRoot }
        guard let executed = factory.validate(block, on: tip(node)) else { return false }
        node.executed[block.id] = executed
        node.blockTimes[block.id] = block.header.timeMilliseconds
        return true
    }

    func buildBlock(_ node: SimNode, round: UInt32) -> Block? {
        guard let (block, executed) = factory.build(on: tip(node), proposer: node.key.publicKey, candidates: node.mempool,
                                                    maxTransactions: 50, evidence: node.evidence.items) else { return nil }
        node.executed[block.id] = executed
        node.blockTimes[block.id] = block.header.timeMilliseconds
        return block
    }

    func perform(_ node: SimNode, _ effects: [ConsensusEffect<Block>]) {
        let height = node.height
        for effect in effects {
            // A decision inside an earlier effect moved the node on: the rest belong to a
            // finished height.
            guard node.core != nil, node.height == height else { return }
            switch effect {
            case .requestValue(let height, let round):
                guard node.behaviour != .silent, let block = buildBlock(node, round: round) else { continue }
                feed(node, .proposeValue(block, height: height, round: round))
            case .signProposal(let proposal):
                guard node.behaviour != .silent else { continue }
                guard (try? node.signer.signProposal(height: proposal.height, round: proposal.round,
                                                     bytes: ProposalSigning.bytes(proposal))) != nil else { continue }
                if node.behaviour == .equivocate, let other = alternativeBlock(node, proposal) {
                    // Two different proposals, one to each half.
                    let second = Proposal(height: proposal.height, round: proposal.round, value: other,
                                          validRound: proposal.validRound, proposer: proposal.proposer)
                    for peer in node.neighbours {
                        send(from: node.index, to: peer, .proposal(peer % 2 == 0 ? proposal : second))
                    }
                } else {
                    for peer in node.gossip.ownProposal(height: proposal.height, round: proposal.round) {
                        send(from: node.index, to: peer, .proposal(proposal))
                    }
                    node.lastProposal = proposal
                }
                feed(node, .proposal(proposal, valid: true))
            case .signVote(let kind, let height, let round, let blockID):
                vote(node, kind: kind, height: height, round: round, blockID: blockID)
            case .scheduleTimeout(let step, let height, let round, let milliseconds):
                let scaled = milliseconds * node.timerRatePerMille / 1_000
                queue.push(.timeout(node: node.index, step, height: height, round: round, epoch: node.epoch), at: now + scaled)
            case .decide(let block, let certificate):
                commit(node, block, certificate)
                return
            case .evidence(let evidence):
                if node.behaviour == .honest {
                    checker.observedEquivocation(evidence.validator, at: now)
                    _ = node.evidence.add(evidence, runtime: runtime, state: node.state, cache: signatures)
                    broadcast(from: node, .evidence(evidence))
                }
            }
        }
    }

    func alternativeBlock(_ node: SimNode, _ proposal: Proposal<Block>) -> Block? {
        // The same block without its transactions: a second valid value for this round (none
        // if the block was already empty).
        let saved = node.mempool
        node.mempool = []
        defer { node.mempool = saved }
        guard let block = buildBlock(node, round: proposal.round), block.id != proposal.value.id else { return nil }
        return block
    }

    func vote(_ node: SimNode, kind: VoteKind, height: UInt64, round: UInt32, blockID: Hash256?) {
        guard node.behaviour != .silent else { return }
        // A precommit's timestamp must be after the time of the block it votes for, so the
        // next block's time (their median) moves forward whatever the clocks say.
        let floor = blockID.flatMap { node.blockTimes[$0] } ?? node.state.global.timeMilliseconds
        let clock = UInt64(max(0, Int64(now) + node.clockOffset)) + 1_767_225_600_000
        let timestamp = max(clock, floor + 1)
        let chosen = node.behaviour == .nilVoter ? nil : blockID
        let vote = Vote(kind: kind, height: height, round: round, blockID: chosen, timestampMilliseconds: timestamp,
                        validator: node.key.publicKey)
        if node.behaviour == .equivocate {
            // Two conflicting votes, one to each half; bypasses the signer on purpose.
            let other = Vote(kind: kind, height: height, round: round, blockID: chosen == nil ? Blake2b.hash256(Array("x\(height)".utf8)) : nil,
                             timestampMilliseconds: timestamp, validator: node.key.publicKey)
            let first = vote.signed(with: node.key, chainID: chainID)
            let second = other.signed(with: node.key, chainID: chainID)
            checker.byzantineEquivocated(node.key.publicKey)
            checker.recordPrevote(first, power: node.validators.power(of: node.key.publicKey) ?? 0)
            checker.recordPrevote(second, power: node.validators.power(of: node.key.publicKey) ?? 0)
            for peer in node.neighbours {
                send(from: node.index, to: peer, .vote(peer % 2 == 0 ? first : second))
            }
            feed(node, .vote(first))
            return
        }
        // Honest: the signer refuses any regression and any second value for one step; a
        // repeat of the same step re-sends the stored signature.
        guard let signed = try? node.signer.signVote(vote) else { return }
        checker.honestSigned(signed, validators: node.validators)
        if let id = node.core?.voteID(signed) {
            for peer in node.gossip.ownVote(id, height: height) { send(from: node.index, to: peer, .vote(signed)) }
        }
        feed(node, .vote(signed))
    }

    func commit(_ node: SimNode, _ block: Block, _ certificate: CommitCertificate) {
        guard block.header.height == node.height else { return }
        guard let executed = node.executed[block.id] ?? (validate(node, block) ? node.executed[block.id] : nil) else {
            if node.behaviour == .honest { checker.violation("node \(node.index) decided block \(block.header.height) that does not execute") }
            return
        }
        node.state.commit(executed)
        node.blocks.append((block, certificate))
        node.executed.removeAll()
        node.blockTimes.removeAll()
        node.evidence.update(after: node.state, runtime: runtime, cache: signatures)
        let included = Set(block.transactions.map { $0.hash })
        node.mempool.removeAll { included.contains($0.hash) || $0.body.nonce < node.state.account($0.body.sender).nonce }
        trace.record(now, 9, UInt64(node.index), block.header.height)
        if node.behaviour == .honest {
            if let started = heightStarted[block.header.height] { figures.finalized(afterMilliseconds: now - started) }
            lastHonestCommit = now
            checker.honestCommitted(node: node.index, height: block.header.height, blockID: block.id,
                                    stateRoot: block.header.stateRoot, executed: executed, state: node.state,
                                    transactions: block.transactions)
            noteTargets(executed.outcome, node.state)
        }
        // No block is pushed to every peer on commit (the node announces only its height):
        // peers that lag ask for blocks, and the periodic gossip re-sends the last one.
        node.epoch += 1
        // A node that alone holds a quorum decides each height as it starts it: past a few
        // nested starts the next one waits a commit pause of 100 ms, as the node's
        // `timeout_commit_ms` paces an idle chain (without it the stack would grow a frame
        // chain per height, and virtual time would stand still).
        if startDepth >= 8 {
            node.core = nil
            queue.push(.begin(node.index, epoch: node.epoch), at: now + 100)
            return
        }
        startDepth += 1
        startHeight(node)
        startDepth -= 1
    }
}

/// One simulated validator. Fields marked durable survive a crash (the store, the WAL and
/// the signer state); the rest is lost.
final class SimNode {
    let index: Int
    let key: SigningKey
    let behaviour: Behaviour
    let clockOffset: Int64
    let timerRatePerMille: UInt64

    // Durable.
    var state: ChainState
    var blocks: [(Block, CommitCertificate)] = []
    /// The node's real signer over an in-memory store that survives the node's crashes.
    let signer: PersistentSigner
    var wal: [ConsensusInput<Block>] = []

    // Volatile.
    var core: ConsensusCore<Block>? = nil
    var validators: ValidatorSet
    var mempool: [VerifiedTransaction] = []
    var evidence = EvidencePool()
    var executed: [Hash256: ExecutedBlock] = [:]
    var blockTimes: [Hash256: UInt64] = [:]
    var future: [(height: UInt64, from: Int, message: Message)] = []
    /// Virtual time of the last sync request sent to each peer.
    var lastSyncRequest: [Int: UInt64] = [:]
    var lastProposal: Proposal<Block>? = nil
    var bans = Bans()
    /// The peers this node is connected to, and their consensus keys.
    var neighbours: [Int] = []
    var linkKeys: Set<PublicKey> = []
    /// What each peer holds (volatile: a restart reconnects from nothing).
    var gossip = GossipKnowledge<Int>()
    /// The position last announced, and the one seen at the last gossip interval.
    var announced: RoundState.Position? = nil
    var positionAtTick: RoundState.Position? = nil
    var crashed = false
    /// Bumped on every height change and restart, so timers of an earlier life are ignored.
    var epoch: UInt64 = 0

    init(index: Int, key: SigningKey, behaviour: Behaviour, state: ChainState, clockOffset: Int64, timerRatePerMille: UInt64,
         chainID: String, signatures: SignatureCache) {
        // A fresh MemoryStore cannot fail to be read, so the signer always opens.
        signer = try! PersistentSigner(key: key, chainID: chainID, store: MemoryStore(), signatures: signatures)
        self.index = index
        self.key = key
        self.behaviour = behaviour
        self.state = state
        self.clockOffset = clockOffset
        self.timerRatePerMille = timerRatePerMille
        let sets = state.validatorSets()
        validators = ValidatorSet(sets.current)
    }

    var height: UInt64 { UInt64(blocks.count) + 1 }

    /// The set that signed the last committed height (its certificate is the next block's
    /// last commit), read from the committed state.
    /// The set that signed the last committed height, kept by `startHeight` (the state only
    /// changes on a commit, which starts the next height).
    var previousValidators: ValidatorSet?

    func crash() {
        crashed = true
        core = nil
        mempool = []
        evidence = EvidencePool()
        executed = [:]
        blockTimes = [:]
        future = []
        lastSyncRequest = [:]
        lastProposal = nil
        bans = Bans()
        announced = nil
        positionAtTick = nil
        epoch += 1
    }

    func addToMempool(_ transaction: VerifiedTransaction) {
        guard mempool.count < 5_000, !mempool.contains(where: { $0.hash == transaction.hash }) else { return }
        mempool.append(transaction)
    }

}

/// Watches every honest step.
struct Checker {
    var violations: [String] = []
    var decided: [UInt64: (blockID: Hash256, stateRoot: Hash256, node: Int)] = [:]
    var honestVotes: [VoteSlot: Hash256?] = [:]
    var observed: [PublicKey: UInt64] = [:]
    var equivocators: Set<PublicKey> = []
    var doubleSignSlashes: [PublicKey: Int] = [:]
    var downtimeSlashes = 0
    var eventsAccepted = 0
    var eventsFinalized = 0
    var disputesOpened = 0
    var downtimeJails = 0
    var unjails = 0
    var slashedHeights: Set<UInt64> = []
    var auditedHeights: Set<UInt64> = []

    /// The knowledge-chain rules, checked at the first commit of each height: the runtime's
    /// rule audit and an independent photograph of each epoch's electorate.
    let parameters: ChainParameters
    var witness: ElectorateWitness

    init(genesis: ChainState, parameters: ChainParameters) {
        self.parameters = parameters
        witness = ElectorateWitness(state: genesis)
    }

    mutating func violation(_ text: String) { violations.append(text) }

    /// One validator's vote of one kind in one round.
    struct VoteSlot: Hashable {
        let validator: PublicKey
        let height: UInt64
        let round: UInt32
        let kind: VoteKind
    }

    /// A value at (height, round).
    struct RoundValue: Hashable {
        let height: UInt64
        let round: UInt32
        let value: Hash256
    }

    struct ValidatorHeight: Hashable {
        let validator: PublicKey
        let height: UInt64
    }

    /// Prevote power per (height, round, value) over everything anyone signed.
    var prevotePower: [RoundValue: UInt64] = [:]
    /// A prevote counted once: (validator, height, round) and its value.
    struct PrevoteOf: Hashable {
        let slot: VoteSlot
        let value: Hash256
    }
    var prevoteCountedValues: Set<PrevoteOf> = []
    /// Each honest validator's non-nil precommits per height: (round, value).
    var honestPrecommits: [ValidatorHeight: [(UInt32, Hash256)]] = [:]

    mutating func recordPrevote(_ signed: SignedVote, power: UInt64) {
        let vote = signed.vote
        guard vote.kind == .prevote, let id = vote.blockID else { return }
        // Each (validator, round, value) counts once; an equivocator's second prevote in a
        // round (another value) adds its power to that value, as the first did to its own.
        let counted = VoteSlot(validator: vote.validator, height: vote.height, round: vote.round, kind: .prevote)
        let value = RoundValue(height: vote.height, round: vote.round, value: id)
        guard prevoteCountedValues.insert(PrevoteOf(slot: counted, value: id)).inserted else { return }
        prevotePower[value, default: 0] += power
    }

    /// Conflicting votes by an honest validator: two different votes for one step (a double
    /// sign), or a prevote for w after precommitting v ≠ w in an earlier round of the same
    /// height with no polka (more than 2/3 prevotes) for w in between (amnesia: the lock
    /// rule broken). Both are what accountable-safety analyses of Tendermint look for.
    mutating func honestSigned(_ signed: SignedVote, validators: ValidatorSet) {
        let vote = signed.vote
        let slot = VoteSlot(validator: vote.validator, height: vote.height, round: vote.round, kind: vote.kind)
        if let previous = honestVotes.updateValue(vote.blockID, forKey: slot), previous != vote.blockID {
            violation("honest validator \(vote.validator.hex.prefix(8)) signed two different \(vote.kind) votes at height \(vote.height) round \(vote.round)")
        }
        recordPrevote(signed, power: validators.power(of: vote.validator) ?? 0)
        let key = ValidatorHeight(validator: vote.validator, height: vote.height)
        guard let id = vote.blockID else { return }
        switch vote.kind {
        case .precommit:
            honestPrecommits[key, default: []].append((vote.round, id))
        case .prevote:
            for (lockedRound, lockedValue) in honestPrecommits[key] ?? [] where lockedRound < vote.round && lockedValue != id {
                let justified = (lockedRound..<vote.round).contains { round in
                    validators.isQuorum(prevotePower[RoundValue(height: vote.height, round: round, value: id)] ?? 0)
                }
                if !justified {
                    violation("honest validator \(vote.validator.hex.prefix(8)) precommitted \(lockedValue.hex.prefix(8)) in round \(lockedRound) of height \(vote.height), then prevoted \(id.hex.prefix(8)) in round \(vote.round) with no polka for it in between (lock broken)")
                }
            }
        }
    }

    mutating func byzantineEquivocated(_ key: PublicKey) { equivocators.insert(key) }

    mutating func observedEquivocation(_ key: PublicKey, at time: UInt64) {
        if observed[key] == nil { observed[key] = time }
    }

    mutating func honestCommitted(node: Int, height: UInt64, blockID: Hash256, stateRoot: Hash256, executed: ExecutedBlock, state: ChainState,
                                  transactions: [SignedTransaction]) {
        let outcome = executed.outcome
        if let existing = decided[height] {
            if existing.blockID != blockID {
                violation("fork at height \(height): node \(existing.node) committed \(existing.blockID.hex.prefix(8)), node \(node) committed \(blockID.hex.prefix(8))")
            } else if existing.stateRoot != stateRoot || outcome.stateRoot != stateRoot {
                violation("state roots differ at height \(height) between nodes \(existing.node) and \(node)")
            }
            return
        }
        decided[height] = (blockID, stateRoot, node)
        for slash in outcome.slashes where slash.reason == .doubleSign {
            doubleSignSlashes[slash.address, default: 0] += 1
        }
        for slash in outcome.slashes where slash.reason == .downtime {
            downtimeSlashes += 1
            if state.validator(slash.address)?.jailed == true { downtimeJails += 1 }
        }
        for (transaction, receipt) in zip(transactions, outcome.receipts) where receipt.succeeded {
            if case .unjail = transaction.body.call { unjails += 1 }
        }
        if !auditedHeights.contains(height) {
            auditedHeights.insert(height)
            if !state.auditSupply().isConserved { violation("supply not conserved at height \(height)") }
            for problem in state.auditRules(outcome, parameters: parameters, changed: Array(executed.changes.keys)).prefix(3) {
                violation("height \(height), rule audit: \(problem)")
            }
            for problem in witness.observe(outcome, state: state).prefix(3) { violation("height \(height), electorate: \(problem)") }
            for change in outcome.eventChanges {
                if change.to == .accepted && change.from == .pending { eventsAccepted += 1 }
                if change.to == .finalized { eventsFinalized += 1 }
                if change.to == .disputed { disputesOpened += 1 }
            }
        }
    }

    /// Every equivocation an honest node saw before `time` ends as committed evidence and
    /// exactly one slash; nobody else is slashed for double signing.
    func evidenceViolations(before time: UInt64, addressOf: [PublicKey: PublicKey]) -> [String] {
        var problems: [String] = []
        for (address, count) in doubleSignSlashes.sorted(by: { $0.key < $1.key }) {
            if count > 1 { problems.append("validator \(address.hex.prefix(8)) was slashed \(count) times for double signing") }
            if !equivocators.contains(where: { addressOf[$0] == address }) {
                problems.append("validator \(address.hex.prefix(8)) was slashed for double signing but never equivocated")
            }
        }
        for (key, seenAt) in observed.sorted(by: { $0.key < $1.key }) where seenAt < time {
            guard let address = addressOf[key], doubleSignSlashes[address] == 1 else {
                problems.append("equivocation by \(key.hex.prefix(8)) seen at \(seenAt) ms never ended in a slash")
                continue
            }
        }
        return problems
    }
}

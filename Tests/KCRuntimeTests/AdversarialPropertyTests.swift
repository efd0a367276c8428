import Foundation
import KCCodec
import KCCrypto
@testable import KCRuntime
import KCTestSupport
import KCTypes
import Testing

/// The adversarial property test of the knowledge-chain rules (issue 16; specs/runtime.md;
/// ADR 0011). Each seed builds a chain with random gateway stakes, random validators, and a
/// coalition holding a random share of both; the coalition then plays random sequences of
/// every call at random moments (lies in its votes, bogus disputes, defences of its own false
/// events, unbonds under its votes, double signs, missed blocks), while honest gateways vote
/// truthfully at random moments, honest jurors judge truthfully, and an honest user defends
/// true events in bond rounds and disputes false ones that got accepted. After every block the
/// `RuleChecker` below looks for a broken rule.
struct AdversarialPropertyTests {
    /// Seeds per batch; `KC_RULE_SEEDS` (total over the 8 batches) and `KC_RULE_SEED_BASE`
    /// widen or move the run (Scripts/soak-rules.sh).
    static let batches = 8
    static var seedsPerBatch: UInt64 {
        let total = ProcessInfo.processInfo.environment["KC_RULE_SEEDS"].flatMap { UInt64($0) } ?? 2_000
        return max(1, total / UInt64(batches))
    }
    static var seedBase: UInt64 { ProcessInfo.processInfo.environment["KC_RULE_SEED_BASE"].flatMap { UInt64($0) } ?? 0 }

    @Test(arguments: 0..<batches)
    func aCoalitionPlayingEveryCallBreaksNoRule(batch: Int) throws {
        let first = Self.seedBase + UInt64(batch) * Self.seedsPerBatch
        var failures: [String] = []
        var minorities = 0, majorities = 0, decided = 0, disputes = 0, bondRounds = 0, upheld = 0, slashes = 0
        for seed in first..<(first + Self.seedsPerBatch) {
            var game = try AdversarialGame(seed: seed)
            try game.play()
            if !game.checker.violations.isEmpty {
                failures.append("seed \(seed): " + game.checker.violations.prefix(3).joined(separator: " | "))
            }
            if game.coalitionIsMinority { minorities += 1 } else { majorities += 1 }
            decided += game.checker.decidedEvents
            disputes += game.checker.disputesOpened
            bondRounds += game.checker.bondRounds
            upheld += game.checker.disputesUpheld
            slashes += game.checker.slashCount
        }
        print("rule seeds \(first)..<\(first + Self.seedsPerBatch): coalition at most 1/3 in \(minorities), above in \(majorities); events decided \(decided), disputes \(disputes) (bond rounds \(bondRounds), upheld \(upheld)), slashes \(slashes)")
        #expect(failures.isEmpty, "\(failures.count) seeds broke a rule:\n\(failures.prefix(5).joined(separator: "\n"))")
        // The games exercise what they claim to: both sides of the 1/3 line, decisions,
        // disputes and slashes (a workload that stopped doing these would pass vacuously).
        let seeds = Int(Self.seedsPerBatch)
        if seeds >= 200 {
            #expect(minorities > seeds / 10 && majorities > seeds / 10, "minorities \(minorities), majorities \(majorities)")
            #expect(decided > seeds * 5 && disputes > seeds / 2 && bondRounds > 0 && upheld > 0 && slashes > seeds / 10,
                    "decided \(decided), disputes \(disputes), bond rounds \(bondRounds), upheld \(upheld), slashes \(slashes) over \(seeds) seeds")
        }
    }

    /// Each deliberately broken rule is caught by the checker within a bounded number of seeds.
    @Test(arguments: BrokenRule.allCases)
    func aBrokenRuleIsCaught(rule: BrokenRule) throws {
        var caughtBy: [String] = []
        for seed in UInt64(0)..<400 where caughtBy.isEmpty {
            var game = try AdversarialGame(seed: seed, brokenRule: rule)
            try game.play()
            caughtBy = game.checker.violations
        }
        print("broken rule \(rule) caught: \(caughtBy.first ?? "no")")
        #expect(!caughtBy.isEmpty, "\(rule) went unnoticed over 400 seeds")
    }
}

/// One seed's game: the chain, the players and the checker.
struct AdversarialGame {
    static let gatewayKeys = (0..<10).map { testKey("adv-gateway-\($0)") }
    static let consensusKeys = (0..<10).map { testKey("adv-consensus-\($0)") }
    static let judgeKeys = (0..<3).map { testKey("adv-judge-\($0)") }
    static let judgeConsensusKeys = (0..<3).map { testKey("adv-judge-consensus-\($0)") }
    static let coalitionUsers = (0..<2).map { testKey("adv-coalition-user-\($0)") }
    static let honestUser = testKey("adv-honest-user")

    let seed: UInt64
    var chain: TestChain
    var random: SplitMix64
    var checker: RuleChecker

    let honestGateways: [SigningKey]
    let coalitionGateways: [SigningKey]
    let honestJudges: [SigningKey]
    let coalition: [SigningKey]
    /// Per seed: how often a coalition validator skips signing (per mille), how many calls the
    /// coalition plays per block at most, how long the game runs.
    let missPerMille: UInt64
    let coalitionTempo: UInt64
    let blocks: Int

    /// Honest actions due at a block time: (time, actor, call, event the call concerns).
    struct Plan {
        let time: UInt64
        let actor: SigningKey
        let call: Call
    }
    var plans: [Plan] = []
    var labels = 0

    init(seed: UInt64, brokenRule: BrokenRule? = nil) throws {
        self.seed = seed
        var random = SplitMix64(seed: seed &* 0x9E37_79B9 &+ 1)
        var parameters = TestChain.parameters()
        let validatorGateways = 3 + Int(random.below(3))       // 3...5 gateway-validators
        let plainGateways = 1 + Int(random.below(5))           // 1...5 gateways that are not validators
        let judges = Int(random.below(4))                      // 0...3 validators that are not gateways
        parameters.staking.maxValidators = UInt32(validatorGateways + judges + 2)
        func stake() -> UInt64 { 10_000 + random.below(191) * 1_000 }
        let gatewayStakes = (0..<(validatorGateways + plainGateways)).map { _ in stake() }
        let judgeStakes = (0..<judges).map { _ in stake() }

        // The coalition: a random share (0 to 90%) of gateway stake, taken greedily over a
        // shuffled order; each judge joins with the same probability.
        let sharePerMille = random.below(901)
        var order = Array(0..<gatewayStakes.count)
        for index in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(index, Int(random.below(UInt64(index + 1)))) }
        let totalStake = gatewayStakes.reduce(0, +)
        var coalitionStake: UInt64 = 0
        var inCoalition = Set<Int>()
        for index in order where (coalitionStake + gatewayStakes[index]) * 1_000 <= sharePerMille * totalStake {
            inCoalition.insert(index)
            coalitionStake += gatewayStakes[index]
        }
        let coalitionJudges = Set((0..<judges).filter { _ in random.below(1_000) < sharePerMille })

        var accounts = [GenesisAccount(address: Self.honestUser.publicKey, balance: .acti(200_000_000))]
        accounts += Self.coalitionUsers.map { GenesisAccount(address: $0.publicKey, balance: .acti(2_000_000)) }
        var validators: [GenesisValidator] = []
        for index in 0..<gatewayStakes.count {
            accounts.append(GenesisAccount(address: Self.gatewayKeys[index].publicKey, balance: .acti(1_000_000)))
            if index < validatorGateways {
                validators.append(GenesisValidator(moniker: "gw\(index)", address: Self.gatewayKeys[index].publicKey,
                                                   consensusKey: Self.consensusKeys[index].publicKey,
                                                   nodeID: testKey("adv-node-\(index)").publicKey,
                                                   stake: .acti(gatewayStakes[index]), gateway: true))
            }
        }
        for index in 0..<judges {
            accounts.append(GenesisAccount(address: Self.judgeKeys[index].publicKey, balance: .acti(1_000_000)))
            validators.append(GenesisValidator(moniker: "j\(index)", address: Self.judgeKeys[index].publicKey,
                                               consensusKey: Self.judgeConsensusKeys[index].publicKey,
                                               nodeID: testKey("adv-judge-node-\(index)").publicKey,
                                               stake: .acti(judgeStakes[index]), gateway: false))
        }
        let genesis = Genesis(chainID: TestChain.chainID, genesisTimeUnixMilliseconds: TestChain.startTime, parameters: parameters,
                              accounts: accounts, validators: validators)
        var chain = TestChain(genesis: genesis, brokenRule: brokenRule)
        chain.auditing = false
        let gateways = (0..<gatewayStakes.count).map { Self.gatewayKeys[$0] }
        honestGateways = gateways.indices.filter { !inCoalition.contains($0) }.map { gateways[$0] }
        coalitionGateways = gateways.indices.filter { inCoalition.contains($0) }.map { gateways[$0] }
        honestJudges = (0..<judges).filter { !coalitionJudges.contains($0) }.map { Self.judgeKeys[$0] }
        coalition = coalitionGateways + coalitionJudges.sorted().map { Self.judgeKeys[$0] } + Self.coalitionUsers
        missPerMille = random.below(600)
        coalitionTempo = 1 + random.below(4)
        blocks = 70 + Int(random.below(40))

        checker = RuleChecker(state: chain.state, parameters: parameters,
                              coalition: Set(coalition.map(\.publicKey)), honestUser: Self.honestUser.publicKey)
        // Epoch 0: the plain gateways bond and register; events start in epoch 1, whose
        // electorate holds every gateway.
        var setup: [VerifiedTransaction] = []
        for index in validatorGateways..<gatewayStakes.count {
            setup.append(chain.transaction(gateways[index], .bond(amount: .acti(gatewayStakes[index]))))
            setup.append(chain.transaction(gateways[index], .registerGateway))
        }
        self.chain = chain
        self.random = random
        try step(setup, advance: 1_000)
        while self.chain.state.global.epoch < 1 { try step([], advance: 1_000) }
        checker.measureStart(self.chain.state)
    }

    /// True when the coalition held at most 1/3 of the gateway stake and of the validator
    /// power when the game started (the checker judges each event and dispute by its own
    /// electorate and jury, which the coalition's later bonds and slashes may move).
    var coalitionIsMinority: Bool { checker.coalitionMinorityAtStart }

    mutating func play() throws {
        for _ in 0..<blocks {
            let advance = 500 + random.below(3_500)
            let time = chain.time + advance
            var transactions = honestTransactions(at: time)
            for _ in 0..<random.below(coalitionTempo + 1) { transactions.append(coalitionTransaction()) }
            // Now and then the coalition's gateways vote as a bloc: all the same lie on one
            // pending event, in one block.
            if random.below(100) < 35, !coalitionGateways.isEmpty {
                let pending = checker.eventOrder.filter { chain.state.event($0)?.status == .pending }
                let falseOnes = pending.filter { checker.events[$0]?.truth == false }
                let id = (random.below(10) < 7 ? pick(falseOnes) : nil) ?? pick(pending) ?? anyEvent()
                let verdict: Verdict = checker.events[id]?.truth == false ? .valid : .invalid
                for gateway in coalitionGateways {
                    transactions.append(chain.transaction(gateway, .attest(votes: [AttestationVote(eventID: id, verdict: verdict)])))
                }
            }
            // Interleave honest and coalition calls at random, each sender's in nonce order.
            for index in stride(from: transactions.count - 1, to: 0, by: -1) {
                transactions.swapAt(index, Int(random.below(UInt64(index + 1))))
            }
            var bySender: [PublicKey: [VerifiedTransaction]] = [:]
            for transaction in transactions { bySender[transaction.body.sender, default: []].append(transaction) }
            for sender in bySender.keys { bySender[sender]!.sort { $0.body.nonce > $1.body.nonce } }
            transactions = transactions.map { bySender[$0.body.sender]!.removeLast() }
            try step(transactions, advance: advance)
        }
    }

    /// Executes one block: honest signers always sign, coalition validators skip at random,
    /// and now and then one of them has double-signed the previous height.
    mutating func step(_ transactions: [VerifiedTransaction], advance: UInt64) throws {
        let previous = chain.state.validatorSets().previous
        var signers: [PublicKey] = []
        var missed: Set<PublicKey> = []
        for entry in previous {
            if checker.coalition.contains(entry.address) && random.below(1_000) < missPerMille {
                missed.insert(entry.address)
            } else {
                signers.append(entry.consensusKey)
            }
        }
        chain.signers = signers
        var evidence: [DoubleSignEvidence] = []
        var equivocators: [PublicKey: UInt64] = [:]
        if chain.height > 0 && random.below(100) < 3 {
            let candidates = previous.filter { checker.coalition.contains($0.address) && chain.state.validator($0.address)?.tombstoned == false }
            if !candidates.isEmpty, let key = Self.signingKey(consensus: candidates[Int(random.below(UInt64(candidates.count)))].consensusKey) {
                evidence.append(doubleSign(key, height: chain.height))
                let entry = previous.first { $0.consensusKey == key.publicKey }!
                equivocators[entry.address] = entry.power
            }
        }
        let before = chain.state
        let outcome: BlockOutcome
        do {
            outcome = try chain.block(transactions, advance: advance, evidence: evidence)
        } catch {
            checker.violation("height \(chain.height + 1): the block was refused: \(error)")
            return
        }
        checker.observe(outcome, before: before, after: chain.state, changed: chain.lastExecuted.map { Array($0.changes.keys) } ?? [],
                        missed: missed, equivocators: equivocators)
        planHonestResponses(outcome)
    }

    static func signingKey(consensus: PublicKey) -> SigningKey? {
        (consensusKeys + judgeConsensusKeys + coalitionConsensusKeys).first { $0.publicKey == consensus }
    }
    static let coalitionConsensusKeys = (0..<14).map { testKey("adv-coalition-consensus-\($0)") }

    // MARK: honest players

    mutating func honestTransactions(at time: UInt64) -> [VerifiedTransaction] {
        var transactions: [VerifiedTransaction] = []
        // Honest authors propose true events, with parents among true events still alive.
        if random.below(100) < 20, !honestGateways.isEmpty {
            let author = honestGateways[Int(random.below(UInt64(honestGateways.count)))]
            let alive = checker.events.filter { $0.value.truth && chain.state.event($0.key).map { !$0.status.isFinal || $0.status == .finalized } == true }
                .keys.sorted()
            var parents: [Hash256] = []
            for _ in 0..<random.below(3) where !alive.isEmpty {
                let parent = alive[Int(random.below(UInt64(alive.count)))]
                if !parents.contains(parent) { parents.append(parent) }
            }
            transactions.append(propose(author, parents: parents, truth: true))
        }
        var due: [Plan] = []
        plans.removeAll { plan in
            guard plan.time <= time else { return false }
            due.append(plan)
            return true
        }
        // Votes of one gateway go in one attest call; every other plan is its own call.
        var votes: [PublicKey: (SigningKey, [AttestationVote])] = [:]
        for plan in due {
            switch plan.call {
            case .attest(let list):
                votes[plan.actor.publicKey, default: (plan.actor, [])].1 += list
            case .dispute(let eventID, _, let reason):
                // The bond is the least the rule asks at the moment of the call.
                guard let record = chain.state.event(eventID), record.status == .accepted else { continue }
                let bond = max(chain.parameters.events.minDisputeBond, record.largestBond.adding(record.largestBond) ?? record.largestBond)
                transactions.append(chain.transaction(plan.actor, .dispute(eventID: eventID, bond: bond, reason: reason)))
            default:
                transactions.append(chain.transaction(plan.actor, plan.call))
            }
        }
        for (_, entry) in votes.sorted(by: { $0.key < $1.key }) {
            transactions.append(chain.transaction(entry.0, .attest(votes: entry.1)))
        }
        return transactions
    }

    /// Schedules what honest players do about what the block changed: vote on new events,
    /// judge and defend new disputes, dispute false events that were accepted.
    mutating func planHonestResponses(_ outcome: BlockOutcome) {
        let parameters = chain.parameters.events
        for change in outcome.eventChanges {
            guard let truth = checker.events[change.eventID]?.truth, let record = chain.state.event(change.eventID) else { continue }
            switch change.to {
            case .pending where change.from == nil:
                for gateway in honestGateways where gateway.publicKey != record.header.author {
                    guard (checker.witness.weight(gateway.publicKey, epoch: record.electorateEpoch) ?? .zero) > .zero else { continue }
                    let delay = random.below(parameters.attestationPeriodMilliseconds * 3 / 4)
                    plans.append(Plan(time: record.proposedAtMilliseconds + delay, actor: gateway,
                                      call: .attest(votes: [AttestationVote(eventID: change.eventID, verdict: truth ? .valid : .invalid)])))
                }
            case .accepted where !truth:
                let delay = random.below(parameters.challengeWindowMilliseconds / 2)
                plans.append(Plan(time: chain.time + delay, actor: Self.honestUser,
                                  call: .dispute(eventID: change.eventID, bond: .zero, reason: arTxID("honest-dispute-\(labels)"))))
            default:
                break
            }
        }
        for dispute in checker.disputesOpenedInLastBlock {
            guard let record = chain.state.dispute(dispute), let truth = checker.events[record.eventID]?.truth else { continue }
            switch record.mode {
            case .validators:
                let jury = chain.state.jury(dispute)?.members ?? []
                for juror in honestGateways + honestJudges where jury.contains(where: { $0.address == juror.publicKey }) {
                    let delay = random.below(parameters.revotePeriodMilliseconds / 2)
                    plans.append(Plan(time: chain.time + delay, actor: juror, call: .voteDispute(disputeID: dispute, uphold: !truth)))
                }
            case .bonds where truth:
                let delay = random.below(parameters.revotePeriodMilliseconds / 3)
                plans.append(Plan(time: chain.time + delay, actor: Self.honestUser, call: .defend(disputeID: dispute, bond: record.bond)))
            case .bonds:
                break
            }
        }
    }

    mutating func propose(_ author: SigningKey, parents: [Hash256], truth: Bool) -> VerifiedTransaction {
        labels += 1
        let label = "adv-\(seed)-\(labels)"
        let transaction = chain.transaction(author, .proposeEvent(parents: parents, arTxID: arTxID(label),
                                                                 contentHash: SHA256.hash(Array(label.utf8)), kind: "adv:Claim"))
        let header = EventHeader(author: author.publicKey, nonce: transaction.body.nonce, height: chain.height + 1, parents: parents,
                                 arTxID: arTxID(label), contentHash: SHA256.hash(Array(label.utf8)), kind: "adv:Claim")
        checker.expect(header.id, truth: truth)
        return transaction
    }

    // MARK: the coalition

    mutating func pick<T>(_ items: [T]) -> T? { items.isEmpty ? nil : items[Int(random.below(UInt64(items.count)))] }

    /// An event id the coalition plays with: mostly one in `status` (when given), else any
    /// known event, sometimes one that is not on chain.
    mutating func anyEvent(preferring status: EventStatus? = nil) -> Hash256 {
        if random.below(20) == 0 { return Blake2b.hash256(Array("adv-nowhere-\(random.next())".utf8)) }
        if let status, random.below(5) > 0 {
            let matching = checker.eventOrder.filter { chain.state.event($0)?.status == status }
            if let id = pick(matching) { return id }
        }
        return pick(checker.eventOrder) ?? Blake2b.hash256([0])
    }

    /// A dispute the coalition plays with: mostly an open one.
    mutating func anyDispute() -> Hash256? {
        let open = checker.disputeOrder.filter { chain.state.dispute($0)?.status == .open }
        return random.below(5) > 0 ? pick(open) ?? pick(checker.disputeOrder) : pick(checker.disputeOrder)
    }

    mutating func coalitionTransaction() -> VerifiedTransaction {
        let actor = pick(coalition)!
        let stake = chain.state.stake(actor.publicKey)
        let lie = random.below(10) < 8
        let call: Call
        switch random.below(13) {
        case 0, 1:
            var parents: [Hash256] = []
            for _ in 0..<(random.below(2) == 0 ? 0 : random.below(4)) { parents.append(anyEvent()) }
            return propose(actor, parents: parents, truth: random.below(4) == 0)
        case 2, 3:
            var votes: [AttestationVote] = []
            for _ in 0...random.below(4) {
                let id = anyEvent(preferring: .pending)
                let truth = checker.events[id]?.truth ?? false
                votes.append(AttestationVote(eventID: id, verdict: truth != lie ? .valid : .invalid))
            }
            call = .attest(votes: votes)
        case 4:
            let id = anyEvent(preferring: .accepted)
            let largest = chain.state.event(id)?.largestBond ?? .zero
            let minimum = chain.parameters.events.minDisputeBond
            let doubled = largest.adding(largest) ?? largest
            let bond: Amount
            switch random.below(4) {
            case 0: bond = minimum
            case 1: bond = max(minimum, doubled)
            case 2: bond = max(minimum, doubled).subtracting(.init(units: 1)) ?? minimum
            default: bond = .acti(1 + random.below(20_000))
            }
            call = .dispute(eventID: id, bond: bond, reason: arTxID("coalition-\(random.next())"))
        case 5:
            guard let dispute = anyDispute() else { return noop(actor) }
            let truth = chain.state.dispute(dispute).flatMap { checker.events[$0.eventID]?.truth } ?? true
            call = .voteDispute(disputeID: dispute, uphold: truth == lie)
        case 6:
            guard let dispute = anyDispute(), let record = chain.state.dispute(dispute) else { return noop(actor) }
            let bond = random.below(3) == 0 ? record.bond.subtracting(.init(units: 1)) ?? record.bond : record.bond
            call = .defend(disputeID: dispute, bond: bond)
        case 7:
            let whole = UInt64(stake.bonded.units / Amount.unitsPerACTI)
            call = .unbond(amount: .acti(random.below(2) == 0 ? whole : 1 + random.below(max(1, whole))))
        case 8:
            call = .bond(amount: .acti(1 + random.below(100_000)))
        case 9:
            call = .withdrawUnbonded
        case 10:
            call = random.below(2) == 0 ? .registerGateway : .unjail
        case 11:
            let index = Int(random.below(UInt64(Self.coalitionConsensusKeys.count)))
            call = .registerValidator(consensusKey: Self.coalitionConsensusKeys[index].publicKey)
        default:
            let to = pick(coalition + honestGateways + [Self.honestUser])!
            call = .transfer(to: to.publicKey, amount: .acti(1 + random.below(50_000)))
        }
        return chain.transaction(actor, call)
    }

    mutating func noop(_ actor: SigningKey) -> VerifiedTransaction { chain.transaction(actor, .withdrawUnbonded) }
}

/// Checks every rule of issue 16 after each block, collecting violations instead of failing
/// at the first (a failing seed then names all it broke).
struct RuleChecker {
    let parameters: ChainParameters
    let coalition: Set<PublicKey>
    let honestUser: PublicKey
    var witness: ElectorateWitness
    var violations: [String] = []
    /// Whether the coalition held at most 1/3 of gateway stake and of validator power when
    /// the game proper started (set by `measureStart`).
    var coalitionMinorityAtStart = false

    /// Events the players proposed (by id, once on chain) with whether they are true, and
    /// whether the coalition held at most 1/3 of their electorate.
    struct Known {
        let truth: Bool
        var coalitionMinority: Bool? = nil
        /// The honest gateways (all of them vote, the author excepted) hold more than 2/3.
        var honestSupermajority = false
    }
    var events: [Hash256: Known] = [:]
    var eventOrder: [Hash256] = []
    var expected: [Hash256: Bool] = [:]
    var disputeOrder: [Hash256] = []
    var disputesOpenedInLastBlock: [Hash256] = []
    /// Each dispute's event and whether the coalition held at most 1/3 of its set's power.
    var disputeMinority: [Hash256: Bool] = [:]
    var decidedEvents = 0
    var disputesOpened = 0
    var bondRounds = 0
    var disputesUpheld = 0
    var slashCount = 0

    init(state: ChainState, parameters: ChainParameters, coalition: Set<PublicKey>, honestUser: PublicKey) {
        self.parameters = parameters
        self.coalition = coalition
        self.honestUser = honestUser
        witness = ElectorateWitness(state: state)
    }

    mutating func measureStart(_ state: ChainState) {
        var coalitionStake = Amount.zero, totalStake = Amount.zero
        for gateway in state.gatewayRegistry {
            let stake = state.stake(gateway).bonded
            totalStake = totalStake.adding(stake)!
            if coalition.contains(gateway) { coalitionStake = coalitionStake.adding(stake)! }
        }
        let set = state.validatorSets().current
        let power = set.reduce(UInt64(0)) { $0 + $1.power }
        let coalitionPower = set.filter { coalition.contains($0.address) }.reduce(UInt64(0)) { $0 + $1.power }
        coalitionMinorityAtStart = coalitionStake.units * 3 <= totalStake.units && coalitionPower * 3 <= power
    }

    mutating func violation(_ text: String) { violations.append(text) }

    mutating func expect(_ id: Hash256, truth: Bool) { expected[id] = truth }

    mutating func observe(_ outcome: BlockOutcome, before: ChainState, after state: ChainState, changed: [StoreKey],
                          missed: Set<PublicKey>, equivocators: [PublicKey: UInt64]) {
        let height = outcome.height
        func report(_ problems: [String], _ what: String) {
            for problem in problems.prefix(3) { violation("height \(height), \(what): \(problem)") }
        }
        // Supply, every entry decodes, the runtime's own rule audit, the independent electorate.
        let supply = state.auditSupply()
        if !supply.isConserved { violation("height \(height): supply not conserved: \(supply)") }
        report(state.auditRules(outcome, parameters: parameters, changed: changed), "rule audit")
        report(witness.observe(outcome, state: state), "electorate witness")

        disputesOpenedInLastBlock = []
        for change in outcome.eventChanges {
            if change.from == nil, let truth = expected.removeValue(forKey: change.eventID) {
                events[change.eventID] = Known(truth: truth, coalitionMinority: coalitionMinority(change.eventID, state),
                                               honestSupermajority: honestSupermajority(change.eventID, state))
                eventOrder.append(change.eventID)
            }
            if change.to.isFinal { decidedEvents += 1 }
            checkSafety(change, state: state)
        }
        for id in eventOrder {
            guard let record = state.event(id), let latest = record.disputeID, !disputeOrder.contains(latest) else { continue }
            disputeOrder.append(latest)
            disputesOpenedInLastBlock.append(latest)
            disputesOpened += 1
            if state.dispute(latest)?.mode == .bonds { bondRounds += 1 }
            disputeMinority[latest] = juryMinority(latest, state)
        }
        checkSlashes(outcome, before: before, after: state, missed: missed, equivocators: equivocators)
    }

    /// The coalition's share of an event's electorate (the witness's photograph).
    func coalitionMinority(_ id: Hash256, _ state: ChainState) -> Bool? {
        guard let record = state.event(id), let total = witness.total(epoch: record.electorateEpoch) else { return nil }
        var share = Amount.zero
        for member in coalition { share = share.adding(witness.weight(member, epoch: record.electorateEpoch) ?? .zero)! }
        return share.units * 3 <= total.units
    }

    /// Whether the honest gateways that may vote on an event (not its author) hold more than
    /// 2/3 of its electorate: they all vote in time, so a true event must then be accepted.
    func honestSupermajority(_ id: Hash256, _ state: ChainState) -> Bool {
        guard let record = state.event(id), let total = witness.total(epoch: record.electorateEpoch),
              let photograph = witness.photographs[record.electorateEpoch] else { return false }
        var honest = Amount.zero
        for (gateway, weight) in photograph where !coalition.contains(gateway) && gateway != record.header.author {
            honest = honest.adding(weight)!
        }
        return honest.units * 3 > total.units * 2
    }

    /// The coalition's share of the power of the set a validator-mode dispute was opened in.
    func juryMinority(_ dispute: Hash256, _ state: ChainState) -> Bool {
        guard let record = state.dispute(dispute) else { return false }
        let coalitionPower = (state.jury(dispute)?.members ?? []).filter { coalition.contains($0.address) }.reduce(UInt128(0)) { $0 + UInt128($1.power) }
        return record.mode == .validators && coalitionPower * 3 <= record.setPower
    }

    /// While the coalition holds at most 1/3 of an event's electorate (and of the jury's set),
    /// no false event is accepted or finalized and no true event is rejected by a vote.
    mutating func checkSafety(_ change: EventStatusChange, state: ChainState) {
        guard let known = events[change.eventID], let record = state.event(change.eventID) else { return }
        let id = change.eventID.hex.prefix(12)
        if known.truth && known.honestSupermajority && change.to == .expired {
            violation("height \(change.height): true event \(id) expired although honest gateways holding over 2/3 of its electorate voted valid in time")
        }
        guard known.coalitionMinority == true else { return }
        if !known.truth && (change.to == .accepted || change.to == .finalized) {
            violation("height \(change.height): false event \(id) became \(change.to.name) while the coalition held at most 1/3 of its electorate")
        }
        guard known.truth && change.to == .rejected else { return }
        switch record.resolution {
        case .attestation:
            violation("height \(change.height): true event \(id) rejected by attestation while the coalition held at most 1/3 of its electorate")
        case .dispute:
            // Upheld by jurors: only a coalition above 1/3 of the set can do it. Upheld in a
            // bond round: the honest user defends every true event, so never.
            let upheld = disputeOrder.filter { state.dispute($0)?.eventID == change.eventID && state.dispute($0)?.status == .upheld }
            for dispute in upheld where disputeMinority[dispute] != false || state.dispute(dispute)?.mode == .bonds {
                violation("height \(change.height): true event \(id) rejected by dispute \(dispute.hex.prefix(8)) (\(state.dispute(dispute)!.mode)) that the coalition could not decide")
            }
        default:
            break
        }
    }

    /// Every slash lands on stake that equivocated, missed its blocks, or backed the losing
    /// side of an upheld dispute, and never exceeds the stake that backed the offence.
    mutating func checkSlashes(_ outcome: BlockOutcome, before: ChainState, after state: ChainState,
                               missed: Set<PublicKey>, equivocators: [PublicKey: UInt64]) {
        let height = outcome.height
        var lostDispute: [PublicKey: Amount] = [:]
        var upheldEvents: [Hash256] = []
        for change in outcome.eventChanges where change.to == .rejected && state.event(change.eventID)?.resolution == .dispute {
            upheldEvents.append(change.eventID)
            disputesUpheld += 1
        }
        for slash in outcome.slashes {
            slashCount += 1
            let who = slash.address.hex.prefix(8)
            switch slash.reason {
            case .doubleSign:
                guard let power = equivocators[slash.address] else {
                    violation("height \(height): \(who) slashed for double signing, but it did not equivocate")
                    continue
                }
                if slash.amount > Amount(units: UInt128(power) * Amount.unitsPerACTI) {
                    violation("height \(height): double-sign slash \(slash.amount) exceeds the \(power) ACTI of power it signed with")
                }
            case .downtime:
                if !coalition.contains(slash.address) {
                    violation("height \(height): \(who) slashed for downtime, but it never missed a block")
                }
            case .lostDispute:
                var backing = Amount.zero
                for event in upheldEvents {
                    guard let record = state.event(event) else { continue }
                    if record.header.author == slash.address { backing = backing.adding(record.authorStake)! }
                    if let vote = state.eventVote(event, slash.address), vote.verdict == .valid { backing = backing.adding(vote.weight)! }
                }
                lostDispute[slash.address] = (lostDispute[slash.address] ?? .zero).adding(slash.amount)!
                if backing == .zero {
                    violation("height \(height): \(who) slashed for a lost dispute, but it neither authored nor attested an event upheld against in this block")
                } else if lostDispute[slash.address]! > backing {
                    violation("height \(height): \(who) lost \(lostDispute[slash.address]!) to disputes, more than the \(backing) that backed its votes")
                }
            case .disputeBond:
                let posted = disputeOrder.contains { id in
                    guard let record = state.dispute(id) else { return false }
                    return record.disputer == slash.address || record.defender == slash.address
                }
                if !posted { violation("height \(height): \(who) lost a dispute bond it never posted") }
            }
            if slash.address == honestUser && slash.reason != .disputeBond {
                violation("height \(height): the honest user, who holds no stake, was slashed for \(slash.reason.name)")
            }
        }
        // A slash never takes more than the account had at stake.
        for (address, taken) in lostDispute {
            let had = before.stake(address)
            if taken > had.bonded.adding(had.unbondingTotal)! {
                violation("height \(height): \(address.hex.prefix(8)) lost \(taken), more than its \(had.bonded) bonded and \(had.unbondingTotal) unbonding")
            }
        }
    }
}

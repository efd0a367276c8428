import KCCodec
import KCCrypto
@testable import KCRuntime
import KCTypes
import Testing

/// Keys for tests, derived from a label so every run uses the same ones.
func testKey(_ label: String) -> SigningKey { SigningKey(seed: Blake2b.hash256(Array(label.utf8))) }

func arTxID(_ label: String) -> ArTxID { ArTxID(Blake2b.hash256(Array("artx/\(label)".utf8))) }

/// A chain driven block by block through the public runtime interface. After every block it
/// checks that supply is conserved and that the gateway-stake total matches the registry.
struct TestChain {
    static let chainID = "membria-test-1"
    static let startTime: UInt64 = 1_767_225_600_000
    static let fee = Amount(units: 1_000)

    let runtime: Runtime
    var state: ChainState
    var time: UInt64
    var nonces: [PublicKey: UInt64] = [:]
    /// Consensus keys that sign each block (default: the whole current set).
    var signers: [PublicKey]? = nil
    /// Whole-state audits after every block (off for bulk set-up in the scale tests, which
    /// audit at the moments that matter).
    var auditing = true
    var outcomes: [BlockOutcome] = []

    /// Gateway-validators g0..g(n-1), each 100,000 ACTI bonded and 1,000,000 ACTI liquid;
    /// users u0..u3 with 1,000,000 ACTI.
    static let gateways = (0..<4).map { testKey("gateway-\($0)") }
    static let consensusKeys = (0..<4).map { testKey("consensus-\($0)") }
    static let users = (0..<4).map { testKey("user-\($0)") }

    static func parameters() -> ChainParameters {
        var parameters = ChainParameters(
            block: .init(maxBytes: 1 << 20, maxTransactions: 2_000, maxTransactionBytes: 64 << 10),
            staking: .init(minValidatorStake: .acti(10_000), minGatewayStake: .acti(10_000), maxValidators: 4,
                           unbondingPeriodMilliseconds: 120_000, epochLengthBlocks: 10, validatorSetChangeDelayBlocks: 2),
            slashing: .init(doubleSignSlashBasisPoints: 500, downtimeSlashBasisPoints: 100, signedBlocksWindow: 10,
                            minSignedBasisPoints: 5_000, downtimeJailMilliseconds: 30_000, disputeSlashBasisPoints: 1_000,
                            maxEvidenceAgeBlocks: 20, maxEvidenceAgeMilliseconds: 60_000),
            events: .init(maxParents: 4, maxKindBytes: 32, attestationPeriodMilliseconds: 20_000,
                          challengeWindowMilliseconds: 30_000, revotePeriodMilliseconds: 15_000,
                          minDisputeBond: .acti(100), disputerRewardBasisPoints: 5_000),
            rewards: .init(blockReward: .acti(1), operatorsShareBasisPoints: 7_000, treasuryShareBasisPoints: 3_000,
                           gatewayShareBasisPoints: 5_000),
            fees: .init(minFee: fee))
        parameters.staking.maxValidators = 4
        return parameters
    }

    /// Validators that are not gateways (only with `genesis(judges:)`): j0..j3.
    static let judges = (0..<4).map { testKey("judge-\($0)") }

    /// The four gateway-validators, plus `judges` validators that are not gateways, each with
    /// `judgeStake` bonded (the set then holds up to 4 + judges members).
    static func genesis(parameters: ChainParameters = parameters(), judges: Int = 0, judgeStake: UInt64 = 150_000,
                        extraAccounts: [GenesisAccount] = []) -> Genesis {
        var parameters = parameters
        parameters.staking.maxValidators = UInt32(4 + judges)
        var accounts: [GenesisAccount] = []
        var validators: [GenesisValidator] = []
        for index in 0..<gateways.count {
            accounts.append(GenesisAccount(address: gateways[index].publicKey, balance: .acti(1_000_000)))
            validators.append(GenesisValidator(moniker: "g\(index)", address: gateways[index].publicKey,
                                               consensusKey: consensusKeys[index].publicKey,
                                               nodeID: testKey("node-\(index)").publicKey, stake: .acti(100_000), gateway: true))
        }
        for index in 0..<judges {
            accounts.append(GenesisAccount(address: Self.judges[index].publicKey, balance: .acti(1_000_000)))
            validators.append(GenesisValidator(moniker: "j\(index)", address: Self.judges[index].publicKey,
                                               consensusKey: testKey("judge-consensus-\(index)").publicKey,
                                               nodeID: testKey("judge-node-\(index)").publicKey, stake: .acti(judgeStake), gateway: false))
        }
        for user in users { accounts.append(GenesisAccount(address: user.publicKey, balance: .acti(1_000_000))) }
        accounts += extraAccounts
        return Genesis(chainID: chainID, genesisTimeUnixMilliseconds: startTime, parameters: parameters,
                       accounts: accounts, validators: validators)
    }

    /// `brokenRule`: one rule deliberately broken (the mutation tests of the property test).
    init(genesis: Genesis = TestChain.genesis(), brokenRule: BrokenRule? = nil) {
        var runtime = Runtime(genesis: genesis)
        runtime.brokenRule = brokenRule
        self.runtime = runtime
        state = runtime.genesisState()
        time = genesis.genesisTimeUnixMilliseconds
    }

    var height: UInt64 { state.global.height }

    var parameters: ChainParameters { runtime.parameters }

    /// Signs a call from `key` with the next nonce.
    mutating func transaction(_ key: SigningKey, _ call: Call, fee: Amount = TestChain.fee) -> VerifiedTransaction {
        let nonce = nonces[key.publicKey, default: state.account(key.publicKey).nonce]
        nonces[key.publicKey] = nonce + 1
        let signed = TransactionBody(chainID: TestChain.chainID, sender: key.publicKey, nonce: nonce, fee: fee, call: call).signed(with: key)
        return try! signed.verified(chainID: TestChain.chainID)
    }

    /// Executes and commits one block `advance` ms after the previous one.
    @discardableResult
    mutating func block(_ transactions: [VerifiedTransaction] = [], advance: UInt64 = 1_000,
                        evidence: [DoubleSignEvidence] = []) throws -> BlockOutcome {
        time += advance
        let signers = self.signers ?? state.validatorSets().previous.map(\.consensusKey)
        let context = BlockContext(height: height + 1, timeMilliseconds: time, lastCommitSigners: signers, evidence: evidence)
        let executed: ExecutedBlock
        do {
            executed = try runtime.execute(transactions, context: context, on: state)
        } catch {
            nonces = [:]  // the block was refused: forget the nonces it consumed
            throw error
        }
        state.commit(executed)
        lastExecuted = executed
        if auditing { audit(executed.outcome) }
        outcomes.append(executed.outcome)
        return executed.outcome
    }

    /// One transaction in its own block; returns its receipt.
    @discardableResult
    mutating func submit(_ key: SigningKey, _ call: Call, advance: UInt64 = 1_000) throws -> Receipt {
        let outcome = try block([transaction(key, call)], advance: advance)
        return outcome.receipts[0]
    }

    /// Advances block by block until block time reaches `target`.
    mutating func advance(to target: UInt64, step: UInt64 = 1_000) throws {
        while time + step <= target { try block(advance: step) }
        if time < target { try block(advance: target - time) }
    }

    /// The last block executed (its write set, for the cost checks).
    var lastExecuted: ExecutedBlock? = nil

    /// Supply, the gateway-stake total and every rule of `ChainState.auditRules`.
    func audit(_ outcome: BlockOutcome) {
        let audit = state.auditSupply()
        #expect(audit.isConserved, "supply not conserved at height \(outcome.height): \(audit)")
        checkGatewayStake()
        let problems = state.auditRules(outcome, parameters: runtime.parameters, changed: lastExecuted.map { Array($0.changes.keys) })
        #expect(problems.isEmpty, "rule audit at height \(outcome.height): \(problems.prefix(5))")
    }

    func checkGatewayStake() {
        var total = Amount.zero
        for gateway in state.gatewayRegistry { total = total.adding(state.stake(gateway).bonded)! }
        #expect(total == state.global.gatewayStake, "gateway stake total drifted from the registry")
    }

    func balance(_ key: SigningKey) -> Amount { state.account(key.publicKey).balance }
    func status(_ id: Hash256) -> EventStatus? { state.event(id)?.status }

    /// `voter` attests `verdict` on `id` in its own block; returns the receipt.
    @discardableResult
    mutating func attest(_ voter: SigningKey, _ id: Hash256, _ verdict: Verdict = .valid) throws -> Receipt {
        try submit(voter, .attest(votes: [AttestationVote(eventID: id, verdict: verdict)]))
    }
    func bonded(_ key: SigningKey) -> Amount { state.stake(key.publicKey).bonded }

    /// Proposes an event from `author` and returns its id.
    mutating func propose(_ author: SigningKey, parents: [Hash256] = [], label: String, kind: String = "schema:Answer") throws -> Hash256 {
        let transaction = transaction(author, .proposeEvent(parents: parents, arTxID: arTxID(label),
                                                            contentHash: SHA256.hash(Array(label.utf8)), kind: kind))
        let outcome = try block([transaction])
        #expect(outcome.receipts[0].succeeded, "propose failed: \(outcome.receipts[0].message)")
        let header = EventHeader(author: author.publicKey, nonce: transaction.body.nonce, height: outcome.height, parents: parents,
                                 arTxID: arTxID(label), contentHash: SHA256.hash(Array(label.utf8)), kind: kind)
        #expect(state.event(header.id) != nil)
        return header.id
    }
}

import KCCodec
import KCConsensus
import KCCrypto
import KCNetwork
import KCNode
import KCRuntime
import KCStorage
import KCTypes

/// A real chain for state-sync tests: four validators of equal power sign every block through
/// the block factory and the runtime; validators listed as offline never sign, so the runtime
/// jails them (a short downtime window) and the validator set changes. Each block is stored
/// with its light block on set changes and a snapshot every `snapshotEvery` heights, as a
/// node stores them.
final class StateSyncChain {
    let keys: [SigningKey]
    let genesis: Genesis
    let runtime: Runtime
    let factory: BlockFactory
    let blocks: BlockStore
    private(set) var state: ChainState
    /// The state after each height, for checking restores.
    private(set) var roots: [UInt64: Hash256] = [:]
    var snapshotEvery: UInt64
    var snapshotKeep: Int
    var chunkBytes: Int

    init(label: String = "state-sync", validators: Int = 4, snapshotEvery: UInt64 = 10, snapshotKeep: Int = 2,
         chunkBytes: Int = 512) throws {
        keys = (0..<validators).map { SigningKey(seed: Blake2b.hash256(Array("\(label)/validator/\($0)".utf8))) }
        var parameters = LocalGenesis.developmentParameters
        parameters.slashing.signedBlocksWindow = 4
        genesis = Genesis(chainID: "membria-\(label)", genesisTimeUnixMilliseconds: 1_000, parameters: parameters,
                          accounts: keys.map { GenesisAccount(address: $0.publicKey, balance: .acti(1_000)) },
                          validators: keys.enumerated().map { index, key in
                              GenesisValidator(moniker: "v\(index)", address: key.publicKey, consensusKey: key.publicKey,
                                               nodeID: key.publicKey, stake: .acti(10_000), gateway: true)
                          })
        runtime = Runtime(genesis: genesis)
        factory = BlockFactory(runtime: runtime, signatures: SignatureCache())
        blocks = BlockStore(store: MemoryStore())
        state = try blocks.open(genesis: genesis, runtime: runtime)
        self.snapshotEvery = snapshotEvery
        self.snapshotKeep = snapshotKeep
        self.chunkBytes = chunkBytes
        roots[0] = state.root
    }

    var genesisValidators: ValidatorSet { try! blocks.tip(for: runtime.genesisState()).validators }

    /// Decides `count` more blocks (a transfer in each), signed by every member not offline.
    func produce(_ count: Int, offline: Set<Int> = []) throws {
        for _ in 0..<count {
            let tip = try blocks.tip(for: state)
            let sender = keys[Int(tip.height) % keys.count]
            let transfer = TransactionBody(chainID: genesis.chainID, sender: sender.publicKey, nonce: state.account(sender.publicKey).nonce,
                                           fee: runtime.parameters.fees.minFee,
                                           call: .transfer(to: keys[(Int(tip.height) + 1) % keys.count].publicKey, amount: .acti(1)))
                .signed(with: sender)
            let verified = try transfer.verified(chainID: genesis.chainID)
            guard let (block, executed) = factory.build(on: tip, proposer: keys[0].publicKey, candidates: [verified], maxTransactions: 10,
                                                        evidence: []) else { throw Failure(message: "no block at \(tip.height)") }
            let signers = keys.enumerated().filter { !offline.contains($0.offset) && tip.validators.contains($0.element.publicKey) }
                .map(\.element).sorted { $0.publicKey < $1.publicKey }
            let precommits = signers.map {
                Vote(kind: .precommit, height: tip.height, round: 0, blockID: block.id,
                     timestampMilliseconds: block.header.timeMilliseconds + 1_000, validator: $0.publicKey).signed(with: $0, chainID: genesis.chainID)
            }
            let certificate = CommitCertificate(height: tip.height, round: 0, blockID: block.id, precommits: precommits)
            let change = LightClient.changeRecord(header: block.header, certificate: certificate, signedBy: tip.validators, executed: executed,
                                                  on: state)
            try blocks.commit(block, certificate: certificate, executed: executed, change: change, state: &state)
            roots[tip.height] = state.root
            if snapshotEvery > 0 && tip.height % snapshotEvery == 0 {
                try blocks.saveSnapshot(of: state, lightBlock: change ?? LightBlock(header: block.header, certificate: certificate, nextSets: nil),
                                        keep: snapshotKeep, chunkBytes: chunkBytes)
            }
        }
    }

    struct Failure: Error { let message: String }

    /// The light-client walk against this chain's store, as a joining node runs it.
    func walk(to target: UInt64) throws -> (reached: LightBlock, client: LightClient, steps: Int) {
        var client = LightClient(chainID: genesis.chainID, genesisValidators: genesisValidators)
        var steps = 0
        while true {
            steps += 1
            if let reached = try client.accept(try blocks.lightBlock(after: client.height, target: target), target: target) {
                return (reached, client, steps)
            }
        }
    }

    /// A joining node's store: empty but for this chain's genesis, and the restore that writes
    /// a snapshot into it (by default a batch for every 1,000 bytes of entries, so the small
    /// states of these tests are written in several).
    func joiner(store: any KeyValueStore = MemoryStore(), flushBytes: Int = 1_000) throws -> (blocks: BlockStore, restore: SnapshotRestore) {
        let joined = BlockStore(store: store)
        _ = try joined.open(genesis: genesis, runtime: runtime)
        return (joined, SnapshotRestore(blocks: joined, runtime: runtime, flushBytes: flushBytes))
    }

    /// What a server node answers to a state-sync request (nil: a message it does not answer).
    func answer(_ message: WireMessage) throws -> WireMessage? {
        switch message {
        case .snapshotsRequest: return .snapshots(Array(try blocks.snapshots().prefix(WireMessage.maxSnapshotsPerMessage)))
        case .chunkRequest(let height, let index):
            return .chunk(height: height, index: index, bytes: try blocks.chunk(height: height, index: index) ?? [])
        case .lightBlockRequest(let after, let target):
            return .lightBlock(after: after, target: target, try blocks.lightBlock(after: after, target: target))
        default: return nil
        }
    }
}

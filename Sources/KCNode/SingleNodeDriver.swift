import KCCodec
import KCConsensus
import KCCrypto
import KCRuntime
import KCStorage
import KCTypes

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs the consensus core for a chain this node can decide alone (its validator set has this
/// node as its only member), following the driver contract in ConsensusCore.swift: every input
/// goes to the WAL first, own votes synced; the signer persists before signing; decided blocks
/// are stored with their state in one synced batch; after a crash the WAL of the current
/// height is replayed. Time comes from the host clock; timers run in a simple loop.
///
/// Networking (P2P, and so chains with several validators) is not built yet: `run` refuses a
/// validator set with other members instead of waiting for votes that cannot arrive.
public final class SingleNodeDriver {
    public struct Failure: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    let home: NodeHome
    let config: NodeConfig
    let genesis: Genesis
    let runtime: Runtime
    let factory: BlockFactory
    let store: RocksDBStore
    let blocks: BlockStore
    let signer: PersistentSigner
    let wal: ConsensusWAL
    let key: SigningKey
    let log: (String) -> Void
    var state: ChainState
    var core: ConsensusCore<Block>? = nil
    var executed: [Hash256: ExecutedBlock] = [:]
    var blockTimes: [Hash256: UInt64] = [:]
    var timers: [(deadline: UInt64, sequence: UInt64, input: ConsensusInput<Block>?)] = []
    var timerSequence: UInt64 = 0
    var replaying = false

    public init(home: NodeHome, log: @escaping (String) -> Void) throws {
        self.home = home
        self.log = log
        let configText: String
        switch FileIO.read(path: home.configPath, limit: 1 << 20) {
        case .success(let bytes): configText = String(decoding: bytes, as: UTF8.self)
        case .failure(let failure): throw Failure(message: "cannot read \(home.configPath): \(failure.reason)")
        }
        config = try NodeConfig.parse(configText)
        genesis = try home.loadGenesis()
        runtime = Runtime(genesis: genesis)
        factory = BlockFactory(runtime: runtime, signatures: SignatureCache())
        key = try home.loadKey(.validator)
        if case .failure(let failure) = FileIO.makeDirectories(home.dataDirectory, mode: 0o700) {
            throw Failure(message: failure.reason)
        }
        store = try RocksDBStore(path: home.dataDirectory + "/store")
        blocks = BlockStore(store: store)
        state = try blocks.open(genesis: genesis, runtime: runtime)
        signer = try PersistentSigner(key: key, chainID: genesis.chainID, store: store)
        wal = try ConsensusWAL(path: home.dataDirectory + "/consensus.wal")
        if wal.truncatedBytes > 0 {
            log("warning: cut \(wal.truncatedBytes) damaged byte(s) from the end of the consensus WAL; continuing")
        }
    }

    /// Milliseconds on the monotonic clock, for timers.
    static func monotonicMilliseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000 + UInt64(time.tv_nsec) / 1_000_000
    }

    /// Wall-clock milliseconds since 1970, for vote timestamps only.
    static func wallMilliseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return UInt64(time.tv_sec) * 1_000 + UInt64(time.tv_nsec) / 1_000_000
    }

    /// Runs until `shouldStop` returns true (checked at least every 100 ms).
    public func run(shouldStop: () -> Bool) throws {
        let set = state.validatorSets().current
        guard set.count == 1, set[0].consensusKey == key.publicKey else {
            throw Failure(message: "this chain has \(set.count) validator(s); running with peers needs P2P, which this build does not have yet. `node start` can run a one-validator chain (make one with `node init` without --genesis)")
        }
        let recovered = wal.recovered.compactMap { try? WALRecord.decode(exactly: $0) }
        try startHeight(replay: WALRecord.replayable(recovered, nextHeight: state.global.height + 1))
        while !shouldStop() {
            timers.sort { ($0.deadline, $0.sequence) < ($1.deadline, $1.sequence) }
            guard let next = timers.first else { usleep(100_000); continue }
            let now = Self.monotonicMilliseconds()
            if next.deadline > now {
                usleep(UInt32(min(next.deadline - now, 100)) * 1_000)
                continue
            }
            timers.removeFirst()
            if let input = next.input { try feed(input) } else { try startHeight(replay: []) }
        }
        log("stopping at height \(state.global.height)")
    }

    func startHeight(replay: [WALRecord]) throws {
        let height = state.global.height + 1
        let set = state.validatorSets().current
        let validators = ValidatorSet(set.map { .init(key: $0.consensusKey, power: $0.power) })
        core = ConsensusCore(height: height, validators: validators, me: key.publicKey, timeouts: config.timeouts)
        executed.removeAll()
        blockTimes.removeAll()
        if replay.isEmpty {
            try wal.reset()
            try wal.append(WALRecord.height(height).canonicalBytes, sync: true)
        } else {
            log("replaying \(replay.count) consensus WAL record(s) for height \(height)")
        }
        try perform(core!.start())
        replaying = true
        defer { replaying = false }
        for record in replay {
            switch record {
            case .height: continue
            case .proposal(let signed): try feed(.proposal(signed.proposal, valid: try validate(signed.proposal.value)), logged: false)
            case .vote(let vote): try feed(.vote(vote), logged: false)
            case .timeout(let step, let h, let r): try feed(.timeout(step, height: h, round: r), logged: false)
            case .proposeValue(let block, let h, let r):
                _ = try validate(block)
                try feed(.proposeValue(block, height: h, round: r), logged: false)
            }
        }
    }

    /// Feeds an input, appending it to the WAL first unless it is being replayed from there.
    func feed(_ input: ConsensusInput<Block>, logged: Bool = true, record: WALRecord? = nil) throws {
        guard core != nil else { return }
        if logged && !replaying, let record = record ?? walRecord(input) {
            // Own votes are synced before they could leave (driver contract 2); with no peers,
            // syncing every record keeps the rule simple at a few records per block.
            try wal.append(record.canonicalBytes, sync: true)
        }
        try perform(core!.apply(input))
    }

    /// The WAL form of an input; proposals need their signature, so their callers pass it.
    func walRecord(_ input: ConsensusInput<Block>) -> WALRecord? {
        switch input {
        case .proposal: return nil
        case .vote(let vote): return .vote(vote)
        case .timeout(let step, let height, let round): return .timeout(step, height: height, round: round)
        case .proposeValue(let block, let height, let round): return .proposeValue(block, height: height, round: round)
        }
    }

    func tip() throws -> BlockFactory.Tip {
        let height = state.global.height
        let sets = state.validatorSets()
        var previous: (block: Block, certificate: CommitCertificate)? = nil
        if height > 0 {
            guard let block = try blocks.block(at: height), let certificate = try blocks.certificate(at: height) else {
                throw Failure(message: "block \(height) or its certificate is missing from the store")
            }
            previous = (block, certificate)
        }
        return BlockFactory.Tip(state: state, previous: previous,
                                previousValidators: height == 0 ? nil : ValidatorSet(sets.previous.map { .init(key: $0.consensusKey, power: $0.power) }),
                                validators: ValidatorSet(sets.current.map { .init(key: $0.consensusKey, power: $0.power) }))
    }

    /// valid(v), by the shared block factory; the execution is kept for the commit.
    func validate(_ block: Block) throws -> Bool {
        if executed[block.id] != nil { return true }
        guard let result = factory.validate(block, on: try tip()) else { return false }
        executed[block.id] = result
        blockTimes[block.id] = block.header.timeMilliseconds
        return true
    }

    func buildBlock() throws -> Block {
        guard let (block, result) = factory.build(on: try tip(), proposer: key.publicKey, candidates: [], maxTransactions: 0,
                                                  evidence: []) else {
            throw Failure(message: "the runtime refused this node's own block at height \(state.global.height + 1)")
        }
        executed[block.id] = result
        blockTimes[block.id] = block.header.timeMilliseconds
        return block
    }

    func perform(_ effects: [ConsensusEffect<Block>]) throws {
        let height = core?.height
        for effect in effects {
            guard let core, core.height == height else { return }
            switch effect {
            case .requestValue(let h, let r):
                try feed(.proposeValue(try buildBlock(), height: h, round: r))
            case .signProposal(let proposal):
                let signature: Signature
                do {
                    signature = try signer.signProposal(height: proposal.height, round: proposal.round,
                                                        bytes: ProposalSigning.bytes(proposal))
                } catch {
                    // After a restart the core may ask again for a step already signed; the
                    // WAL replay brings back what was proposed then, so nothing is lost.
                    log("not proposing: \(error)")
                    continue
                }
                try feed(.proposal(proposal, valid: try validate(proposal.value)),
                         record: .proposal(SignedProposal(proposal: proposal, signature: signature)))
            case .signVote(let kind, let h, let r, let blockID):
                // After the time of the block voted for (the block-time rule), whatever the clock says.
                let floor = blockID.flatMap { blockTimes[$0] } ?? state.global.timeMilliseconds
                let vote = Vote(kind: kind, height: h, round: r, blockID: blockID,
                                timestampMilliseconds: max(Self.wallMilliseconds(), floor + 1), validator: key.publicKey)
                let signed: SignedVote
                do { signed = try signer.signVote(vote) } catch {
                    log("signer refused: \(error)")
                    continue
                }
                try feed(.vote(signed))
            case .scheduleTimeout(let step, let h, let r, let milliseconds):
                timerSequence += 1
                timers.append((Self.monotonicMilliseconds() + milliseconds, timerSequence, .timeout(step, height: h, round: r)))
            case .decide(let block, let certificate):
                guard let result = try executed[block.id] ?? (validate(block) ? executed[block.id] : nil) else {
                    throw Failure(message: "decided block \(block.header.height) does not execute; refusing to continue")
                }
                try blocks.commit(block, certificate: certificate, executed: result)
                state.commit(result)
                log("committed height \(block.header.height) block \(block.id.hex.prefix(12)) state \(result.outcome.stateRoot.hex.prefix(12))")
                self.core = nil
                timerSequence += 1
                timers.removeAll()
                timers.append((Self.monotonicMilliseconds() + config.timeoutCommitMilliseconds, timerSequence, nil))
                return
            case .evidence:
                continue
            }
        }
    }

}

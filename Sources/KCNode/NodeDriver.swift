import KCCodec
import KCConsensus
import KCCrypto
import KCNetwork
import KCRuntime
import KCStorage
import KCTypes

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs a node: the consensus core for each height, fed from the P2P host, following the
/// driver contract in ConsensusCore.swift (every input goes to the WAL first, own votes synced
/// before they leave; the signer persists before signing; a decided block is stored with its
/// state in one synced batch; after a crash the WAL of the current height is replayed), plus
/// the mempool, transaction and vote gossip, and block sync (specs/p2p.md).
///
/// One thread runs all of it: network threads only decode and queue messages in `events`,
/// so the core, the runtime and the stores are never touched concurrently.
///
/// The driver routes; each concern keeps its own state in a component tested on its own:
/// `HeightRun` (the height being decided: its core, validated blocks, proposals),
/// `ConsensusGossip` (who holds what, announcements, relays), `BlockSync` (whom to ask for
/// which height), `StateSync` (snapshot restore, with `LightClient`, `SnapshotAssembler` and
/// `SnapshotRestore`),
/// `CatchUp` (syncing and the start-up hold), `EarlyInputs` (next-height messages),
/// `TimerQueue` (timeouts and the commit pause), `EvidencePool`, `Mempool`, `FaultWatch` and
/// `ProposalPace` (how many transactions an own proposal holds).
/// Pruning and snapshots live in `BlockStore`, peer discovery in the P2P host. The driver's
/// own code is split by concern: this file (start-up, the loop, routing, commit),
/// `NodeDriver+Consensus` (the driver contract's effects), `NodeDriver+BlockSync` and
/// `NodeDriver+StateSync`. The order of effects is the driver contract's
/// (Sources/KCConsensus/ConsensusCore.swift, specs/consensus.md).
public final class NodeDriver {
    public struct Failure: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    let home: NodeHome
    public let config: NodeConfig
    /// Where the passphrase of encrypted key files comes from, asked at most once.
    public let keyPassphrase: KeyPassphrase
    let genesis: Genesis
    let runtime: Runtime
    let signatures = SignatureCache()
    /// Checks peers' transactions before they reach this thread (none on a one-core machine).
    let signatureStage: SignatureStage?
    let factory: BlockFactory
    let store: RocksDBStore
    let blocks: BlockStore
    let signer: PersistentSigner
    let wal: ConsensusWAL
    let key: SigningKey
    public let log: NodeLogger
    let crash: CrashPoint?
    public let mempool: Mempool
    public let events: Inbox<NodeEvent>
    public let network: P2PHost
    public let monitor = NodeMonitor()
    public let metrics = NodeMetrics()
    /// The totals already added to the metrics' counters.
    lazy var counterFeeds = CounterFeeds(metrics: metrics)
    public let commits: CommitFeed
    /// The node for other services in the process (the RPC).
    public let handle: NodeHandle
    var lastCommitAt: UInt64 = 0
    var state: ChainState
    /// The height being decided (its core, the blocks validated, the proposals seen); nil
    /// between heights.
    var run: HeightRun? = nil
    var core: ConsensusCore<Block>? { run?.core }
    /// Whether the current height's core was started (it waits out the commit pause first).
    /// Inputs for the next height that arrived before it started.
    var early = EarlyInputs()
    /// Who holds what of the height being decided, and the announcements (specs/p2p.md,
    /// "Consensus gossip").
    var gossip = ConsensusGossip()
    /// The lowest height whose block this node keeps (`storage.retain_blocks`).
    var base: UInt64 = 1
    var nextStallCheck: UInt64 = 0
    var evidence = EvidencePool()
    var nextValidatorsCache: (height: UInt64, set: ValidatorSet)? = nil
    var timers = TimerQueue()
    var recoveredWAL: [WALRecord]
    var sync: BlockSync
    /// Restoring a snapshot into an empty store (`statesync.enable`); nil once done or not asked.
    var stateSync: StateSync? = nil
    /// Answers of state sync served per peer and second (twice what `StateSync` asks of one
    /// peer, so a paced honest joiner is never left unanswered).
    var serveBudget = (chunks: ServeBudget(perSecond: 16), light: ServeBudget(perSecond: 32))
    /// The offers of the snapshots this node keeps, newest first: read from the store at start
    /// and after each snapshot, so a snapshots request costs no store read or decode.
    var servedSnapshots: [SnapshotOffer] = []
    let snapshotWorker = SnapshotWorker()
    /// Catching up, and the start-up hold of a validator new to this machine (`CatchUp`).
    var catchUp: CatchUp
    /// The look-back check of a validator key new to this machine (`LookBack`).
    var lookBack: LookBack
    var nextStatus: UInt64 = 0
    /// Slashes, jailings, failed rounds, stalls and lost quorums, for the operator's log.
    var faults: FaultWatch
    /// Sizes this node's proposals by how fast it built its recent proposals (ADR 0025).
    var pace: ProposalPace
    /// Nanoseconds on a monotonic clock, for timing executions (tests hand in their own).
    var executionClock: () -> UInt64 = NodeDriver.monotonicNanoseconds
    let startedAt = NodeDriver.monotonicMilliseconds()
    /// Peers get this long after start-up to connect before a missing quorum is reported.
    static let reachGraceMilliseconds: UInt64 = 10_000

    static let statusIntervalMilliseconds: UInt64 = 1_000

    /// Opens the node in `home`; log lines (filtered by the configured level, or `logLevel`
    /// when given, in the configured format or `logFormat`) go to `output`.
    public init(home: NodeHome, logLevel: LogLevel? = nil, logFormat: LogFormat? = nil,
                output: @escaping @Sendable (String) -> Void) throws {
        self.home = home
        let configText: String
        switch FileIO.read(path: home.configPath, limit: 1 << 20) {
        case .success(let bytes): configText = String(decoding: bytes, as: UTF8.self)
        case .failure(let failure): throw Failure(message: "cannot read \(home.configPath): \(failure.reason)")
        }
        config = try NodeConfig.parse(configText)
        log = NodeLogger(minimum: logLevel ?? config.logLevel, format: logFormat ?? config.logFormat, sink: output)
        genesis = try home.loadGenesis()
        runtime = Runtime(genesis: genesis)
        factory = BlockFactory(runtime: runtime, signatures: signatures)
        keyPassphrase = try home.keyPassphrase(config.keyPassphrase)
        key = try home.loadKey(.validator, passphrase: keyPassphrase)
        let nodeKey = try home.loadKey(.node, passphrase: keyPassphrase)
        crash = CrashPoint.fromEnvironment()
        if case .failure(let failure) = FileIO.makeDirectories(home.dataDirectory, mode: 0o700) {
            throw Failure(message: failure.reason)
        }
        store = try RocksDBStore(path: home.dataDirectory + "/store", configuration: config.storeConfiguration)
        blocks = BlockStore(store: store, stateCacheBytes: config.stateCacheMiB << 20, queryIndexes: config.queryIndexes)
        // (A read that fails here fails again, and is reported, in `open`.)
        let interruptedRestore = (try? blocks.isRestoring()) == true
        state = try blocks.open(genesis: genesis, runtime: runtime)
        if interruptedRestore {
            log.warning("a restore by state sync was stopped before it finished; its entries were dropped and the genesis state is back: state sync starts over")
        }
        // The signer's record is written unsynced: each own vote and proposal is synced into
        // the WAL before it leaves, and the latest of them is handed back to the signer here.
        signer = try PersistentSigner(key: key, chainID: genesis.chainID, store: store, signatures: signatures, syncWrites: false)
        wal = try ConsensusWAL(path: home.dataDirectory + "/consensus.wal")
        if wal.truncatedBytes > 0 {
            log.warning("cut damaged bytes from the end of the consensus WAL; continuing", ["bytes": "\(wal.truncatedBytes)"])
        }
        recoveredWAL = wal.recovered.compactMap { try? WALRecord.decode(exactly: $0) }
        if let latest = LastSigned.latest(signedBy: key.publicKey, in: recoveredWAL), try signer.restore(latest) {
            log.info("signer state restored from the consensus WAL", ["height": "\(latest.height)", "round": "\(latest.round)",
                                                                      "step": "\(latest.step)"])
        }
        // A height is stalled after three rounds' worth of base timeouts and the commit pause.
        let round = config.timeouts.proposeMilliseconds &+ config.timeouts.prevoteMilliseconds &+ config.timeouts.precommitMilliseconds
        faults = FaultWatch(stallMilliseconds: max(1_000, 3 &* (round &+ config.timeoutCommitMilliseconds)),
                            downtimeJailMilliseconds: genesis.parameters.slashing.downtimeJailMilliseconds)
        pace = ProposalPace(budgetMilliseconds: config.effectiveProposalBudgetMilliseconds)
        metrics.proposalLimit.set(to: Double(pace.limit(maxTransactions: Int(genesis.parameters.block.maxTransactions))))
        mempool = Mempool(runtime: runtime,
                          limits: config.mempoolLimits,
                          signatures: signatures)
        var settings = P2PSettings(chainID: genesis.chainID, genesisHash: genesis.hash, nodeKey: nodeKey)
        settings.validatorKey = config.announceValidator ? key : nil
        let (host, port) = try Self.split(config.p2pListenAddress)
        settings.listenHost = host
        settings.listenPort = port
        settings.persistentPeers = config.persistentPeers.compactMap(PeerAddress.parse)
        settings.maxInboundPeers = config.maxInboundPeers
        settings.maxOutboundPeers = config.maxOutboundPeers
        settings.maxInboundPeersPerAddress = config.maxInboundPeersPerAddress
        settings.maxInboundFramesPerSecond = config.maxInboundFramesPerSecond
        settings.maxInboundBytesPerSecond = config.maxInboundBytesPerSecond
        settings.unconditionalPeers = Set(config.unconditionalPeerIDs.compactMap { PublicKey(hex: $0) })
        settings.seeds = config.seeds.compactMap(PeerAddress.parse)
        settings.pex = config.pex
        settings.seedMode = config.seedMode
        if !config.externalAddress.isEmpty, let (externalHost, externalPort) = try? Self.split(config.externalAddress) {
            settings.externalAddress = PeerAddress(nodeID: nodeKey.publicKey, host: externalHost, port: externalPort)
        }
        let bookPath = home.dataDirectory + "/addrbook"
        settings.loadAddressBook = {
            guard FileIO.exists(bookPath), case .success(let bytes) = FileIO.read(path: bookPath, limit: 4 << 20) else { return nil }
            return bytes
        }
        let bookLog = log
        settings.saveAddressBook = { bytes in
            if case .failure(let failure) = FileIO.replace(path: bookPath, contents: bytes, mode: 0o600) {
                bookLog.warning("cannot save the address book", ["path": bookPath, "error": failure.reason])
            }
        }
        settings.maxFrameBytes = Int(genesis.parameters.block.maxBytes) + (1 << 20)
        let inbox = Inbox<NodeEvent>(capacity: 10_000)
        events = inbox
        // With more than one core, transactions from peers pass the signature stage first (on
        // every core, each peer's in order, peers in turn); everything else goes straight to the inbox. On one core the
        // stage would only add a thread hop: the node's thread checks them, as before.
        let cores = Cores.available()
        let stage = cores > 1 ? SignatureStage(chainID: genesis.chainID, cache: signatures, parallelism: cores) : nil
        signatureStage = stage
        network = P2PHost(settings: settings, log: log) { event, droppable in
            if let stage, case .message(.transactions(let batch), let peer) = event {
                stage.check(batch, from: peer) { checked in inbox.push(.checkedTransactions(checked, from: peer), droppable: true) }
            } else {
                inbox.push(.network(event), droppable: droppable)
            }
        }
        base = try blocks.base()
        servedSnapshots = Array(try blocks.snapshots().prefix(WireMessage.maxSnapshotsPerMessage))
        commits = CommitFeed(height: state.global.height)
        handle = NodeHandle(store: store, genesis: genesis, monitor: monitor, metrics: metrics, commits: commits, inbox: inbox,
                            signatures: signatures)
        sync = BlockSync()
        catchUp = CatchUp(startedAt: Self.monotonicMilliseconds(), hold: false)
        // With an empty WAL (a new or reset data directory) the look-back watches this key's
        // commits, whether or not the key validates yet (NodeDriver+LookBack.swift).
        lookBack = try Self.openLookBack(heights: config.doubleSignCheckHeights, store: store, blocks: blocks,
                                         tip: state.global.height, key: key.publicKey, recoveredWAL: recoveredWAL)
        // A validator whose WAL holds none of its own messages (its key is new to this machine)
        // holds its first signature until it has caught up, when the look-back check is on.
        let hold = config.doubleSignCheckHeights > 0 && isValidator && !settings.persistentPeers.isEmpty
            && LastSigned.latest(signedBy: key.publicKey, in: recoveredWAL) == nil
        catchUp = CatchUp(startedAt: catchUp.startedAt, hold: hold)
        if config.stateSync && state.global.height == 0 {
            stateSync = StateSync(chainID: genesis.chainID, genesisValidators: nextValidators(),
                                  restoringInto: SnapshotRestore(blocks: blocks, runtime: runtime), now: Self.monotonicMilliseconds())
        }
    }

    /// HOST:PORT split at the last colon.
    public static func split(_ address: String) throws -> (String, Int) {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            throw Failure(message: "'\(address)' is not HOST:PORT")
        }
        return (String(address[..<colon]), port)
    }

    /// Milliseconds on the monotonic clock, for timers.
    static func monotonicMilliseconds() -> UInt64 { monotonicNanoseconds() / 1_000_000 }

    /// Nanoseconds on the monotonic clock, for timing executions.
    static func monotonicNanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }

    /// `now - since`, or 0 when `since` is later: no reading order of two clocks can trap.
    static func elapsed(_ now: UInt64, since: UInt64) -> UInt64 { now >= since ? now - since : 0 }

    /// Wall-clock milliseconds since 1970, for vote timestamps and the time of a dry run.
    static func wallMilliseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return UInt64(time.tv_sec) * 1_000 + UInt64(time.tv_nsec) / 1_000_000
    }

    var isValidator: Bool { state.validatorSets().current.contains { $0.consensusKey == key.publicKey } }

    /// Runs until `shouldStop` returns true (checked at least every 100 ms), then closes the
    /// network; what was committed is already durable.
    public func run(shouldStop: () -> Bool) throws {
        let port = try network.start()
        try publishInitialFigures()
        log.info("node started", ["version": BuildInfo.version, "commit": BuildInfo.commit, "node_id": network.nodeID.hex, "p2p_port": "\(port)", "height": "\(state.global.height)",
                                  "role": isValidator ? "validator" : "full node", "chain": genesis.chainID])
        defer {
            if snapshotWorker.isRunning { log.info("stopping: waiting for the snapshot being written", [:]) }
            snapshotWorker.wait()
            network.stop()
            log.info("node stopped", ["height": "\(state.global.height)", "signature_checks": "\(signatures.verifications)"])
        }
        if stateSync != nil {
            log.info("state sync: looking for a snapshot to restore", [:])
        } else if !catchUp.holding {
            try startConsensus()
        }
        while !shouldStop() {
            // One due timer per turn, then whatever peers and clients sent: with no commit
            // pause, a lone validator decides each height as it starts it, so a timer is always
            // due, and running timers back to back would never hear anyone.
            var fired = false
            if let fire = timers.due(now: Self.monotonicMilliseconds()) {
                fired = true
                switch fire {
                case .timeout(let step, let height, let round): try feed(.timeout(step, height: height, round: round))
                case .beginHeight: try beginHeight()
                }
            }
            let wait = fired ? 0 : timers.wait(now: Self.monotonicMilliseconds(), limit: 100)
            for event in events.drain(waitingMilliseconds: wait) {
                try handle(event)
            }
            // The commit pause paces an idle chain only: a block is ready to be made as soon
            // as transactions wait, or peers already work on the next height.
            if core == nil && stateSync == nil && (mempool.count > 0 || !early.isEmpty) {
                try beginHeight()
            }
            try tick()
        }
    }

    // MARK: periodic work

    func tick() throws {
        let now = Self.monotonicMilliseconds()
        monitor.update { snapshot in
            snapshot.syncing = catchUp.catchingUp(now: now) || stateSync != nil
            snapshot.round = core?.round ?? 0
            snapshot.mempoolTransactions = mempool.count
            snapshot.mempoolBytes = mempool.bytes
            snapshot.mempoolQueued = mempool.queuedCount
        }
        if now >= nextStatus {
            nextStatus = now + Self.statusIntervalMilliseconds
            network.broadcast(.status(height: state.global.height, base: base))
            watchFaults(now: now)
            countCheckedFigures()
        }
        announceIfMoved()
        if now >= nextStallCheck {
            nextStallCheck = now + ConsensusGossip.stallIntervalMilliseconds
            if let send = gossip.stallCheck(roundState()) { network.send(send.message, to: send.to) }
        }
        if stateSync != nil {
            try driveStateSync(now: now)
            return
        }
        try driveSync(now: now)
        try releaseStartupHold(now: now)
    }

    // MARK: consensus gossip

    /// This node's round state: of the running height, or of the next one between heights.
    func roundState() -> RoundState {
        gossip.roundState(core: core, next: (state.global.height + 1, nextValidators()), me: key.publicKey)
    }

    /// Announces a new height or round to every peer (checked after each batch of events).
    func announceIfMoved() {
        let height = core?.height ?? state.global.height + 1, round = core?.round ?? 0
        guard let last = gossip.announcedPosition, last.height == height, last.round == round else {
            if let send = gossip.announcement(roundState()) { network.send(send.message, to: send.to) }
            return
        }
    }

    func send(_ send: ConsensusGossip.Send?) {
        guard let send, !send.to.isEmpty else { return }
        network.send(send.message, to: send.to)
    }

    /// Adds what the P2P host, the signature cache and stage and the inbox counted since the
    /// last call to the metrics' counters; warns (at most every 10 s) when gossip from peers
    /// was dropped because the inbox was full.
    func countCheckedFigures() {
        let now = Self.monotonicMilliseconds()
        guard let dropped = counterFeeds.update(network: network, signatures: signatures, stage: signatureStage, inbox: events, now: now) else { return }
        log.warning("the inbox was full: gossip from peers dropped (transactions among it are lost unless sent again); this node does not keep up with what it is sent",
                    ["dropped": "\(dropped)", "inbox": "\(events.capacity)"])
    }

    /// Stalls of the height being decided, and whether the peers still reach a quorum.
    func watchFaults(now: UInt64) {
        guard !catchUp.holding, !catchUp.catchingUp(now: now) else { return }
        let peers = network.connectedPeers.count
        if let core {
            let since = lastCommitAt == 0 ? startedAt : lastCommitAt
            report(faults.waiting(height: core.height, round: core.round, step: "\(core.step)",
                                  waitedMilliseconds: Self.elapsed(now, since: since), peers: peers))
        }
        guard Self.elapsed(now, since: startedAt) >= Self.reachGraceMilliseconds else { return }
        let validators = nextValidators()
        let reached = network.connectedValidatorKeys
        var own: UInt64 = 0, peerPower: UInt64 = 0
        for member in validators.members {
            if member.key == key.publicKey { own = member.power } else if reached.contains(member.key) { peerPower &+= member.power }
        }
        report(faults.reach(ownPower: own, peerPower: peerPower, totalPower: validators.totalPower, peers: peers))
    }

    func report(_ alerts: [FaultWatch.Alert]) {
        for alert in alerts { log.log(alert.level, alert.message, fields: alert.fields) }
    }

    // MARK: events from peers

    func handle(_ event: NodeEvent) throws {
        switch event {
        case .network(let event): try handle(event)
        case .call(let call): serve(call)
        case .checkedTransactions(let checked, let peer): admit(checked, from: peer)
        case .snapshotSaved(let height, let result, let milliseconds): try snapshotSaved(height: height, result, milliseconds: milliseconds)
        }
    }

    /// Calls from the RPC, answered on this thread.
    func serve(_ call: NodeCall) {
        switch call {
        case .submit(let prepared, let reply):
            do throws(MempoolRejection) {
                let verified = try prepared.get()
                let admission = try mempool.add(verified: verified, from: nil, state: state)
                relay(admission.ready)
                reply(.success(admission))
            } catch {
                metrics.countRefusal(error)
                reply(.failure(error))
            }
        case .proof(let key, let reply):
            reply(StateProofAnswer(height: state.global.height, root: state.root, value: state.get(key), proof: state.proof(key: key)))
        case .check(let body, let reply):
            // One call's work (a dry run skips the block's end), on the state in place. The
            // scratch block's time is the wall clock: the next block's will be close to it.
            reply(CheckAnswer(height: state.global.height, result: runtime.dryRun(body, on: state, timeMilliseconds: Self.wallMilliseconds())))
        }
    }

    /// A peer's transactions, checked: each admitted to the mempool, then passed on to the
    /// peers that do not have them from the source (ADR 0017). Waiting transactions they let
    /// into the line may have come from elsewhere (another peer, a client), so the source's
    /// coverage says nothing about them: they go to every peer, as those a commit lets in do
    /// (one the source itself sent comes back to it once, as a duplicate). A refused one bans
    /// the peer.
    func admit(_ checked: [CheckedTransaction], from peer: PublicKey) {
        var admitted: [VerifiedTransaction] = []
        var promoted: [VerifiedTransaction] = []
        let source = peer.hex
        for item in checked {
            switch item {
            case .refused(_, let reason):
                // An honest peer checks signatures before passing a transaction on.
                network.ban(peer, reason: "sent an invalid transaction: \(MempoolRejection.invalid(reason))")
                return
            case .verified(let transaction):
                do {
                    let admission = try mempool.add(verified: transaction, from: source, state: state)
                    if !admission.queued { admitted.append(transaction) }
                    promoted += admission.promoted
                } catch {
                    metrics.countRefusal(error)
                    continue  // stateful refusals (nonce, fee, full): honest peers race
                }
            }
        }
        if !admitted.isEmpty {
            network.credit(peer)
            relay(admitted, to: gossip.transactionTargets(from: peer, validatorKey: network.validatorKey(of: peer), validators: nextValidators()))
        }
        if !promoted.isEmpty { relay(promoted) }
    }

    /// Passes transactions that joined the mempool's line on to `targets` (nil: every peer), in
    /// messages within the wire's limits (a peer's message, with the waiting transactions it
    /// let in, can hold more than one message may).
    func relay(_ transactions: [VerifiedTransaction], to targets: [PublicKey]? = nil) {
        guard targets?.isEmpty != true else { return }
        for batch in Self.messages(transactions) {
            if let targets { network.send(.transactions(batch), to: targets) } else { network.broadcast(.transactions(batch)) }
        }
    }

    /// `transactions` cut, in order, into messages of at most `maxCount` transactions and
    /// `maxBytes` of them (a transaction larger than that alone).
    static func messages(_ transactions: [VerifiedTransaction], maxCount: Int = WireMessage.maxTransactionsPerMessage,
                         maxBytes: Int = 4 << 20) -> [[SignedTransaction]] {
        var messages: [[SignedTransaction]] = []
        var batch: [SignedTransaction] = []
        var size = 0
        for transaction in transactions {
            if batch.count == maxCount || (!batch.isEmpty && size + transaction.encodedSize > maxBytes) {
                messages.append(batch)
                batch.removeAll(keepingCapacity: true)
                size = 0
            }
            batch.append(transaction.transaction)
            size += transaction.encodedSize
        }
        if !batch.isEmpty { messages.append(batch) }
        return messages
    }

    func handle(_ event: P2PEvent) throws {
        switch event {
        case .connected(let peer):
            let count = network.connectedPeers.count
            monitor.update { $0.peers = count }
            log.info("peer connected", ["peer": peer.hex, "peers": "\(count)"])
            network.send(.status(height: state.global.height, base: base), to: peer)
            stateSync?.connected(peer)
            gossip.connected(peer, validatorKey: network.validatorKey(of: peer))
            network.send(.roundState(roundState()), to: peer)
            let waiting = mempool.reap(maxCount: WireMessage.maxTransactionsPerMessage, maxBytes: 4 << 20)
            if !waiting.isEmpty { network.send(.transactions(waiting.map(\.transaction)), to: peer) }
        case .disconnected(let peer):
            let count = network.connectedPeers.count
            monitor.update { $0.peers = count }
            log.info("peer disconnected", ["peer": peer.hex])
            sync.forget(peer)
            stateSync?.disconnected(peer)
            gossip.disconnected(peer)
        case .message(let message, let peer):
            try receive(message, from: peer)
        }
    }

    func receive(_ message: WireMessage, from peer: PublicKey) throws {
        switch message {
        case .status(let height, let peerBase):
            sync.noteStatus(peer, height: height, base: peerBase, mine: state.global.height, now: Self.monotonicMilliseconds())
        case .transactions(let transactions):
            // No signature stage (one core): checked here.
            admit(transactions.map { CheckedTransaction.check($0, chainID: genesis.chainID, cache: signatures) }, from: peer)
        case .proposal(let signed):
            try consensusMessage(.proposal(signed.proposal, valid: false), record: .proposal(signed), height: signed.proposal.height,
                                 from: peer, what: "a proposal") { signed.verify(chainID: genesis.chainID, cache: signatures) }
        case .vote(let signed):
            try consensusMessage(.vote(signed), record: .vote(signed), height: signed.vote.height,
                                 from: peer, what: "a vote") { signed.verify(chainID: genesis.chainID, cache: signatures) }
        case .evidence(let evidence):
            addEvidence(evidence, from: peer)
        case .blockRequest(let height):
            if let block = try blocks.block(at: height), let certificate = try blocks.certificate(at: height) {
                network.send(.block(block, certificate), to: peer)
            } else {
                network.send(.noBlock(height: height), to: peer)
            }
        case .block(let block, let certificate):
            if sync.deliver(block, certificate, from: peer) {
                network.credit(peer)
            } else {
                network.ban(peer, reason: "sent block \(block.header.height) that was not asked for")
            }
        case .noBlock(let height):
            if let reason = sync.refused(height, by: peer) { network.ban(peer, reason: reason) }
        case .addressRequest, .addresses:
            break  // peer exchange: answered by the P2P host
        case .snapshotsRequest, .snapshots, .chunkRequest, .chunk, .lightBlockRequest, .lightBlock:
            try stateSyncMessage(message, from: peer)
        case .roundState(let announced):
            for send in gossip.received(announced, from: peer, core: core, nextHeight: state.global.height + 1,
                                        setSize: nextValidators().members.count, proposals: run?.signedProposals ?? [:],
                                        now: Self.monotonicMilliseconds()) {
                network.send(send.message, to: send.to)
            }
        }
    }

    /// The tip is on disk (a synced block write): counted, and peers hear the height.
    func storedDurably() {
        metrics.syncedBlockWrites.increment()
        network.broadcast(.status(height: state.global.height, base: base))
    }

    /// Stores a decided block with its state (one synced batch), then updates what depends
    /// on the new tip. The next height starts later (after the commit pause, or at once when
    /// syncing). `last: false` (block sync, another fetched block follows at once): the batch
    /// is not synced and peers hear of the height after the run's last block.
    func commit(_ block: Block, _ certificate: CommitCertificate, _ result: ExecutedBlock, last: Bool = true) throws {
        let height = block.header.height
        crash?.reached(.beforeCommit, height: height)
        let change = LightClient.changeRecord(header: block.header, certificate: certificate, signedBy: nextValidators(), executed: result,
                                              on: state)
        try blocks.commit(block, certificate: certificate, executed: result, change: change, sync: last, state: &state)
        crash?.reached(.afterCommit, height: height)
        try lookBackCommitted(certificate)
        let heightStartedAt = run?.startedAt
        run = nil
        timers.removeAll()
        early.committed(height)
        relay(mempool.update(after: state, moved: Set(block.transactions.map(\.body.sender))))
        evidence.update(after: state, runtime: runtime, cache: signatures)
        log.info("committed", ["height": "\(height)", "block": block.id.hex, "state": result.outcome.stateRoot.hex,
                               "txs": "\(block.transactions.count)"])
        if !result.outcome.slashes.isEmpty {
            let sets = state.validatorSets()
            let own = (sets.previous + sets.current).first { $0.consensusKey == key.publicKey }?.address
            report(faults.committed(height: height, blockTimeMilliseconds: block.header.timeMilliseconds, slashes: result.outcome.slashes, own: own))
        }
        try pruneIfConfigured()
        try snapshotIfDue(block, certificate, change: change)
        if last { storedDurably() }
        let now = Self.monotonicMilliseconds()
        let outcome = result.outcome
        let validator = isValidator
        let committedAt = Self.wallMilliseconds()
        monitor.update { snapshot in
            snapshot.height = height
            snapshot.committedAtMilliseconds = committedAt
            snapshot.blockTimeMilliseconds = block.header.timeMilliseconds
            snapshot.blockID = block.id
            snapshot.stateRoot = outcome.stateRoot
            snapshot.isValidator = validator
            snapshot.lastBlockTransactions = block.transactions.count
            for change in outcome.eventChanges {
                if let from = change.from {
                    let index = Int(from.rawValue)
                    snapshot.eventsByStatus[index] = snapshot.eventsByStatus[index] > 0 ? snapshot.eventsByStatus[index] - 1 : 0
                }
                snapshot.eventsByStatus[Int(change.to.rawValue)] += 1
            }
        }
        metrics.committedTransactions.increment(by: Int64(block.transactions.count))
        metrics.slashes.increment(by: Int64(outcome.slashes.count))
        if lastCommitAt != 0 { metrics.blockInterval.record(.milliseconds(Int64(clamping: Self.elapsed(now, since: lastCommitAt)))) }
        if let heightStartedAt { metrics.commitLatency.record(.milliseconds(Int64(clamping: Self.elapsed(now, since: heightStartedAt)))) }
        countCheckedFigures()
        lastCommitAt = now
        commits.publish(height)
    }

    /// Heights pruned per commit at most, so a node that turns pruning on catches up on its
    /// old blocks a little at each height instead of stalling one commit.
    static let pruneStepHeights: UInt64 = 256

    /// With `storage.retain_blocks` set, drops the blocks, certificates and results below the
    /// retained range (specs/storage.md, "Pruning"). What the node itself still needs is kept:
    /// the certificates the double-sign look-back reads.
    func pruneIfConfigured() throws {
        guard config.retainBlocks > 0 else { return }
        let keep = max(config.retainBlocks, UInt64(config.doubleSignCheckHeights), 2)
        let tip = state.global.height
        guard tip > keep else { return }
        let lowest = tip - keep + 1
        guard lowest > base else { return }
        base = try blocks.prune(below: lowest, limit: Self.pruneStepHeights)
        let kept = base
        monitor.update { $0.baseHeight = kept }
    }

    /// Fills the monitor from the store at start-up.
    func publishInitialFigures() throws {
        let counts = try blocks.eventCountsByStatus()
        // A state-synced store keeps only the light block of the height it started from.
        let blockID = try blocks.block(at: state.global.height)?.id ?? blocks.restoredLightBlock()?.header.id
        let validator = isValidator
        let nodeID = network.nodeID
        let startedAt = Self.wallMilliseconds()
        monitor.update { snapshot in
            snapshot.height = state.global.height
            snapshot.baseHeight = base
            snapshot.committedAtMilliseconds = startedAt  // a stall is counted from the start, not from the last run
            snapshot.blockTimeMilliseconds = state.global.timeMilliseconds
            snapshot.blockID = blockID ?? .zero
            snapshot.stateRoot = state.root
            snapshot.isValidator = validator
            snapshot.nodeID = nodeID
            snapshot.syncing = false
            snapshot.eventsByStatus = counts
        }
    }
}

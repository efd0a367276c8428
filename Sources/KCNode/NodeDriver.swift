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
/// `ConsensusGossip` (who holds what, announcements, relays), `BlockSync` (whom to ask for
/// which height), `CatchUp` (syncing and the start-up hold), `EarlyInputs` (next-height
/// messages), `TimerQueue` (timeouts and the commit pause), `EvidencePool`, `Mempool` and
/// `FaultWatch`. Pruning and peer discovery live in `BlockStore` and the P2P host.
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
    /// Bans and signature checks already added to the metrics' counters.
    var countedBans: UInt64 = 0
    var countedSignatureChecks = 0
    var countedBytes: (sent: UInt64, received: UInt64) = (0, 0)
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
    /// Catching up, and the start-up hold of a validator new to this machine (`CatchUp`).
    var catchUp: CatchUp
    var nextStatus: UInt64 = 0
    /// Slashes, jailings, failed rounds, stalls and lost quorums, for the operator's log.
    var faults: FaultWatch
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
        store = try RocksDBStore(path: home.dataDirectory + "/store")
        blocks = BlockStore(store: store)
        state = try blocks.open(genesis: genesis, runtime: runtime)
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
        mempool = Mempool(runtime: runtime,
                          limits: .init(maxTransactions: config.mempoolMaxTransactions, maxBytes: config.mempoolMaxBytes),
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
        network = P2PHost(settings: settings, log: log) { event, droppable in
            inbox.push(.network(event), droppable: droppable)
        }
        base = try blocks.base()
        commits = CommitFeed(height: state.global.height)
        handle = NodeHandle(store: store, genesis: genesis, monitor: monitor, metrics: metrics, commits: commits, inbox: inbox)
        sync = BlockSync()
        catchUp = CatchUp(startedAt: Self.monotonicMilliseconds(), hold: false)
        // A validator whose WAL holds none of its own messages (its key is new to this machine)
        // holds its first signature until it has caught up, when the look-back check is on.
        let hold = config.doubleSignCheckHeights > 0 && isValidator && !settings.persistentPeers.isEmpty
            && LastSigned.latest(signedBy: key.publicKey, in: recoveredWAL) == nil
        catchUp = CatchUp(startedAt: catchUp.startedAt, hold: hold)
        if config.stateSync && state.global.height == 0 {
            stateSync = StateSync(chainID: genesis.chainID, genesisValidators: nextValidators(), now: Self.monotonicMilliseconds())
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
    static func monotonicMilliseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000 + UInt64(time.tv_nsec) / 1_000_000
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
            network.stop()
            log.info("node stopped", ["height": "\(state.global.height)", "signature_checks": "\(signatures.verifications)"])
        }
        if stateSync != nil {
            log.info("state sync: looking for a snapshot to restore", [:])
        } else if !catchUp.holding {
            try startConsensus()
        }
        while !shouldStop() {
            let now = Self.monotonicMilliseconds()
            if let fire = timers.due(now: now) {
                switch fire {
                case .timeout(let step, let height, let round): try feed(.timeout(step, height: height, round: round))
                case .beginHeight: try beginHeight()
                }
                continue
            }
            let wait = timers.wait(now: now, limit: 100)
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

    /// Adds the bans, signature checks and P2P bytes since the last call to the metrics' counters.
    func countCheckedFigures() {
        let sent = network.sentBytes.load(ordering: .relaxed), received = network.receivedBytes.load(ordering: .relaxed)
        if sent > countedBytes.sent { metrics.p2pSentBytes.increment(by: Int64(clamping: sent - countedBytes.sent)) }
        if received > countedBytes.received { metrics.p2pReceivedBytes.increment(by: Int64(clamping: received - countedBytes.received)) }
        countedBytes = (max(countedBytes.sent, sent), max(countedBytes.received, received))
        let bans = network.banCount, checks = signatures.verifications
        if bans > countedBans { metrics.peerBans.increment(by: Int64(clamping: bans - countedBans)) }
        if checks > countedSignatureChecks { metrics.signatureChecks.increment(by: Int64(checks - countedSignatureChecks)) }
        countedBans = max(countedBans, bans)
        countedSignatureChecks = max(countedSignatureChecks, checks)
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

    /// Ends the start-up hold when `CatchUp` says so, and starts consensus.
    func releaseStartupHold(now: UInt64) throws {
        guard catchUp.release(now: now, heardPeers: sync.hasStatus, bestClaimed: sync.bestHeight, tip: state.global.height) else { return }
        log.info("caught up: this validator starts signing", ["height": "\(state.global.height)", "peers_at": "\(sync.bestHeight)"])
        try startConsensus()
    }

    /// Block sync beside consensus (specs/p2p.md, "Block sync"). Peers' claimed heights only
    /// decide whom to ask; consensus keeps running whatever they claim. Only blocks whose
    /// commit certificate and execution verify move the node on: each is committed, and once
    /// the blocks that arrived are applied, consensus restarts at the new tip.
    func driveSync(now: UInt64) throws {
        let height = state.global.height
        for (peer, reason) in sync.expire(now: now) { network.ban(peer, reason: reason) }
        var applied: UInt64 = 0
        while let (block, certificate, peer) = sync.take(height: state.global.height + 1) {
            if let problem = try applySynced(block, certificate) {
                network.ban(peer, reason: "sent block \(block.header.height) that does not verify: \(problem)")
                sync.forget(peer)
                break
            }
            applied += 1
        }
        if applied > 0 {
            if !catchUp.catchingUp(now: now) {
                log.info("catching up by block sync", ["from_height": "\(height)", "peers_at": "\(sync.bestHeight)"])
            }
            catchUp.noteSynced(now: now)
            try beginHeight()
        }
        let best = sync.bestHeight
        // Two or more behind by some peer's word: ask at once. Exactly one behind: only once
        // the lag lasts beyond a pause (the votes for that height are gone with the peers that
        // moved on; before that, consensus usually decides it itself).
        let lagging = best == state.global.height + 1 && sync.aheadSince.map { Self.elapsed(now, since: $0) >= 1_000 } == true
        if best >= state.global.height + 2 || lagging {
            for (peer, request) in sync.requests(from: state.global.height + 1, now: now) {
                network.send(.blockRequest(height: request), to: peer)
            }
        }
        if state.global.height != height { sync.noteHeight(state.global.height, now: now) }
    }

    /// Verifies a block fetched by sync against the local chain and commits it. Returns the
    /// problem, or nil when committed.
    func applySynced(_ block: Block, _ certificate: CommitCertificate) throws -> String? {
        let tip = try tip()
        do { try certificate.verify(validators: tip.validators, chainID: genesis.chainID, cache: signatures) } catch {
            return "its commit certificate: \(error)"
        }
        guard certificate.blockID == block.id, certificate.height == block.header.height,
              let result = factory.validate(block, on: tip) else {
            return "the block is not valid on this chain"
        }
        try commit(block, certificate, result)
        return nil
    }

    // MARK: events from peers

    func handle(_ event: NodeEvent) throws {
        switch event {
        case .network(let event): try handle(event)
        case .call(let call): serve(call)
        }
    }

    /// Calls from the RPC, answered on this thread.
    func serve(_ call: NodeCall) {
        switch call {
        case .submit(let bytes, let reply):
            do {
                let transaction = try mempool.add(bytes: bytes, from: nil, state: state)
                network.broadcast(.transactions([transaction]))
                reply(.success(transaction.hash))
            } catch {
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
            var admitted: [SignedTransaction] = []
            let source = peer.hex
            for transaction in transactions {
                do {
                    try mempool.add(transaction, from: source, state: state)
                    admitted.append(transaction)
                } catch {
                    switch error {
                    case .invalid, .malformed:
                        // An honest peer checks signatures before passing a transaction on.
                        network.ban(peer, reason: "sent an invalid transaction: \(error)")
                        return
                    default: continue
                    }
                }
            }
            if !admitted.isEmpty {
                network.credit(peer)
                network.broadcast(.transactions(admitted), except: peer)
            }
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

    /// A proposal or vote from a peer (specs/p2p.md, "Consensus messages"), screened before
    /// anything is spent on it: a forbidden one (a vote from outside the height's set, a
    /// proposal from a key that is not its round's proposer) bans the peer; a redundant one is
    /// dropped unverified and unwritten; a useful one has its signature checked (a bad one
    /// bans), then is logged and fed if it is for the running height, or kept if it is for the
    /// next height (not started yet).
    func consensusMessage(_ input: ConsensusInput<Block>, record: WALRecord, height: UInt64, from peer: PublicKey,
                          what: String, verify: () -> Bool) throws {
        if let core, height == core.height + 1 {
            // The next height while this one runs: held unchecked (its set is not known yet)
            // if its signer is in the current set (sets rarely change; a new member's message
            // comes again with its sender's next stall report), checked when it starts.
            let signer: PublicKey
            switch record {
            case .vote(let vote): signer = vote.vote.validator
            case .proposal(let proposal): signer = proposal.proposal.proposer
            default: return
            }
            if core.validators.contains(signer) {
                early.hold(input, record: record, from: peer, verified: false, perPeerLimit: 4 * core.validators.members.count + 4)
            }
            return
        }
        switch screen(input, height: height) {
        case .redundant: return
        case .forbidden(let reason): return network.ban(peer, reason: "sent \(what) no honest peer sends: \(reason)")
        case .useful: break
        }
        guard verify() else { return network.ban(peer, reason: "sent \(what) with a bad signature") }
        network.credit(peer)
        if let core, core.height == height {
            try accept(input, record: record, from: peer)
        } else {
            early.hold(input, record: record, from: peer, verified: true)
        }
    }

    /// Feeds a checked proposal or vote of the running height from `peer`, then passes it on
    /// to the peers that lack it.
    func accept(_ input: ConsensusInput<Block>, record: WALRecord, from peer: PublicKey?) throws {
        guard let validators = core?.validators else { return }
        if case .proposal(let signed) = record { run?.keep(signed) }
        try feed(try validated(input), record: record)
        guard let peer else { return }
        switch record {
        case .vote(let vote): send(gossip.relay(vote, from: peer, validators: validators, me: key.publicKey))
        case .proposal(let proposal): send(gossip.relay(proposal, from: peer, validators: validators, me: key.publicKey))
        default: break
        }
    }

    /// A held message's signature, checked when its height starts; a bad one bans its sender.
    func verifyHeld(_ record: WALRecord, from peer: PublicKey?) -> Bool {
        let good: Bool
        switch record {
        case .vote(let vote): good = vote.verify(chainID: genesis.chainID, cache: signatures)
        case .proposal(let proposal): good = proposal.verify(chainID: genesis.chainID, cache: signatures)
        default: good = true
        }
        if !good, let peer { network.ban(peer, reason: "sent a consensus message with a bad signature") }
        return good
    }

    /// The core's screening for the running height; for the next height while no core runs
    /// (the commit pause, the start-up hold), the same checks against that height's set.
    func screen(_ input: ConsensusInput<Block>, height: UInt64) -> ConsensusCore<Block>.Screening {
        if let core { return core.height == height ? core.screen(input) : .redundant }
        guard height == state.global.height + 1 else { return .redundant }
        let validators = nextValidators()
        switch input {
        case .proposal(let proposal, _):
            let proposer = validators.proposer(height: height, round: proposal.round)
            return proposal.proposer == proposer ? .useful
                : .forbidden("\(proposal.proposer.hex.prefix(16)) is not the proposer of height \(height) round \(proposal.round)")
        case .vote(let signed):
            return validators.contains(signed.vote.validator) ? .useful
                : .forbidden("\(signed.vote.validator.hex.prefix(16)) is not a validator at height \(height)")
        case .timeout, .proposeValue:
            return .useful
        }
    }

    /// The set that signs the next height, built once per height.
    func nextValidators() -> ValidatorSet {
        let height = state.global.height + 1
        if let cached = nextValidatorsCache, cached.height == height { return cached.set }
        let set = ValidatorSet(state.validatorSets().current.map { .init(key: $0.consensusKey, power: $0.power) })
        nextValidatorsCache = (height, set)
        return set
    }

    /// A proposal with the node's verdict on its block (the paper's valid(v)).
    func validated(_ input: ConsensusInput<Block>) throws -> ConsensusInput<Block> {
        guard case .proposal(let proposal, _) = input else { return input }
        return .proposal(proposal, valid: try validate(proposal.value))
    }

    /// Pools evidence the runtime would slash and passes it on; bans a peer that sent
    /// evidence that can never be valid (specs/p2p.md, "Evidence").
    func addEvidence(_ item: DoubleSignEvidence, from peer: PublicKey? = nil) {
        switch evidence.add(item, runtime: runtime, state: state, cache: signatures) {
        case .added:
            if let peer { network.credit(peer) }
            log.warning("double-sign evidence", ["validator": item.validator.hex, "height": "\(item.height)"])
            network.broadcast(.evidence(item), except: peer)
        case .known, .ignored:
            return
        case .invalid(let reason):
            if let peer {
                network.ban(peer, reason: "sent invalid double-sign evidence: \(reason)")
            } else {
                log.error("the vote keeper reported evidence the runtime refuses", ["reason": reason])
            }
        }
    }

    // MARK: consensus

    /// Starts consensus at the next height, replaying the WAL recovered at start-up if it
    /// belongs to that height.
    func startConsensus() throws {
        if config.doubleSignCheckHeights > 0 && isValidator && recoveredWAL.isEmpty {
            try checkRecentSignatures()
        }
        let replay = WALRecord.replayable(recoveredWAL, nextHeight: state.global.height + 1)
        recoveredWAL = []
        try startHeight(replay: replay)
    }

    /// The look-back check (config `consensus.double_sign_check_heights`), run once when the
    /// node first switches to consensus with a WAL that holds nothing of its own (so the key
    /// is new to this machine): this key in a recent commit means another machine runs it.
    func checkRecentSignatures() throws {
        let top = state.global.height
        let lowest = top >= UInt64(config.doubleSignCheckHeights) ? top - UInt64(config.doubleSignCheckHeights) + 1 : 1
        var commits: [(height: UInt64, signers: [PublicKey])] = []
        for height in stride(from: lowest, through: top, by: 1) where height > 0 {
            if let certificate = try blocks.certificate(at: height) { commits.append((height, certificate.signers)) }
        }
        do { try PersistentSigner.checkLookBack(key: key.publicKey, recentCommits: commits) } catch {
            throw Failure(message: "refusing to sign: \(error); is this validator key running on another machine? (consensus.double_sign_check_heights = \(config.doubleSignCheckHeights))")
        }
    }

    /// After the commit pause: start the next height with the inputs that arrived meanwhile.
    func beginHeight() throws {
        guard core == nil, !catchUp.holding, stateSync == nil else { return }
        try startHeight(replay: [])
    }

    func startHeight(replay: [WALRecord]) throws {
        let height = state.global.height + 1
        let validators = nextValidators()
        let me: PublicKey? = validators.contains(key.publicKey) ? key.publicKey : nil
        network.setValidators(Set(validators.members.map(\.key)))
        run = HeightRun(core: ConsensusCore(height: height, validators: validators, me: me, timeouts: config.timeouts),
                        now: Self.monotonicMilliseconds())
        timers.removeAll()
        if replay.isEmpty {
            // Neither is synced: nothing has left the node for this height yet, and the first
            // own vote's sync carries both to disk. A power cut before it may leave the old
            // height's records, which replay skips by their height marker.
            try wal.reset()
            try wal.append(WALRecord.height(height).canonicalBytes, sync: false)
            crash?.reached(.afterWALHeight, height: height)
        } else {
            log.info("replaying the consensus WAL", ["height": "\(height)", "records": "\(replay.count)"])
        }
        try perform(run!.core.start())
        run?.replaying = true
        for record in replay {
            switch record {
            case .height: continue
            case .proposal(let signed):
                run?.keep(signed)
                try feed(.proposal(signed.proposal, valid: try validate(signed.proposal.value)), logged: false)
            case .vote(let vote): try feed(.vote(vote), logged: false)
            case .timeout(let step, let h, let r): try feed(.timeout(step, height: h, round: r), logged: false)
            case .proposeValue(let block, let h, let r):
                _ = try validate(block)
                try feed(.proposeValue(block, height: h, round: r), logged: false)
            }
        }
        run?.replaying = false
        for entry in early.take() where run?.height == height {
            switch run!.core.screen(entry.input) {
            case .redundant: continue
            case .forbidden(let reason):
                if let peer = entry.from { network.ban(peer, reason: "sent a consensus message no honest peer sends: \(reason)") }
                continue
            case .useful: break
            }
            guard entry.verified || verifyHeld(entry.record, from: entry.from) else { continue }
            try accept(entry.input, record: entry.record, from: entry.from)
        }
    }

    /// Feeds an input, appending it to the WAL first unless it is being replayed from there.
    /// Own votes and proposals are synced before they leave (driver contract 2), and that sync
    /// also carries every record before them. Everything else is written unsynced: a power cut
    /// loses only inputs that left no trace outside this node (peers send theirs again, timers
    /// are scheduled again). Own messages signed while replaying are new to the WAL and are
    /// logged too, since vote gossip may send them later.
    func feed(_ input: ConsensusInput<Block>, logged: Bool = true, record: WALRecord? = nil, own: Bool = false) throws {
        // Scalars only: a copy of the run held across `apply` would copy the core's vote storage.
        guard let replaying = run?.replaying, let before = run?.core.step, let round = run?.core.round,
              let stepStartedAt = run?.stepStartedAt else { return }
        if logged && (!replaying || own), let record = record ?? walRecord(input) {
            try wal.append(record.canonicalBytes, sync: own)
        }
        try perform(run!.core.apply(input))
        // A decision ends the height (the run is gone): that closes the last step too.
        if run?.core.step != before {
            let now = Self.monotonicMilliseconds()
            noteStep(before, lasted: run?.stepEnded(now: now) ?? Self.elapsed(now, since: stepStartedAt))
        }
        if let core, core.round != round, run?.replaying != true {
            report(faults.entered(height: core.height, round: core.round,
                                  proposer: nextValidators().proposer(height: core.height, round: core.round)))
        }
    }

    /// Times each consensus step of a height for the metrics.
    func noteStep(_ step: Step, lasted elapsed: UInt64) {
        if Int(step.rawValue) < metrics.stepDurations.count {
            metrics.stepDurations[Int(step.rawValue)].record(.milliseconds(Int64(clamping: elapsed)))
        }
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

    func tip() throws -> BlockFactory.Tip { try blocks.tip(for: state) }

    /// valid(v), by the shared block factory; the execution is kept for the commit.
    func validate(_ block: Block) throws -> Bool {
        if run?.execution(of: block.id) != nil { return true }
        guard block.header.height == state.global.height + 1, let result = factory.validate(block, on: try tip()) else { return false }
        if run?.height == block.header.height { run?.remember(block, executed: result) }
        return true
    }

    /// This node's proposal, or nil (logged) when not even an empty block executes: the round
    /// then goes by without a proposal from this node, and the node keeps running.
    func buildBlock() throws -> Block? {
        let limits = genesis.parameters.block
        // The builder keeps the block's transactions within max_bytes; the frame that carries a
        // block has 1 MiB on top for its header, evidence and last commit.
        let candidates = mempool.reap(maxCount: Int(limits.maxTransactions), maxBytes: Int(limits.maxBytes))
        guard let (block, result) = factory.build(on: try tip(), proposer: key.publicKey, candidates: candidates,
                                                  maxTransactions: Int(limits.maxTransactions), evidence: evidence.items) else {
            log.error("cannot build a block that this node's runtime accepts; not proposing",
                      ["height": "\(state.global.height + 1)", "state": state.root.hex])
            return nil
        }
        if run?.height == block.header.height { run?.remember(block, executed: result) }
        return block
    }

    func perform(_ effects: [ConsensusEffect<Block>]) throws {
        let height = core?.height
        for effect in effects {
            guard let core, core.height == height else { return }
            switch effect {
            case .requestValue(let h, let r):
                guard let block = try buildBlock() else { continue }
                try feed(.proposeValue(block, height: h, round: r))
            case .signProposal(let proposal):
                let signature: Signature
                do {
                    signature = try signer.signProposal(height: proposal.height, round: proposal.round,
                                                        bytes: ProposalSigning.bytes(proposal))
                } catch {
                    // After a restart the core may ask again for a step already signed; the
                    // WAL replay brings back what was proposed then, so nothing is lost.
                    log.info("not proposing", ["reason": "\(error)"])
                    continue
                }
                let signed = SignedProposal(proposal: proposal, signature: signature)
                run?.keep(signed)
                let replaying = run?.replaying == true
                try feed(.proposal(proposal, valid: try validate(proposal.value)), record: .proposal(signed), own: true)
                if !replaying { send(gossip.ownProposal(signed)) }
            case .signVote(let kind, let h, let r, let blockID):
                // After the time of the block voted for (the block-time rule), whatever the clock says.
                let floor = blockID.flatMap { run?.blockTime(of: $0) } ?? state.global.timeMilliseconds
                let vote = Vote(kind: kind, height: h, round: r, blockID: blockID,
                                timestampMilliseconds: max(Self.wallMilliseconds(), floor + 1), validator: key.publicKey)
                let signed: SignedVote
                do { signed = try signer.signVote(vote) } catch {
                    log.warning("signer refused", ["reason": "\(error)"])
                    continue
                }
                crash?.reached(.afterSign, height: h)
                let replaying = run?.replaying == true
                try feed(.vote(signed), own: true)
                if !replaying { send(gossip.ownVote(signed, validators: core.validators)) }
            case .scheduleTimeout(let step, let h, let r, let milliseconds):
                timers.set(.timeout(step, height: h, round: r), at: Self.monotonicMilliseconds() + milliseconds)
            case .decide(let block, let certificate):
                guard let result = try run?.execution(of: block.id) ?? (validate(block) ? run?.execution(of: block.id) : nil) else {
                    throw Failure(message: "decided block \(block.header.height) does not execute; refusing to continue")
                }
                try commit(block, certificate, result)
                timers.set(.beginHeight, at: Self.monotonicMilliseconds() + config.timeoutCommitMilliseconds)
                return
            case .evidence(let evidence):
                addEvidence(evidence)
            }
        }
    }

    /// Stores a decided block with its state (one synced batch), then updates what depends
    /// on the new tip. The next height starts later (after the commit pause, or at once when
    /// syncing).
    func commit(_ block: Block, _ certificate: CommitCertificate, _ result: ExecutedBlock) throws {
        let height = block.header.height
        crash?.reached(.beforeCommit, height: height)
        let change = LightClient.changeRecord(header: block.header, certificate: certificate, signedBy: nextValidators(), executed: result)
        try blocks.commit(block, certificate: certificate, executed: result, change: change)
        crash?.reached(.afterCommit, height: height)
        state.commit(result)
        let heightStartedAt = run?.startedAt
        run = nil
        timers.removeAll()
        early.committed(height)
        mempool.update(after: state)
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
        network.broadcast(.status(height: height, base: base))
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
        var counts = [UInt64](repeating: 0, count: EventStatus.allCases.count)
        for status in EventStatus.allCases {
            counts[Int(status.rawValue)] = UInt64(try store.scan(.prefix(NodeIndexKey.statusPrefix(status))).count)
        }
        let block = try blocks.block(at: state.global.height)
        let validator = isValidator
        let nodeID = network.nodeID
        let startedAt = Self.wallMilliseconds()
        monitor.update { snapshot in
            snapshot.height = state.global.height
            snapshot.baseHeight = base
            snapshot.committedAtMilliseconds = startedAt  // a stall is counted from the start, not from the last run
            snapshot.blockTimeMilliseconds = state.global.timeMilliseconds
            snapshot.blockID = block?.id ?? .zero
            snapshot.stateRoot = state.root
            snapshot.isValidator = validator
            snapshot.nodeID = nodeID
            snapshot.syncing = false
            snapshot.eventsByStatus = counts
        }
    }
}

/// Where a test asks the node to kill itself (`KC_CRASH_POINT=name`, from height
/// `KC_CRASH_HEIGHT`, default 3): one point per persistence step of a commit.
public struct CrashPoint: Sendable {
    public enum Step: String, Sendable, CaseIterable {
        /// A vote was signed (the signer state is synced) but not yet logged or sent.
        case afterSign = "after-sign"
        /// A block was decided but its batch is not written.
        case beforeCommit = "before-commit"
        /// The block's batch is written; the WAL still holds the decided height.
        case afterCommit = "after-commit"
        /// The WAL was reset for the next height.
        case afterWALHeight = "after-wal-height"
    }

    public let step: Step
    public let height: UInt64

    static func fromEnvironment() -> CrashPoint? {
        guard let raw = getenv("KC_CRASH_POINT"), let step = Step(rawValue: String(cString: raw)) else { return nil }
        let height = getenv("KC_CRASH_HEIGHT").flatMap { UInt64(String(cString: $0)) } ?? 3
        return CrashPoint(step: step, height: height)
    }

    func reached(_ point: Step, height: UInt64) {
        guard point == step, height >= self.height else { return }
        print("crash point \(step.rawValue) reached at height \(height): killing this process")
        flushAll()
        kill(getpid(), SIGKILL)
    }

    private func flushAll() { fflush(nil) }
}

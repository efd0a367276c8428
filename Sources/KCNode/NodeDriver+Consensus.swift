import KCCodec
import KCConsensus
import KCCrypto
import KCNetwork
import KCRuntime
import KCStorage
import KCTypes

/// Consensus in the driver, by the driver contract (Sources/KCConsensus/ConsensusCore.swift and
/// specs/consensus.md): screening and checking peers' proposals and votes, starting a height
/// (with the WAL replay after a restart), feeding inputs through the WAL into the core of the
/// running `HeightRun`, and carrying out its effects (build, sign, time out, decide).
extension NodeDriver {
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
        let set = ValidatorSet(state.validatorSets().current)
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
        let replay = WALRecord.replayable(recoveredWAL, nextHeight: state.global.height + 1)
        recoveredWAL = []
        try startHeight(replay: replay)
    }

    /// After the commit pause: start the next height with the inputs that arrived meanwhile.
    func beginHeight() throws {
        guard core == nil, !catchUp.holding, stateSync == nil else { return }
        try startHeight(replay: [])
    }

    func startHeight(replay: [WALRecord]) throws {
        let height = state.global.height + 1
        let validators = nextValidators()
        // Refused only where this key would sign: a node outside the height's set signs nothing.
        if validators.contains(key.publicKey), let signedAt = lookBack.refusal(tip: state.global.height) {
            throw Failure(message: "refusing to sign: block \(signedAt) carries a precommit of this validator key that this machine did not sign, "
                + "within the last \(lookBack.heights) heights (consensus.double_sign_check_heights); another machine runs this key or "
                + "stopped it less than \(lookBack.heights) blocks ago. Stop the other node for good and wait until the chain is "
                + "\(lookBack.heights) blocks past \(signedAt) before starting this one")
        }
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
              let height = run?.core.height, let stepStartedAt = run?.stepStartedAt else { return }
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
            if core.height == height && core.round > round { metrics.failedRounds.increment(by: Int64(core.round - round)) }
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
        guard block.header.height == state.global.height + 1, let result = factory.validate(block, on: try tip(), known: mempool.verified) else { return false }
        if run?.height == block.header.height { run?.remember(block, executed: result) }
        return true
    }

    /// This node's proposal, or nil (logged) when not even an empty block executes: the round
    /// then goes by without a proposal from this node, and the node keeps running.
    func buildBlock() throws -> Block? {
        let limits = genesis.parameters.block
        // The builder keeps the block's transactions within max_bytes; the frame that carries a
        // block has 1 MiB on top for its header, evidence and last commit.
        // As many as this machine executes within the proposal budget (ADR 0025).
        let count = pace.limit(maxTransactions: Int(limits.maxTransactions))
        let candidates = mempool.reap(maxCount: count, maxBytes: Int(limits.maxBytes))
        let tip = try tip()
        let started = executionClock()
        let built = factory.build(on: tip, proposer: key.publicKey, candidates: candidates, maxTransactions: count, evidence: evidence.items)
        // Only own builds are samples: a peer chooses what its blocks cost this node (transactions
        // it never gossiped must have their signatures checked here), and would steer the pace.
        if let built { observe(transactions: built.block.transactions.count, since: started) }
        guard let (block, result) = built else {
            log.error("cannot build a block that this node's runtime accepts; not proposing",
                      ["height": "\(state.global.height + 1)", "state": state.root.hex])
            return nil
        }
        if run?.height == block.header.height { run?.remember(block, executed: result) }
        return block
    }

    /// One own build of a block, for the proposal pace (ADR 0025).
    func observe(transactions: Int, since started: UInt64) {
        pace.observe(transactions: transactions, nanoseconds: Self.elapsed(executionClock(), since: started))
        metrics.proposalLimit.set(to: Double(pace.limit(maxTransactions: Int(genesis.parameters.block.maxTransactions))))
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
                lookBack.signed(signed)
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
}

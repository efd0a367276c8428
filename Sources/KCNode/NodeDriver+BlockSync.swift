import KCCodec
import KCConsensus
import KCCrypto
import KCNetwork
import KCRuntime
import KCStorage
import KCTypes

/// Block sync and the start-up hold in the driver (specs/p2p.md, "Block sync"): `BlockSync`
/// chooses whom to ask, `CatchUp` when a new validator may sign; here the requests are sent
/// and the fetched blocks verified and committed in height order.
extension NodeDriver {
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
        // Asked before applying what arrived too: peers serve the next heights while this
        // thread executes the ones they sent, instead of waiting for the whole run.
        requestBlocks(now: now)
        var applied: UInt64 = 0
        var unsynced = false
        while let (block, certificate, peer) = sync.take(height: state.global.height + 1) {
            // Only the last block of a run is written synced: the store's log is sequential,
            // so that sync makes the run's earlier writes durable too (specs/storage.md).
            let more = sync.hasArrived(block.header.height + 1)
            if let problem = try applySynced(block, certificate, last: !more) {
                network.ban(peer, reason: "sent block \(block.header.height) that does not verify: \(problem)")
                sync.forget(peer)
                break
            }
            unsynced = more
            applied += 1
        }
        if unsynced {
            // The run ended on a block that did not verify: its last good block is made durable.
            try blocks.syncWrites()
            storedDurably()
        }
        if applied > 0 {
            if !catchUp.catchingUp(now: now) {
                log.info("catching up by block sync", ["from_height": "\(height)", "peers_at": "\(sync.bestHeight)"])
            }
            catchUp.noteSynced(now: now)
            // A key the look-back still watches stops signing while sync moves it: the blocks
            // that arrive may show another machine signing with it.
            if lookBack.watching && nextValidators().contains(key.publicKey) && catchUp.hold(now: now) {
                log.info("block sync moved a validator new to this machine: it signs again once caught up",
                         ["height": "\(state.global.height)", "peers_at": "\(sync.bestHeight)"])
            }
            try beginHeight()
            requestBlocks(now: now)
        }
        if state.global.height != height { sync.noteHeight(state.global.height, now: now) }
    }

    /// Sends the block requests `BlockSync` wants now, above the local tip.
    func requestBlocks(now: UInt64) {
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
    }

    /// Verifies a block fetched by sync against the local chain and commits it (synced, and
    /// announced to peers, when it is the `last` of a run). Returns the problem, or nil when
    /// committed.
    func applySynced(_ block: Block, _ certificate: CommitCertificate, last: Bool) throws -> String? {
        let tip = try tip()
        do { try certificate.verify(validators: tip.validators, chainID: genesis.chainID, cache: signatures) } catch {
            return "its commit certificate: \(error)"
        }
        guard certificate.blockID == block.id, certificate.height == block.header.height,
              let result = factory.validate(block, on: tip) else {
            return "the block is not valid on this chain"
        }
        try commit(block, certificate, result, last: last)
        return nil
    }
}

import KCConsensus
import KCCrypto
import KCNetwork
import KCRuntime

/// State sync in the driver (specs/p2p.md, "State sync"): serving snapshots, chunks and light
/// blocks to others, running `StateSync` for a node that starts with an empty store, and the
/// snapshots this node takes every `storage.snapshot_interval` heights.
extension NodeDriver {
    /// Answers state-sync requests and hands answers to `StateSync`.
    func stateSyncMessage(_ message: WireMessage, from peer: PublicKey) throws {
        let now = Self.monotonicMilliseconds()
        switch message {
        case .snapshotsRequest:
            guard serveBudget.light.allow(peer, now: now) else { return }
            network.send(.snapshots(servedSnapshots), to: peer)
        case .snapshots(let offers):
            stateSync?.offered(offers, by: peer)
        case .chunkRequest(let height, let index):
            guard serveBudget.chunks.allow(peer, now: now) else { return }
            network.send(.chunk(height: height, index: index, bytes: try blocks.chunk(height: height, index: index) ?? []), to: peer)
        case .chunk(let height, let index, let bytes):
            guard var sync = stateSync else { return }
            let bans = try sync.chunkArrived(height: height, index: index, bytes: bytes, from: peer)
            stateSync = sync
            for (banned, reason) in bans { network.ban(banned, reason: reason) }
        case .lightBlockRequest(let after, let target):
            guard serveBudget.light.allow(peer, now: now) else { return }
            network.send(.lightBlock(after: after, target: target, try blocks.lightBlock(after: after, target: target)), to: peer)
        case .lightBlock(let after, let target, let block):
            guard var sync = stateSync else { return }
            let bans = sync.lightBlockArrived(after: after, target: target, block, from: peer, cache: signatures)
            stateSync = sync
            for (banned, reason) in bans { network.ban(banned, reason: reason) }
        default:
            preconditionFailure("not a state-sync message")
        }
    }

    /// One step of a running state sync: requests, timeouts, and the end (restored, or given up).
    func driveStateSync(now: UInt64) throws {
        guard var sync = stateSync else { return }
        let (sends, bans) = try sync.step(now: now)
        stateSync = sync
        for (peer, reason) in bans { network.ban(peer, reason: reason) }
        for (peer, message) in sends { network.send(message, to: peer) }
        if let restored = sync.restored {
            try finishStateSync(restored, chunks: sync.chosen?.chunkHashes.count ?? 0, since: sync.startedAt, now: now)
        } else if sync.gaveUp {
            log.warning("state sync found no snapshot to restore; syncing blocks from genesis instead",
                        ["waited_ms": "\(sync.settings.giveUpMilliseconds)"])
            stateSync = nil
            if !catchUp.holding { try startConsensus() }
        }
    }

    /// Writes the restored state and moves the node to its height; block sync and consensus
    /// take it from there.
    func finishStateSync(_ restored: StateSync.Restored, chunks: Int, since: UInt64, now: UInt64) throws {
        let height = restored.lightBlock.header.height
        crash?.reached(.restoreWritten, height: height)
        state = try blocks.finishRestore(at: restored.lightBlock, changes: restored.changes)
        stateSync = nil
        base = height + 1
        nextValidatorsCache = nil
        mempool.update(after: state)
        evidence.update(after: state, runtime: runtime, cache: signatures)
        log.info("state restored by state sync", ["height": "\(height)", "state": restored.lightBlock.header.stateRoot.hex,
                                                    "chunks": "\(chunks)", "set_changes": "\(restored.changes.count)",
                                                    "took_ms": "\(Self.elapsed(now, since: since))"])
        let blockTime = restored.lightBlock.header.timeMilliseconds, blockID = restored.lightBlock.header.id
        let root = restored.lightBlock.header.stateRoot, validator = isValidator
        monitor.update { snapshot in
            snapshot.height = height
            snapshot.blockTimeMilliseconds = blockTime
            snapshot.blockID = blockID
            snapshot.stateRoot = root
            snapshot.isValidator = validator
        }
        commits.publish(height)
        network.broadcast(.status(height: height, base: base))
        self.sync.noteHeight(height, now: now)
        if !catchUp.holding { try startConsensus() }
    }

    /// Every `storage.snapshot_interval` heights, a snapshot of the state just committed, saved
    /// off this thread (`SnapshotWorker`) from a store snapshot of that height. A save still
    /// running at the next interval makes that one skipped, with a warning.
    func snapshotIfDue(_ block: Block, _ certificate: CommitCertificate, change: LightBlock?) throws {
        let height = block.header.height
        guard config.snapshotInterval > 0, height % config.snapshotInterval == 0 else { return }
        let lightBlock = change ?? LightBlock(header: block.header, certificate: certificate, nextSets: nil)
        let committed = blocks.storedState()
        precondition(committed.global.height == height, "a snapshot of a height not yet stored")
        let blocks = self.blocks, keep = config.snapshotKeep, inbox = events, started = Self.monotonicMilliseconds()
        let began = snapshotWorker.start {
            let result: Result<SnapshotOffer, BlockStore.Failure>
            do throws(BlockStore.Failure) { result = .success(try blocks.saveSnapshot(of: committed, lightBlock: lightBlock, keep: keep)) } catch { result = .failure(error) }
            _ = inbox.push(.snapshotSaved(height: height, result, milliseconds: Self.elapsed(Self.monotonicMilliseconds(), since: started)))
        }
        if !began {
            log.warning("snapshot skipped: the one before is still being written (storage.snapshot_interval may be too short for this state)",
                        ["height": "\(height)"])
        }
    }

    /// A save ended: the list offered to peers is read again. A store that failed to take the
    /// save stops the node, as any failed write does.
    func snapshotSaved(height: UInt64, _ result: Result<SnapshotOffer, BlockStore.Failure>, milliseconds: UInt64) throws {
        let offer = try result.get()
        servedSnapshots = Array(try blocks.snapshots().prefix(WireMessage.maxSnapshotsPerMessage))
        log.debug("snapshot taken", ["height": "\(height)", "chunks": "\(offer.chunkHashes.count)", "took_ms": "\(milliseconds)"])
    }
}

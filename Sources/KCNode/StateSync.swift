import KCConsensus
import KCCrypto
import KCNetwork
import KCRuntime
import KCStorage

/// State sync for a node with an empty store (specs/p2p.md, "State sync"). No network I/O: the
/// driver sends what `step` returns, hands over the answers, bans whom it is told to, and
/// finishes the restore once `restored` is set. Verified chunks are written to the store as they
/// come, in order, through the `SnapshotRestore` it is given; a store failure is thrown.
///
/// It gathers snapshot offers, picks the newest (the one most peers offer among equals), walks
/// a light client from the genesis set to a header verified at that height, then fetches the
/// chunks from every peer that offers the same snapshot, a few at a time from each. A peer
/// that answers with a chunk that does not match the offer, a light block that does not
/// verify, or nothing where its offer promised something is banned and its work goes to the
/// others; an offer whose chunks do not rebuild the verified state root is rejected and all
/// its providers banned. With no offer at all after `giveUpMilliseconds`, it gives up and the
/// node syncs blocks from genesis.
public struct StateSync {
    public struct Settings: Sendable {
        /// How long offers are gathered before one is chosen.
        public var discoveryMilliseconds: UInt64 = 3_000
        /// With no offer by then, block sync from genesis.
        public var giveUpMilliseconds: UInt64 = 30_000
        public var requestTimeoutMilliseconds: UInt64 = 5_000
        /// Chunks are cut at 256 KiB (plus the entry that crosses it); a larger one is a lie.
        public var maxChunkBytes = 1 << 20
        public var maxChunkRequestsPerPeer = 4
        /// Offers with more chunks are ignored: 4 GiB of state at 256 KiB a chunk. The chunks go
        /// to disk as they come, but a false offer is only found out at the root check, after
        /// its chunks were written (at most this many of `maxChunkBytes`).
        public var maxChunks = 16_384
        /// Chunks asked for at most this far ahead of the next one to write (verified chunks
        /// wait in memory for the ones before them: at most this many of `maxChunkBytes`).
        public var chunksAhead = 32
        public var snapshotsRequestIntervalMilliseconds: UInt64 = 2_000
        /// Requests to one peer per second, below what a node serves one peer (16 chunks and 32
        /// other answers a second, `NodeDriver.serveBudget`): an honest server never leaves a
        /// paced request unanswered.
        public var chunkRequestsPerSecond = 8
        public var lightRequestsPerSecond = 16
        public init() {}
    }

    public struct Restored {
        public let state: ChainState
        public let lightBlock: LightBlock
        public let changes: [LightBlock]
    }

    public let settings: Settings
    let chainID: String
    let target: SnapshotRestore
    let genesisValidators: ValidatorSet
    let startedAt: UInt64
    var offers: [PublicKey: [SnapshotOffer]] = [:]
    var rejected: Set<SnapshotOffer> = []
    var banned: Set<PublicKey> = []
    var lastAsked: [PublicKey: UInt64] = [:]
    var connected: Set<PublicKey> = []
    public private(set) var chosen: SnapshotOffer? = nil
    var light: LightClient
    var lightRequest: (peer: PublicKey, after: UInt64, deadline: UInt64)? = nil
    var verified: LightBlock? = nil
    var assembler: SnapshotAssembler? = nil
    var chunkRequests: [UInt32: (peer: PublicKey, deadline: UInt64)] = [:]
    var strikes: [PublicKey: Int] = [:]
    var chunkPace: ServeBudget
    var lightPace: ServeBudget
    public private(set) var restored: Restored? = nil
    public private(set) var gaveUp = false

    public init(chainID: String, genesisValidators: ValidatorSet, restoringInto target: SnapshotRestore, now: UInt64,
                settings: Settings = Settings()) {
        self.chainID = chainID
        self.target = target
        self.genesisValidators = genesisValidators
        self.settings = settings
        startedAt = now
        light = LightClient(chainID: chainID, genesisValidators: genesisValidators)
        chunkPace = ServeBudget(perSecond: settings.chunkRequestsPerSecond)
        lightPace = ServeBudget(perSecond: settings.lightRequestsPerSecond)
    }

    public var isActive: Bool { restored == nil && !gaveUp }

    public mutating func connected(_ peer: PublicKey) { connected.insert(peer) }

    public mutating func disconnected(_ peer: PublicKey) {
        connected.remove(peer)
        offers[peer] = nil
        lastAsked[peer] = nil
        if lightRequest?.peer == peer { lightRequest = nil }
        chunkRequests = chunkRequests.filter { $0.value.peer != peer }
    }

    /// A peer's list of snapshots (kept until the next list from it).
    public mutating func offered(_ list: [SnapshotOffer], by peer: PublicKey) {
        guard !banned.contains(peer) else { return }
        offers[peer] = list.filter { $0.format == SnapshotOffer.currentFormat && $0.chunkHashes.count <= settings.maxChunks }
    }

    func providers(of offer: SnapshotOffer) -> [PublicKey] {
        offers.filter { $0.value.contains(offer) && !banned.contains($0.key) }.map(\.key).sorted()
    }

    /// The newest offer not rejected; among equal heights the one most peers make.
    func best() -> SnapshotOffer? {
        var count: [SnapshotOffer: Int] = [:]
        for (peer, list) in offers where !banned.contains(peer) {
            for offer in list where !rejected.contains(offer) { count[offer, default: 0] += 1 }
        }
        return count.max { a, b in
            (a.key.height, a.value, b.key.chunkHashes.lexicographicallyPrecedes(a.key.chunkHashes) ? 1 : 0)
                < (b.key.height, b.value, a.key.chunkHashes.lexicographicallyPrecedes(b.key.chunkHashes) ? 1 : 0)
        }?.key
    }

    mutating func ban(_ peer: PublicKey, _ reason: String, into bans: inout [(PublicKey, String)]) {
        guard !banned.contains(peer) else { return }
        banned.insert(peer)
        bans.append((peer, reason))
        disconnected(peer)
    }

    /// Drops the chosen offer (rejected when it proved false) and starts over with the next.
    mutating func abandon(reject: Bool) {
        if let chosen, reject { rejected.insert(chosen) }
        chosen = nil
        assembler = nil
        chunkRequests = [:]
        lightRequest = nil
    }

    /// What to send now, and whom to ban (timeouts). Throws when the store fails to discard a
    /// restore begun for an abandoned offer.
    public mutating func step(now: UInt64) throws(StoreError) -> (sends: [(PublicKey, WireMessage)], bans: [(PublicKey, String)]) {
        var sends: [(PublicKey, WireMessage)] = []
        var bans: [(PublicKey, String)] = []
        guard isActive else { return (sends, bans) }
        for peer in connected.sorted() where !banned.contains(peer) {
            if let asked = lastAsked[peer], now < asked &+ settings.snapshotsRequestIntervalMilliseconds { continue }
            guard lightPace.allow(peer, now: now) else { continue }
            lastAsked[peer] = now
            sends.append((peer, .snapshotsRequest))
        }
        // Timeouts: three strikes and the peer is out.
        var late: [PublicKey] = []
        if let request = lightRequest, now >= request.deadline { late.append(request.peer); lightRequest = nil }
        for (index, request) in chunkRequests where now >= request.deadline {
            late.append(request.peer)
            chunkRequests[index] = nil
        }
        for peer in late {
            strikes[peer, default: 0] += 1
            if strikes[peer]! >= 3 { ban(peer, "did not answer state-sync requests three times", into: &bans) }
        }
        if let offer = chosen, providers(of: offer).isEmpty { abandon(reject: false) }
        if chosen == nil {
            guard now >= startedAt &+ settings.discoveryMilliseconds else { return (sends, bans) }
            guard let offer = best() else {
                if now >= startedAt &+ settings.giveUpMilliseconds {
                    try target.discard()  // block sync starts from the genesis state
                    gaveUp = true
                }
                return (sends, bans)
            }
            chosen = offer
            if verified?.header.height != offer.height {
                // A walk that reached another target, or passed this one, starts again from
                // genesis (the set after a reached target is not proven by the walk).
                if verified != nil || light.height >= offer.height {
                    light = LightClient(chainID: chainID, genesisValidators: genesisValidators)
                }
                verified = nil
            }
        }
        guard let offer = chosen else { return (sends, bans) }
        let providers = providers(of: offer)
        if let verified {
            if assembler == nil {
                try target.discard()  // what an abandoned offer wrote
                assembler = SnapshotAssembler(offer: offer, root: verified.header.stateRoot, target: target, window: settings.chunksAhead)
            }
            var load: [PublicKey: Int] = [:]
            for request in chunkRequests.values { load[request.peer, default: 0] += 1 }
            var paced: Set<PublicKey> = []
            for index in assembler!.missing where chunkRequests[index] == nil {
                guard let peer = providers.filter({ !paced.contains($0) })
                        .min(by: { (load[$0, default: 0], $0) < (load[$1, default: 0], $1) }),
                      load[peer, default: 0] < settings.maxChunkRequestsPerPeer else { break }
                guard chunkPace.allow(peer, now: now) else {
                    paced.insert(peer)  // its requests for this second are spent
                    continue
                }
                load[peer, default: 0] += 1
                chunkRequests[index] = (peer, now &+ settings.requestTimeoutMilliseconds)
                sends.append((peer, .chunkRequest(height: offer.height, index: index)))
            }
        } else if lightRequest == nil, let peer = providers.min(by: { (strikes[$0, default: 0], $0) < (strikes[$1, default: 0], $1) }),
                  lightPace.allow(peer, now: now) {
            lightRequest = (peer, light.height, now &+ settings.requestTimeoutMilliseconds)
            sends.append((peer, .lightBlockRequest(after: light.height, target: offer.height)))
        }
        return (sends, bans)
    }

    /// The answer to a light-block request. Returns whom to ban.
    public mutating func lightBlockArrived(after: UInt64, target: UInt64, _ block: LightBlock?, from peer: PublicKey,
                                           cache: SignatureCache? = nil) -> [(PublicKey, String)] {
        guard let request = lightRequest, request.peer == peer, request.after == after, let offer = chosen,
              offer.height == target else { return [] }  // not asked, or asked before a change of plan: ignored
        lightRequest = nil
        var bans: [(PublicKey, String)] = []
        do {
            if let reached = try light.accept(block, target: target, cache: cache) { verified = reached }
        } catch {
            ban(peer, "\(error)", into: &bans)
        }
        return bans
    }

    /// The answer to a chunk request. Returns whom to ban; throws when the store fails to write it.
    public mutating func chunkArrived(height: UInt64, index: UInt32, bytes: [UInt8], from peer: PublicKey) throws(StoreError)
        -> [(PublicKey, String)] {
        guard let offer = chosen, offer.height == height, let request = chunkRequests[index], request.peer == peer,
              var assembler else { return [] }
        chunkRequests[index] = nil
        var bans: [(PublicKey, String)] = []
        if bytes.count > settings.maxChunkBytes {
            ban(peer, "sent a snapshot chunk of \(bytes.count) bytes (at most \(settings.maxChunkBytes))", into: &bans)
            return bans
        }
        if bytes.isEmpty {
            // It no longer keeps that snapshot (snapshots rotate): no lie, but no provider either.
            offers[peer]?.removeAll { $0 == offer }
            return bans
        }
        do {
            try assembler.add(index, bytes: bytes)
        } catch {
            if case .storage(let failure) = error { throw failure }
            if case .chunkMismatch = error {
                ban(peer, "sent a snapshot chunk that does not match its hash: \(error)", into: &bans)
            } else {
                rejectChosen(because: "\(error)", bans: &bans)
            }
            return bans
        }
        self.assembler = assembler
        guard assembler.isComplete, let verified else { return bans }
        do {
            try assembler.finish()
            let state = target.state()
            // When the set changes right after the snapshot's height, the restored state proves
            // the next set: the node keeps that change too, to serve later walks through it.
            var changes = light.changes, lightBlock = verified
            if let change = LightClient.changeRecord(header: verified.header, certificate: verified.certificate,
                                                     signedBy: light.validators, after: state) {
                changes.append(change)
                lightBlock = change
            }
            restored = Restored(state: state, lightBlock: lightBlock, changes: changes)
        } catch {
            if case .storage(let failure) = error { throw failure }
            rejectChosen(because: "\(error)", bans: &bans)
        }
        return bans
    }

    /// The chosen offer proved false: every peer that made it is banned.
    mutating func rejectChosen(because reason: String, bans: inout [(PublicKey, String)]) {
        guard let offer = chosen else { return }
        for provider in providers(of: offer) { ban(provider, "offered a snapshot at height \(offer.height) that is false: \(reason)", into: &bans) }
        abandon(reject: true)
    }
}

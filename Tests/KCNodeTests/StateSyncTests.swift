import KCCodec
import KCConsensus
import KCCrypto
import KCNetwork
import KCRuntime
import KCStorage
import KCTypes
import Testing
@testable import KCNode

/// The pieces of state sync on a real chain (specs/p2p.md, "State sync"): the light-client walk,
/// snapshot chunks, the restore into a store, and the `StateSync` component against honest and
/// lying peers.
@Suite(.serialized)
struct StateSyncTests {
    /// A chain of `heights` whose set changes once validator 3 is jailed for not signing.
    static func chainWithASetChange(heights: Int = 40) throws -> StateSyncChain {
        let chain = try StateSyncChain()
        try chain.produce(heights, offline: [3])
        return chain
    }

    @Test func theWalkCrossesEverySetChangeWithOneCertificateEach() throws {
        let chain = try Self.chainWithASetChange()
        let final = try chain.blocks.tip(for: chain.state).validators
        #expect(final.members.count == 3, "validator 3 was jailed, so the set changed")
        let (reached, client, steps) = try chain.walk(to: 40)
        #expect(reached.header.height == 40)
        #expect(reached.header.stateRoot == chain.roots[40])
        #expect(client.changes.count >= 1)
        #expect(steps == client.changes.count + 1, "one light block per set change, then the target")
        #expect(client.validators == final)
    }

    @Test func forgedOrSkippingLightBlocksAreRefused() throws {
        let chain = try Self.chainWithASetChange()
        let change = try #require(try chain.blocks.lightBlock(after: 0, target: 40))
        #expect(change.header.height < 40 && change.nextSets != nil)
        // A header past the change offered to a client that trusts only the genesis set.
        var client = LightClient(chainID: chain.genesis.chainID, genesisValidators: chain.genesisValidators)
        let late = try #require(try chain.blocks.lightBlock(after: 39, target: 40))
        #expect(throws: LightClient.Refusal.wrongValidators(height: 40)) { _ = try client.accept(late, target: 40) }
        // The same header with a certificate signed by outsiders who name themselves the set.
        let outsiders = (0..<4).map { SigningKey(seed: Blake2b.hash256(Array("outsider/\($0)".utf8))) }.sorted { $0.publicKey < $1.publicKey }
        let real = change.header
        let forgedHeader = BlockHeader(chainID: real.chainID, height: real.height, timeMilliseconds: real.timeMilliseconds,
                                       previousBlockID: real.previousBlockID, lastCommitHash: real.lastCommitHash,
                                       transactionsHash: real.transactionsHash, evidenceHash: real.evidenceHash, stateRoot: .zero,
                                       validatorsHash: real.validatorsHash, proposer: real.proposer)
        let forgedVotes = outsiders.map {
            Vote(kind: .precommit, height: real.height, round: 0, blockID: forgedHeader.id, timestampMilliseconds: 1,
                 validator: $0.publicKey).signed(with: $0, chainID: real.chainID)
        }
        let forged = LightBlock(header: forgedHeader,
                                certificate: CommitCertificate(height: real.height, round: 0, blockID: forgedHeader.id, precommits: forgedVotes),
                                nextSets: change.nextSets)
        client = LightClient(chainID: chain.genesis.chainID, genesisValidators: chain.genesisValidators)
        #expect(throws: LightClient.Refusal.certificate(height: real.height, "precommit 0 is from a key outside the validator set")) {
            _ = try client.accept(forged, target: 40)
        }
        #expect(client.height == 0, "a refused light block moves nothing")
        // The real certificate, but a next set the state root does not prove.
        let tampered = LightBlock(header: change.header, certificate: change.certificate,
                                  nextSets: .init(record: change.nextSets!.record + [0], proof: change.nextSets!.proof))
        #expect(throws: LightClient.Refusal.badSetProof(height: real.height)) { _ = try client.accept(tampered, target: 40) }
        // Nothing, or a block outside the range asked.
        #expect(throws: LightClient.Refusal.missing) { _ = try client.accept(nil, target: 40) }
        #expect(throws: LightClient.Refusal.outOfRange(height: real.height)) { _ = try client.accept(change, target: real.height - 1) }
        // The honest answer is still accepted after all that.
        #expect(try client.accept(change, target: 40) == nil)
        #expect(client.height == real.height)
    }

    @Test func chunksRebuildTheStateInAnyOrderAndNothingElse() throws {
        let chain = try StateSyncChain()
        try chain.produce(12)
        let chunks = SnapshotChunks.make(chain.state, chunkBytes: 300)
        #expect(chunks.count > 3)
        let offer = SnapshotOffer(height: 12, chunkHashes: chunks.map { Blake2b.hash256($0) })
        // Gathered whole (one batch), then written by `finish`.
        let (joined, restore) = try chain.joiner(flushBytes: .max)
        var assembler = SnapshotAssembler(offer: offer, root: chain.state.root, target: restore, window: chunks.count)
        for index in (0..<chunks.count).reversed() { try assembler.add(UInt32(index), bytes: chunks[index]) }
        #expect(try joined.store.scan(.prefix(StatePersistence.statePrefix)).isEmpty && restore.entries > 0)
        try assembler.finish()
        #expect(restore.state().root == chain.state.root)
        // A chunk that is not the offer's.
        var other = SnapshotAssembler(offer: offer, root: chain.state.root, target: try chain.joiner().restore)
        #expect(throws: SnapshotAssembler.Refusal.chunkMismatch(index: 1)) { try other.add(1, bytes: chunks[0]) }
        #expect(throws: SnapshotAssembler.Refusal.chunkMismatch(index: 99)) { try other.add(99, bytes: chunks[0]) }
        // An offer whose hashes are honest about chunks of another state: every chunk matches,
        // the root does not.
        var otherState = chain.state
        let extra = try StateSyncChain(label: "another-chain")
        try extra.produce(3)
        otherState = extra.state
        let lying = SnapshotChunks.make(otherState, chunkBytes: 300)
        var fooled = SnapshotAssembler(offer: SnapshotOffer(height: 12, chunkHashes: lying.map { Blake2b.hash256($0) }), root: chain.state.root,
                                       target: try chain.joiner().restore)
        for (index, chunk) in lying.enumerated() { try fooled.add(UInt32(index), bytes: chunk) }
        #expect(throws: SnapshotAssembler.Refusal.rootMismatch(expected: chain.state.root, found: otherState.root)) { try fooled.finish() }
        // Chunks swapped in the offer: each matches its hash, the keys run backwards.
        var swapped = SnapshotAssembler(offer: SnapshotOffer(height: 12, chunkHashes: [chunks[1], chunks[0]].map { Blake2b.hash256($0) }),
                                        root: chain.state.root, target: try chain.joiner().restore)
        try swapped.add(0, bytes: chunks[1])
        #expect(throws: SnapshotAssembler.Refusal.keysOutOfOrder(index: 1)) { try swapped.add(1, bytes: chunks[0]) }
        // Undecodable or unordered chunk contents.
        #expect(throws: (any Error).self) { _ = try SnapshotChunks.decode([1, 2, 3]) }
        var writer = CanonicalWriter()
        writer.writeLength(2)
        writer.writeBytes(Array("b".utf8)); writer.writeBytes([1])
        writer.writeBytes(Array("a".utf8)); writer.writeBytes([2])
        #expect(throws: (any Error).self) { _ = try SnapshotChunks.decode(writer.bytes) }
    }

    /// The state and trie keys of a store, for comparing two stores' states whole.
    static func stateKeys(_ store: any KeyValueReader) throws -> [KeyValuePair] {
        try store.scan(.prefix(StatePersistence.statePrefix)) + store.scan(.prefix(StatePersistence.triePrefix))
    }

    /// Chunks are written to the store as soon as the ones before them are: out of order, at
    /// most a window of verified chunks waits in memory; chunks beyond it are not kept.
    @Test func aRestoreHoldsAWindowOfChunksAndWritesTheRestAsItGoes() throws {
        let chain = try StateSyncChain(snapshotEvery: 0)
        try chain.produce(12)
        let chunks = SnapshotChunks.make(chain.state, chunkBytes: 64)
        #expect(chunks.count > 12)
        let offer = SnapshotOffer(height: 12, chunkHashes: chunks.map { Blake2b.hash256($0) })
        let (joined, restore) = try chain.joiner()
        var assembler = SnapshotAssembler(offer: offer, root: chain.state.root, target: restore, window: 4)
        #expect(assembler.missing == [0, 1, 2, 3])
        for index in [3, 2, 1] { try assembler.add(UInt32(index), bytes: chunks[index]) }
        #expect(assembler.heldCount == 3 && assembler.written == 0 && restore.entries == 0)
        #expect(assembler.heldBytes == chunks[1].count + chunks[2].count + chunks[3].count, "held as they came, not decoded")
        #expect(assembler.missing == [0])
        try assembler.add(9, bytes: chunks[9])
        #expect(!assembler.has(9) && assembler.heldCount == 3, "a chunk beyond the window is not kept")
        try assembler.add(0, bytes: chunks[0])
        #expect(assembler.heldCount == 0 && assembler.written == 4)
        let firstFour = try (0..<4).reduce(0) { $0 + (try SnapshotChunks.decode(chunks[$1]).count) }
        #expect(restore.entries == firstFour)
        #expect(try joined.isRestoring(), "the store holds a state that is neither genesis nor restored")
        #expect(assembler.missing == [4, 5, 6, 7])
        for index in 4..<chunks.count { try assembler.add(UInt32(index), bytes: chunks[index]) }
        // Written in batches as the chunks came (a batch per 1,000 bytes of entries here).
        let writtenBefore = try joined.store.scan(.prefix(StatePersistence.statePrefix)).count
        #expect(writtenBefore > 0 && writtenBefore <= restore.entries, "\(writtenBefore) of \(restore.entries)")
        try assembler.finish()
        // The store holds exactly what the chain's own store holds for its state.
        #expect(try Self.stateKeys(joined.store) == Self.stateKeys(chain.blocks.store))
    }

    /// A chunk of `count` entries with 3-byte ascending keys and 1-byte values: what a liar who
    /// made the offer can send (it matches the offer's hash).
    static func tinyEntries(_ count: Int) -> [UInt8] {
        var writer = CanonicalWriter()
        writer.writeLength(count)
        for index in 0..<count {
            writer.writeBytes([UInt8(truncatingIfNeeded: index >> 16), UInt8(truncatingIfNeeded: index >> 8), UInt8(truncatingIfNeeded: index)])
            writer.writeBytes([1])
        }
        return writer.bytes
    }

    /// The attacker's cheapest chunk: a million-entry state in a few hundred KiB. Decoded, each
    /// entry costs a hundred bytes or more, and a trie update about a dozen nodes: a chunk holds
    /// at most 65,536 entries (honest ones at most 32,769), and the restore writes at most
    /// 16,384 entries a batch however small they are.
    @Test func aFalseOfferOfTinyEntriesCannotBlowUpMemory() throws {
        let chain = try StateSyncChain(snapshotEvery: 0)
        let flood = Self.tinyEntries(70_000)
        #expect(flood.count < 1 << 20, "under the 1 MiB a chunk may have on the wire")
        let offer = SnapshotOffer(height: 1, chunkHashes: [Blake2b.hash256(flood)])
        var assembler = SnapshotAssembler(offer: offer, root: .zero, target: try chain.joiner().restore)
        do {
            try assembler.add(0, bytes: flood)
            Issue.record("a chunk of 70,000 entries was taken")
        } catch {
            guard case .undecodable(index: 0, _) = error else { Issue.record("\(error)"); return }
        }
        // Under the cap: decoded, and written in batches of at most 16,384 entries even though
        // their bytes are far below the byte threshold.
        let many = try SnapshotChunks.decode(Self.tinyEntries(40_000))
        let (joined, restore) = try chain.joiner(flushBytes: .max)
        try restore.add(many)
        #expect(try joined.store.scan(.prefix(StatePersistence.statePrefix)).count == 2 * SnapshotRestore.maxBatchEntries)
        try restore.flush()
        #expect(try joined.store.scan(.prefix(StatePersistence.statePrefix)).count == 40_000)
    }

    /// A restore cut short (the node stopped, or the offer proved false) leaves the genesis
    /// state, exactly, and a new restore into the same store finishes.
    @Test func aRestoreCutShortGoesBackToTheGenesisState() throws {
        let chain = try StateSyncChain(snapshotEvery: 0)
        try chain.produce(12)
        let chunks = SnapshotChunks.make(chain.state, chunkBytes: 300)
        let offer = SnapshotOffer(height: 12, chunkHashes: chunks.map { Blake2b.hash256($0) })
        let store = MemoryStore()
        let (joined, restore) = try chain.joiner(store: store)
        let genesisKeys = try Self.stateKeys(store)
        var assembler = SnapshotAssembler(offer: offer, root: chain.state.root, target: restore)
        for index in 0..<chunks.count / 2 { try assembler.add(UInt32(index), bytes: chunks[index]) }
        #expect(try Self.stateKeys(store) != genesisKeys)
        // Stopped here: the next start finds the marker and puts the genesis state back.
        let reopened = try BlockStore(store: store).open(genesis: chain.genesis, runtime: chain.runtime)
        #expect(reopened.root == chain.roots[0])
        #expect(try Self.stateKeys(store) == genesisKeys)
        #expect(try !joined.isRestoring())
        // Discarded in the process (an offer proved false), then restored again: the right state.
        let again = SnapshotRestore(blocks: joined, runtime: chain.runtime)
        var first = SnapshotAssembler(offer: offer, root: chain.state.root, target: again)
        for index in 0..<3 { try first.add(UInt32(index), bytes: chunks[index]) }
        try again.discard()
        #expect(try Self.stateKeys(store) == genesisKeys && !joined.isRestoring())
        #expect(again.state().root == chain.roots[0] && again.entries == 0)
        var second = SnapshotAssembler(offer: offer, root: chain.state.root, target: again)
        for index in (0..<chunks.count).reversed() { try second.add(UInt32(index), bytes: chunks[index]) }
        try second.finish()
        #expect(again.state().root == chain.state.root)
        // Clearing in small batches deletes every state key and leaves the marker.
        try joined.clearState(marking: true, batchKeys: 5)
        #expect(try Self.stateKeys(store).isEmpty && joined.isRestoring())
    }

    @Test func snapshotsRotateAndServeTheirChunks() throws {
        let chain = try StateSyncChain(snapshotEvery: 5, snapshotKeep: 2)
        try chain.produce(17)
        let offers = try chain.blocks.snapshots()
        #expect(offers.map(\.height) == [15, 10], "the newest two, newest first")
        #expect(try chain.blocks.chunk(height: 5, index: 0) == nil, "the third-newest is gone with its chunks")
        let chunk = try #require(try chain.blocks.chunk(height: 15, index: 0))
        #expect(Blake2b.hash256(chunk) == offers[0].chunkHashes[0])
        // A snapshot height's light block is served even once its block is pruned.
        try chain.blocks.prune(below: 17, limit: 100)
        #expect(try chain.blocks.block(at: 15) == nil)
        #expect(try chain.blocks.lightBlock(after: 14, target: 15)?.header.height == 15)
        // Requests that make no sense get no answer, and never trap.
        #expect(try chain.blocks.lightBlock(after: 15, target: 15) == nil)
        #expect(try chain.blocks.lightBlock(after: .max, target: 3) == nil)
        #expect(try chain.blocks.lightBlock(after: 0, target: .max) == nil)
    }

    /// A snapshot of the stored state is cut while the store is walked and written in several
    /// batches: the same chunks as the whole state gathered and sorted. A save a crash cut
    /// short (its marker and some chunks, no record) is never offered and the next save
    /// deletes what it left.
    @Test func snapshotsAreWrittenAsTheStateIsWalkedAndInterruptedOnesAreDropped() throws {
        let chain = try StateSyncChain(snapshotEvery: 0)
        try chain.produce(12)
        let gathered = ChainState(entries: Dictionary(uniqueKeysWithValues: chain.state.sortedEntries().map { ($0.key, $0.value) }))
        let expected = SnapshotChunks.make(gathered, chunkBytes: 300)
        #expect(expected.count > 8)
        // The crash: a save at height 7 wrote its marker and two chunks, then stopped.
        var interrupted = WriteBatch()
        interrupted.put(BlockStore.pendingSnapshotKey(7), [])
        interrupted.put(BlockStore.chunkKey(7, 0), [1, 2, 3])
        interrupted.put(BlockStore.chunkKey(7, 1), [4, 5, 6])
        try chain.blocks.store.write(interrupted, sync: false)
        #expect(try chain.blocks.snapshots().isEmpty)
        let previous = try #require(try chain.blocks.tip(for: chain.state).previous)
        let lightBlock = LightBlock(header: previous.header, certificate: previous.certificate, nextSets: nil)
        let offer = try chain.blocks.saveSnapshot(of: chain.state, lightBlock: lightBlock, keep: 2, chunkBytes: 300, batchBytes: 1_000)
        #expect(offer.chunkHashes == expected.map { Blake2b.hash256($0) })
        for (index, chunk) in expected.enumerated() { #expect(try chain.blocks.chunk(height: 12, index: UInt32(index)) == chunk) }
        #expect(try chain.blocks.snapshots().map(\.height) == [12])
        #expect(try chain.blocks.chunk(height: 7, index: 0) == nil && chain.blocks.chunk(height: 7, index: 1) == nil)
        #expect(try chain.blocks.store.scan(.prefix(Array("sp/".utf8))).isEmpty)
    }

    @Test func aRestoredStoreReopensAndTakesTheNextBlock() throws {
        let chain = try Self.chainWithASetChange()
        try chain.produce(1, offline: [3])  // height 41, the block the restored node must accept
        let (reached, client, _) = try chain.walk(to: 40)
        let offer = try #require(try chain.blocks.snapshots().first { $0.height == 40 })
        let store = MemoryStore()
        let (joined, restore) = try chain.joiner(store: store)
        var assembler = SnapshotAssembler(offer: offer, root: reached.header.stateRoot, target: restore)
        for index in 0..<offer.chunkHashes.count {
            try assembler.add(UInt32(index), bytes: try #require(try chain.blocks.chunk(height: 40, index: UInt32(index))))
        }
        try assembler.finish()
        _ = try joined.finishRestore(at: reached, changes: client.changes)
        let reopened = try BlockStore(store: store).open(genesis: chain.genesis, runtime: chain.runtime)
        #expect(reopened.root == chain.roots[40])
        #expect(try joined.height() == 40)
        #expect(try joined.base() == 41)
        // The restored node serves the walk to the next joiner: the set changes it verified.
        #expect(try joined.lightBlock(after: 0, target: 40) == client.changes.first)
        // Block 41 of the real chain checks and commits on top.
        let next = try #require(try chain.blocks.block(at: 41))
        let tip = try joined.tip(for: reopened)
        let executed = try #require(chain.factory.validate(next, on: tip))
        try joined.commit(next, certificate: try #require(try chain.blocks.certificate(at: 41)), executed: executed)
        #expect(try joined.height() == 41)
        #expect(executed.outcome.stateRoot == chain.roots[41])
        // A store with blocks refuses a restore.
        #expect(throws: BlockStore.Failure.corrupt("state sync into a store that already holds blocks")) {
            _ = try joined.finishRestore(at: reached, changes: [])
        }
    }
}

/// `StateSync` against peers that answer from a real chain's store, some of them lying.
struct StateSyncPeerTests {
    enum Behaviour: Equatable {
        case honest, corruptsChunks, claimsAHigherSnapshot, offersAFalseState, silent
        /// Offers only the snapshot at this height, and strips the proven next set from the
        /// light block at the target.
        case offersOnlyWithoutTheNextSet(UInt64)
    }

    struct Run {
        var restored: StateSync.Restored?
        /// The joining node's store, holding the restored state once `restored` is set.
        var joined: BlockStore
        /// The most verified chunks held at once, waiting for the ones before them.
        var mostHeld = 0
        var bans: [PublicKey: String] = [:]
        var elapsed: UInt64 = 0
        var chunksFrom: [PublicKey: Int] = [:]
        var unanswered = 0
    }

    static func key(_ label: String) -> PublicKey { SigningKey(seed: Blake2b.hash256(Array("peer/\(label)".utf8))).publicKey }

    /// Plays the exchange in 100 ms steps of virtual time until restored, given up, or 2 minutes.
    static func run(_ chain: StateSyncChain, peers: [(PublicKey, Behaviour)], falseState: StateSyncChain? = nil) throws -> Run {
        let (joined, restore) = try chain.joiner()
        var sync = StateSync(chainID: chain.genesis.chainID, genesisValidators: chain.genesisValidators, restoringInto: restore, now: 0)
        var run = Run(joined: joined)
        let behaviours = Dictionary(uniqueKeysWithValues: peers)
        for (peer, _) in peers { sync.connected(peer) }
        let falseChunks = falseState.map { SnapshotChunks.make($0.state, chunkBytes: 512) } ?? []
        let falseOffer = SnapshotOffer(height: 41, chunkHashes: falseChunks.map { Blake2b.hash256($0) })
        var now: UInt64 = 0
        // Each server answers within the node's serving budget, as a real node does.
        var chunkBudget = ServeBudget(perSecond: 16), lightBudget = ServeBudget(perSecond: 32)
        while now < 120_000 && sync.isActive {
            now += 100
            let (sends, bans) = try sync.step(now: now)
            for (peer, reason) in bans { run.bans[peer] = reason }
            for (peer, message) in sends {
                guard let behaviour = behaviours[peer], behaviour != .silent, run.bans[peer] == nil else { continue }
                if case .chunkRequest = message {
                    guard chunkBudget.allow(peer, now: now) else { run.unanswered += 1; continue }
                } else if !lightBudget.allow(peer, now: now) {
                    run.unanswered += 1
                    continue
                }
                guard var answer = try chain.answer(message) else { continue }
                switch (behaviour, answer) {
                case (.corruptsChunks, .chunk(let height, let index, var bytes)) where !bytes.isEmpty:
                    bytes[bytes.count / 2] ^= 0x55
                    answer = .chunk(height: height, index: index, bytes: bytes)
                case (.claimsAHigherSnapshot, .snapshots(let offers)):
                    answer = .snapshots([SnapshotOffer(height: 1_000, chunkHashes: [.zero])] + offers.prefix(1))
                case (.claimsAHigherSnapshot, .lightBlock(let after, let target, let block)) where target == 1_000:
                    // The real header renumbered: its certificate is for another block.
                    answer = .lightBlock(after: after, target: target, block.map { _ in try! chain.blocks.lightBlock(after: 39, target: 40)! })
                case (.offersOnlyWithoutTheNextSet(let height), .snapshots(let offers)):
                    answer = .snapshots(try chain.blocks.snapshots().filter { $0.height == height } + offers.prefix(0))
                case (.offersOnlyWithoutTheNextSet(let height), .lightBlock(let after, let target, let block?)) where target == height && block.header.height == height:
                    answer = .lightBlock(after: after, target: target, LightBlock(header: block.header, certificate: block.certificate, nextSets: nil))
                case (.offersAFalseState, .snapshots):
                    answer = .snapshots([falseOffer])
                case (.offersAFalseState, .chunk(let height, let index, _)) where height == 41:
                    answer = .chunk(height: height, index: index, bytes: Int(index) < falseChunks.count ? falseChunks[Int(index)] : [])
                default: break
                }
                switch answer {
                case .snapshots(let offers): sync.offered(offers, by: peer)
                case .chunk(let height, let index, let bytes):
                    run.chunksFrom[peer, default: 0] += 1
                    for (banned, reason) in try sync.chunkArrived(height: height, index: index, bytes: bytes, from: peer) { run.bans[banned] = reason }
                    run.mostHeld = max(run.mostHeld, sync.assembler?.heldCount ?? 0)
                case .lightBlock(let after, let target, let block):
                    for (banned, reason) in sync.lightBlockArrived(after: after, target: target, block, from: peer) { run.bans[banned] = reason }
                default: break
                }
            }
        }
        run.restored = sync.restored
        run.elapsed = now
        return run
    }

    /// Snapshots at 10, ..., 40, and block 41 above the newest.
    static func chain() throws -> StateSyncChain { try StateSyncTests.chainWithASetChange(heights: 41) }

    @Test func honestPeersShareTheChunksAndTheStateIsTheVerifiedOne() throws {
        let chain = try Self.chain()
        let peers = (0..<3).map { (Self.key("honest-\($0)"), Behaviour.honest) }
        let run = try Self.run(chain, peers: peers)
        let restored = try #require(run.restored)
        #expect(restored.lightBlock.header.height == 40)
        #expect(restored.state.root == chain.roots[40])
        #expect(run.bans.isEmpty)
        #expect(run.chunksFrom.count == 3, "every peer that offers the snapshot serves chunks: \(run.chunksFrom)")
        #expect(!restored.changes.isEmpty)
    }

    @Test func liarsAreBannedAndTheHonestPeersFinish() throws {
        let chain = try Self.chain()
        let falseState = try StateSyncChain(label: "false-state")
        try falseState.produce(5)
        let honest = [Self.key("honest-a"), Self.key("honest-b")]
        let corrupting = Self.key("corrupts-chunks"), higher = Self.key("claims-higher"), falseStatePeer = Self.key("false-state"),
            silent = Self.key("silent")
        let run = try Self.run(chain, peers: [(honest[0], .honest), (honest[1], .honest), (corrupting, .corruptsChunks),
                                              (higher, .claimsAHigherSnapshot), (falseStatePeer, .offersAFalseState), (silent, .silent)],
                               falseState: falseState)
        let restored = try #require(run.restored, "the honest peers finish the job; bans: \(run.bans)")
        #expect(restored.state.root == chain.roots[40])
        // Its light block for height 1,000 is the real header 40, which the genesis set did not sign.
        #expect(run.bans[higher] == "sent a header at height 40 that names another validator set than the verified one",
                "\(run.bans[higher] ?? "not banned")")
        #expect(run.bans[falseStatePeer]?.contains("offered a snapshot at height 41 that is false") == true, "\(run.bans[falseStatePeer] ?? "not banned")")
        #expect(run.bans[corrupting]?.contains("does not match its hash") == true, "\(run.bans[corrupting] ?? "not banned")")
        #expect(run.bans[honest[0]] == nil && run.bans[honest[1]] == nil)
        // A silent peer is only dropped after three unanswered requests, if it was asked at all.
        if let reason = run.bans[silent] { #expect(reason.contains("did not answer")) }
    }

    /// A snapshot at the very height after which the set changes: the restored node proves the
    /// change from its own verified state (even when the server leaves the proof out), and keeps
    /// it to serve later walks through that height.
    @Test func aSetChangeRightAfterTheSnapshotIsKept() throws {
        let chain = try StateSyncChain(snapshotEvery: 1, snapshotKeep: 100)
        try chain.produce(41, offline: [3])
        let change = try #require(try chain.blocks.lightBlock(after: 0, target: 41))
        #expect(change.nextSets != nil && change.header.height < 41)
        let height = change.header.height
        let run = try Self.run(chain, peers: [(Self.key("strips"), .offersOnlyWithoutTheNextSet(height))])
        let restored = try #require(run.restored, "bans: \(run.bans)")
        #expect(restored.lightBlock.header.height == height)
        #expect(restored.lightBlock.nextSets == change.nextSets)
        #expect(restored.changes.last == change)
        let store = run.joined
        _ = try store.finishRestore(at: restored.lightBlock, changes: restored.changes)
        #expect(try store.lightBlock(after: 0, target: height + 10) == change, "served to the next joiner")
    }

    /// A state of many chunks from one peer: the requests are paced below what the peer serves,
    /// so none goes unanswered and the honest peer is never struck.
    @Test func requestsArePacedBelowWhatAPeerServes() throws {
        let chain = try StateSyncChain(chunkBytes: 64)
        try chain.produce(41, offline: [3])
        let offer = try #require(try chain.blocks.snapshots().first)
        #expect(offer.chunkHashes.count > 40)
        let run = try Self.run(chain, peers: [(Self.key("only"), .honest)])
        #expect(run.restored?.state.root == chain.roots[40])
        #expect(run.bans.isEmpty && run.unanswered == 0, "bans \(run.bans), unanswered \(run.unanswered)")
        #expect(run.mostHeld <= StateSync.Settings().chunksAhead)
        #expect(run.elapsed >= 3_000 + UInt64(offer.chunkHashes.count / 8 - 1) * 1_000, "8 chunks a second: \(run.elapsed) ms")
    }

    @Test func withNoOfferTheNodeGivesUpAndSyncsBlocks() throws {
        let empty = try StateSyncChain(snapshotEvery: 0)
        try empty.produce(3)
        let run = try Self.run(empty, peers: [(Self.key("archive"), .honest)])
        #expect(run.restored == nil)
        #expect(run.elapsed >= 30_000 && run.elapsed < 31_000, "gave up after the give-up time: \(run.elapsed) ms")
    }
}

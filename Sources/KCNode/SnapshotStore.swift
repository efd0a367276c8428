import KCCodec
import KCConsensus
import KCCrypto
import KCNetwork
import KCRuntime
import KCStorage

/// What the block store keeps for state sync (specs/storage.md, "State sync"): the light
/// blocks after which the validator set changed (`lb/`, never pruned: every later walk passes
/// them), the snapshots (`sm/` offer and light block, `sc/` chunks, the last K kept), and for a
/// state-synced node the light block of the height it started from (`m/restored`).
extension BlockStore {
    static let restoredKey: [UInt8] = Array("m/restored".utf8)
    /// Present while a restored state is being written over the genesis state.
    public static let restoringKey: [UInt8] = Array("m/restoring".utf8)

    static func chunkKey(_ height: UInt64, _ index: UInt32) -> [UInt8] {
        var key = Self.key("sc/", height)
        ByteOrder.appendBigEndian(index, to: &key)
        return key
    }

    /// A snapshot as stored: the offer and the light block of its height.
    struct SnapshotRecord: CanonicalCodable {
        let offer: SnapshotOffer
        let lightBlock: LightBlock

        func encode(to writer: inout CanonicalWriter) { writer.write(offer); writer.write(lightBlock) }
        init(offer: SnapshotOffer, lightBlock: LightBlock) {
            self.offer = offer
            self.lightBlock = lightBlock
        }
        init(from reader: inout CanonicalReader) throws(DecodingError) {
            offer = try reader.read(SnapshotOffer.self)
            lightBlock = try reader.read(LightBlock.self)
        }
    }

    /// Chunks written per batch while a snapshot is saved.
    public static let snapshotBatchBytes = 16 << 20

    static func pendingSnapshotKey(_ height: UInt64) -> [UInt8] { key("sp/", height) }

    /// Stores a snapshot of `state` (the state after `lightBlock`'s header) and deletes all
    /// but the newest `keep`. The chunks are cut as the state is walked and written in unsynced
    /// batches of about `batchBytes`, under a marker (`sp/`); the record that makes the snapshot
    /// visible is written last, with the marker's deletion, so a crash loses a snapshot, never
    /// serves half of one, and the next save deletes what it left. Returns the offer.
    @discardableResult
    public func saveSnapshot(of state: ChainState, lightBlock: LightBlock, keep: Int,
                             chunkBytes: Int = SnapshotChunks.chunkBytes, batchBytes: Int = BlockStore.snapshotBatchBytes)
        throws(Failure) -> SnapshotOffer {
        precondition(keep > 0 && state.global.height == lightBlock.header.height, "a snapshot of another height")
        let height = lightBlock.header.height
        try dropInterruptedSnapshots()
        var batch = WriteBatch()
        batch.put(Self.pendingSnapshotKey(height), [])
        var pendingBytes = 0
        var hashes: [Hash256] = []
        var failure: StoreError? = nil
        SnapshotChunks.make(state, chunkBytes: chunkBytes) { chunk in
            guard failure == nil else { return }
            batch.put(Self.chunkKey(height, UInt32(hashes.count)), chunk)
            hashes.append(Blake2b.hash256(chunk))
            pendingBytes += chunk.count
            guard pendingBytes >= batchBytes else { return }
            do throws(StoreError) { try store.write(batch, sync: false) } catch { failure = error }
            batch = WriteBatch()
            pendingBytes = 0
        }
        if let failure { throw .storage(failure) }
        let offer = SnapshotOffer(height: height, chunkHashes: hashes)
        batch.put(Self.key("sm/", height), SnapshotRecord(offer: offer, lightBlock: lightBlock).canonicalBytes)
        batch.delete(Self.pendingSnapshotKey(height))
        let older = try snapshotRecords().filter { $0.offer.height < height }
        for record in older.dropFirst(keep - 1) {
            batch.delete(Self.key("sm/", record.offer.height))
            for index in 0..<record.offer.chunkHashes.count { batch.delete(Self.chunkKey(record.offer.height, UInt32(index))) }
        }
        do { try store.write(batch, sync: false) } catch { throw .storage(error) }
        return offer
    }

    /// Deletes the chunks and markers of saves a crash interrupted (a marker with no record).
    func dropInterruptedSnapshots() throws(Failure) {
        do {
            let markers = try store.scan(.prefix(Array("sp/".utf8)), limit: .max, reverse: false)
            guard !markers.isEmpty else { return }
            var batch = WriteBatch()
            for marker in markers {
                batch.delete(marker.key)
                let height: UInt64 = ByteOrder.bigEndian(marker.key.suffix(8))
                guard try store.get(Self.key("sm/", height)) == nil else { continue }
                try StatePersistence.forEach(in: store, prefix: Self.key("sc/", height), page: 16) { key, _ in batch.delete(key) }
            }
            try store.write(batch, sync: false)
        } catch {
            throw .storage(error)
        }
    }

    /// The kept snapshots, newest first.
    func snapshotRecords() throws(Failure) -> [SnapshotRecord] {
        let pairs: [KeyValuePair]
        do { pairs = try store.scan(.prefix(Array("sm/".utf8)), limit: .max, reverse: true) } catch { throw .storage(error) }
        var records: [SnapshotRecord] = []
        for pair in pairs {
            do { records.append(try SnapshotRecord.decode(exactly: pair.value)) } catch { throw .corrupt("snapshot record: \(error)") }
        }
        return records
    }

    /// The offers of the kept snapshots, newest first.
    public func snapshots() throws(Failure) -> [SnapshotOffer] { try snapshotRecords().map(\.offer) }

    /// A chunk of a kept snapshot, or nil.
    public func chunk(height: UInt64, index: UInt32) throws(Failure) -> [UInt8]? {
        do { return try store.get(Self.chunkKey(height, index)) } catch { throw .storage(error) }
    }

    /// The answer to `lightBlockRequest(after:target:)`: the first stored set change above
    /// `after` and below `target`, else the light block at `target` (its set change, a
    /// snapshot's, a kept block's, or the restored height's), else nil.
    public func lightBlock(after: UInt64, target: UInt64) throws(Failure) -> LightBlock? {
        guard target > after else { return nil }
        if target - after > 1 {
            let range = KeyRange(lower: Self.key("lb/", after + 1), upper: Self.key("lb/", target))
            let pairs: [KeyValuePair]
            do { pairs = try store.scan(range, limit: 1) } catch { throw .storage(error) }
            if let pair = pairs.first {
                do { return try LightBlock.decode(exactly: pair.value) } catch { throw .corrupt("light block: \(error)") }
            }
        }
        if let bytes = try raw(Self.key("lb/", target)) {
            do { return try LightBlock.decode(exactly: bytes) } catch { throw .corrupt("light block: \(error)") }
        }
        if let bytes = try raw(Self.key("sm/", target)) {
            do { return try SnapshotRecord.decode(exactly: bytes).lightBlock } catch { throw .corrupt("snapshot record: \(error)") }
        }
        if let block = try block(at: target), let certificate = try certificate(at: target) {
            return LightBlock(header: block.header, certificate: certificate, nextSets: nil)
        }
        if let restored = try restoredLightBlock(), restored.header.height == target { return restored }
        return nil
    }

    /// The light block of the height a state-synced store started from, if it did.
    func restoredLightBlock() throws(Failure) -> LightBlock? {
        guard let bytes = try raw(Self.restoredKey) else { return nil }
        do { return try LightBlock.decode(exactly: bytes) } catch { throw .corrupt("the restored light block: \(error)") }
    }

    /// Deletes every state entry and trie page, in unsynced batches of `batchKeys` deletions
    /// walked over one snapshot (a restored state may hold millions of keys). With `marking`,
    /// the first batch writes the marker `m/restoring`: the store then holds no valid state
    /// until `finishRestore` or `resetToGenesisState` deletes it.
    func clearState(marking: Bool, batchKeys: Int = 65_536) throws(StoreError) {
        let snapshot = store.snapshot()
        var batch = WriteBatch()
        if marking { batch.put(Self.restoringKey, []) }
        var pending = 0
        for prefix in [StatePersistence.statePrefix, StatePersistence.triePrefix] {
            try StatePersistence.forEach(in: snapshot, prefix: prefix) { key, _ throws(StoreError) in
                batch.delete(key)
                pending += 1
                guard pending >= batchKeys else { return }
                try store.write(batch, sync: false)
                batch = WriteBatch()
                pending = 0
            }
        }
        try store.write(batch, sync: false)
    }

    /// Puts the genesis state back in place of a restore that did not finish (an offer that
    /// proved false, or a node stopped during state sync), and deletes the marker, synced.
    func resetToGenesisState(_ genesisState: ChainState) throws(StoreError) {
        try clearState(marking: false)
        var batch = WriteBatch()
        StatePersistence.add(genesisState, to: &batch)
        batch.delete(Self.restoringKey)
        try store.write(batch, sync: true)
        stateCache.advanceClearing()
    }

    /// Whether a restore is under way (or was, when a node stopped during state sync).
    func isRestoring() throws(StoreError) -> Bool { try store.get(Self.restoringKey) != nil }

    /// Ends a restore whose state `SnapshotRestore` wrote and whose root was checked against
    /// the light block's header: writes the verified set changes below it, that light block (the
    /// next block is checked against its header and certificate), its certificate and the height
    /// and base markers, and deletes `m/restoring`, in one synced batch. The store keeps no block
    /// below the next one. Returns the restored state, read from the store.
    public func finishRestore(at lightBlock: LightBlock, changes: [LightBlock]) throws(Failure) -> ChainState {
        let height = lightBlock.header.height
        guard try self.height() == 0 else { throw .corrupt("state sync into a store that already holds blocks") }
        let restoring: Bool
        do { restoring = try isRestoring() } catch { throw .storage(error) }
        guard restoring else { throw .corrupt("no restored state to finish") }
        var batch = WriteBatch()
        for change in changes { batch.put(Self.key("lb/", change.header.height), change.canonicalBytes) }
        batch.put(Self.key("c/", height), lightBlock.certificate.canonicalBytes)
        batch.put(Self.restoredKey, lightBlock.canonicalBytes)
        batch.put(Self.heightKey, height.canonicalBytes)
        batch.put(Self.baseKey, (height + 1).canonicalBytes)
        batch.delete(Self.restoringKey)
        do { try store.write(batch, sync: true) } catch { throw .storage(error) }
        stateCache.advanceClearing()
        let restored = storedState()
        precondition(restored.root == lightBlock.header.stateRoot && restored.global.height == height,
                     "finishing a restore whose state is not the verified one")
        return restored
    }

    private func raw(_ key: [UInt8]) throws(Failure) -> [UInt8]? {
        do { return try store.get(key) } catch { throw .storage(error) }
    }
}

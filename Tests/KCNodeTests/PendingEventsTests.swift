import KCCodec
import KCCrypto
import KCNode
import KCRuntime
import KCStorage
import Synchronization
import Testing

/// Reading the pending events from the attestation queue (ADR 0030): what one look costs.
struct PendingEventsTests {
    /// A reader that counts the pairs its scans return.
    final class CountingReader: KeyValueReader {
        let store: MemoryStore
        let pairs = Atomic<Int>(0)
        init(_ store: MemoryStore) { self.store = store }
        func get(_ key: [UInt8]) throws(StoreError) -> [UInt8]? { try store.get(key) }
        func scan(_ range: KeyRange, limit: Int, reverse: Bool) throws(StoreError) -> [KeyValuePair] {
            let found = try store.scan(range, limit: limit, reverse: reverse)
            pairs.add(found.count, ordering: .relaxed)
            return found
        }
    }

    /// `entries` full entries of 256 ids, then `emptied` entries whose events were all decided.
    static func queue(full entries: Int, emptied: Int) throws -> MemoryStore {
        let store = MemoryStore()
        var batch = WriteBatch()
        for position in 0..<(entries + emptied) {
            let ids = position < entries ? (0..<QueueEntry.maxIDs).map { Blake2b.hash256(Array("\(position)/\($0)".utf8)) } : []
            batch.put(StatePersistence.storeKey(StateKey.queueEntry(.attestation, UInt64(position))),
                      QueueEntry(timeMilliseconds: 1, ids: ids).canonicalBytes)
        }
        try store.write(batch, sync: false)
        return store
    }

    /// A client asking for one pending event (the RPC's `limit=1`) makes the node read about
    /// one entry, not a look's 1,024 entries of up to 8 KiB each.
    @Test func aShortPageReadsAboutWhatItReturns() throws {
        let reader = CountingReader(try Self.queue(full: 100, emptied: 0))
        let page = try PendingEvents.page(in: reader, after: nil, limit: 1)
        #expect(page.events.count == 1 && !page.reachedEnd)
        #expect(reader.pairs.load(ordering: .relaxed) <= 2, "entries read for one event")
        // A page of 600 events: three entries' worth, read in a few small scans.
        let before = reader.pairs.load(ordering: .relaxed)
        let larger = try PendingEvents.page(in: reader, after: page.resumeAfter, limit: 600)
        #expect(larger.events.count == 600 && larger.events.first?.position == PendingEvents.Position(entry: 0, index: 1))
        #expect(reader.pairs.load(ordering: .relaxed) - before <= 6)
    }

    /// A queue of emptied entries is crossed a bounded look at a time, each look saying where
    /// the next goes on, and the last one that it reached the end.
    @Test func emptiedEntriesAreCrossedABoundedLookAtATime() throws {
        let reader = CountingReader(try Self.queue(full: 0, emptied: 2_500))
        var after: PendingEvents.Position? = nil
        var looks = 0
        while true {
            let before = reader.pairs.load(ordering: .relaxed)
            let page = try PendingEvents.page(in: reader, after: after, limit: 500)
            #expect(page.events.isEmpty)
            #expect(reader.pairs.load(ordering: .relaxed) - before <= PendingEvents.maxEntriesPerLook)
            looks += 1
            if page.reachedEnd || looks > 5 { break }
            after = page.resumeAfter
        }
        #expect(looks == 3, "1,024 + 1,024 + 452 entries")
        #expect(try PendingEvents.count(in: reader) == 0)
        #expect(try PendingEvents.count(in: Self.queue(full: 3, emptied: 2)) == 768)
    }
}

import KCCodec
import KCCrypto
import KCRuntime
import KCStorage

/// The pending events, read from the attestation queue of a stored state (ADR 0030). Since
/// store format 6 the queue's entries hold exactly the events still pending, in the order they
/// were proposed (ADR 0029), so the node keeps no index of them: the attester and the RPC read
/// the queue. Entries emptied by decisions stay until their deadline, so a look is bounded in
/// entries as well as in events.
public enum PendingEvents {
    /// Where a pending event sits: its queue entry and its place in that entry.
    public struct Position: Comparable, Hashable, Sendable {
        public let entry: UInt64
        public let index: UInt32

        public init(entry: UInt64, index: UInt32) {
            self.entry = entry
            self.index = index
        }

        public static func < (left: Position, right: Position) -> Bool {
            (left.entry, left.index) < (right.entry, right.index)
        }

        /// 12 bytes, u64-be entry ‖ u32-be index: the RPC's cursor.
        public var bytes: [UInt8] {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(12)
            ByteOrder.appendBigEndian(entry, to: &bytes)
            ByteOrder.appendBigEndian(index, to: &bytes)
            return bytes
        }

        public init?(bytes: [UInt8]) {
            guard bytes.count == 12 else { return nil }
            entry = ByteOrder.bigEndian(bytes[0..<8])
            index = ByteOrder.bigEndian(bytes[8..<12])
        }
    }

    /// A look at the queue: the events found in order, where the next look goes on from, and
    /// whether this one went through the last entry.
    public struct Page: Sendable {
        public var events: [(position: Position, id: Hash256)] = []
        /// The position after which the next look starts (nil: nothing was read).
        public var resumeAfter: Position? = nil
        public var reachedEnd = false

        public init() {}
    }

    /// Entries one look reads at most (an entry holds up to 256 ids, often none).
    public static let maxEntriesPerLook = 1_024

    static let entryPrefix = StatePersistence.storeKey(StoreKey(Array(StateKey.Queue.attestation.rawValue.utf8)))

    /// Up to `limit` pending events after `after` (from the oldest when nil), oldest first,
    /// reading at most `maxEntries` entries.
    public static func page(in reader: any KeyValueReader, after: Position?, limit: Int,
                            maxEntries: Int = maxEntriesPerLook) throws(StoreError) -> Page {
        var page = Page()
        guard limit > 0, maxEntries > 0, let upper = KeyRange.prefix(entryPrefix).upper else { return page }
        var lower = entryPrefix
        if let after {
            // Past the whole entry (`index` .max): start at the next one.
            lower = StatePersistence.storeKey(StateKey.queueEntry(.attestation, after.entry)) + (after.index == .max ? [0] : [])
        }
        var read = 0, chunk = 2
        // A few entries at a time (each up to 8 KiB), more as the look goes on: a short page
        // reads about what it returns.
        while read < maxEntries {
            let asked = min(chunk, maxEntries - read)
            chunk = min(2 * chunk, entriesPerScan)
            let pairs = try reader.scan(KeyRange(lower: lower, upper: upper), limit: asked, reverse: false)
            for pair in pairs {
                let entry = try position(ofKey: pair.key)
                for (index, id) in try ids(pair.value, entry: entry).enumerated() {
                    let position = Position(entry: entry, index: UInt32(index))
                    if let after, position <= after { continue }
                    if page.events.count == limit { return page }  // resumeAfter: the last event taken
                    page.events.append((position, id))
                    page.resumeAfter = position
                }
                page.resumeAfter = Position(entry: entry, index: .max)
            }
            read += pairs.count
            guard let last = pairs.last, pairs.count == asked else {
                page.reachedEnd = true
                return page
            }
            lower = last.key + [0]
        }
        return page  // `maxEntries` read: not known to be the end
    }

    /// Entries read by one scan of the store at most.
    static let entriesPerScan = 32

    /// How many events are pending (every entry read: for start-up, not per request).
    public static func count(in reader: any KeyValueReader) throws(StoreError) -> UInt64 {
        var count: UInt64 = 0
        try StatePersistence.forEach(in: reader, prefix: entryPrefix) { key, value throws(StoreError) in
            count += UInt64(try ids(value, entry: try position(ofKey: key)).count)
        }
        return count
    }

    private static func ids(_ value: [UInt8], entry: UInt64) throws(StoreError) -> [Hash256] {
        do { return try QueueEntry.decode(exactly: value).ids } catch {
            throw .damaged(path: "the state", detail: "attestation entry \(entry) does not decode (\(error)): the data directory is damaged; move it aside and sync from peers")
        }
    }

    private static func position(ofKey key: [UInt8]) throws(StoreError) -> UInt64 {
        guard key.count == entryPrefix.count + 8 else {
            throw .damaged(path: "the state", detail: "attestation entry key \(Hex.encode(key)) has the wrong length: the data directory is damaged")
        }
        return ByteOrder.bigEndian(key[entryPrefix.count...])
    }
}

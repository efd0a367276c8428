import KCCodec
import KCCrypto
import KCRuntime

/// What a stored block produced besides state, kept under `r/` + height for the RPC and for
/// subscribers that resume from a height: receipts (in transaction order), event status
/// changes and slashes, in the order the runtime made them.
public struct BlockResults: Equatable, Sendable, CanonicalCodable {
    public let receipts: [Receipt]
    public let eventChanges: [EventStatusChange]
    public let slashes: [SlashRecord]

    public init(receipts: [Receipt], eventChanges: [EventStatusChange], slashes: [SlashRecord]) {
        self.receipts = receipts
        self.eventChanges = eventChanges
        self.slashes = slashes
    }

    public init(_ outcome: BlockOutcome) {
        self.init(receipts: outcome.receipts, eventChanges: outcome.eventChanges, slashes: outcome.slashes)
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.writeList(receipts); writer.writeList(eventChanges); writer.writeList(slashes)
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        receipts = try reader.readList(Receipt.self, "receipts", limit: 1 << 20)
        eventChanges = try reader.readList(EventStatusChange.self, "event changes", limit: 1 << 22)
        slashes = try reader.readList(SlashRecord.self, "slashes", limit: 1 << 20)
    }
}

/// Where a committed transaction is: `tx/` + hash → height and position in the block.
public struct TransactionLocation: Equatable, Sendable, CanonicalCodable {
    public let height: UInt64
    public let index: UInt32

    public init(height: UInt64, index: UInt32) {
        self.height = height
        self.index = index
    }

    public func encode(to writer: inout CanonicalWriter) { writer.write(height); writer.write(index) }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        height = try reader.readUInt64("height")
        index = try reader.readUInt32("index")
    }
}

/// Keys of the indexes the node derives from block outcomes (specs/storage.md).
public enum NodeIndexKey {
    public static func transaction(_ hash: Hash256) -> [UInt8] { Array("tx/".utf8) + hash.bytes }

    /// `ix/status/` u32-be status ‖ event id: the events now accepted or disputed (the statuses
    /// an event leaves again). Pending events are read from the attestation queue
    /// (`PendingEvents`), and the final statuses are grouped per block (`statusGroup`), ADR 0030.
    public static func status(_ status: EventStatus, event: Hash256) -> [UInt8] {
        precondition(isKeyedByEvent(status), "\(status.name) events are not indexed one key each")
        return statusPrefix(status) + event.bytes
    }

    /// `ix/status/` u32-be status ‖ u64-be height: the ids of the events that reached the final
    /// status (rejected, expired, finalized: never left again) in that block, sorted and
    /// concatenated, as the author and kind indexes are grouped.
    public static func statusGroup(_ status: EventStatus, height: UInt64) -> [UInt8] {
        precondition(isGroupedPerBlock(status), "only final statuses are grouped per block")
        var key = statusPrefix(status)
        ByteOrder.appendBigEndian(height, to: &key)
        return key
    }

    /// Whether the status index holds one key per event in `status` (accepted, disputed).
    public static func isKeyedByEvent(_ status: EventStatus) -> Bool { status != .pending && !isGroupedPerBlock(status) }

    /// Whether the status index groups `status` per block (`statusGroup`: the final statuses,
    /// which an event never leaves); pending events are in neither form (`PendingEvents`).
    public static func isGroupedPerBlock(_ status: EventStatus) -> Bool { status.isFinal }

    public static func statusPrefix(_ status: EventStatus) -> [UInt8] {
        var key = Array("ix/status/".utf8)
        ByteOrder.appendBigEndian(status.rawValue, to: &key)
        return key
    }
}

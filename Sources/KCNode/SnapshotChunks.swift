import KCCodec
import KCCrypto
import KCNetwork
import KCRuntime
import KCStorage

/// How a state is cut into snapshot chunks and put back together (specs/p2p.md, "State sync").
///
/// A chunk (format 1) is the canonical list of (key bytes, value bytes) pairs, keys strictly
/// ascending within the chunk and across chunks; a chunk closes once it holds
/// `chunkBytes` or more. Cutting depends on nothing but the state, so every node offers the
/// same chunks for the same height, and a joining node can fetch them from all of them.
public enum SnapshotChunks {
    public static let chunkBytes = 256 << 10

    /// The chunks of `state`, in order.
    public static func make(_ state: ChainState, chunkBytes: Int = SnapshotChunks.chunkBytes) -> [[UInt8]] {
        var chunks: [[UInt8]] = []
        make(state, chunkBytes: chunkBytes) { chunks.append($0) }
        return chunks
    }

    /// The chunks of `state`, handed to `emit` in order as each is cut: a state read from the
    /// store is walked in key order a page at a time, so only one chunk is held at once.
    public static func make(_ state: ChainState, chunkBytes: Int = SnapshotChunks.chunkBytes, emit: ([UInt8]) -> Void) {
        precondition(chunkBytes > 0)
        var emitted = false
        var pairs: [(StoreKey, [UInt8])] = []
        var size = 0
        func close() {
            var writer = CanonicalWriter(reservingCapacity: size + 16)
            writer.writeLength(pairs.count)
            for (key, value) in pairs {
                key.withUnsafeBytes { writer.writeBytes($0) }
                writer.writeBytes(value)
            }
            emit(writer.bytes)
            emitted = true
            pairs.removeAll(keepingCapacity: true)
            size = 0
        }
        state.forEachEntryInKeyOrder { key, value in
            pairs.append((key, value))
            size += key.count + value.count + 8
            if size >= chunkBytes { close() }
        }
        if !pairs.isEmpty || !emitted { close() }
    }

    /// Entries one chunk may hold. A chunk closes once its entries and 8 bytes each reach
    /// `chunkBytes`, so an honest chunk holds at most 32,769; the cap keeps a false offer's
    /// chunk of a million one-byte entries (a few MiB on the wire, far more decoded, and a trie
    /// update as large) from being decoded at all.
    public static let maxEntries = 65_536

    /// Decodes one chunk: its pairs, keys strictly ascending. Throws on anything else.
    public static func decode(_ chunk: [UInt8]) throws(DecodingError) -> [(StoreKey, [UInt8])] {
        var reader = CanonicalReader(chunk)
        let count = try reader.readLength("chunk entries", limit: min(chunk.count / 2 + 1, maxEntries))
        var pairs: [(StoreKey, [UInt8])] = []
        pairs.reserveCapacity(count)
        for _ in 0..<count {
            let keyBytes = try reader.readBytes("state key", limit: StoreKey.capacity)
            guard !keyBytes.isEmpty, let key = StoreKey(validating: keyBytes) else {
                throw .invalidValue(what: "snapshot chunk", reason: "an empty state key")
            }
            let value = try reader.readBytes("state value", limit: WireMessage.maxChunkBytes)
            if let last = pairs.last, !(last.0 < key) {
                throw .invalidValue(what: "snapshot chunk", reason: "keys are not strictly ascending")
            }
            pairs.append((key, value))
        }
        try reader.finish()
        return pairs
    }
}

/// Puts a snapshot back together from chunks that arrive in any order from any peer: checks
/// each against the offer's hash as it arrives, adds the chunks in index order to a
/// `SnapshotRestore` (which writes them to the store: the state is never held in memory, and at
/// most `window` verified chunks wait for the one before them), checks that the keys run
/// strictly ascending across the chunks, and at the end that the root of everything written is
/// the verified one.
public struct SnapshotAssembler {
    public enum Refusal: Error, Equatable, CustomStringConvertible {
        /// The chunk is not the one the offer names: its sender lied.
        case chunkMismatch(index: UInt32)
        /// The chunk matches the offer but does not decode: the offer itself lied.
        case undecodable(index: UInt32, reason: String)
        /// The chunks decode but do not make the verified state: the offer lied.
        case rootMismatch(expected: Hash256, found: Hash256)
        case keysOutOfOrder(index: UInt32)
        /// Writing the chunk failed: the node's fault, not the offer's.
        case storage(StoreError)

        public var description: String {
            switch self {
            case .chunkMismatch(let index): return "chunk \(index) does not match the snapshot's chunk hash"
            case .undecodable(let index, let reason): return "chunk \(index) does not decode: \(reason)"
            case .rootMismatch(let expected, let found):
                return "the snapshot's state root \(found.hex.prefix(12))… is not the verified header's \(expected.hex.prefix(12))…"
            case .keysOutOfOrder(let index): return "chunk \(index) does not continue the keys of the chunk before it"
            case .storage(let error): return error.description
            }
        }
    }

    public let offer: SnapshotOffer
    /// The state root of the verified header at the snapshot's height.
    public let root: Hash256
    /// Chunks asked for at most this far ahead of the next one to write.
    public let window: Int
    let target: SnapshotRestore
    /// Verified chunks waiting for the ones before them, as they came: decoded only when
    /// written, so what waits is at most `window` chunks of their wire size.
    var held: [UInt32: [UInt8]] = [:]
    /// The chunks below this index are written.
    public private(set) var written: UInt32 = 0
    var lastKey: StoreKey? = nil

    /// `target` must hold nothing yet (a fresh or discarded restore).
    public init(offer: SnapshotOffer, root: Hash256, target: SnapshotRestore, window: Int = 32) {
        precondition(window > 0 && target.entries == 0, "an assembler starts on an empty restore")
        self.offer = offer
        self.root = root
        self.target = target
        self.window = window
    }

    var count: UInt32 { UInt32(offer.chunkHashes.count) }

    /// The chunks to ask for now: neither written nor held, within the window.
    public var missing: [UInt32] {
        let end = UInt32(min(Int(count), Int(written) + window))
        return (written..<end).filter { held[$0] == nil }
    }

    public var isComplete: Bool { written == count }
    public func has(_ index: UInt32) -> Bool { index < written || held[index] != nil }
    public var heldCount: Int { held.count }
    public var heldBytes: Int { held.values.reduce(0) { $0 + $1.count } }

    /// Checks a chunk against the offer, then decodes and writes it and every held chunk that
    /// follows it once the chunks before are written. A chunk outside the window is not kept
    /// (it was not asked for).
    public mutating func add(_ index: UInt32, bytes: [UInt8]) throws(Refusal) {
        guard index < count, Blake2b.hash256(bytes) == offer.chunkHashes[Int(index)] else { throw .chunkMismatch(index: index) }
        guard !has(index), Int(index) < Int(written) + window else { return }
        held[index] = bytes
        while let bytes = held.removeValue(forKey: written) {
            let pairs: [(StoreKey, [UInt8])]
            do { pairs = try SnapshotChunks.decode(bytes) } catch { throw .undecodable(index: written, reason: "\(error)") }
            if let last = lastKey, let first = pairs.first, !(last < first.0) { throw .keysOutOfOrder(index: written) }
            do { try target.add(pairs) } catch { throw .storage(error) }
            lastKey = pairs.last?.0 ?? lastKey
            written += 1
        }
    }

    /// Once every chunk is added: writes what the restore still gathers, and refuses a state
    /// whose root is not the verified one.
    public func finish() throws(Refusal) {
        precondition(isComplete, "finishing an incomplete snapshot")
        do { try target.flush() } catch { throw .storage(error) }
        guard target.root == root else { throw .rootMismatch(expected: root, found: target.root) }
    }
}

import KCCodec
import KCCrypto
import KCNetwork
import KCRuntime

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

    /// Decodes one chunk: its pairs, keys strictly ascending. Throws on anything else.
    public static func decode(_ chunk: [UInt8]) throws(DecodingError) -> [(StoreKey, [UInt8])] {
        var reader = CanonicalReader(chunk)
        let count = try reader.readLength("chunk entries", limit: chunk.count / 2 + 1)
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

/// Puts a snapshot back together from chunks that arrive in any order from any peer, checking
/// each against the offer's hash as it arrives, and the whole against a verified state root
/// at the end. Holds nothing it has not checked against the offer.
public struct SnapshotAssembler {
    public enum Refusal: Error, Equatable, CustomStringConvertible {
        /// The chunk is not the one the offer names: its sender lied.
        case chunkMismatch(index: UInt32)
        /// The chunk matches the offer but does not decode: the offer itself lied.
        case undecodable(index: UInt32, reason: String)
        /// The chunks decode but do not make the verified state: the offer lied.
        case rootMismatch(expected: Hash256, found: Hash256)
        case keysOutOfOrder(index: UInt32)

        public var description: String {
            switch self {
            case .chunkMismatch(let index): return "chunk \(index) does not match the snapshot's chunk hash"
            case .undecodable(let index, let reason): return "chunk \(index) does not decode: \(reason)"
            case .rootMismatch(let expected, let found):
                return "the snapshot's state root \(found.hex.prefix(12))… is not the verified header's \(expected.hex.prefix(12))…"
            case .keysOutOfOrder(let index): return "chunk \(index) does not continue the keys of the chunk before it"
            }
        }
    }

    public let offer: SnapshotOffer
    /// The state root of the verified header at the snapshot's height.
    public let root: Hash256
    var chunks: [UInt32: [(StoreKey, [UInt8])]] = [:]

    public init(offer: SnapshotOffer, root: Hash256) {
        self.offer = offer
        self.root = root
    }

    public var missing: [UInt32] { (0..<UInt32(offer.chunkHashes.count)).filter { chunks[$0] == nil } }
    public var isComplete: Bool { chunks.count == offer.chunkHashes.count }
    public func has(_ index: UInt32) -> Bool { chunks[index] != nil }

    /// Checks a chunk against the offer and keeps it.
    public mutating func add(_ index: UInt32, bytes: [UInt8]) throws(Refusal) {
        guard Int(index) < offer.chunkHashes.count, Blake2b.hash256(bytes) == offer.chunkHashes[Int(index)] else {
            throw .chunkMismatch(index: index)
        }
        do { chunks[index] = try SnapshotChunks.decode(bytes) } catch { throw .undecodable(index: index, reason: "\(error)") }
    }

    /// The state, once every chunk is in, if its keys run in order across the chunks and its
    /// root is the verified one.
    public func finish() throws(Refusal) -> ChainState {
        precondition(isComplete, "finishing an incomplete snapshot")
        var entries: [StoreKey: [UInt8]] = [:]
        var last: StoreKey? = nil
        for index in 0..<UInt32(offer.chunkHashes.count) {
            let pairs = chunks[index]!  // complete: every index is present
            if let last, let first = pairs.first, !(last < first.0) { throw .keysOutOfOrder(index: index) }
            for (key, value) in pairs { entries[key] = value }
            last = pairs.last?.0 ?? last
        }
        let state = ChainState(entries: entries)
        guard state.root == root else { throw .rootMismatch(expected: root, found: state.root) }
        return state
    }
}

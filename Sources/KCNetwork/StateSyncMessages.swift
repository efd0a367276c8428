import KCCodec
import KCConsensus
import KCCrypto

/// A snapshot a node offers for state sync (specs/p2p.md, "State sync"): the state after the
/// block at `height`, cut in chunks, each named by its BLAKE2b-256. The hashes come from the
/// offering peer: they check a chunk against the offer, and the whole offer is only believed
/// once the rebuilt state's root equals the root of a header the receiver verified itself.
public struct SnapshotOffer: Sendable, Equatable, Hashable, CanonicalCodable {
    /// 1: chunks are canonical lists of (state key, value) in ascending key order.
    public static let currentFormat: UInt32 = 1
    /// A state of up to 32,768 chunks (8 GiB at 256 KiB a chunk).
    public static let maxChunks = 32_768

    public let height: UInt64
    public let format: UInt32
    public let chunkHashes: [Hash256]

    public init(height: UInt64, format: UInt32 = SnapshotOffer.currentFormat, chunkHashes: [Hash256]) {
        self.height = height
        self.format = format
        self.chunkHashes = chunkHashes
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(height); writer.write(format); writer.writeList(chunkHashes)
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        height = try reader.readUInt64("snapshot height")
        format = try reader.readUInt32("snapshot format")
        chunkHashes = try reader.readList(Hash256.self, "chunk hashes", limit: Self.maxChunks)
        guard !chunkHashes.isEmpty else { throw .invalidValue(what: "snapshot offer", reason: "it has no chunks") }
    }
}

/// A block header with the certificate that decided it, for a light-client walk (specs/p2p.md,
/// "State sync"). When the validator set changes after this height, `nextSets` carries the
/// state's validator-sets record after the block and its Merkle proof against the header's
/// state root, so the next set is proven by the header the certificate signs.
public struct LightBlock: Sendable, Equatable, CanonicalCodable {
    public struct SetProof: Sendable, Equatable, CanonicalCodable {
        public static let maxRecordBytes = 1 << 20
        public static let maxProofBytes = 64 << 10
        /// The canonical `ValidatorSets` record (state key `vsets`).
        public let record: [UInt8]
        /// The canonical `StateTrie.Proof` of that record.
        public let proof: [UInt8]

        public init(record: [UInt8], proof: [UInt8]) {
            self.record = record
            self.proof = proof
        }

        public func encode(to writer: inout CanonicalWriter) { writer.writeBytes(record); writer.writeBytes(proof) }
        public init(from reader: inout CanonicalReader) throws(DecodingError) {
            record = try reader.readBytes("validator sets record", limit: Self.maxRecordBytes)
            proof = try reader.readBytes("validator sets proof", limit: Self.maxProofBytes)
        }
    }

    public let header: BlockHeader
    public let certificate: CommitCertificate
    public let nextSets: SetProof?

    public init(header: BlockHeader, certificate: CommitCertificate, nextSets: SetProof?) {
        precondition(certificate.height == header.height && certificate.blockID == header.id, "certificate of another header")
        self.header = header
        self.certificate = certificate
        self.nextSets = nextSets
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(header); writer.write(certificate); writer.writeOptional(nextSets)
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        let header = try reader.read(BlockHeader.self)
        let certificate = try reader.read(CommitCertificate.self)
        guard certificate.height == header.height, certificate.blockID == header.id else {
            throw .invalidValue(what: "light block", reason: "the certificate is for another header")
        }
        self.header = header
        self.certificate = certificate
        nextSets = try reader.readOptional(SetProof.self, "next validator sets")
    }
}

import KCCodec
import KCConsensus
import KCCrypto
import KCTypes

/// What peers say to each other once a connection is authenticated (specs/p2p.md). Each
/// message is one encrypted frame: a varint tag, then its fields in canonical encoding.
public enum WireMessage: Sendable, Equatable, CanonicalCodable {
    /// Tag 0: the sender's last committed height and the lowest height whose block it still
    /// keeps (1 unless it prunes); sent on connect, after each commit, and periodically. Block
    /// sync picks its sources from these.
    case status(height: UInt64, base: UInt64 = 1)
    /// Tag 1: transactions for the mempool (each sent to a peer at most once).
    case transactions([SignedTransaction])
    /// Tag 2.
    case proposal(SignedProposal)
    /// Tag 3.
    case vote(SignedVote)
    /// Tag 4: double-sign evidence the sender saw.
    case evidence(DoubleSignEvidence)
    /// Tag 5: asks for the decided block at a height and its commit certificate.
    case blockRequest(height: UInt64)
    /// Tag 6: the answer to a block request.
    case block(Block, CommitCertificate)
    /// Tag 7: the sender has no decided block at that height.
    case noBlock(height: UInt64)
    /// Tag 8: where the sender stands in consensus and what it holds of its round; sent when
    /// its height or round changes, and as a stall report (specs/p2p.md, "Consensus gossip").
    case roundState(RoundState)
    /// Tag 9: asks for addresses of other nodes (peer exchange; specs/p2p.md, "Peer discovery").
    case addressRequest
    /// Tag 10: the answer to 9, at most `maxAddressesPerMessage` addresses.
    case addresses([PeerAddress])
    /// Tag 11: asks for the snapshots the peer keeps (state sync; specs/p2p.md, "State sync").
    case snapshotsRequest
    /// Tag 12: the answer to 11, at most `maxSnapshotsPerMessage` offers, newest first.
    case snapshots([SnapshotOffer])
    /// Tag 13: asks for one chunk of a snapshot.
    case chunkRequest(height: UInt64, index: UInt32)
    /// Tag 14: the answer to 13; empty when the sender no longer keeps that snapshot.
    case chunk(height: UInt64, index: UInt32, bytes: [UInt8])
    /// Tag 15: asks for the first light block above `after` and below `target` after which
    /// the validator set changes, or else the light block at `target`.
    case lightBlockRequest(after: UInt64, target: UInt64)
    /// Tag 16: the answer to 15 (none: the sender keeps neither).
    case lightBlock(after: UInt64, target: UInt64, LightBlock?)

    public static let maxAddressesPerMessage = 100
    public static let maxSnapshotsPerMessage = 2
    /// A chunk is at most this long (the node cuts 256 KiB ones; see `SnapshotChunks`).
    public static let maxChunkBytes = 4 << 20

    /// At most this many transactions per message.
    public static let maxTransactionsPerMessage = 10_000

    public var name: String {
        switch self {
        case .status: return "status"
        case .transactions: return "transactions"
        case .proposal: return "proposal"
        case .vote: return "vote"
        case .evidence: return "evidence"
        case .blockRequest: return "block request"
        case .block: return "block"
        case .noBlock: return "no block"
        case .roundState: return "round state"
        case .addressRequest: return "address request"
        case .addresses: return "addresses"
        case .snapshotsRequest: return "snapshots request"
        case .snapshots: return "snapshots"
        case .chunkRequest: return "chunk request"
        case .chunk: return "chunk"
        case .lightBlockRequest: return "light block request"
        case .lightBlock: return "light block"
        }
    }

    public func encode(to writer: inout CanonicalWriter) {
        switch self {
        case .status(let height, let base): writer.writeVarint(0); writer.write(height); writer.write(base)
        case .transactions(let transactions): writer.writeVarint(1); writer.writeList(transactions)
        case .proposal(let proposal): writer.writeVarint(2); writer.write(proposal)
        case .vote(let vote): writer.writeVarint(3); writer.write(vote)
        case .evidence(let evidence): writer.writeVarint(4); writer.write(evidence)
        case .blockRequest(let height): writer.writeVarint(5); writer.write(height)
        case .block(let block, let certificate): writer.writeVarint(6); writer.write(block); writer.write(certificate)
        case .noBlock(let height): writer.writeVarint(7); writer.write(height)
        case .roundState(let state): writer.writeVarint(8); writer.write(state)
        case .addressRequest: writer.writeVarint(9)
        case .addresses(let list): writer.writeVarint(10); writer.writeList(list)
        case .snapshotsRequest: writer.writeVarint(11)
        case .snapshots(let offers): writer.writeVarint(12); writer.writeList(offers)
        case .chunkRequest(let height, let index): writer.writeVarint(13); writer.write(height); writer.write(index)
        case .chunk(let height, let index, let bytes): writer.writeVarint(14); writer.write(height); writer.write(index); writer.writeBytes(bytes)
        case .lightBlockRequest(let after, let target): writer.writeVarint(15); writer.write(after); writer.write(target)
        case .lightBlock(let after, let target, let block):
            writer.writeVarint(16); writer.write(after); writer.write(target); writer.writeOptional(block)
        }
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        let tag = try reader.readVarint("message tag")
        switch tag {
        case 0: self = .status(height: try reader.readUInt64("height"), base: try reader.readUInt64("base"))
        case 1: self = .transactions(try reader.readList(SignedTransaction.self, "transactions", limit: Self.maxTransactionsPerMessage))
        case 2: self = .proposal(try reader.read(SignedProposal.self))
        case 3: self = .vote(try reader.read(SignedVote.self))
        case 4: self = .evidence(try reader.read(DoubleSignEvidence.self))
        case 5: self = .blockRequest(height: try reader.readUInt64("height"))
        case 6:
            let block = try reader.read(Block.self)
            let certificate = try reader.read(CommitCertificate.self)
            guard certificate.height == block.header.height, certificate.blockID == block.id else {
                throw .invalidValue(what: "block message", reason: "the certificate is for another block")
            }
            self = .block(block, certificate)
        case 7: self = .noBlock(height: try reader.readUInt64("height"))
        case 8: self = .roundState(try reader.read(RoundState.self))
        case 9: self = .addressRequest
        case 10: self = .addresses(try reader.readList(PeerAddress.self, "addresses", limit: Self.maxAddressesPerMessage))
        case 11: self = .snapshotsRequest
        case 12: self = .snapshots(try reader.readList(SnapshotOffer.self, "snapshots", limit: Self.maxSnapshotsPerMessage))
        case 13: self = .chunkRequest(height: try reader.readUInt64("height"), index: try reader.readUInt32("chunk index"))
        case 14:
            self = .chunk(height: try reader.readUInt64("height"), index: try reader.readUInt32("chunk index"),
                          bytes: try reader.readBytes("chunk", limit: Self.maxChunkBytes))
        case 15: self = .lightBlockRequest(after: try reader.readUInt64("after"), target: try reader.readUInt64("target"))
        case 16:
            self = .lightBlock(after: try reader.readUInt64("after"), target: try reader.readUInt64("target"),
                               try reader.readOptional(LightBlock.self, "light block"))
        default: throw .unknownTag(what: "message", tag: tag)
        }
    }
}

/// A validator's proof, in the handshake, that the node runs its consensus key: that key's
/// signature over the connection's transcript and the node key (domain
/// `membria/p2p-validator/v1`, with the chain id). Bound to one connection, so it cannot be
/// replayed; a receiver that finds the key in the current set keeps a slot for the peer.
public struct ValidatorProof: Sendable, Equatable, CanonicalCodable {
    public let consensusKey: PublicKey
    public let signature: Signature

    static func signedMessage(transcript: Hash256, nodeKey: PublicKey) -> [UInt8] {
        var writer = CanonicalWriter()
        writer.write(transcript)
        writer.write(nodeKey)
        return writer.bytes
    }

    public init(key: SigningKey, chainID: String, transcript: Hash256, nodeKey: PublicKey) {
        consensusKey = key.publicKey
        signature = key.sign(domain: .validatorProof, chainID: chainID,
                             message: Self.signedMessage(transcript: transcript, nodeKey: nodeKey))
    }

    public func verify(chainID: String, transcript: Hash256, nodeKey: PublicKey) -> Bool {
        consensusKey.verify(signature: signature, domain: .validatorProof, chainID: chainID,
                            message: Self.signedMessage(transcript: transcript, nodeKey: nodeKey))
    }

    public func encode(to writer: inout CanonicalWriter) { writer.write(consensusKey); writer.write(signature) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        consensusKey = try reader.read(PublicKey.self)
        signature = try reader.read(Signature.self)
    }
}

/// The first encrypted frame each side sends: who it is, which chain it runs, its signature
/// over the handshake transcript and the genesis hash (domain `membria/p2p-handshake/v1`, with
/// the chain id), and, from a validator, the proof that it runs a consensus key.
public struct HandshakeAuth: Sendable, Equatable, CanonicalCodable {
    /// 2: the validator proof was added. 3: round state, address request and addresses (tags 8-10).
    /// 4: state sync (tags 11-16).
    public static let protocolVersion: UInt32 = 4
    public let version: UInt32
    public let genesisHash: Hash256
    public let nodeKey: PublicKey
    public let listenPort: UInt16
    public let signature: Signature
    public let validator: ValidatorProof?

    public static func signedMessage(transcript: Hash256, genesisHash: Hash256, version: UInt32, listenPort: UInt16) -> [UInt8] {
        var writer = CanonicalWriter()
        writer.write(transcript)
        writer.write(genesisHash)
        writer.write(version)
        writer.write(listenPort)
        return writer.bytes
    }

    public init(key: SigningKey, chainID: String, transcript: Hash256, genesisHash: Hash256, listenPort: UInt16,
                validatorKey: SigningKey? = nil) {
        version = Self.protocolVersion
        self.genesisHash = genesisHash
        nodeKey = key.publicKey
        self.listenPort = listenPort
        signature = key.sign(domain: .handshake, chainID: chainID,
                             message: Self.signedMessage(transcript: transcript, genesisHash: genesisHash,
                                                         version: version, listenPort: listenPort))
        validator = validatorKey.map { ValidatorProof(key: $0, chainID: chainID, transcript: transcript, nodeKey: key.publicKey) }
    }

    /// The node key's signature, and the validator proof if there is one.
    public func verify(chainID: String, transcript: Hash256) -> Bool {
        nodeKey.verify(signature: signature, domain: .handshake, chainID: chainID,
                       message: Self.signedMessage(transcript: transcript, genesisHash: genesisHash,
                                                   version: version, listenPort: listenPort))
            && (validator?.verify(chainID: chainID, transcript: transcript, nodeKey: nodeKey) ?? true)
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(version); writer.write(genesisHash); writer.write(nodeKey); writer.write(listenPort); writer.write(signature)
        writer.writeOptional(validator)
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        version = try reader.readUInt32("version")
        genesisHash = try reader.read(Hash256.self)
        nodeKey = try reader.read(PublicKey.self)
        listenPort = try reader.readUInt16("listen port")
        signature = try reader.read(Signature.self)
        validator = try reader.readOptional(ValidatorProof.self, "validator proof")
    }
}

import KCCodec
import KCCrypto
import KCTypes

/// A proposal with its proposer's signature over `ProposalSigning.bytes` (domain
/// `membria/proposal/v1`): the wire and WAL form of `Proposal<Block>`.
public struct SignedProposal: Sendable, Equatable, CanonicalCodable {
    public let proposal: Proposal<Block>
    public let signature: Signature

    public init(proposal: Proposal<Block>, signature: Signature) {
        self.proposal = proposal
        self.signature = signature
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(proposal.height); writer.write(proposal.round); writer.write(proposal.value)
        writer.writeOptional(proposal.validRound); writer.write(proposal.proposer); writer.write(signature)
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        let height = try reader.readUInt64("height")
        let round = try reader.readUInt32("round")
        let block = try reader.read(Block.self)
        let validRound = try reader.readOptional(UInt32.self, "valid round")
        let proposer = try reader.read(PublicKey.self)
        proposal = Proposal(height: height, round: round, value: block, validRound: validRound, proposer: proposer)
        signature = try reader.read(Signature.self)
        guard validRound.map({ $0 < round }) ?? true else {
            throw .invalidValue(what: "proposal", reason: "valid round \(validRound!) is not below round \(round)")
        }
        guard block.header.height == height else {
            throw .invalidValue(what: "proposal", reason: "block height \(block.header.height) differs from proposal height \(height)")
        }
    }

    public func verify(chainID: String, cache: SignatureCache? = nil) -> Bool {
        let bytes = SigningDomain.proposal.signingBytes(chainID: chainID, message: ProposalSigning.bytes(proposal))
        if let cache { return cache.verify(proposal.proposer, signature, signedBytes: bytes) }
        return proposal.proposer.verify(signature: signature, rawMessage: bytes)
    }
}

/// One consensus WAL record (specs/storage.md, "Consensus WAL"): every input the core saw at
/// the current height, in order. Replaying them into a fresh core for that height rebuilds
/// its state; the validity verdict of a proposal is not stored but recomputed on replay.
public enum WALRecord: Sendable, Equatable, CanonicalCodable {
    /// Tag 0: a new height begins; earlier records belong to decided heights.
    case height(UInt64)
    /// Tag 1.
    case proposal(SignedProposal)
    /// Tag 2: a vote, ours or a peer's.
    case vote(SignedVote)
    /// Tag 3.
    case timeout(TimeoutStep, height: UInt64, round: UInt32)
    /// Tag 4: the block this node proposed.
    case proposeValue(Block, height: UInt64, round: UInt32)

    public func encode(to writer: inout CanonicalWriter) {
        switch self {
        case .height(let height):
            writer.writeVarint(0); writer.write(height)
        case .proposal(let proposal):
            writer.writeVarint(1); writer.write(proposal)
        case .vote(let vote):
            writer.writeVarint(2); writer.write(vote)
        case .timeout(let step, let height, let round):
            writer.writeVarint(3); writer.write(step.rawValue); writer.write(height); writer.write(round)
        case .proposeValue(let block, let height, let round):
            writer.writeVarint(4); writer.write(block); writer.write(height); writer.write(round)
        }
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        let tag = try reader.readVarint("WAL record tag")
        switch tag {
        case 0: self = .height(try reader.readUInt64("height"))
        case 1: self = .proposal(try reader.read(SignedProposal.self))
        case 2: self = .vote(try reader.read(SignedVote.self))
        case 3:
            let raw = try reader.readUInt8("timeout step")
            guard let step = TimeoutStep(rawValue: raw) else { throw .unknownTag(what: "timeout step", tag: UInt32(raw)) }
            self = .timeout(step, height: try reader.readUInt64("height"), round: try reader.readUInt32("round"))
        case 4:
            self = .proposeValue(try reader.read(Block.self), height: try reader.readUInt64("height"), round: try reader.readUInt32("round"))
        default:
            throw .unknownTag(what: "WAL record", tag: tag)
        }
    }

    /// The records to replay after a restart: those after the last `.height(h)` marker, if h
    /// is the height the node is about to run (the block store is at h − 1); none otherwise,
    /// since a WAL for a decided height holds nothing the block store lacks.
    public static func replayable(_ records: [WALRecord], nextHeight: UInt64) -> [WALRecord] {
        guard let marker = records.lastIndex(where: { if case .height = $0 { return true } else { return false } }),
              case .height(let height) = records[marker], height == nextHeight else { return [] }
        return Array(records[(marker + 1)...])
    }
}

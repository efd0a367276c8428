import KCCodec
import KCCrypto

/// The two kinds of consensus vote.
public enum VoteKind: UInt32, Sendable, Equatable, CaseIterable, CanonicalTag {
    case prevote = 0
    case precommit = 1

    public static let tagName = "vote kind"
}

/// A consensus vote: for a block id, or for nothing (`blockID == nil`, a nil vote).
/// Defined here because both consensus (which signs and counts votes) and the runtime (which
/// slashes double signs proven by two of them) read it. The full message rules are in
/// specs/consensus.md.
public struct Vote: Equatable, Hashable, Sendable, CanonicalCodable {
    public let kind: VoteKind
    public let height: UInt64
    public let round: UInt32
    public let blockID: Hash256?
    /// The voter's clock when it voted; block time is derived from precommit timestamps.
    public let timestampMilliseconds: UInt64
    /// The voter's consensus key.
    public let validator: PublicKey

    public init(kind: VoteKind, height: UInt64, round: UInt32, blockID: Hash256?, timestampMilliseconds: UInt64, validator: PublicKey) {
        self.kind = kind
        self.height = height
        self.round = round
        self.blockID = blockID
        self.timestampMilliseconds = timestampMilliseconds
        self.validator = validator
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(kind); writer.write(height); writer.write(round); writer.writeOptional(blockID)
        writer.write(timestampMilliseconds); writer.write(validator)
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        kind = try reader.read(VoteKind.self)
        height = try reader.readUInt64("height")
        round = try reader.readUInt32("round")
        blockID = try reader.readOptional(Hash256.self, "block id")
        timestampMilliseconds = try reader.readUInt64("timestamp")
        validator = try reader.read(PublicKey.self)
    }

    public func signed(with key: SigningKey, chainID: String) -> SignedVote {
        precondition(key.publicKey == validator, "signing key is not the voter's")
        return SignedVote(vote: self, signature: key.sign(domain: .vote, chainID: chainID, message: canonicalBytes))
    }

    /// Two votes conflict when the same validator voted for two different values at the
    /// same height, round and kind. Different timestamps for the same value do not conflict.
    public func conflicts(with other: Vote) -> Bool {
        validator == other.validator && kind == other.kind && height == other.height && round == other.round
            && blockID != other.blockID
    }
}

public struct SignedVote: Equatable, Hashable, Sendable, CanonicalCodable {
    public let vote: Vote
    public let signature: Signature

    public init(vote: Vote, signature: Signature) {
        self.vote = vote
        self.signature = signature
    }

    public func encode(to writer: inout CanonicalWriter) { writer.write(vote); writer.write(signature) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        vote = try reader.read(Vote.self)
        signature = try reader.read(Signature.self)
    }

    public func verify(chainID: String, cache: SignatureCache? = nil) -> Bool {
        let bytes = SigningDomain.vote.signingBytes(chainID: chainID, message: vote.canonicalBytes)
        if let cache { return cache.verify(vote.validator, signature, signedBytes: bytes) }
        return vote.validator.verify(signature: signature, rawMessage: bytes)
    }
}

/// Proof of a double sign: two conflicting votes, both validly signed. The pair is stored in
/// a fixed order (the smaller canonical encoding first) so one infraction has one encoding.
public struct DoubleSignEvidence: Equatable, Hashable, Sendable, CanonicalCodable {
    public let first: SignedVote
    public let second: SignedVote

    /// Orders the pair canonically; nil unless the two votes conflict.
    public init?(_ a: SignedVote, _ b: SignedVote) {
        guard a.vote.conflicts(with: b.vote) else { return nil }
        if a.canonicalBytes.lexicographicallyPrecedes(b.canonicalBytes) {
            first = a; second = b
        } else {
            first = b; second = a
        }
    }

    public func encode(to writer: inout CanonicalWriter) { writer.write(first); writer.write(second) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        first = try reader.read(SignedVote.self)
        second = try reader.read(SignedVote.self)
        guard first.canonicalBytes.lexicographicallyPrecedes(second.canonicalBytes) else {
            throw .nonCanonical(what: "double-sign evidence", reason: "votes are not in canonical order")
        }
    }

    public enum Problem: Error, Equatable, Sendable, CustomStringConvertible {
        case notConflicting, badSignature, wrongOrder
        public var description: String {
            switch self {
            case .notConflicting: return "the two votes do not conflict"
            case .badSignature: return "a vote's signature does not verify"
            case .wrongOrder: return "the votes are not in canonical order"
            }
        }
    }

    /// Full check, as a block's evidence must pass it.
    public func validate(chainID: String) throws(Problem) {
        guard first.vote.conflicts(with: second.vote) else { throw .notConflicting }
        guard first.canonicalBytes.lexicographicallyPrecedes(second.canonicalBytes) else { throw .wrongOrder }
        guard first.verify(chainID: chainID) && second.verify(chainID: chainID) else { throw .badSignature }
    }

    public var validator: PublicKey { first.vote.validator }
    public var height: UInt64 { first.vote.height }
    public var hash: Hash256 { Blake2b.hash256(canonicalBytes) }
}

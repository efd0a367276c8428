import KCCodec
import KCCrypto

/// Limits on variable-length transaction fields, checked by the decoder before allocating.
/// Tighter rule limits (such as `params.events.max_parents`) are checked by the runtime.
public enum TransactionLimits {
    public static let maxParents = 64
    public static let maxKindBytes = 256
    public static let maxVotesPerAttestation = 4_096
    public static let maxChainIDBytes = 64
}

/// What a transaction asks the runtime to do. Encoded as an enum: varint tag, then fields.
public enum Call: Equatable, Sendable {
    case transfer(to: PublicKey, amount: Amount)                                   // tag 0
    case bond(amount: Amount)                                                      // tag 1
    case unbond(amount: Amount)                                                    // tag 2
    case withdrawUnbonded                                                          // tag 3
    case registerValidator(consensusKey: PublicKey)                                // tag 4
    case registerGateway                                                           // tag 5
    case unjail                                                                    // tag 6
    case proposeEvent(parents: [Hash256], arTxID: ArTxID, contentHash: Hash256, kind: String) // tag 7
    case attest(votes: [AttestationVote])                                          // tag 8
    case dispute(eventID: Hash256, bond: Amount, reason: ArTxID)                   // tag 9
    case voteDispute(disputeID: Hash256, uphold: Bool)                             // tag 10
    case defend(disputeID: Hash256, bond: Amount)                                  // tag 11

    /// The call's name as written in specs/runtime.md and shown in receipts.
    public var name: String {
        switch self {
        case .transfer: return "transfer"
        case .bond: return "bond"
        case .unbond: return "unbond"
        case .withdrawUnbonded: return "withdraw_unbonded"
        case .registerValidator: return "register_validator"
        case .registerGateway: return "register_gateway"
        case .unjail: return "unjail"
        case .proposeEvent: return "propose_event"
        case .attest: return "attest"
        case .dispute: return "dispute"
        case .voteDispute: return "vote_dispute"
        case .defend: return "defend"
        }
    }
}

/// One verdict inside an `attest` call.
public struct AttestationVote: Equatable, Sendable, CanonicalCodable {
    public let eventID: Hash256
    public let verdict: Verdict

    public init(eventID: Hash256, verdict: Verdict) {
        self.eventID = eventID
        self.verdict = verdict
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(eventID)
        writer.write(verdict)
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        eventID = try reader.read(Hash256.self)
        verdict = try reader.read(Verdict.self)
    }
}

extension Call: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        switch self {
        case .transfer(let to, let amount):
            writer.writeVarint(0); writer.write(to); writer.write(amount)
        case .bond(let amount):
            writer.writeVarint(1); writer.write(amount)
        case .unbond(let amount):
            writer.writeVarint(2); writer.write(amount)
        case .withdrawUnbonded:
            writer.writeVarint(3)
        case .registerValidator(let consensusKey):
            writer.writeVarint(4); writer.write(consensusKey)
        case .registerGateway:
            writer.writeVarint(5)
        case .unjail:
            writer.writeVarint(6)
        case .proposeEvent(let parents, let arTxID, let contentHash, let kind):
            writer.writeVarint(7); writer.writeList(parents); writer.write(arTxID); writer.write(contentHash)
            writer.writeString(kind)
        case .attest(let votes):
            writer.writeVarint(8); writer.writeList(votes)
        case .dispute(let eventID, let bond, let reason):
            writer.writeVarint(9); writer.write(eventID); writer.write(bond); writer.write(reason)
        case .voteDispute(let disputeID, let uphold):
            writer.writeVarint(10); writer.write(disputeID); writer.write(uphold)
        case .defend(let disputeID, let bond):
            writer.writeVarint(11); writer.write(disputeID); writer.write(bond)
        }
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        let tag = try reader.readVarint("call tag")
        switch tag {
        case 0: self = .transfer(to: try reader.read(PublicKey.self), amount: try reader.read(Amount.self))
        case 1: self = .bond(amount: try reader.read(Amount.self))
        case 2: self = .unbond(amount: try reader.read(Amount.self))
        case 3: self = .withdrawUnbonded
        case 4: self = .registerValidator(consensusKey: try reader.read(PublicKey.self))
        case 5: self = .registerGateway
        case 6: self = .unjail
        case 7:
            self = .proposeEvent(parents: try reader.readList(Hash256.self, "parents", limit: TransactionLimits.maxParents),
                                 arTxID: try reader.read(ArTxID.self), contentHash: try reader.read(Hash256.self),
                                 kind: try reader.readString("kind", limit: TransactionLimits.maxKindBytes))
        case 8:
            self = .attest(votes: try reader.readList(AttestationVote.self, "votes", limit: TransactionLimits.maxVotesPerAttestation))
        case 9:
            self = .dispute(eventID: try reader.read(Hash256.self), bond: try reader.read(Amount.self), reason: try reader.read(ArTxID.self))
        case 10:
            self = .voteDispute(disputeID: try reader.read(Hash256.self), uphold: try reader.readBool("uphold"))
        case 11:
            self = .defend(disputeID: try reader.read(Hash256.self), bond: try reader.read(Amount.self))
        default:
            throw .unknownTag(what: "call", tag: tag)
        }
    }
}

/// The signed part of a transaction.
public struct TransactionBody: Equatable, Sendable, CanonicalCodable {
    public let chainID: String
    public let sender: PublicKey
    /// Must equal the sender's count of transactions already included (replay protection).
    public let nonce: UInt64
    public let fee: Amount
    public let call: Call

    public init(chainID: String, sender: PublicKey, nonce: UInt64, fee: Amount, call: Call) {
        self.chainID = chainID
        self.sender = sender
        self.nonce = nonce
        self.fee = fee
        self.call = call
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.writeString(chainID); writer.write(sender); writer.write(nonce); writer.write(fee); writer.write(call)
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        chainID = try reader.readString("chain id", limit: TransactionLimits.maxChainIDBytes)
        sender = try reader.read(PublicKey.self)
        nonce = try reader.readUInt64("nonce")
        fee = try reader.read(Amount.self)
        call = try reader.read(Call.self)
    }

    /// Signs the body with the sender's key under the transaction domain. With `cache`, the
    /// signature is also remembered there as verified, so checking this transaction later
    /// against the same cache costs no Ed25519 verification.
    public func signed(with key: SigningKey, remembering cache: SignatureCache? = nil) -> SignedTransaction {
        precondition(key.publicKey == sender, "signing key is not the sender's")
        let signedBytes = SigningDomain.transaction.signingBytes(chainID: chainID, message: canonicalBytes)
        let signature = cache.map { $0.sign(signedBytes, with: key) } ?? key.sign(rawMessage: signedBytes)
        return SignedTransaction(body: self, signature: signature)
    }
}

/// A transaction as it travels and as it is stored in blocks: body, then signature.
public struct SignedTransaction: Equatable, Sendable, CanonicalCodable {
    public let body: TransactionBody
    public let signature: Signature

    public init(body: TransactionBody, signature: Signature) {
        self.body = body
        self.signature = signature
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(body)
        writer.write(signature)
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        body = try reader.read(TransactionBody.self)
        signature = try reader.read(Signature.self)
    }

    /// The transaction hash: BLAKE2b-256 of the whole signed encoding.
    public var hash: Hash256 { Blake2b.hash256(canonicalBytes) }

    public enum VerificationError: Error, Equatable, Sendable, CustomStringConvertible {
        case wrongChain(expected: String, found: String)
        case badSignature

        public var description: String {
            switch self {
            case .wrongChain(let expected, let found): return "transaction is for chain \(found), this chain is \(expected)"
            case .badSignature: return "signature does not verify against the sender's key"
            }
        }
    }

    /// Checks chain id and signature: the one expensive check, done once per transaction
    /// (the mempool caches the result by hash).
    public func verified(chainID: String, cache: SignatureCache? = nil) throws(VerificationError) -> VerifiedTransaction {
        guard body.chainID == chainID else { throw .wrongChain(expected: chainID, found: body.chainID) }
        let bytes = body.canonicalBytes
        let signed = SigningDomain.transaction.signingBytes(chainID: chainID, message: bytes)
        let valid = cache.map { $0.verify(body.sender, signature, signedBytes: signed) }
            ?? body.sender.verify(signature: signature, rawMessage: signed)
        guard valid else { throw .badSignature }
        return VerifiedTransaction(transaction: self, hash: Blake2b.hash256(bytes + signature.bytes), encodedSize: bytes.count + 64)
    }
}

/// A transaction whose chain id and signature have been checked. Only `verified(chainID:)`
/// and `assumingVerified` (for a cache hit) make one, so the runtime never sees an unchecked one.
public struct VerifiedTransaction: Equatable, Sendable {
    public let transaction: SignedTransaction
    public let hash: Hash256
    public let encodedSize: Int

    init(transaction: SignedTransaction, hash: Hash256, encodedSize: Int) {
        self.transaction = transaction
        self.hash = hash
        self.encodedSize = encodedSize
    }

    /// For a transaction whose signature was checked earlier (a signature-cache hit). The
    /// caller vouches for it; nothing else may use this.
    public static func assumingVerified(_ transaction: SignedTransaction) -> VerifiedTransaction {
        let bytes = transaction.canonicalBytes
        return VerifiedTransaction(transaction: transaction, hash: Blake2b.hash256(bytes), encodedSize: bytes.count)
    }

    public var body: TransactionBody { transaction.body }
}

import KCCodec
import KCCrypto
import KCTypes

/// A block header. Its BLAKE2b-256 is the block id. `stateRoot` is the state root *after*
/// this block (the proposer executes before proposing; validators execute before voting).
public struct BlockHeader: Sendable, Equatable, CanonicalCodable {
    public let chainID: String
    public let height: UInt64
    /// Block time: the power-weighted median of the previous block's precommit timestamps
    /// (genesis time + 1 ms at height 1).
    public let timeMilliseconds: UInt64
    public let previousBlockID: Hash256
    public let lastCommitHash: Hash256
    public let transactionsHash: Hash256
    public let evidenceHash: Hash256
    public let stateRoot: Hash256
    /// Hash of the validator set that signs this height.
    public let validatorsHash: Hash256
    public let proposer: PublicKey

    public init(chainID: String, height: UInt64, timeMilliseconds: UInt64, previousBlockID: Hash256, lastCommitHash: Hash256,
                transactionsHash: Hash256, evidenceHash: Hash256, stateRoot: Hash256, validatorsHash: Hash256, proposer: PublicKey) {
        self.chainID = chainID
        self.height = height
        self.timeMilliseconds = timeMilliseconds
        self.previousBlockID = previousBlockID
        self.lastCommitHash = lastCommitHash
        self.transactionsHash = transactionsHash
        self.evidenceHash = evidenceHash
        self.stateRoot = stateRoot
        self.validatorsHash = validatorsHash
        self.proposer = proposer
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.writeString(chainID); writer.write(height); writer.write(timeMilliseconds); writer.write(previousBlockID)
        writer.write(lastCommitHash); writer.write(transactionsHash); writer.write(evidenceHash); writer.write(stateRoot)
        writer.write(validatorsHash); writer.write(proposer)
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        chainID = try reader.readString("chain id", limit: TransactionLimits.maxChainIDBytes)
        height = try reader.readUInt64("height")
        timeMilliseconds = try reader.readUInt64("time")
        previousBlockID = try reader.read(Hash256.self)
        lastCommitHash = try reader.read(Hash256.self)
        transactionsHash = try reader.read(Hash256.self)
        evidenceHash = try reader.read(Hash256.self)
        stateRoot = try reader.read(Hash256.self)
        validatorsHash = try reader.read(Hash256.self)
        proposer = try reader.read(PublicKey.self)
    }

    /// The block id: BLAKE2b-256 of the canonical header.
    public var id: Hash256 { Blake2b.hash256(canonicalBytes) }
}

/// A block: header, transactions, evidence, and the certificate that decided the previous block.
///
/// A value, held in one shared box: consensus inputs and effects, proposals, network messages
/// and the stored chain all pass blocks around, and a copy is one reference count rather than
/// some 400 bytes and five.
public struct Block: Sendable, Equatable, CanonicalCodable, ConsensusValue {
    private final class Storage: Sendable {
        let header: BlockHeader
        let transactions: [SignedTransaction]
        let evidence: [DoubleSignEvidence]
        let lastCommit: CommitCertificate?
        let id: Hash256

        init(header: BlockHeader, transactions: [SignedTransaction], evidence: [DoubleSignEvidence], lastCommit: CommitCertificate?) {
            self.header = header
            self.transactions = transactions
            self.evidence = evidence
            self.lastCommit = lastCommit
            self.id = header.id
        }
    }

    private let storage: Storage

    public var header: BlockHeader { storage.header }
    public var transactions: [SignedTransaction] { storage.transactions }
    public var evidence: [DoubleSignEvidence] { storage.evidence }
    public var lastCommit: CommitCertificate? { storage.lastCommit }
    /// BLAKE2b-256 of the canonical header, computed once: consensus, validation and storage
    /// ask for it many times per height.
    public var id: Hash256 { storage.id }

    public static let maxTransactions = 1_000_000
    public static let maxEvidence = 100

    public init(header: BlockHeader, transactions: [SignedTransaction], evidence: [DoubleSignEvidence], lastCommit: CommitCertificate?) {
        storage = Storage(header: header, transactions: transactions, evidence: evidence, lastCommit: lastCommit)
    }

    public static func == (lhs: Block, rhs: Block) -> Bool {
        lhs.storage === rhs.storage
            || (lhs.header == rhs.header && lhs.transactions == rhs.transactions && lhs.evidence == rhs.evidence
                && lhs.lastCommit == rhs.lastCommit)
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(header); writer.writeList(transactions); writer.writeList(evidence); writer.writeOptional(lastCommit)
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        let header = try reader.read(BlockHeader.self)
        let transactions = try reader.readList(SignedTransaction.self, "transactions", limit: Block.maxTransactions)
        let evidence = try reader.readList(DoubleSignEvidence.self, "evidence", limit: Block.maxEvidence)
        let lastCommit = try reader.readOptional(CommitCertificate.self, "last commit")
        self.init(header: header, transactions: transactions, evidence: evidence, lastCommit: lastCommit)
    }

    /// Hash of the ordered transaction hashes.
    public static func transactionsHash(_ hashes: [Hash256]) -> Hash256 {
        var writer = CanonicalWriter(reservingCapacity: 8 + hashes.count * 32)
        writer.writeList(hashes)
        return Blake2b.hash256(writer.bytes)
    }

    public static func evidenceHash(_ evidence: [DoubleSignEvidence]) -> Hash256 {
        var writer = CanonicalWriter()
        writer.writeList(evidence)
        return Blake2b.hash256(writer.bytes)
    }

    public static func commitHash(_ commit: CommitCertificate?) -> Hash256 {
        var writer = CanonicalWriter()
        writer.writeOptional(commit)
        return Blake2b.hash256(writer.bytes)
    }
}

/// The signed form of a proposal: the signature covers height, round, block id, valid round
/// and proposer under the `membria/proposal/v1` domain.
public struct ProposalSigning {
    public static func bytes<Value: ConsensusValue>(_ proposal: Proposal<Value>) -> [UInt8] {
        var writer = CanonicalWriter()
        writer.write(proposal.height)
        writer.write(proposal.round)
        writer.write(proposal.value.id)
        writer.writeOptional(proposal.validRound)
        writer.write(proposal.proposer)
        return writer.bytes
    }
}

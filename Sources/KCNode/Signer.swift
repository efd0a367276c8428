import KCCodec
import KCConsensus
import KCCrypto
import KCStorage
import KCTypes

/// Why the signer refused to sign.
public enum SignerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The request is for an earlier height/round/step than one already signed.
    case regression(requested: String, last: String)
    /// The request is for the step already signed, with different content: signing it would
    /// be a double sign.
    case conflict(at: String)
    /// The last-signed record could not be read or made durable; nothing was signed.
    case storage(String)

    public var description: String {
        switch self {
        case .regression(let requested, let last): return "refusing to sign \(requested): already signed \(last)"
        case .conflict(let at): return "refusing to sign different content at \(at): that would be a double sign"
        case .storage(let message): return "signer state unavailable: \(message)"
        }
    }
}

/// The last thing the signer signed, kept durable in the node's store under `v/last`.
public struct LastSigned: Equatable, Sendable, CanonicalCodable {
    public let height: UInt64
    public let round: UInt32
    /// 0 proposal, 1 prevote, 2 precommit: the order steps happen in within a round.
    public let step: UInt8
    public let signedBytes: [UInt8]
    public let signature: Signature

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(height); writer.write(round); writer.write(step); writer.writeBytes(signedBytes); writer.write(signature)
    }

    public init(height: UInt64, round: UInt32, step: UInt8, signedBytes: [UInt8], signature: Signature) {
        self.height = height
        self.round = round
        self.step = step
        self.signedBytes = signedBytes
        self.signature = signature
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        height = try reader.readUInt64("height")
        round = try reader.readUInt32("round")
        step = try reader.readUInt8("step")
        signedBytes = try reader.readBytes("signed bytes", limit: 1 << 16)
        signature = try reader.read(Signature.self)
    }

    var position: String { "height \(height) round \(round) step \(step)" }

    static func step(of kind: VoteKind) -> UInt8 { kind == .prevote ? 1 : 2 }

    /// The latest proposal or vote `key` signed among consensus WAL records, as the signer
    /// would have recorded it; nil if there is none.
    public static func latest(signedBy key: PublicKey, in records: [WALRecord]) -> LastSigned? {
        var latest: LastSigned? = nil
        for record in records {
            let candidate: LastSigned
            switch record {
            case .proposal(let signed) where signed.proposal.proposer == key:
                candidate = LastSigned(height: signed.proposal.height, round: signed.proposal.round, step: 0,
                                       signedBytes: ProposalSigning.bytes(signed.proposal), signature: signed.signature)
            case .vote(let signed) where signed.vote.validator == key:
                candidate = LastSigned(height: signed.vote.height, round: signed.vote.round, step: step(of: signed.vote.kind),
                                       signedBytes: signed.vote.canonicalBytes, signature: signed.signature)
            default:
                continue
            }
            if let current = latest,
               (candidate.height, candidate.round, candidate.step) <= (current.height, current.round, current.step) { continue }
            latest = candidate
        }
        return latest
    }
}

/// A consensus signer that cannot be talked into double signing (after CometBFT's privval and
/// Aptos' safety rules): it keeps the last signed height/round/step with its bytes and
/// signature, refuses any regression, returns the identical signature for identical bytes,
/// and makes the record durable before a signature leaves.
///
/// Durability comes in one of two ways. By default every record is a synced write of its own.
/// With `syncWrites: false` the record is written unsynced and the caller takes on the rest:
/// it must make each signature durable in its own log before the signature leaves the process,
/// and on start-up hand the latest one found there to `restore(_:)`. The node does this with
/// its consensus WAL (which must sync own votes anyway), so a vote costs one fsync, not two.
public final class PersistentSigner: @unchecked Sendable {
    // @unchecked: `last` is only touched under `lock`.
    public static let storeKey: [UInt8] = Array("v/last".utf8)

    private let key: SigningKey
    private let chainID: String
    private let store: any KeyValueStore
    private let lock = SignerLock()
    private var last: LastSigned?
    /// Where this node remembers verified signatures: its own go in as they are made.
    private let signatures: SignatureCache?
    private let syncWrites: Bool

    public init(key: SigningKey, chainID: String, store: any KeyValueStore, signatures: SignatureCache? = nil,
                syncWrites: Bool = true) throws(SignerError) {
        self.key = key
        self.chainID = chainID
        self.store = store
        self.signatures = signatures
        self.syncWrites = syncWrites
        do {
            if let bytes = try store.get(Self.storeKey) {
                do { last = try LastSigned.decode(exactly: bytes) } catch {
                    throw SignerError.storage("the last-signed record is corrupt (\(error)); refusing to sign rather than risk a double sign")
                }
            }
        } catch let error as SignerError {
            throw error
        } catch {
            throw .storage("\(error)")
        }
    }

    public var publicKey: PublicKey { key.publicKey }
    public var lastSigned: LastSigned? { lock.locked { last } }

    public func signVote(_ vote: Vote) throws(SignerError) -> SignedVote {
        precondition(vote.validator == key.publicKey, "asked to sign a vote for another key")
        let step = LastSigned.step(of: vote.kind)
        let message = vote.canonicalBytes
        return try lock.locked { () throws(SignerError) -> SignedVote in
            if let last, last.height == vote.height, last.round == vote.round, last.step == step {
                if last.signedBytes == message { return SignedVote(vote: vote, signature: last.signature) }
                // The same vote with only another timestamp: hand back the one already signed.
                if let previous = try? Vote.decode(exactly: last.signedBytes), previous.blockID == vote.blockID,
                   previous.kind == vote.kind {
                    return SignedVote(vote: previous, signature: last.signature)
                }
                throw .conflict(at: last.position)
            }
            let signature = try signAndPersist(height: vote.height, round: vote.round, step: step, message: message,
                                               domain: .vote)
            return SignedVote(vote: vote, signature: signature)
        }
    }

    /// Signs proposal bytes (see `ProposalSigning`) for (height, round).
    public func signProposal(height: UInt64, round: UInt32, bytes: [UInt8]) throws(SignerError) -> Signature {
        try lock.locked { () throws(SignerError) -> Signature in
            if let last, last.height == height, last.round == round, last.step == 0 {
                if last.signedBytes == bytes { return last.signature }
                throw .conflict(at: last.position)
            }
            return try signAndPersist(height: height, round: round, step: 0, message: bytes, domain: .proposal)
        }
    }

    private func signAndPersist(height: UInt64, round: UInt32, step: UInt8, message: [UInt8],
                                domain: SigningDomain) throws(SignerError) -> Signature {
        if let last, (height, round, step) < (last.height, last.round, last.step) || (height, round, step) == (last.height, last.round, last.step) {
            throw .regression(requested: "height \(height) round \(round) step \(step)", last: last.position)
        }
        let signature = signatures?.sign(domain.signingBytes(chainID: chainID, message: message), with: key)
            ?? key.sign(domain: domain, chainID: chainID, message: message)
        let record = LastSigned(height: height, round: round, step: step, signedBytes: message, signature: signature)
        // Synced: durable before the signature exists anywhere but this stack frame. Unsynced:
        // the caller's log makes it durable before it leaves (see the type's documentation).
        try persist(record, sync: syncWrites)
        last = record
        return signature
    }

    private func persist(_ record: LastSigned, sync: Bool) throws(SignerError) {
        var batch = WriteBatch()
        batch.put(Self.storeKey, record.canonicalBytes)
        do {
            try store.write(batch, sync: sync)
        } catch {
            throw .storage("cannot persist the last-signed record: \(error)")
        }
    }

    /// Start-up, with `syncWrites: false`: adopts `record` (the latest signature found in the
    /// caller's durable log) when it is later than the stored record, which a power cut may
    /// have lost. Returns whether it was adopted. A record for the step already stored is
    /// left alone: both came from this signer, which never signs two things at one step.
    @discardableResult
    public func restore(_ record: LastSigned) throws(SignerError) -> Bool {
        try lock.locked { () throws(SignerError) -> Bool in
            if let last, (record.height, record.round, record.step) <= (last.height, last.round, last.step) { return false }
            try persist(record, sync: true)
            last = record
            return true
        }
    }
}

/// The signer's lock: one signing at a time, so the check, the durable write and the
/// signature happen as one step.
final class SignerLock: @unchecked Sendable {
    private let inner = Synchronization.Mutex<Void>(())

    func locked<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        try inner.withLock { (_: inout Void) throws(E) -> T in try body() }
    }
}

import Synchronization

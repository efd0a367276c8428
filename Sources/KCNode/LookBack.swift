import KCConsensus
import KCCrypto
import KCTypes

/// The look-back check (config `consensus.double_sign_check_heights` = N; specs/p2p.md,
/// "Look-back", ADR 0020) of a validator key new to this machine: its consensus WAL was empty
/// at its first start, and the watch has not ended since (`storeKey` marks it in the store, so
/// a restart does not end it). Pure: the driver hands it every commit certificate it stores (those stored before
/// start included) and every precommit this machine signs, and asks before each height it
/// would sign at.
///
/// A precommit of this key in a stored certificate that this machine did not sign was signed
/// by another machine. If the latest such height lies within the N heights below the one about
/// to start, the node must not sign: another machine runs the key, or stopped it less than N
/// heights ago. The watch is not over when this machine first signs (a node released early, by
/// silent peers, can sign at a height long decided and learn of the other machine only as sync
/// brings the blocks): it ends when a certificate carries a precommit this machine signed. From
/// then on the key's signatures in the chain are this machine's own, and the signer's record
/// guards every step.
public struct LookBack: Sendable, Equatable {
    /// Present in the node's store while the watch lasts.
    public static let storeKey: [UInt8] = Array("v/lookback".utf8)

    /// N: how many heights below the next one are checked.
    public let heights: UInt64
    /// Whether the key's commits are still watched.
    public private(set) var watching: Bool
    /// The highest height whose certificate carries this key's precommit not signed here.
    public private(set) var foreignAt: UInt64? = nil
    /// This machine's precommits by height, while watching (heights above the tip only).
    private var own: [UInt64: [Signature]] = [:]

    public init(heights: UInt64, watching: Bool) {
        self.heights = heights
        self.watching = watching && heights > 0
    }

    /// This machine signed `vote` (only precommits matter: certificates hold nothing else).
    public mutating func signed(_ vote: SignedVote) {
        guard watching, vote.vote.kind == .precommit else { return }
        own[vote.vote.height, default: []].append(vote.signature)
    }

    /// A certificate was stored (committed by consensus, fetched by sync, or found at start).
    public mutating func committed(_ certificate: CommitCertificate, key: PublicKey) {
        guard watching else { return }
        let height = certificate.height
        let mine = own[height] ?? []
        own = own.filter { $0.key > height }
        guard let precommit = certificate.precommits.first(where: { $0.vote.validator == key }) else { return }
        if mine.contains(precommit.signature) {
            watching = false
            own = [:]
        } else {
            foreignAt = max(foreignAt ?? 0, height)
        }
    }

    /// The height of another machine's precommit that forbids signing above `tip`, if any.
    public func refusal(tip: UInt64) -> UInt64? {
        guard watching, let foreignAt else { return nil }
        return foreignAt > tip || tip - foreignAt < heights ? foreignAt : nil
    }
}

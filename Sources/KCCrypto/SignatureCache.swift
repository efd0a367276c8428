import Synchronization

/// Remembers signatures that verified, so each signature is checked once: a transaction seen
/// by the mempool and again in a block, or a vote seen live and again in a commit
/// certificate, costs one Ed25519 verification. Only successes are cached; the key is
/// BLAKE2b-256 over (public key, signature, signed bytes), so a hit means exactly these bytes
/// were verified under exactly this key.
public final class SignatureCache: Sendable {
    private let entries = Mutex<Set<Hash256>>([])
    private let checks = Mutex<Int>(0)
    public let capacity: Int

    public init(capacity: Int = 200_000) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    public func verify(_ key: PublicKey, _ signature: Signature, signedBytes: [UInt8]) -> Bool {
        let digest = Blake2b.hash256(parts: [key.bytes32.bytes, signature.bytes, signedBytes])
        if entries.withLock({ $0.contains(digest) }) { return true }
        checks.withLock { $0 += 1 }
        guard key.verify(signature: signature, rawMessage: signedBytes) else { return false }
        entries.withLock { set in
            // Bounded: when full, start again rather than grow (a miss only costs a re-check).
            if set.count >= capacity { set.removeAll(keepingCapacity: true) }
            set.insert(digest)
        }
        return true
    }

    public var count: Int { entries.withLock { $0.count } }

    /// Ed25519 verifications actually run (cache misses), for metrics and tests.
    public var verifications: Int { checks.withLock { $0 } }
}

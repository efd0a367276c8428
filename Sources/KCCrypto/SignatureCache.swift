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
        let digest = Self.digest(key, signature, signedBytes)
        if entries.withLock({ $0.contains(digest) }) { return true }
        checks.withLock { $0 += 1 }
        guard key.verify(signature: signature, rawMessage: signedBytes) else { return false }
        remember(digest)
        return true
    }

    /// What an entry stands for: exactly these bytes under exactly this key and signature.
    private static func digest(_ key: PublicKey, _ signature: Signature, _ signedBytes: [UInt8]) -> Hash256 {
        Blake2b.hash256(parts: [key.bytes32.bytes, signature.bytes, signedBytes])
    }

    private func remember(_ digest: Hash256) {
        entries.withLock { set in
            // Bounded: when full, start again rather than grow (a miss only costs a re-check).
            if set.count >= capacity { set.removeAll(keepingCapacity: true) }
            set.insert(digest)
        }
    }

    /// Signs `signedBytes` with `key` and remembers the pair as verified: a signature this
    /// process just made with the matching private key is valid by construction, so its own
    /// votes coming back in a commit certificate cost no verification.
    public func sign(_ signedBytes: [UInt8], with key: SigningKey) -> Signature {
        let signature = key.sign(rawMessage: signedBytes)
        remember(Self.digest(key.publicKey, signature, signedBytes))
        return signature
    }

    public var count: Int { entries.withLock { $0.count } }

    /// Ed25519 verifications actually run (cache misses), for metrics and tests.
    public var verifications: Int { checks.withLock { $0 } }
}

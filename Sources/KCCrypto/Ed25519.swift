import CSodium
import KCCodec

/// What a signature is for. The tag and the chain id are part of every signed byte string,
/// so a signature made for one purpose or one chain is worthless for any other.
public enum SigningDomain: String, Sendable, CaseIterable {
    case transaction = "membria/transaction/v1"
    case proposal = "membria/proposal/v1"
    case vote = "membria/vote/v1"
    case handshake = "membria/p2p-handshake/v1"
    case validatorProof = "membria/p2p-validator/v1"

    /// The exact bytes that are signed: varint-prefixed tag, varint-prefixed chain id, then
    /// the message's canonical bytes (unprefixed, since it runs to the end).
    public func signingBytes(chainID: String, message: [UInt8]) -> [UInt8] {
        var writer = CanonicalWriter(reservingCapacity: message.count + 64)
        writer.writeString(rawValue)
        writer.writeString(chainID)
        writer.writeFixed(message)
        return writer.bytes
    }
}

/// An Ed25519 public key (32 bytes). Account addresses and validator keys are public keys.
public struct PublicKey: Hashable, Comparable, Sendable, CanonicalCodable, CustomStringConvertible {
    public let bytes32: Bytes32

    public init(_ bytes32: Bytes32) { self.bytes32 = bytes32 }

    public init?(hex: some StringProtocol) {
        guard let value = Bytes32(hex: hex) else { return nil }
        self.init(value)
    }

    public var hex: String { bytes32.hex }
    public var description: String { hex }

    public static func < (lhs: PublicKey, rhs: PublicKey) -> Bool { lhs.bytes32 < rhs.bytes32 }

    public func encode(to writer: inout CanonicalWriter) { bytes32.encode(to: &writer) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        bytes32 = try Bytes32(from: &reader)
    }

    /// Verifies a raw Ed25519 signature over `message` (no domain added).
    public func verify(signature: Signature, rawMessage message: [UInt8]) -> Bool {
        Sodium.ensureReady()
        return signature.withUnsafeBytes { sig in
            bytes32.withUnsafeBytes { key in
                message.withUnsafeBufferPointer { msg in
                    crypto_sign_verify_detached(sig.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                                msg.baseAddress, UInt64(msg.count),
                                                key.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 0
                }
            }
        }
    }

    /// Verifies a signature made with `SigningKey.sign(domain:chainID:message:)`.
    public func verify(signature: Signature, domain: SigningDomain, chainID: String, message: [UInt8]) -> Bool {
        verify(signature: signature, rawMessage: domain.signingBytes(chainID: chainID, message: message))
    }
}

/// An Ed25519 signature (64 bytes), held inline.
public struct Signature: Hashable, Sendable, CanonicalCodable, CustomStringConvertible {
    public let low: Bytes32
    public let high: Bytes32

    public init(_ bytes: some Collection<UInt8>) {
        precondition(bytes.count == 64, "a signature is 64 bytes")
        let array = Array(bytes)
        low = Bytes32(array[0..<32])
        high = Bytes32(array[32..<64])
    }

    public init?(hex: some StringProtocol) {
        guard let raw = Hex.decode(hex), raw.count == 64 else { return nil }
        self.init(raw)
    }

    public var bytes: [UInt8] { low.bytes + high.bytes }
    public var hex: String { Hex.encode(bytes) }
    public var description: String { hex }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        // Two adjacent Bytes32 in a struct are laid out contiguously with no padding.
        try Swift.withUnsafeBytes(of: self, body)
    }

    public func encode(to writer: inout CanonicalWriter) {
        low.encode(to: &writer)
        high.encode(to: &writer)
    }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        low = try Bytes32(from: &reader)
        high = try Bytes32(from: &reader)
    }
}

/// An Ed25519 private key. The 32-byte seed is the whole secret; libsodium's 64-byte
/// expanded form is derived from it and kept for signing speed.
public struct SigningKey: Sendable {
    public let seed: Bytes32
    public let publicKey: PublicKey
    private let expanded: [UInt8]  // libsodium secret key: seed || public key

    public init(seed: Bytes32) {
        Sodium.ensureReady()
        var publicBytes = [UInt8](repeating: 0, count: 32)
        var secret = [UInt8](repeating: 0, count: 64)
        seed.withUnsafeBytes { seedBytes in
            let status = crypto_sign_seed_keypair(&publicBytes, &secret,
                                                  seedBytes.baseAddress!.assumingMemoryBound(to: UInt8.self))
            precondition(status == 0, "crypto_sign_seed_keypair failed")
        }
        self.seed = seed
        self.publicKey = PublicKey(Bytes32(publicBytes))
        self.expanded = secret
    }

    /// A fresh key from the operating system's CSPRNG.
    public static func generate() -> SigningKey {
        SigningKey(seed: Bytes32(Sodium.randomBytes(32)))
    }

    /// A raw Ed25519 signature over `message` (no domain added). Deterministic (RFC 8032).
    public func sign(rawMessage message: [UInt8]) -> Signature {
        var signature = [UInt8](repeating: 0, count: 64)
        let status = crypto_sign_detached(&signature, nil, message, UInt64(message.count), expanded)
        precondition(status == 0, "crypto_sign_detached failed")
        return Signature(signature)
    }

    /// Signs `message` for one purpose on one chain.
    public func sign(domain: SigningDomain, chainID: String, message: [UInt8]) -> Signature {
        sign(rawMessage: domain.signingBytes(chainID: chainID, message: message))
    }
}

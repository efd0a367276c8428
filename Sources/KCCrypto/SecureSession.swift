import CSodium

/// The crypto of a peer connection (specs/p2p.md): an ephemeral X25519 key exchange whose
/// transcript both sides sign with their Ed25519 node keys, then ChaCha20-Poly1305 (IETF)
/// frames with one key and a counting nonce per direction.
public struct EphemeralKeyPair: Sendable {
    public let publicKey: Bytes32
    private let secretKey: [UInt8]

    public init() {
        precondition(sodium_init() >= 0, "libsodium failed to initialise")
        var publicBytes = [UInt8](repeating: 0, count: Int(crypto_kx_PUBLICKEYBYTES))
        var secretBytes = [UInt8](repeating: 0, count: Int(crypto_kx_SECRETKEYBYTES))
        precondition(crypto_kx_keypair(&publicBytes, &secretBytes) == 0, "crypto_kx_keypair failed")
        publicKey = Bytes32(publicBytes)
        secretKey = secretBytes
    }

    /// Session keys shared with the holder of `peer`. The side with the smaller ephemeral key
    /// plays libsodium's "client", so both sides agree whoever dialled. Nil when the peer's key
    /// is a low-order point or equals ours (the shared secret would be known or degenerate).
    public func sessionKeys(peer: Bytes32) -> SessionKeys? {
        guard peer != publicKey else { return nil }
        var receive = [UInt8](repeating: 0, count: Int(crypto_kx_SESSIONKEYBYTES))
        var transmit = [UInt8](repeating: 0, count: Int(crypto_kx_SESSIONKEYBYTES))
        let ours = publicKey.bytes, theirs = peer.bytes
        let status: Int32
        if publicKey < peer {
            status = crypto_kx_client_session_keys(&receive, &transmit, ours, secretKey, theirs)
        } else {
            status = crypto_kx_server_session_keys(&receive, &transmit, ours, secretKey, theirs)
        }
        guard status == 0 else { return nil }
        let low = min(publicKey, peer), high = max(publicKey, peer)
        return SessionKeys(send: transmit, receive: receive, transcript: Blake2b.hash256(parts: [low.bytes, high.bytes]))
    }
}

/// Keys for one connection, and the transcript hash each side signs to prove its node key.
public struct SessionKeys: Sendable {
    public let send: [UInt8]
    public let receive: [UInt8]
    public let transcript: Hash256
}

/// ChaCha20-Poly1305-IETF in one direction: the nonce is a 64-bit frame counter (little
/// endian, zero-padded to 12 bytes), so a replayed, dropped or reordered frame fails to open.
public struct FrameCipher: Sendable {
    public static let tagBytes = Int(crypto_aead_chacha20poly1305_ietf_ABYTES)
    private let key: [UInt8]
    public private(set) var counter: UInt64 = 0

    public init(key: [UInt8]) {
        precondition(key.count == Int(crypto_aead_chacha20poly1305_ietf_KEYBYTES))
        self.key = key
    }

    private func nonce() -> [UInt8] {
        var nonce = [UInt8](repeating: 0, count: Int(crypto_aead_chacha20poly1305_ietf_NPUBBYTES))
        var value = counter
        for index in 0..<8 {
            nonce[index] = UInt8(truncatingIfNeeded: value)
            value >>= 8
        }
        return nonce
    }

    public mutating func seal(_ plaintext: [UInt8]) -> [UInt8] {
        precondition(counter < UInt64.max, "frame counter exhausted")
        var output = [UInt8](repeating: 0, count: plaintext.count + Self.tagBytes)
        var length: UInt64 = 0
        let status = crypto_aead_chacha20poly1305_ietf_encrypt(&output, &length, plaintext, UInt64(plaintext.count),
                                                                nil, 0, nil, nonce(), key)
        precondition(status == 0 && Int(length) == output.count, "ChaCha20-Poly1305 encryption failed")
        counter += 1
        return output
    }

    /// The plaintext, or nil when the frame does not authenticate.
    public mutating func open(_ ciphertext: some Collection<UInt8>) -> [UInt8]? {
        guard ciphertext.count >= Self.tagBytes, counter < UInt64.max else { return nil }
        let input = Array(ciphertext)
        var output = [UInt8](repeating: 0, count: input.count - Self.tagBytes)
        var length: UInt64 = 0
        let status = crypto_aead_chacha20poly1305_ietf_decrypt(&output, &length, nil, input, UInt64(input.count),
                                                                nil, 0, nonce(), key)
        guard status == 0 else { return nil }
        counter += 1
        return output
    }
}

import KCCodec
import KCCrypto
import KCNetwork

/// A P2P peer written by hand over a blocking socket (specs/p2p.md), to speak the real
/// handshake and then misbehave on purpose: any frame, any bytes, any pause.
public final class RawPeer {
    public let socket: RawSocket
    /// The session ciphers once `handshake` succeeded.
    public var send: FrameCipher? = nil
    public var receive: FrameCipher? = nil

    public init(port: Int, source: String? = nil, receiveTimeoutMilliseconds: Int = 3_000) throws {
        socket = try RawSocket(port: port, source: source, receiveTimeoutMilliseconds: receiveTimeoutMilliseconds)
    }

    public func sendRaw(_ bytes: [UInt8]) { socket.send(bytes) }

    /// A length-prefixed frame (u32 big-endian length, then the bytes).
    public func sendFrame(_ payload: [UInt8]) {
        let length = UInt32(truncatingIfNeeded: payload.count)
        socket.send([UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + payload)
    }

    public func readFrame() -> [UInt8]? {
        guard let header = socket.receive(exactly: 4) else { return nil }
        let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        return socket.receive(exactly: length)
    }

    public func waitClosed(milliseconds: Int = 3_000) -> Bool { socket.waitClosed(milliseconds: milliseconds) }

    /// Runs the handshake as an honest peer would; false if the other side does not complete it.
    @discardableResult
    public func handshake(key: SigningKey, chainID: String, genesisHash: Hash256, listenPort: UInt16 = 0) -> Bool {
        let ephemeral = EphemeralKeyPair()
        sendFrame(Array("MBR1".utf8) + ephemeral.publicKey.bytes)
        guard let hello = readFrame(), hello.count == 36, let keys = ephemeral.sessionKeys(peer: Bytes32(Array(hello[4...]))) else { return false }
        var sender = FrameCipher(key: keys.send)
        var receiver = FrameCipher(key: keys.receive)
        let auth = HandshakeAuth(key: key, chainID: chainID, transcript: keys.transcript, genesisHash: genesisHash, listenPort: listenPort)
        sendFrame(sender.seal(auth.canonicalBytes))
        guard let theirs = readFrame(), receiver.open(theirs) != nil else { return false }
        send = sender
        receive = receiver
        return true
    }

    /// Seals `plaintext` as the next frame of the session.
    public func sendSealed(_ plaintext: [UInt8]) {
        precondition(send != nil, "no session: handshake first")
        sendFrame(send!.seal(plaintext))
    }

    public func send(_ message: WireMessage) { sendSealed(message.canonicalBytes) }

    /// The next message from the other side, or nil on close, timeout or a bad frame.
    public func readMessage() -> WireMessage? {
        guard receive != nil, let frame = readFrame(), let plaintext = receive!.open(frame) else { return nil }
        return try? WireMessage.decode(exactly: plaintext)
    }
}

import KCCodec
import KCCrypto
import KCNetwork
import KCTestSupport
import KCTypes
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The P2P host over real loopback TCP: a good peer connects and talks; every kind of bad
/// peer is dropped (and banned once it has authenticated), and the host still takes a good
/// peer afterwards.
@Suite(.serialized) struct P2PHostTests {
    static let chainID = "p2p-test"
    static let genesisHash = Blake2b.hash256(Array("genesis".utf8))

    final class Logs: Sendable {
        let lines = Mutex<[String]>([])
        func append(_ line: String) { lines.withLock { $0.append(line) } }
        func contains(_ text: String) -> Bool { lines.withLock { $0.contains { $0.contains(text) } } }
    }

    static func makeHost(seed: UInt8, listen: Bool = true, peers: [PeerAddress] = [], genesis: Hash256 = genesisHash,
                         logs: Logs = Logs(), maxInbound: Int = 40) throws -> (P2PHost, Int) {
        var settings = P2PSettings(chainID: chainID, genesisHash: genesis,
                                   nodeKey: SigningKey(seed: Bytes32([UInt8](repeating: seed, count: 32))))
        settings.listenHost = listen ? "127.0.0.1" : nil
        settings.persistentPeers = peers
        settings.handshakeTimeoutMilliseconds = 1_000
        settings.maxFrameBytes = 1 << 20
        settings.maxInboundPeers = maxInbound
        let host = P2PHost(settings: settings, events: Inbox(capacity: 1_000), log: NodeLogger(minimum: .trace, sink: logs.append))
        let port = try host.start()
        return (host, port)
    }

    /// Waits up to `seconds` for an event matching `match` in `host`'s inbox.
    static func await(_ host: P2PHost, seconds: Int = 5, _ match: (P2PEvent) -> Bool) -> Bool {
        for _ in 0..<(seconds * 20) {
            if host.events!.drain(waitingMilliseconds: 50).contains(where: match) { return true }
        }
        return false
    }

    static func isConnected(_ event: P2PEvent, _ key: PublicKey) -> Bool {
        if case .connected(let peer) = event { return peer == key }
        return false
    }

    /// A good peer still gets in and is heard: the host is healthy.
    static func expectHealthy(_ server: P2PHost, port: Int) throws {
        let (client, _) = try makeHost(seed: 99, listen: false)
        defer { client.stop() }
        client.dial(PeerAddress(nodeID: server.nodeID, host: "127.0.0.1", port: port))
        #expect(Self.await(server) { Self.isConnected($0, client.nodeID) })
        #expect(Self.await(client) { Self.isConnected($0, server.nodeID) })
        client.send(.status(height: 42), to: server.nodeID)
        #expect(Self.await(server) { event in
            if case .message(.status(42), let from) = event { return from == client.nodeID }
            return false
        })
    }

    @Test func peersAuthenticateAndExchangeMessages() throws {
        let (server, port) = try Self.makeHost(seed: 1)
        defer { server.stop() }
        let (client, _) = try Self.makeHost(seed: 2, listen: false,
                                            peers: [PeerAddress(nodeID: server.nodeID, host: "127.0.0.1", port: port)])
        defer { client.stop() }
        #expect(Self.await(client) { Self.isConnected($0, server.nodeID) })
        #expect(Self.await(server) { Self.isConnected($0, client.nodeID) })
        // Both directions, several frames (the nonce counters advance in step).
        for height in 1...5 as ClosedRange<UInt64> { server.send(.status(height: height), to: client.nodeID) }
        var heights: [UInt64] = []
        for _ in 0..<100 where heights.count < 5 {
            for case .message(.status(let height), _) in client.events!.drain(waitingMilliseconds: 50) { heights.append(height) }
        }
        #expect(heights == [1, 2, 3, 4, 5])
        client.broadcast(.blockRequest(height: 9))
        #expect(Self.await(server) { if case .message(.blockRequest(9), _) = $0 { return true } else { return false } })
        #expect(server.connectedPeers == [client.nodeID])
    }

    @Test func aPeerWithAnotherKeyThanConfiguredIsRefused() throws {
        let logs = Logs()
        let (server, port) = try Self.makeHost(seed: 3)
        defer { server.stop() }
        let impostorID = SigningKey(seed: Bytes32([UInt8](repeating: 77, count: 32))).publicKey
        let (client, _) = try Self.makeHost(seed: 4, listen: false, logs: logs)
        defer { client.stop() }
        client.dial(PeerAddress(nodeID: impostorID, host: "127.0.0.1", port: port))
        #expect(!Self.await(client, seconds: 1) { if case .connected = $0 { return true } else { return false } })
        #expect(logs.contains("is not the configured"))
        #expect(client.connectedPeers.isEmpty)
        try Self.expectHealthy(server, port: port)
    }

    @Test func aPeerOfAnotherChainIsRefused() throws {
        let logs = Logs()
        let (server, port) = try Self.makeHost(seed: 5, logs: logs)
        defer { server.stop() }
        let (client, _) = try Self.makeHost(seed: 6, listen: false, genesis: Blake2b.hash256(Array("other".utf8)))
        defer { client.stop() }
        client.dial(PeerAddress(nodeID: server.nodeID, host: "127.0.0.1", port: port))
        #expect(!Self.await(server, seconds: 1) { if case .connected = $0 { return true } else { return false } })
        #expect(logs.contains("another chain"))
    }

    @Test func garbageBeforeTheHandshakeDropsTheConnection() throws {
        let logs = Logs()
        let (server, port) = try Self.makeHost(seed: 7, logs: logs)
        defer { server.stop() }
        let raw = try RawConnection(port: port)
        _ = raw.readFrame()  // the server's hello
        raw.sendRaw(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8) + [UInt8](repeating: 0xAB, count: 64))
        #expect(raw.waitClosed())
        #expect(logs.contains("dropped"))
        try Self.expectHealthy(server, port: port)
    }

    @Test func aLowOrderEphemeralKeyIsRefused() throws {
        let logs = Logs()
        let (server, port) = try Self.makeHost(seed: 8, logs: logs)
        defer { server.stop() }
        let raw = try RawConnection(port: port)
        _ = raw.readFrame()
        // The identity point: any shared secret with it is known to everyone.
        var point = [UInt8](repeating: 0, count: 32)
        point[0] = 1
        raw.sendFrame(Array("MBR1".utf8) + point)
        #expect(raw.waitClosed())
        #expect(logs.contains("low-order"))
        try Self.expectHealthy(server, port: port)
    }

    @Test func silenceDuringTheHandshakeTimesOut() throws {
        let logs = Logs()
        let (server, port) = try Self.makeHost(seed: 9, logs: logs)
        defer { server.stop() }
        let raw = try RawConnection(port: port)
        #expect(raw.waitClosed(seconds: 4))
        #expect(logs.contains("no handshake within"))
    }

    /// After a correct handshake: each kind of bad frame closes the connection and bans the peer.
    @Test(arguments: ["garbage frame", "oversized frame", "malformed message", "replayed frame"])
    func misbehaviourAfterTheHandshakeBansThePeer(kind: String) throws {
        let logs = Logs()
        let (server, port) = try Self.makeHost(seed: 10, logs: logs)
        defer { server.stop() }
        let key = SigningKey(seed: Bytes32([UInt8](repeating: 55, count: 32)))
        let raw = try RawConnection(port: port)
        var session = try #require(raw.handshake(key: key, chainID: Self.chainID, genesisHash: Self.genesisHash))
        #expect(Self.await(server) { Self.isConnected($0, key.publicKey) })
        switch kind {
        case "garbage frame":
            raw.sendFrame([UInt8](repeating: 0x5A, count: 100))
        case "oversized frame":
            raw.sendRaw([0x10, 0, 0, 0])  // announces 256 MiB
        case "malformed message":
            raw.sendFrame(session.send.seal([0xFF, 0xFF, 0xFF]))
        default:
            let frame = session.send.seal(WireMessage.status(height: 1).canonicalBytes)
            raw.sendFrame(frame)
            raw.sendFrame(frame)
        }
        #expect(raw.waitClosed())
        #expect(Self.await(server) { if case .disconnected(key.publicKey) = $0 { return true } else { return false } })
        #expect(server.isBanned(key.publicKey))
        // Banned: the same key is refused on a new connection.
        let again = try RawConnection(port: port)
        _ = again.handshake(key: key, chainID: Self.chainID, genesisHash: Self.genesisHash)
        #expect(again.waitClosed())
        #expect(!server.connectedPeers.contains(key.publicKey))
        try Self.expectHealthy(server, port: port)
    }

    @Test func theInboundLimitHolds() throws {
        let (server, port) = try Self.makeHost(seed: 11, maxInbound: 1)
        defer { server.stop() }
        let (first, _) = try Self.makeHost(seed: 12, listen: false)
        defer { first.stop() }
        first.dial(PeerAddress(nodeID: server.nodeID, host: "127.0.0.1", port: port))
        #expect(Self.await(server) { Self.isConnected($0, first.nodeID) })
        let (second, _) = try Self.makeHost(seed: 13, listen: false)
        defer { second.stop() }
        second.dial(PeerAddress(nodeID: server.nodeID, host: "127.0.0.1", port: port))
        #expect(!Self.await(server, seconds: 1) { Self.isConnected($0, second.nodeID) })
        #expect(server.connectedPeers == [first.nodeID])
        // A freed slot takes the next peer.
        first.stop()
        #expect(Self.await(server) { if case .disconnected = $0 { return true } else { return false } })
        second.dial(PeerAddress(nodeID: server.nodeID, host: "127.0.0.1", port: port))
        #expect(Self.await(server) { Self.isConnected($0, second.nodeID) })
    }

    @Test func peerAddressesParse() {
        let id = String(repeating: "ab", count: 32)
        let address = PeerAddress.parse("\(id)@127.0.0.1:26656")
        #expect(address?.host == "127.0.0.1" && address?.port == 26656 && address?.nodeID.hex == id)
        for bad in ["\(id)@127.0.0.1", "\(id)@:1", "xyz@127.0.0.1:1", "\(id)@h:70000", "\(id)127.0.0.1:1", "\(id.dropLast(2))@h:1"] {
            #expect(PeerAddress.parse(bad) == nil, "\(bad)")
        }
    }
}

/// A plain blocking socket speaking the wire format by hand, to misbehave on purpose.
final class RawConnection {
    let descriptor: Int32

    init(port: Int) throws {
        descriptor = try connectLoopback(port: port)
    }

    deinit { close(descriptor) }

    func sendRaw(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    func sendFrame(_ payload: [UInt8]) {
        let length = UInt32(payload.count)
        sendRaw([UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + payload)
    }

    func readExactly(_ count: Int) -> [UInt8]? {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: count)
        while result.count < count {
            let got = recv(descriptor, &buffer, count - result.count, 0)
            guard got > 0 else { return nil }
            result += buffer[0..<got]
        }
        return result
    }

    func readFrame() -> [UInt8]? {
        guard let header = readExactly(4) else { return nil }
        let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        return readExactly(length)
    }

    /// True when the other end closes within `seconds` (anything it sends first is skipped).
    func waitClosed(seconds: Int = 3) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<(seconds * 10) {
            var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
            setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let got = recv(descriptor, &buffer, buffer.count, 0)
            if got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { return true }
        }
        return false
    }

    /// Runs the handshake as an honest peer would; returns the session ciphers.
    func handshake(key: SigningKey, chainID: String, genesisHash: Hash256) -> (send: FrameCipher, receive: FrameCipher)? {
        let ephemeral = EphemeralKeyPair()
        sendFrame(Array("MBR1".utf8) + ephemeral.publicKey.bytes)
        guard let hello = readFrame(), hello.count == 36, let keys = ephemeral.sessionKeys(peer: Bytes32(Array(hello[4...]))) else { return nil }
        var send = FrameCipher(key: keys.send)
        var receive = FrameCipher(key: keys.receive)
        let auth = HandshakeAuth(key: key, chainID: chainID, transcript: keys.transcript, genesisHash: genesisHash, listenPort: 0)
        sendFrame(send.seal(auth.canonicalBytes))
        guard let theirs = readFrame(), receive.open(theirs) != nil else { return nil }
        return (send, receive)
    }
}

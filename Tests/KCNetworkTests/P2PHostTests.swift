import KCCodec
import KCCrypto
@testable import KCNetwork
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
                         logs: Logs = Logs(), maxInbound: Int = 40, configure: (inout P2PSettings) -> Void = { _ in }) throws -> (P2PHost, Int) {
        var settings = P2PSettings(chainID: chainID, genesisHash: genesis,
                                   nodeKey: SigningKey(seed: Bytes32([UInt8](repeating: seed, count: 32))))
        settings.listenHost = listen ? "127.0.0.1" : nil
        settings.persistentPeers = peers
        settings.handshakeTimeoutMilliseconds = 1_000
        settings.maxFrameBytes = 1 << 20
        settings.maxInboundPeers = maxInbound
        configure(&settings)
        let host = P2PHost(settings: settings, events: Inbox(capacity: 1_000), log: NodeLogger(minimum: .trace, sink: logs.append))
        let port = try host.start()
        return (host, port)
    }

    /// A listening host and a host that dials it, connected both ways (each saw the other).
    static func connectedPair(serverSeed: UInt8, clientSeed: UInt8) throws -> (server: P2PHost, client: P2PHost) {
        let (server, port) = try makeHost(seed: serverSeed)
        let (client, _) = try makeHost(seed: clientSeed, listen: false,
                                       peers: [PeerAddress(nodeID: server.nodeID, host: "127.0.0.1", port: port)])
        #expect(Self.await(client) { Self.isConnected($0, server.nodeID) })
        #expect(Self.await(server) { Self.isConnected($0, client.nodeID) })
        return (server, client)
    }

    /// Waits up to `seconds` for an event matching `match` in `host`'s inbox.
    static func await(_ host: P2PHost, seconds: Int = 5, _ match: (P2PEvent) -> Bool) -> Bool {
        for _ in 0..<(seconds * 20) {
            if host.events!.drain(waitingMilliseconds: 50).contains(where: match) { return true }
        }
        return false
    }

    /// Polls `condition` every 50 ms for up to `seconds`.
    static func wait(seconds: Int, _ condition: () -> Bool) -> Bool {
        for _ in 0..<(seconds * 20) {
            if condition() { return true }
            usleep(50_000)
        }
        return condition()
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
            if case .message(.status(42, 1), let from) = event { return from == client.nodeID }
            return false
        })
    }

    @Test func peersAuthenticateAndExchangeMessages() throws {
        let (server, client) = try Self.connectedPair(serverSeed: 1, clientSeed: 2)
        defer { server.stop(); client.stop() }
        // Both directions, several frames (the nonce counters advance in step).
        for height in 1...5 as ClosedRange<UInt64> { server.send(.status(height: height), to: client.nodeID) }
        var heights: [UInt64] = []
        for _ in 0..<100 where heights.count < 5 {
            for case .message(.status(let height, _), _) in client.events!.drain(waitingMilliseconds: 50) { heights.append(height) }
        }
        #expect(heights == [1, 2, 3, 4, 5])
        client.broadcast(.blockRequest(height: 9))
        #expect(Self.await(server) { if case .message(.blockRequest(9), _) = $0 { return true } else { return false } })
        #expect(server.connectedPeers == [client.nodeID])
    }

    /// A peer that stops reading loses gossip (transactions, status), never the connection:
    /// the sender drops what its full connection does not take and counts it, and the peer
    /// reads everything else once it wakes.
    @Test func aPeerThatDoesNotReadLosesGossipNotTheConnection() throws {
        let (server, client) = try Self.connectedPair(serverSeed: 40, clientSeed: 41)
        defer { server.stop(); client.stop() }
        let sender = SigningKey(seed: Bytes32([UInt8](repeating: 42, count: 32)))
        let batch = (0..<100).map { nonce in
            TransactionBody(chainID: Self.chainID, sender: sender.publicKey, nonce: UInt64(nonce), fee: .acti(1),
                            call: .transfer(to: sender.publicKey, amount: .acti(1))).signed(with: sender)
        }
        let frames = 1_000  // about 20 MiB: more than loopback's socket buffers hold
        // The server's only event loop is held: nothing sent to it is read meanwhile.
        let wake = Mutex(false)
        let held = server.group.next().submit { while !wake.withLock({ $0 }) { usleep(5_000) } }
        for _ in 0..<frames { client.send(.transactions(batch), to: server.nodeID) }
        // The client's only loop runs tasks in order: once this one ran, every frame above was
        // written to the connection or dropped.
        try client.group.next().submit {}.wait()
        wake.withLock { $0 = true }
        try held.wait()
        let dropped = Int(client.droppedOutboundFrames.load(ordering: .relaxed))
        // The server reads at its inbound budget (20 MiB/s): give it up to 10 s.
        var received = 0
        let deadline = ContinuousClock.now + .seconds(10)
        while received < frames - dropped && ContinuousClock.now < deadline {
            for case .message(.transactions, _) in server.events!.drain(waitingMilliseconds: 50) { received += 1 }
        }
        #expect(dropped > 0, "the full connection dropped frames")
        #expect(received == frames - dropped, "every frame not dropped arrives: \(received) + \(dropped) of \(frames)")
        #expect(client.connectedPeers == [server.nodeID] && server.connectedPeers == [client.nodeID])
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
        let raw = try RawPeer(port: port)
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
        let raw = try RawPeer(port: port)
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
        let raw = try RawPeer(port: port)
        #expect(raw.waitClosed(milliseconds: 4_000))
        #expect(logs.contains("no handshake within"))
    }

    /// After a correct handshake: each kind of bad frame closes the connection and bans the peer.
    @Test(arguments: ["garbage frame", "oversized frame", "malformed message", "replayed frame", "unsolicited addresses",
                      "too many addresses"])
    func misbehaviourAfterTheHandshakeBansThePeer(kind: String) throws {
        let logs = Logs()
        let (server, port) = try Self.makeHost(seed: 10, logs: logs)
        defer { server.stop() }
        let key = SigningKey(seed: Bytes32([UInt8](repeating: 55, count: 32)))
        let raw = try RawPeer(port: port)
        #expect(raw.handshake(key: key, chainID: Self.chainID, genesisHash: Self.genesisHash))
        #expect(Self.await(server) { Self.isConnected($0, key.publicKey) })
        switch kind {
        case "garbage frame":
            raw.sendFrame([UInt8](repeating: 0x5A, count: 100))
        case "oversized frame":
            raw.sendRaw([0x10, 0, 0, 0])  // announces 256 MiB
        case "malformed message":
            raw.sendSealed([0xFF, 0xFF, 0xFF])
        case "unsolicited addresses":
            // An honest node sends addresses only when asked.
            raw.sendSealed(WireMessage.addresses([PeerAddress(nodeID: key.publicKey, host: "10.0.0.1", port: 26656)]).canonicalBytes)
        case "too many addresses":
            var writer = CanonicalWriter()
            writer.writeVarint(10)
            writer.writeLength(WireMessage.maxAddressesPerMessage + 1)
            for index in 0...WireMessage.maxAddressesPerMessage {
                writer.write(PeerAddress(nodeID: key.publicKey, host: "10.0.\(index / 256).\(index % 256)", port: 26656))
            }
            raw.sendSealed(writer.bytes)
        default:
            let frame = raw.send!.seal(WireMessage.status(height: 1).canonicalBytes)
            raw.sendFrame(frame)
            raw.sendFrame(frame)
        }
        #expect(raw.waitClosed())
        #expect(Self.await(server) { if case .disconnected(key.publicKey) = $0 { return true } else { return false } })
        #expect(server.isBanned(key.publicKey))
        // Banned: the same key is refused on a new connection.
        let again = try RawPeer(port: port)
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

    /// Before the handshake nothing larger than a handshake frame is buffered: 36
    /// unauthenticated connections each announcing a 5 MiB frame made a node hold 260 MB.
    @Test func aLargeFrameBeforeTheHandshakeIsRefusedUnread() throws {
        let logs = Logs()
        let (server, port) = try Self.makeHost(seed: 14, logs: logs)
        defer { server.stop() }
        let raw = try RawPeer(port: port)
        _ = raw.readFrame()  // the server's hello
        raw.sendRaw([0x00, 0x50, 0x00, 0x00])  // announces 5 MiB
        #expect(raw.waitClosed(milliseconds: 1_000))
        #expect(logs.contains("a frame of 5242880 bytes exceeds the limit of 256 bytes"))
        let empty = try RawPeer(port: port)
        _ = empty.readFrame()
        empty.sendRaw([0, 0, 0, 0])
        #expect(empty.waitClosed(milliseconds: 1_000))
        #expect(logs.contains("an empty frame (length 0)"))
        try Self.expectHealthy(server, port: port)
    }

    /// Connections still in the handshake are few per address: more from the same address are
    /// closed at once, while other addresses still get in.
    @Test func handshakesInProgressAreLimitedPerAddress() throws {
        let (server, port) = try Self.makeHost(seed: 15) { $0.maxPendingHandshakesPerAddress = 3 }
        defer { server.stop() }
        let silent = try (0..<3).map { _ in try RawPeer(port: port, source: "127.0.0.2") }
        for peer in silent { #expect(peer.readFrame()?.count == 36, "the first three are greeted") }
        let extra = try RawPeer(port: port, source: "127.0.0.2")
        #expect(extra.waitClosed(milliseconds: 1_000), "a fourth handshake from 127.0.0.2 is refused")
        try Self.expectHealthy(server, port: port)  // from 127.0.0.1
        _ = silent
    }

    /// Idle peers holding every inbound slot (36 squatters let a new peer in 0 times of 5)
    /// are evicted for newcomers once past their grace period; a useful peer is kept.
    @Test func squattersAreEvictedForNewcomersAndUsefulPeersStay() throws {
        let (server, port) = try Self.makeHost(seed: 16, maxInbound: 4) { $0.evictionGraceMilliseconds = 300 }
        defer { server.stop() }
        let address = PeerAddress(nodeID: server.nodeID, host: "127.0.0.1", port: port)
        var squatters: [P2PHost] = []
        defer { for squatter in squatters { squatter.stop() } }
        for seed in 20..<24 as Range<UInt8> {
            let (squatter, _) = try Self.makeHost(seed: seed, listen: false)
            squatter.dial(address)
            #expect(Self.await(server) { Self.isConnected($0, squatter.nodeID) })
            squatters.append(squatter)
        }
        let useful = squatters[0].nodeID
        for _ in 0..<5 { server.credit(useful) }
        usleep(400_000)
        // Five newcomers in a row each get in; the useful peer is never the one to go.
        for seed in 30..<35 as Range<UInt8> {
            let (newcomer, _) = try Self.makeHost(seed: seed, listen: false)
            defer { squatters.append(newcomer) }
            newcomer.dial(address)
            #expect(Self.await(server) { Self.isConnected($0, newcomer.nodeID) }, "newcomer \(seed) was not admitted")
            #expect(server.connectedPeers.count == 4)
            #expect(server.connectedPeers.contains(useful))
            usleep(350_000)  // past the newcomer's own grace period
        }
        #expect(server.evictionCount == 5)
    }

    /// Within the grace period nobody is evicted, so a plain newcomer is refused; an
    /// unconditional peer gets in whatever the limits.
    @Test func youngPeersAreNotEvictedButUnconditionalPeersAlwaysGetIn() throws {
        let vip = SigningKey(seed: Bytes32([UInt8](repeating: 41, count: 32))).publicKey
        let (server, port) = try Self.makeHost(seed: 17, maxInbound: 1) {
            $0.evictionGraceMilliseconds = 60_000
            $0.unconditionalPeers = [vip]
        }
        defer { server.stop() }
        let address = PeerAddress(nodeID: server.nodeID, host: "127.0.0.1", port: port)
        let (first, _) = try Self.makeHost(seed: 40, listen: false)
        defer { first.stop() }
        first.dial(address)
        #expect(Self.await(server) { Self.isConnected($0, first.nodeID) })
        let (plain, _) = try Self.makeHost(seed: 42, listen: false)
        defer { plain.stop() }
        plain.dial(address)
        #expect(!Self.await(server, seconds: 1) { Self.isConnected($0, plain.nodeID) })
        let (unconditional, _) = try Self.makeHost(seed: 41, listen: false)
        defer { unconditional.stop() }
        unconditional.dial(address)
        #expect(Self.await(server) { Self.isConnected($0, vip) })
        #expect(Set(server.connectedPeers) == [first.nodeID, vip])
    }

    /// One address holds at most `maxInboundPeersPerAddress` unprotected inbound slots; another
    /// address is not affected.
    @Test func inboundPeersAreLimitedPerAddress() throws {
        let logs = Logs()
        let (server, port) = try Self.makeHost(seed: 18, logs: logs) {
            $0.maxInboundPeersPerAddress = 2
            $0.evictionGraceMilliseconds = 60_000
        }
        defer { server.stop() }
        var peers: [RawPeer] = []
        for seed in 50..<52 as Range<UInt8> {
            let peer = try RawPeer(port: port, source: "127.0.0.3")
            #expect(peer.handshake(key: SigningKey(seed: Bytes32([UInt8](repeating: seed, count: 32))),
                                   chainID: Self.chainID, genesisHash: Self.genesisHash))
            peers.append(peer)
        }
        let third = try RawPeer(port: port, source: "127.0.0.3")
        _ = third.handshake(key: SigningKey(seed: Bytes32([UInt8](repeating: 52, count: 32))), chainID: Self.chainID, genesisHash: Self.genesisHash)
        #expect(third.waitClosed(milliseconds: 2_000))
        #expect(logs.contains("2 peers from 127.0.0.3 are connected already"))
        let other = try RawPeer(port: port, source: "127.0.0.4")
        #expect(other.handshake(key: SigningKey(seed: Bytes32([UInt8](repeating: 53, count: 32))), chainID: Self.chainID,
                                genesisHash: Self.genesisHash))
        #expect(Self.await(server) { Self.isConnected($0, SigningKey(seed: Bytes32([UInt8](repeating: 53, count: 32))).publicKey) })
    }

    /// A peer that proves, in the handshake, a consensus key of the current set keeps a slot
    /// when the inbound slots are full and nobody can be evicted; a stranger does not.
    @Test func aProvenValidatorGetsASlotWhenTheSlotsAreFull() throws {
        let validatorKey = SigningKey(seed: Bytes32([UInt8](repeating: 61, count: 32)))
        let (server, port) = try Self.makeHost(seed: 19, maxInbound: 1) { $0.evictionGraceMilliseconds = 60_000 }
        defer { server.stop() }
        server.setValidators([validatorKey.publicKey])
        let address = PeerAddress(nodeID: server.nodeID, host: "127.0.0.1", port: port)
        let (first, _) = try Self.makeHost(seed: 60, listen: false)
        defer { first.stop() }
        first.dial(address)
        #expect(Self.await(server) { Self.isConnected($0, first.nodeID) })
        let (stranger, _) = try Self.makeHost(seed: 62, listen: false)
        defer { stranger.stop() }
        stranger.dial(address)
        #expect(!Self.await(server, seconds: 1) { Self.isConnected($0, stranger.nodeID) }, "the slots are full")
        let (validator, _) = try Self.makeHost(seed: 63, listen: false) { $0.validatorKey = validatorKey }
        defer { validator.stop() }
        validator.dial(address)
        #expect(Self.await(server) { Self.isConnected($0, validator.nodeID) }, "a validator of the set gets in")
        #expect(Set(server.connectedPeers) == [first.nodeID, validator.nodeID])
    }

    /// The proof is bound to its connection's transcript and node key: moved to another
    /// connection, or under another node key, it does not verify.
    @Test func aValidatorProofDoesNotTravel() throws {
        let node = SigningKey(seed: Bytes32([UInt8](repeating: 64, count: 32)))
        let validatorKey = SigningKey(seed: Bytes32([UInt8](repeating: 65, count: 32)))
        let transcript = Blake2b.hash256([1]), elsewhere = Blake2b.hash256([2])
        let auth = HandshakeAuth(key: node, chainID: Self.chainID, transcript: transcript, genesisHash: Self.genesisHash,
                                 listenPort: 1, validatorKey: validatorKey)
        #expect(auth.verify(chainID: Self.chainID, transcript: transcript))
        let proof = try #require(auth.validator)
        #expect(proof.verify(chainID: Self.chainID, transcript: transcript, nodeKey: node.publicKey))
        #expect(!proof.verify(chainID: Self.chainID, transcript: elsewhere, nodeKey: node.publicKey))
        #expect(!proof.verify(chainID: Self.chainID, transcript: transcript, nodeKey: validatorKey.publicKey))
        #expect(!proof.verify(chainID: "other-chain", transcript: transcript, nodeKey: node.publicKey))
        // A good handshake with a proof taken from another connection does not verify as a whole.
        let plain = HandshakeAuth(key: node, chainID: Self.chainID, transcript: elsewhere, genesisHash: Self.genesisHash, listenPort: 1)
        let grafted = try HandshakeAuth.decode(exactly: Array(plain.canonicalBytes.dropLast()) + [1] + proof.canonicalBytes)
        #expect(!grafted.verify(chainID: Self.chainID, transcript: elsewhere))
    }

    /// With no inbound slots at all, no unprotected peer gets in (there is nobody to evict).
    @Test func zeroInboundSlotsAdmitNobody() throws {
        let logs = Logs()
        let (server, port) = try Self.makeHost(seed: 26, logs: logs, maxInbound: 0)
        defer { server.stop() }
        let (client, _) = try Self.makeHost(seed: 27, listen: false)
        defer { client.stop() }
        client.dial(PeerAddress(nodeID: server.nodeID, host: "127.0.0.1", port: port))
        #expect(!Self.await(server, seconds: 1) { Self.isConnected($0, client.nodeID) })
        #expect(logs.contains("the inbound peer limit 0 is reached"))
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

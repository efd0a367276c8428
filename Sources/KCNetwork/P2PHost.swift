import KCCodec
import KCCrypto
import NIOCore
import NIOPosix
import Synchronization

/// What the network tells the node.
public enum P2PEvent: Sendable {
    case connected(PublicKey)
    case disconnected(PublicKey)
    case message(WireMessage, from: PublicKey)
}

/// Settings of the peer-to-peer host; the node fills them from config.toml and genesis.
public struct P2PSettings: Sendable {
    public var chainID: String
    public var genesisHash: Hash256
    public var nodeKey: SigningKey
    /// A validator's consensus key: proven in every handshake, so peers keep a slot for this
    /// node while the key is in their validator set (nil: nothing proven).
    public var validatorKey: SigningKey? = nil
    /// Where to accept connections; nil for a host that only dials (tools, tests).
    public var listenHost: String?
    public var listenPort: Int = 0
    public var persistentPeers: [PeerAddress] = []
    /// Node keys admitted beyond every inbound limit and never evicted (besides persistent
    /// peers): a validator's sentries, say.
    public var unconditionalPeers: Set<PublicKey> = []
    public var maxInboundPeers = 40
    public var maxOutboundPeers = 10
    /// Authenticated inbound peers from one IP address (persistent and unconditional peers
    /// not counted).
    public var maxInboundPeersPerAddress = 8
    /// Connections still in the handshake, in all and from one IP address.
    public var maxPendingHandshakes = 16
    public var maxPendingHandshakesPerAddress = 4
    /// An inbound peer younger than this is never evicted for a newcomer.
    public var evictionGraceMilliseconds: Int64 = 10_000
    /// What one connection may send: frames and bytes per second (a second's worth at once).
    /// Beyond it the node stops reading the socket until the budget refills, so a flooding
    /// peer is slowed by TCP itself instead of costing a decryption per frame.
    public var maxInboundFramesPerSecond = 2_000
    public var maxInboundBytesPerSecond = 20 << 20
    /// Largest plaintext frame; larger ones drop the connection.
    public var maxFrameBytes = 8 << 20
    public var handshakeTimeoutMilliseconds: Int64 = 5_000
    /// A connection that sends nothing for this long is closed (peers send status each second).
    public var idleTimeoutMilliseconds: Int64 = 30_000
    /// How long a misbehaving peer stays refused.
    public var banMilliseconds: Int64 = 60_000
    public var dialBackoffMinimumMilliseconds: Int64 = 200
    public var dialBackoffMaximumMilliseconds: Int64 = 5_000
    /// Bytes queued towards one peer beyond which it is disconnected as too slow.
    public var maxQueuedBytesPerPeer = 64 << 20
    /// Peer exchange (specs/p2p.md, "Peer discovery"): ask peers for addresses, keep an address
    /// book, and dial from it until `maxOutboundPeers` are connected.
    public var pex = true
    /// Nodes to ask for addresses when the book knows too few, or nothing is connected.
    public var seeds: [PeerAddress] = []
    /// Crawl the network, hand out addresses, and hang up (a seed node).
    public var seedMode = false
    /// The address other nodes should dial to reach this one (handed out with the book).
    public var externalAddress: PeerAddress? = nil
    /// How the address book is kept between runs (nil: in memory only).
    public var loadAddressBook: (@Sendable () -> [UInt8]?)? = nil
    public var saveAddressBook: (@Sendable ([UInt8]) -> Void)? = nil
    /// How often the node checks its outbound peers and dials from the book.
    public var discoveryIntervalMilliseconds: Int64 = 2_000

    public init(chainID: String, genesisHash: Hash256, nodeKey: SigningKey) {
        self.chainID = chainID
        self.genesisHash = genesisHash
        self.nodeKey = nodeKey
    }
}

/// An encoded message on its way to a peer. Droppable ones (transactions, status) are skipped
/// when the peer's queue is over its mark instead of growing it.
struct OutboundFrame: Sendable {
    let plaintext: [UInt8]
    let droppable: Bool
}

/// The peer-to-peer host (specs/p2p.md): accepts and dials TCP connections with SwiftNIO,
/// authenticates each with the handshake, keeps persistent peers connected with backoff,
/// enforces limits and bans, and hands every event and received message to its sink.
public final class P2PHost: Sendable {
    public let settings: P2PSettings
    /// The inbox given to `init(settings:events:log:)`, for hosts that are drained directly.
    public let events: Inbox<P2PEvent>?
    /// Where events go; `droppable` ones may be refused when the consumer is overloaded.
    let sink: @Sendable (_ event: P2PEvent, _ droppable: Bool) -> Void
    let log: NodeLogger
    let group: MultiThreadedEventLoopGroup
    let state = Mutex(State())
    private let listener = Mutex<Channel?>(nil)
    /// Bytes written to and read from peers' sockets (frames with their length prefix), for metrics.
    public let sentBytes = Atomic<UInt64>(0)
    /// The port this host listens on (the bound one when the setting asked for any), announced
    /// in handshakes so peers can hand out this node's address; 0 when not listening.
    let listeningPort = Atomic<Int>(0)
    public let receivedBytes = Atomic<UInt64>(0)
    /// Droppable frames (transactions, status, round state) not sent because the peer's
    /// connection was not taking more (it reads slower than this host writes).
    public let droppedOutboundFrames = Atomic<UInt64>(0)

    struct Connection {
        let channel: Channel
        let outbound: Bool
        /// The remote IP address (no port).
        let address: String
        let since: NIODeadline
        /// Persistent or unconditional: exempt from inbound limits and eviction.
        let protected: Bool
        /// The consensus key the peer proved in the handshake, if any: while it is in the
        /// validator set the peer is exempt too.
        let validatorKey: PublicKey?
        /// Messages the node found useful (`credit`): what keeps an inbound peer from eviction.
        var useful: UInt64 = 0
        /// Where the peer can be dialled: the dialled address, or its IP and announced listen port.
        var dialAddress: PeerAddress? = nil
    }

    struct State {
        var peers: [PublicKey: Connection] = [:]
        var bans: [PublicKey: NIODeadline] = [:]
        var dialing: Set<PublicKey> = []
        var backoff: [PublicKey: Int64] = [:]
        /// Inbound connections still in the handshake, in all and by IP address.
        var pending = 0
        var pendingByAddress: [String: Int] = [:]
        var stopped = false
        var banCount: UInt64 = 0
        var evictions: UInt64 = 0
        /// The consensus keys of the current validator set (`setValidators`).
        var validators: Set<PublicKey> = []
        /// Peer exchange: the book, addresses being dialled, requests we made and when each
        /// peer last asked us (`PeerExchange.swift`).
        var exchange = ExchangeState()

        /// Whether a connection keeps its slot whatever the limits.
        func isProtected(_ connection: Connection) -> Bool {
            connection.protected || connection.validatorKey.map { validators.contains($0) } == true
        }
    }

    /// A host whose events go to `sink` (a node folds them into its own inbox).
    public init(settings: P2PSettings, log: NodeLogger, sink: @escaping @Sendable (_ event: P2PEvent, _ droppable: Bool) -> Void) {
        self.settings = settings
        self.events = nil
        self.sink = sink
        self.log = log
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    /// A host whose events queue in `events` (tools and tests).
    public init(settings: P2PSettings, events: Inbox<P2PEvent>, log: NodeLogger) {
        self.settings = settings
        self.events = events
        self.sink = { event, droppable in events.push(event, droppable: droppable) }
        self.log = log
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    public var nodeID: PublicKey { settings.nodeKey.publicKey }

    /// Starts listening (if configured) and dialing the persistent peers; returns the bound
    /// port (0 when not listening).
    @discardableResult
    public func start() throws -> Int {
        var port = 0
        if let host = settings.listenHost {
            let bootstrap = ServerBootstrap(group: group)
                .serverChannelOption(ChannelOptions.backlog, value: 64)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
                .childChannelOption(ChannelOptions.writeBufferWaterMark, value: .init(low: 1 << 20, high: 8 << 20))
                .childChannelInitializer { [self] channel in
                    // Only a bounded number of strangers may be mid-handshake, and few from one
                    // address: the rest are closed before a byte is read.
                    let address = channel.remoteAddress?.ipAddress ?? "?"
                    let admitted = state.withLock { state -> Bool in
                        guard !state.stopped, state.pending < settings.maxPendingHandshakes,
                              state.pendingByAddress[address, default: 0] < settings.maxPendingHandshakesPerAddress else { return false }
                        state.pending += 1
                        state.pendingByAddress[address, default: 0] += 1
                        return true
                    }
                    guard admitted else {
                        return channel.close()
                    }
                    return configure(channel, outbound: false, expected: nil, pendingAddress: address)
                }
            let channel: Channel
            do { channel = try bootstrap.bind(host: host, port: settings.listenPort).wait() } catch {
                throw ListenFailure(error, what: "listen for peers", address: "\(host):\(settings.listenPort)", setting: "p2p.listen_address in config.toml")
            }
            port = channel.localAddress?.port ?? 0
            listeningPort.store(port, ordering: .relaxed)
            listener.withLock { $0 = channel }
        }
        for peer in settings.persistentPeers.prefix(settings.maxOutboundPeers) {
            keepConnected(peer)
        }
        startDiscovery()
        return port
    }

    /// Closes every connection and the listener, and stops the event loop.
    public func stop() {
        saveBook()
        let channels = state.withLock { state -> [Channel] in
            state.stopped = true
            return state.peers.values.map(\.channel)
        }
        if let channel = listener.withLock({ $0 }) { try? channel.close().wait() }
        for channel in channels { try? channel.close().wait() }
        try? group.syncShutdownGracefully()
    }

    /// Bans so far, for metrics.
    public var banCount: UInt64 { state.withLock { $0.banCount } }

    /// The consensus keys of the validator set now: peers that proved one keep their slots.
    public func setValidators(_ keys: Set<PublicKey>) {
        state.withLock { $0.validators = keys }
    }

    /// Inbound peers evicted for newcomers so far.
    public var evictionCount: UInt64 { state.withLock { $0.evictions } }

    /// The node found a message from `peer` useful (a new transaction, a consensus message it
    /// stored, a block it asked for, new evidence): it counts against evicting that peer.
    public func credit(_ peer: PublicKey) {
        state.withLock { state in
            if state.peers[peer] != nil { state.peers[peer]!.useful &+= 1 }
        }
    }

    /// Called once per inbound connection when its handshake ends (authenticated or not).
    func handshakeEnded(address: String) {
        state.withLock { state in
            state.pending -= 1
            let left = state.pendingByAddress[address, default: 1] - 1
            state.pendingByAddress[address] = left > 0 ? left : nil
        }
    }

    public var connectedPeers: [PublicKey] { state.withLock { Array($0.peers.keys) }.sorted() }

    /// The consensus keys that connected peers proved in their handshakes.
    public var connectedValidatorKeys: Set<PublicKey> { state.withLock { Set($0.peers.values.compactMap(\.validatorKey)) } }

    public func isBanned(_ peer: PublicKey) -> Bool {
        state.withLock { state in state.bans[peer].map { $0 > .now() } ?? false }
    }

    /// Dials a peer once (tools and tests; persistent peers are redialled on their own).
    public func dial(_ peer: PeerAddress) {
        connect(peer, persistent: false)
    }

    /// The consensus key a connected peer proved in its handshake, if any.
    public func validatorKey(of peer: PublicKey) -> PublicKey? { state.withLock { $0.peers[peer]?.validatorKey } }

    /// Sends one message to several peers, encoding once.
    public func send(_ message: WireMessage, to peers: [PublicKey]) {
        guard !peers.isEmpty else { return }
        let channels = state.withLock { state in peers.compactMap { state.peers[$0]?.channel } }
        guard !channels.isEmpty else { return }
        let frame = OutboundFrame(plaintext: message.canonicalBytes, droppable: Self.droppable(message))
        for channel in channels { channel.writeAndFlush(frame, promise: nil) }
    }

    public func send(_ message: WireMessage, to peer: PublicKey) {
        guard let channel = state.withLock({ $0.peers[peer]?.channel }) else { return }
        channel.writeAndFlush(OutboundFrame(plaintext: message.canonicalBytes, droppable: Self.droppable(message)), promise: nil)
    }

    /// Sends to every connected peer but `except`, encoding once.
    public func broadcast(_ message: WireMessage, except: PublicKey? = nil) {
        let channels = state.withLock { state in state.peers.filter { $0.key != except }.map(\.value.channel) }
        guard !channels.isEmpty else { return }
        let frame = OutboundFrame(plaintext: message.canonicalBytes, droppable: Self.droppable(message))
        for channel in channels { channel.writeAndFlush(frame, promise: nil) }
    }

    static func droppable(_ message: WireMessage) -> Bool {
        switch message {
        case .transactions, .status, .roundState: return true
        default: return false
        }
    }

    /// Disconnects a peer and refuses it for the ban period.
    public func ban(_ peer: PublicKey, reason: String) {
        let channel = state.withLock { state -> Channel? in
            state.bans[peer] = .now() + .milliseconds(settings.banMilliseconds)
            state.banCount += 1
            return state.peers[peer]?.channel
        }
        log.warning("banning peer", ["peer": peer.hex, "for_ms": "\(settings.banMilliseconds)", "reason": reason])
        channel?.close(promise: nil)
    }

    // MARK: connections

    func configure(_ channel: Channel, outbound: Bool, expected: PublicKey?, pendingAddress: String? = nil) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            // Until the handshake completes, no frame may be larger than the handshake's own.
            let limit = FrameLimit(bytes: PeerHandler.handshakeFrameLimit)
            let handler = PeerHandler(host: self, outbound: outbound, expected: expected, frameLimit: limit, pendingAddress: pendingAddress)
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(limit: limit)))
            try channel.pipeline.syncOperations.addHandler(handler)
        }
    }

    func keepConnected(_ peer: PeerAddress) {
        connect(peer, persistent: true)
    }

    func connect(_ peer: PeerAddress, persistent: Bool, onFailure: (@Sendable () -> Void)? = nil) {
        let go = state.withLock { state -> Bool in
            guard !state.stopped, state.peers[peer.nodeID] == nil, !state.dialing.contains(peer.nodeID) else { return false }
            if let until = state.bans[peer.nodeID], until > .now() { return false }
            state.dialing.insert(peer.nodeID)
            state.exchange.dialled[peer.nodeID] = peer
            return true
        }
        if go {
            let bootstrap = ClientBootstrap(group: group)
                .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
                .channelOption(ChannelOptions.writeBufferWaterMark, value: .init(low: 1 << 20, high: 8 << 20))
                .connectTimeout(.seconds(3))
                .channelInitializer { [self] channel in configure(channel, outbound: true, expected: peer.nodeID) }
            bootstrap.connect(host: peer.host, port: peer.port).whenComplete { [self] result in
                switch result {
                case .success(let channel):
                    channel.closeFuture.whenComplete { [self] _ in
                        let reached = state.withLock { state -> Bool in
                            state.dialing.remove(peer.nodeID)
                            state.exchange.dialled[peer.nodeID] = nil
                            return state.exchange.reached.remove(peer.nodeID) != nil
                        }
                        if !reached { onFailure?() }
                        if persistent { scheduleRedial(peer) }
                    }
                case .failure(let error):
                    log.debug("dial failed", ["peer": peer.nodeID.hex, "address": "\(peer.host):\(peer.port)", "error": "\(error)"])
                    state.withLock { state in
                        state.dialing.remove(peer.nodeID)
                        state.exchange.dialled[peer.nodeID] = nil
                    }
                    onFailure?()
                    if persistent { scheduleRedial(peer) }
                }
            }
        } else if persistent {
            scheduleRedial(peer)
        }
    }

    /// Checks the peer again after the backoff, which doubles while it stays unreachable and
    /// resets once a connection authenticates.
    private func scheduleRedial(_ peer: PeerAddress) {
        let delay = state.withLock { state -> Int64? in
            guard !state.stopped else { return nil }
            if state.peers[peer.nodeID] != nil { return settings.dialBackoffMaximumMilliseconds }
            let current = state.backoff[peer.nodeID] ?? settings.dialBackoffMinimumMilliseconds
            state.backoff[peer.nodeID] = min(current * 2, settings.dialBackoffMaximumMilliseconds)
            return current
        }
        guard let delay else { return }
        group.next().scheduleTask(in: .milliseconds(delay)) { [self] in connect(peer, persistent: true) }
    }

    /// Called on the channel's event loop once a peer proved its key. Returns why it is
    /// refused, or nil when it is now a connected peer.
    ///
    /// Inbound slots are shared (specs/p2p.md, "Limits and bans"): persistent and unconditional
    /// peers always get in; others are limited per IP address, and when the slots are full a
    /// newcomer takes the place of the least useful inbound peer past its grace period, if any.
    func admit(_ peer: PublicKey, channel: Channel, outbound: Bool, validatorKey: PublicKey? = nil, listenPort: UInt16 = 0) -> String? {
        enum Outcome {
            case refused(String)
            /// The peer was connected already and this connection wins the tie: the old one goes.
            case replacedDuplicate(Channel)
            case admitted(evicted: (key: PublicKey, channel: Channel)?)
        }
        let now = NIODeadline.now()
        let address = channel.remoteAddress?.ipAddress ?? "?"
        let protected = settings.unconditionalPeers.contains(peer) || settings.persistentPeers.contains { $0.nodeID == peer }
        let outcome = state.withLock { state -> Outcome in
            if state.stopped { return .refused("the node is stopping") }
            if peer == nodeID { return .refused("it is this node itself") }
            if let until = state.bans[peer], until > now { return .refused("it is banned") }
            var connection = Connection(channel: channel, outbound: outbound, address: address, since: now, protected: protected,
                                        validatorKey: validatorKey)
            connection.dialAddress = outbound ? state.exchange.dialled[peer]
                : listenPort > 0 && PeerAddress.isValidHost(address) ? PeerAddress(nodeID: peer, host: address, port: Int(listenPort)) : nil
            if let existing = state.peers[peer] {
                // Both ends keep the connection dialled by the smaller node key, so a pair
                // that dialled each other at once settles on the same one.
                let newPreferred = outbound == (nodeID < peer)
                if !newPreferred { return .refused("already connected") }
                state.peers[peer] = connection
                return .replacedDuplicate(existing.channel)
            }
            var evicted: (key: PublicKey, channel: Channel)? = nil
            if outbound {
                if state.peers.values.filter(\.outbound).count >= settings.maxOutboundPeers {
                    return .refused("the outbound peer limit \(settings.maxOutboundPeers) is reached")
                }
            } else if !state.isProtected(connection) {
                let inbound = state.peers.filter { !$0.value.outbound && !state.isProtected($0.value) }
                let fromAddress = inbound.filter { $0.value.address == address }
                let overAddress = fromAddress.count >= settings.maxInboundPeersPerAddress
                if overAddress || inbound.count >= settings.maxInboundPeers {
                    guard let victim = Self.evictionVictim(overAddress ? fromAddress : inbound, now: now,
                                                           grace: settings.evictionGraceMilliseconds),
                          let removed = state.peers.removeValue(forKey: victim) else {
                        return .refused(overAddress
                            ? "\(settings.maxInboundPeersPerAddress) peers from \(address) are connected already"
                            : "the inbound peer limit \(settings.maxInboundPeers) is reached")
                    }
                    evicted = (victim, removed.channel)
                    state.evictions += 1
                }
            }
            state.peers[peer] = connection
            state.backoff[peer] = nil
            return .admitted(evicted: evicted)
        }
        switch outcome {
        case .refused(let reason):
            return reason
        case .replacedDuplicate(let old):
            old.close(promise: nil)
        case .admitted(let evicted):
            if let evicted {
                // Removed from the table above, so its close reports nothing: say it here.
                log.info("evicting a peer for a newcomer", ["peer": evicted.key.hex, "newcomer": peer.hex, "address": address])
                sink(.disconnected(evicted.key), false)
                evicted.channel.close(promise: nil)
            }
            sink(.connected(peer), false)
            exchangeOnConnect(peer, outbound: outbound)
        }
        return nil
    }

    /// The inbound peer to evict for a newcomer among `candidates`: none younger than the grace
    /// period; of the rest, the more useful half is kept; then the address with the most
    /// connections loses its least useful, youngest peer (an attacker with one address evicts
    /// its own first). Nil when every candidate is protected by these rules.
    static func evictionVictim(_ candidates: [PublicKey: Connection], now: NIODeadline, grace: Int64) -> PublicKey? {
        var pool = candidates.filter { now - $0.value.since >= .milliseconds(grace) }
            .sorted { ($0.value.useful, $0.value.since, $0.key) > ($1.value.useful, $1.value.since, $1.key) }
        // The more useful half (ties broken towards older peers) stays.
        pool.removeFirst(pool.count / 2)
        guard !pool.isEmpty else { return nil }
        var perAddress: [String: Int] = [:]
        for entry in pool { perAddress[entry.value.address, default: 0] += 1 }
        let crowded = perAddress.max { ($0.value, $1.key) < ($1.value, $0.key) }!.key
        return pool.filter { $0.value.address == crowded }
            .min { ($0.value.useful, $1.value.since, $0.key) < ($1.value.useful, $0.value.since, $1.key) }!.key
    }

    /// Called when an authenticated connection closes.
    func closed(_ peer: PublicKey, channel: Channel) {
        let removed = state.withLock { state -> Bool in
            guard let current = state.peers[peer], current.channel === channel else { return false }
            state.peers[peer] = nil
            return true
        }
        if removed { sink(.disconnected(peer), false) }
    }

    func deliver(_ message: WireMessage, from peer: PublicKey) {
        switch message {
        case .addressRequest: answerAddressRequest(from: peer)
        case .addresses(let list): receiveAddresses(list, from: peer)
        default: sink(.message(message, from: peer), Self.droppable(message))
        }
    }
}

/// The largest frame a connection accepts now: the handshake's size until it completes, then
/// the configured limit. Shared by a connection's decoder and handler, on its event loop.
public final class FrameLimit {
    public var bytes: Int
    public init(bytes: Int) { self.bytes = bytes }
}

/// Splits the byte stream into frames: a 4-byte big-endian length, then that many bytes. A
/// length over the connection's current limit is refused before its bytes are buffered.
/// (Public for the fuzz harness, which drives it through an embedded channel.)
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer
    let limit: FrameLimit

    public init(limit: FrameLimit) { self.limit = limit }

    public struct BadLength: Error, CustomStringConvertible {
        let length: Int
        let limit: Int
        public var description: String {
            length == 0 ? "an empty frame (length 0); every frame carries at least one byte"
                : "a frame of \(length) bytes exceeds the limit of \(limit) bytes"
        }
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard length > 0, Int(length) <= limit.bytes else { throw BadLength(length: Int(length), limit: limit.bytes) }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }
}

/// One connection: the handshake, then encrypted frames both ways.
final class PeerHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = OutboundFrame
    typealias OutboundOut = ByteBuffer

    static let magic: [UInt8] = Array("MBR1".utf8)
    /// The largest handshake frame: the 36-byte key frame, or the sealed `HandshakeAuth`
    /// (135 bytes, 231 with a validator proof, and a 16-byte tag), with room to spare.
    static let handshakeFrameLimit = 256

    enum Phase {
        case awaitingKey
        case awaitingAuth(send: FrameCipher, receive: FrameCipher, transcript: Hash256)
        case ready(peer: PublicKey, send: FrameCipher, receive: FrameCipher)
        case closed
    }

    let host: P2PHost
    let outbound: Bool
    let expected: PublicKey?
    let frameLimit: FrameLimit
    /// The address an inbound connection is counted under while in the handshake; nil once
    /// released (or for outbound connections).
    var pendingAddress: String?
    let ephemeral = EphemeralKeyPair()
    var phase = Phase.awaitingKey
    var queuedBytes = 0
    var lastRead = NIODeadline.now()
    lazy var budget = InboundBudget(framesPerSecond: host.settings.maxInboundFramesPerSecond,
                                    bytesPerSecond: max(host.settings.maxInboundBytesPerSecond, 2 * (host.settings.maxFrameBytes + 64)))
    var paused = false
    var timer: Scheduled<Void>? = nil

    init(host: P2PHost, outbound: Bool, expected: PublicKey?, frameLimit: FrameLimit, pendingAddress: String?) {
        self.host = host
        self.outbound = outbound
        self.expected = expected
        self.frameLimit = frameLimit
        self.pendingAddress = pendingAddress
    }

    /// The handshake is over (done or failed): the connection no longer counts as pending.
    private func releasePending() {
        guard let address = pendingAddress else { return }
        pendingAddress = nil
        host.handshakeEnded(address: address)
    }

    var peerName: String {
        if case .ready(let peer, _, _) = phase { return peer.hex }
        return expected.map(\.hex) ?? "unauthenticated"
    }

    func channelActive(context: ChannelHandlerContext) {
        writeFrame(context: context, Self.magic + ephemeral.publicKey.bytes)
        context.flush()
        let deadline = NIODeadline.now() + .milliseconds(host.settings.handshakeTimeoutMilliseconds)
        let loop = context.eventLoop.assumeIsolated()
        let contextBox = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = loop.scheduleTask(deadline: deadline) { [self] in
            if case .ready = phase { return }
            fail(context: contextBox.value, "no handshake within \(host.settings.handshakeTimeoutMilliseconds) ms")
        }
        scheduleIdleCheck(context: context)
        context.fireChannelActive()
    }

    private func scheduleIdleCheck(context: ChannelHandlerContext) {
        let idle = host.settings.idleTimeoutMilliseconds
        let contextBox = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(idle / 2)) { [self] in
            if case .closed = phase { return }
            if NIODeadline.now() - lastRead > .milliseconds(idle) {
                fail(context: contextBox.value, "nothing received for \(idle) ms")
            } else {
                scheduleIdleCheck(context: contextBox.value)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        releasePending()
        if case .ready(let peer, _, _) = phase { host.closed(peer, channel: context.channel) }
        phase = .closed
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is FrameDecoder.BadLength || error is ByteToMessageDecoderError {
            misbehaved(context: context, "\(error)")
        } else {
            fail(context: context, "\(error)")
        }
    }

    /// Closes the connection; an authenticated peer is also banned.
    func misbehaved(context: ChannelHandlerContext, _ reason: String) {
        if case .ready(let peer, _, _) = phase {
            host.ban(peer, reason: reason)
        }
        fail(context: context, reason)
    }

    func fail(context: ChannelHandlerContext, _ reason: String) {
        if case .closed = phase { return }
        // Losing the race of a pair that dialled each other is routine; the rest is news.
        let level: LogLevel = reason.hasSuffix("already connected") ? .debug : .info
        host.log.log(level, "peer dropped", ["peer": peerName, "address": context.channel.remoteAddress?.description ?? "?", "reason": reason])
        if case .ready(let peer, _, _) = phase { host.closed(peer, channel: context.channel) }
        phase = .closed
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        lastRead = .now()
        host.receivedBytes.add(UInt64(frame.readableBytes + 4), ordering: .relaxed)
        throttle(context: context, bytes: frame.readableBytes + 4)
        switch phase {
        case .closed:
            return
        case .awaitingKey:
            guard frame.readableBytes == 36, let bytes = frame.readBytes(length: 36), Array(bytes[0..<4]) == Self.magic else {
                return fail(context: context, "the first frame is not a Membria handshake")
            }
            guard let keys = ephemeral.sessionKeys(peer: Bytes32(Array(bytes[4...]))) else {
                return fail(context: context, "the peer's ephemeral key is a low-order point")
            }
            var send = FrameCipher(key: keys.send)
            let auth = HandshakeAuth(key: host.settings.nodeKey, chainID: host.settings.chainID, transcript: keys.transcript,
                                     genesisHash: host.settings.genesisHash,
                                     listenPort: UInt16(clamping: host.listeningPort.load(ordering: .relaxed)),
                                     validatorKey: host.settings.validatorKey)
            writeFrame(context: context, send.seal(auth.canonicalBytes))
            context.flush()
            phase = .awaitingAuth(send: send, receive: FrameCipher(key: keys.receive), transcript: keys.transcript)
        case .awaitingAuth(let send, var receive, let transcript):
            guard let plaintext = receive.open(frame.readableBytesView) else {
                return fail(context: context, "the handshake frame does not authenticate")
            }
            let auth: HandshakeAuth
            do { auth = try HandshakeAuth.decode(exactly: plaintext) } catch {
                return fail(context: context, "malformed handshake: \(error)")
            }
            guard auth.version == HandshakeAuth.protocolVersion else {
                return fail(context: context, "protocol version \(auth.version), this node speaks \(HandshakeAuth.protocolVersion)")
            }
            guard auth.genesisHash == host.settings.genesisHash else {
                return fail(context: context, "the peer runs another chain (genesis \(auth.genesisHash.hex.prefix(12))…)")
            }
            guard auth.verify(chainID: host.settings.chainID, transcript: transcript) else {
                return fail(context: context, "the handshake signature (or its validator proof) does not verify")
            }
            if let expected, expected != auth.nodeKey {
                return fail(context: context, "the peer's node key \(auth.nodeKey.hex.prefix(12))… is not the configured \(expected.hex.prefix(12))…")
            }
            if let refusal = host.admit(auth.nodeKey, channel: context.channel, outbound: outbound,
                                        validatorKey: auth.validator?.consensusKey, listenPort: auth.listenPort) {
                return fail(context: context, "refused \(auth.nodeKey.hex.prefix(12))…: \(refusal)")
            }
            timer?.cancel()
            releasePending()
            frameLimit.bytes = host.settings.maxFrameBytes + FrameCipher.tagBytes
            phase = .ready(peer: auth.nodeKey, send: send, receive: receive)
        case .ready(let peer, let send, var receive):
            guard let plaintext = receive.open(frame.readableBytesView) else {
                return misbehaved(context: context, "a frame does not authenticate")
            }
            phase = .ready(peer: peer, send: send, receive: receive)
            let message: WireMessage
            do { message = try WireMessage.decode(exactly: plaintext) } catch {
                return misbehaved(context: context, "malformed message: \(error)")
            }
            host.deliver(message, from: peer)
        }
    }

    /// Spends the frame from the connection's budget; when it runs out, reading stops until it
    /// has refilled (the frame in hand is still handled).
    private func throttle(context: ChannelHandlerContext, bytes: Int) {
        let now = UInt64(NIODeadline.now().uptimeNanoseconds / 1_000)
        let waitMicroseconds: UInt64
        switch budget.spend(bytes: bytes, nowMicroseconds: now) {
        case .go: return
        case .flood: return misbehaved(context: context, "flooding: more than ten seconds' worth of frames over its budget")
        case .pause(let microseconds): waitMicroseconds = microseconds
        }
        guard !paused else { return }
        paused = true
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        let contextBox = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.eventLoop.assumeIsolated().scheduleTask(in: .microseconds(Int64(waitMicroseconds))) { [self] in
            guard case .ready = phase else { return }
            paused = false
            let context = contextBox.value
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
            context.read()
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let frame = unwrapOutboundIn(data)
        guard case .ready(let peer, var send, let receive) = phase else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        if frame.droppable && !context.channel.isWritable {
            host.droppedOutboundFrames.add(1, ordering: .relaxed)
            promise?.succeed(())
            return
        }
        let sealed = send.seal(frame.plaintext)
        phase = .ready(peer: peer, send: send, receive: receive)
        if queuedBytes + sealed.count + 4 > host.settings.maxQueuedBytesPerPeer {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return fail(context: context, "more than \(host.settings.maxQueuedBytesPerPeer) bytes queued: the peer is too slow")
        }
        writeFrame(context: context, sealed, promise: promise)
    }

    private func writeFrame(context: ChannelHandlerContext, _ payload: [UInt8], promise: EventLoopPromise<Void>? = nil) {
        var buffer = context.channel.allocator.buffer(capacity: payload.count + 4)
        buffer.writeInteger(UInt32(payload.count))
        buffer.writeBytes(payload)
        let size = buffer.readableBytes
        queuedBytes += size
        host.sentBytes.add(UInt64(size), ordering: .relaxed)
        let done = promise ?? context.eventLoop.makePromise(of: Void.self)
        let box = NIOLoopBound(self, eventLoop: context.eventLoop)
        done.futureResult.whenComplete { _ in box.value.queuedBytes -= size }
        context.write(wrapOutboundOut(buffer), promise: done)
    }
}

/// A connection's inbound budget: two token buckets (frames, bytes) refilled per microsecond,
/// each holding at most a second's worth. Frames read past the budget (a socket read brings
/// many at once) are a debt that the pause repays. Pure: time comes in, the wait goes out.
struct InboundBudget: Sendable {
    enum Verdict: Equatable {
        case go
        /// Stop reading for this many microseconds.
        case pause(microseconds: UInt64)
        /// More than ten seconds' worth over the budget: a flood.
        case flood
    }

    let framesPerSecond: Int64
    let bytesPerSecond: Int64
    /// Tokens in millionths, so refills stay in integers; negative while in debt.
    private var frameTokens: Int64
    private var byteTokens: Int64
    private var at: UInt64? = nil

    init(framesPerSecond: Int, bytesPerSecond: Int) {
        precondition(framesPerSecond > 0 && bytesPerSecond > 0)
        self.framesPerSecond = Int64(framesPerSecond)
        self.bytesPerSecond = Int64(bytesPerSecond)
        frameTokens = self.framesPerSecond * 1_000_000
        byteTokens = self.bytesPerSecond * 1_000_000
    }

    mutating func spend(bytes: Int, nowMicroseconds now: UInt64) -> Verdict {
        let last = at ?? now
        let elapsed = Int64(min(now > last ? now - last : 0, 1_000_000))
        at = max(last, now)
        frameTokens = min(framesPerSecond * 1_000_000, frameTokens + elapsed * framesPerSecond)
        byteTokens = min(bytesPerSecond * 1_000_000, byteTokens + elapsed * bytesPerSecond)
        frameTokens -= 1_000_000
        byteTokens -= Int64(min(bytes, Int(Int32.max))) * 1_000_000
        if frameTokens < -10 * framesPerSecond * 1_000_000 || byteTokens < -10 * bytesPerSecond * 1_000_000 { return .flood }
        guard frameTokens < 0 || byteTokens < 0 else { return .go }
        // Until both are out of debt.
        let frameWait = frameTokens < 0 ? (-frameTokens + framesPerSecond - 1) / framesPerSecond : 0
        let byteWait = byteTokens < 0 ? (-byteTokens + bytesPerSecond - 1) / bytesPerSecond : 0
        return .pause(microseconds: UInt64(max(frameWait, byteWait, 1_000)))
    }
}

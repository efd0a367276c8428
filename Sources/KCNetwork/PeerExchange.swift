import KCCodec
import KCCrypto
import NIOCore

/// Peer exchange and discovery state, kept under the host's lock.
struct ExchangeState {
    /// Replaced by the saved book at start; the key is drawn at random for a new book.
    var book = AddressBook(key: Bytes32((0..<32).map { _ in UInt8.random(in: 0...255) }))
    /// Addresses being dialled (for the tried table and the connection's dial address).
    var dialled: [PublicKey: PeerAddress] = [:]
    /// Outbound connections that authenticated (a close after that is no failed dial).
    var reached: Set<PublicKey> = []
    /// Address requests this node sent and not yet answered.
    var asked: [PublicKey: NIODeadline] = [:]
    /// When each peer last asked this node for addresses.
    var lastRequestFrom: [PublicKey: NIODeadline] = [:]
    /// When each seed was last dialled.
    var seedDialled: [PublicKey: NIODeadline] = [:]
    var lastSave = NIODeadline.now()
    var lastAsk = NIODeadline.uptimeNanoseconds(0)
    var changed = false
}

/// Peer discovery (specs/p2p.md, "Peer discovery"): the address book, seeds, the exchange of
/// addresses and the seed mode, driven by a timer on the host's event loop.
extension P2PHost {
    /// A peer may ask for addresses once per this interval; more requests are ignored.
    static let addressRequestIntervalMilliseconds: Int64 = 10_000
    /// A node asks one peer for more addresses this often while the book is not half full.
    static let askIntervalMilliseconds: Int64 = 30_000
    /// An address is not dialled again sooner than this after an attempt.
    static let retryMilliseconds: UInt64 = 30_000
    /// Seeds are dialled at most this often each (with fewer than two peers, at most every 5 s).
    static let seedIntervalMilliseconds: Int64 = 30_000
    static let seedRetryWhenAloneMilliseconds: Int64 = 5_000
    /// The book is saved this often when it changed, and at stop.
    static let saveIntervalMilliseconds: Int64 = 30_000
    /// A seed hangs up on a peer connected this long.
    static let seedConnectionMilliseconds: Int64 = 10_000
    /// With fewer addresses than this, the seeds are asked.
    static let fewAddresses = 16

    static func milliseconds(_ deadline: NIODeadline) -> UInt64 { deadline.uptimeNanoseconds / 1_000_000 }

    /// The address book now (tests, the RPC).
    public var addressBook: AddressBook { state.withLock { $0.exchange.book } }

    /// Connected peers this node dialled.
    public var outboundPeerCount: Int { state.withLock { $0.peers.values.filter(\.outbound).count } }

    func startDiscovery() {
        guard settings.pex else { return }
        if let bytes = settings.loadAddressBook?() {
            do {
                let book = try AddressBook.decode(exactly: bytes)
                state.withLock { $0.exchange.book = book }
                log.info("address book loaded", ["addresses": "\(book.count)", "tried": "\(book.triedCount)"])
            } catch {
                log.warning("the saved address book is unreadable; starting an empty one", ["error": "\(error)"])
            }
        }
        let interval = TimeAmount.milliseconds(settings.discoveryIntervalMilliseconds)
        group.next().scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: interval) { [self] task in
            if state.withLock({ $0.stopped }) { task.cancel(); return }
            discover()
        }
    }

    /// One discovery pass: keep `maxOutboundPeers` outbound peers by dialling from the book,
    /// fall back on the seeds, ask for more addresses, and save the book now and then. A seed
    /// node dials to crawl and hangs up on peers that stayed long enough.
    func discover() {
        let now = NIODeadline.now()
        let nowMilliseconds = Self.milliseconds(now)
        struct Plan {
            var dial: [PeerAddress] = []
            var seeds: [PeerAddress] = []
            var ask: PublicKey? = nil
            var hangUp: [Channel] = []
            var save = false
        }
        let plan = state.withLock { state -> Plan in
            var plan = Plan()
            let outbound = state.peers.values.filter(\.outbound).count
            let busy = Set(state.peers.keys).union(state.dialing).union(state.bans.filter { $0.value > now }.map(\.key)).union([nodeID])
            // A dialled connection stays in `dialing` while it lives: count only the dials in flight.
            let inFlight = state.dialing.filter { state.peers[$0] == nil }.count
            let wanted = max(0, settings.maxOutboundPeers - outbound - inFlight)
            if wanted > 0 {
                var random = SystemRandomNumberGenerator()
                plan.dial = state.exchange.book.candidates(min(wanted, 4), excluded: busy, now: nowMilliseconds,
                                                          retryMilliseconds: Self.retryMilliseconds, random: &random)
            }
            // The seeds, when nothing is connected, or when the book has nobody left to dial
            // while outbound slots are free.
            if state.peers.isEmpty || (wanted > 0 && plan.dial.isEmpty && state.exchange.book.count < Self.fewAddresses) {
                for seed in settings.seeds where !busy.contains(seed.nodeID) {
                    // Sooner while this node is nearly alone: the seed may have learned more since.
                    let interval = state.peers.count < 2 ? Self.seedRetryWhenAloneMilliseconds : Self.seedIntervalMilliseconds
                    if let last = state.exchange.seedDialled[seed.nodeID], now - last < .milliseconds(interval) { continue }
                    state.exchange.seedDialled[seed.nodeID] = now
                    plan.seeds.append(seed)
                }
            }
            if state.exchange.book.count < AddressBook.capacity / 2, now - state.exchange.lastAsk >= .milliseconds(Self.askIntervalMilliseconds),
               let peer = state.peers.filter({ $0.value.outbound && state.exchange.asked[$0.key] == nil }).keys.min() {
                state.exchange.lastAsk = now
                state.exchange.asked[peer] = now
                plan.ask = peer
            }
            if settings.seedMode {
                plan.hangUp = state.peers.filter { !$0.value.protected && now - $0.value.since >= .milliseconds(Self.seedConnectionMilliseconds) }
                    .map(\.value.channel)
            }
            // Requests unanswered for a minute are forgotten (the peer may ask again later).
            state.exchange.asked = state.exchange.asked.filter { now - $0.value < .seconds(60) }
            if state.exchange.changed && now - state.exchange.lastSave >= .milliseconds(Self.saveIntervalMilliseconds) {
                plan.save = true
            }
            for address in plan.dial { state.exchange.book.attempted(address.nodeID, now: nowMilliseconds) }
            return plan
        }
        for address in plan.dial {
            connect(address, persistent: false) { [self] in
                state.withLock { state in
                    // Losing the tie-break of a pair that dialled each other is no failure.
                    guard state.peers[address.nodeID] == nil else { return }
                    state.exchange.book.failed(address.nodeID, now: Self.milliseconds(.now()))
                }
            }
        }
        for seed in plan.seeds {
            log.debug("asking a seed for addresses", ["seed": seed.description])
            connect(seed, persistent: false)
        }
        if let peer = plan.ask { send(.addressRequest, to: peer) }
        for channel in plan.hangUp { channel.close(promise: nil) }
        if plan.save { saveBook() }
    }

    /// A peer authenticated: a dialled one enters the tried table and is asked for addresses
    /// (a seed always, others while the book is not half full); an inbound one that listens
    /// is noted as heard of from itself.
    func exchangeOnConnect(_ peer: PublicKey, outbound: Bool) {
        guard settings.pex else { return }
        let now = NIODeadline.now()
        let ask = state.withLock { state -> Channel? in
            guard let connection = state.peers[peer] else { return nil }
            state.exchange.changed = true
            if outbound {
                state.exchange.reached.insert(peer)
                let isSeed = settings.seeds.contains { $0.nodeID == peer }
                if let address = connection.dialAddress, !isSeed { state.exchange.book.good(address, now: Self.milliseconds(now)) }
                guard isSeed || settings.seedMode || state.exchange.book.count < AddressBook.capacity / 2 else { return nil }
                state.exchange.asked[peer] = now
                return connection.channel
            }
            if let address = connection.dialAddress, state.exchange.book.entry(peer)?.tried != true {
                state.exchange.book.add(address, sourceGroup: AddressBook.group(connection.address))
            }
            return nil
        }
        // Called while the handshake's last frame is handled: the connection takes messages
        // once that returns.
        if let channel = ask { channel.eventLoop.execute { [self] in send(.addressRequest, to: peer) } }
    }

    /// Answers with up to `WireMessage.maxAddressesPerMessage` addresses from the book (and
    /// this node's external address); a request sooner than the interval after the last one
    /// from that peer is ignored. A seed hangs up on an inbound peer once it answered.
    func answerAddressRequest(from peer: PublicKey) {
        guard settings.pex else { return }
        let now = NIODeadline.now()
        let answer = state.withLock { state -> (list: [PeerAddress], channel: Channel?, hangUp: Bool)? in
            if let last = state.exchange.lastRequestFrom[peer], now - last < .milliseconds(Self.addressRequestIntervalMilliseconds) { return nil }
            state.exchange.lastRequestFrom[peer] = now
            if state.exchange.lastRequestFrom.count > 10_000 {
                state.exchange.lastRequestFrom = state.exchange.lastRequestFrom.filter { state.peers[$0.key] != nil }
            }
            var random = SystemRandomNumberGenerator()
            let own = settings.externalAddress.map { [$0] } ?? []
            let list = own + state.exchange.book.sample(WireMessage.maxAddressesPerMessage - own.count, excluding: peer, random: &random)
            let connection = state.peers[peer]
            return (list, connection?.channel, settings.seedMode && connection?.outbound == false)
        }
        guard let answer, let channel = answer.channel else { return }
        let frame = OutboundFrame(plaintext: WireMessage.addresses(answer.list).canonicalBytes, droppable: false)
        let written = channel.writeAndFlush(frame)
        if answer.hangUp { written.whenComplete { _ in channel.close(promise: nil) } }
    }

    /// Addresses from a peer: only as the answer to a request of ours (anything else bans:
    /// an honest node never sends them unasked); each enters the new table under the
    /// sender's address group, so one source fills a few buckets at most. A seed node hangs
    /// up on a crawled peer once it answered.
    func receiveAddresses(_ list: [PeerAddress], from peer: PublicKey) {
        let outcome = state.withLock { state -> (asked: Bool, hangUp: Channel?) in
            guard state.exchange.asked.removeValue(forKey: peer) != nil, let connection = state.peers[peer] else { return (false, nil) }
            let source = AddressBook.group(connection.address)
            for address in list where address.nodeID != nodeID {
                if state.exchange.book.add(address, sourceGroup: source) { state.exchange.changed = true }
            }
            let isSeed = settings.seeds.contains { $0.nodeID == peer }
            let hangUp = (settings.seedMode && connection.outbound && !connection.protected) || (isSeed && !connection.protected)
            return (true, hangUp ? connection.channel : nil)
        }
        guard outcome.asked else { return ban(peer, reason: "sent addresses it was not asked for") }
        outcome.hangUp?.close(promise: nil)
    }

    /// Writes the book through `saveAddressBook`.
    func saveBook() {
        guard settings.pex, let save = settings.saveAddressBook else { return }
        let bytes = state.withLock { state -> [UInt8] in
            state.exchange.changed = false
            state.exchange.lastSave = .now()
            return state.exchange.book.canonicalBytes
        }
        save(bytes)
    }
}

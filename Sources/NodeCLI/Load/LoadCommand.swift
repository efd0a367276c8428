import ArgumentParser
import KCConsensus
import KCCrypto
import KCNetwork
import KCNode
import KCTypes

#if canImport(Glibc)
import Glibc
#endif

/// A load generator and finality probe over P2P: sends signed transactions of one workload to
/// the given peers at a fixed rate, follows the chain by status messages and block requests,
/// and reports throughput, block figures and the time from sending each transaction to
/// receiving the committed block that holds it.
struct LoadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Send signed transactions to running nodes and measure commit throughput and latency.",
        discussion: """
        For devnets and benchmarks: the senders are the public devnet users, so the chain must \
        fund them (Genesis/devnet.json funds 4; `node devnet-genesis --users N` more). \
        Workloads: `transfers` (signed before the run starts) and `events` (the users bond the \
        minimum gateway stake and register as gateways first when they start at nonce 0, then \
        propose events whose parents are recent events; the nodes' attesters vote on them). \
        Latency is measured from the send to the arrival of the committed block, asked of the \
        node as soon as it announces the height.
        """,
        shouldDisplay: false
    )

    enum Workload: String, ExpressibleByArgument, CaseIterable {
        case transfers, events
    }

    @Option(name: .long, help: ArgumentHelp("The chain's genesis file.", valueName: "file"))
    var genesis: String

    @Option(name: .long, help: ArgumentHelp("A node to send to, NODE_ID@HOST:PORT (repeatable).", valueName: "peer"))
    var peer: [String]

    @Option(name: .long, help: "What to send: transfers or events.")
    var workload: Workload = .transfers

    @Option(name: .long, help: "Transactions per second to send (events: proposals per second).")
    var rate: Int = 100

    @Option(name: .long, help: "Seconds to send for.")
    var seconds: Int = 10

    @Option(name: .long, help: "Devnet users to send from (the genesis must fund them).")
    var users: Int = 4

    @Option(name: .long, help: ArgumentHelp("First nonce of each sender, comma-separated (a previous run prints them).", valueName: "list"))
    var nonces: String? = nil

    @Option(name: .long, help: "Seconds to wait for commits after sending stops.")
    var drain: Int = 30

    @Option(name: .long, help: ArgumentHelp("Events: when none of a sender's transactions commits for this long while later ones wait, one was refused on the way; send again from the chain's nonce.", valueName: "milliseconds"))
    var resyncAfterMs: Int = 10_000

    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        guard (1...1_000_000).contains(rate) else { throw ValidationError("--rate must be between 1 and 1000000") }
        guard (1...3_600).contains(seconds) else { throw ValidationError("--seconds must be between 1 and 3600") }
        guard (1...256).contains(users) else { throw ValidationError("--users must be between 1 and 256") }
        guard (1...600).contains(drain) else { throw ValidationError("--drain must be between 1 and 600") }
        guard (100...600_000).contains(resyncAfterMs) else { throw ValidationError("--resync-after-ms must be between 100 and 600000") }
        // Transfers are signed before the run and held in memory (about 300 bytes each).
        guard rate.multipliedReportingOverflow(by: seconds).partialValue <= 5_000_000 else {
            throw ValidationError("--rate times --seconds must be at most 5000000 transactions")
        }
        for entry in peer where PeerAddress.parse(entry) == nil { throw ValidationError("'\(entry)' is not NODE_ID@HOST:PORT") }
        guard !peer.isEmpty else { throw ValidationError("give at least one --peer") }
        if let nonces, nonces.split(separator: ",").count != users || nonces.split(separator: ",").contains(where: { UInt64($0) == nil }) {
            throw ValidationError("--nonces needs \(users) whole numbers separated by commas")
        }
    }

    func run() throws {
        try runReportingErrors {
            let chain = try NodeHome.loadGenesis(file: genesis)
            var settings = P2PSettings(chainID: chain.chainID, genesisHash: chain.hash, nodeKey: SigningKey.generate())
            // The node sends a status and, asked, a block for every height: a fast chain is more
            // than a peer's default 2,000 frames a second, and a generator that stops reading
            // would report its own delay as commit latency.
            settings.maxInboundFramesPerSecond = 1_000_000
            settings.maxInboundBytesPerSecond = 1 << 34
            let host = P2PHost(settings: settings, events: Inbox(capacity: 1_000_000), log: .silent)
            try host.start()
            defer { host.stop() }
            let targets = peer.compactMap(PeerAddress.parse)
            for target in targets { host.dial(target) }
            let connectDeadline = LoadClock.microseconds() + 10_000_000
            while host.connectedPeers.count < targets.count && LoadClock.microseconds() < connectDeadline { usleep(10_000) }
            let connected = host.connectedPeers
            guard !connected.isEmpty else { throw OperatorError("cannot connect to any --peer") }

            let senders = (0..<users).map { DevnetKeys.user(index: $0) }
            let start = self.nonces.map { $0.split(separator: ",").map { UInt64($0)! } } ?? [UInt64](repeating: 0, count: users)
            for (index, sender) in senders.enumerated() where chain.accounts.first(where: { $0.address == sender.publicKey }) == nil && start[index] == 0 {
                throw OperatorError("devnet user \(index) has no account in the genesis; give fewer --users or a genesis that funds them (node devnet-genesis --users N)")
            }
            var work: any LoadWorkload
            switch workload {
            case .transfers:
                work = TransferWorkload(chain: chain, senders: senders, nonces: start, count: rate * seconds, nodes: connected.count)
            case .events:
                work = EventWorkload(chain: chain, proposers: senders, nonces: start, nodes: connected.count)
            }
            var follower = ChainFollower(host: host)
            let setup = work.setup()
            if !setup.isEmpty {
                send(setup, on: host, to: connected, follower: &follower)
                let setupDeadline = LoadClock.microseconds() + 60_000_000
                while !work.ready && LoadClock.microseconds() < setupDeadline { follower.pump(&work) }
                guard work.ready else { throw OperatorError("the setup transactions (bond, register as gateway) were not committed within 60 s") }
            }
            follower.measuring = true
            let began = LoadClock.microseconds()
            let sendUntil = began + UInt64(seconds) * 1_000_000
            let endBy = sendUntil + UInt64(drain) * 1_000_000
            var sent = 0, nextSend = began, nextResync = began
            while LoadClock.microseconds() < endBy {
                let now = LoadClock.microseconds()
                if now >= nextResync {
                    for (sender, nonce) in work.resync(now: now, after: UInt64(resyncAfterMs) * 1_000) { follower.forget(sender: sender, from: nonce) }
                    nextResync = now + 100_000
                }
                if now < sendUntil && now >= nextSend {
                    let due = Int((now - began) * UInt64(rate) / 1_000_000) - sent
                    if due > 0 {
                        send(work.due(due), on: host, to: connected, follower: &follower)
                        sent += due
                    }
                    nextSend = now + 10_000  // every 10 ms
                }
                if now >= sendUntil && follower.waiting == 0 { break }
                follower.pump(&work)
            }
            let report = LoadReport(workload: workload.rawValue, offeredPerSecond: rate, seconds: seconds, nodes: connected.count,
                                    sent: sent, began: began, follower: follower, nonces: work.nonces)
            print(json ? report.json.rendered() : report.text)
        }
    }

    func send(_ outgoing: [Outgoing], on host: P2PHost, to connected: [PublicKey], follower: inout ChainFollower) {
        var batches = [[SignedTransaction]](repeating: [], count: connected.count)
        for item in outgoing { batches[item.node % connected.count].append(item.transaction) }
        let stamp = LoadClock.microseconds()
        for (position, batch) in batches.enumerated() where !batch.isEmpty {
            for start in stride(from: 0, to: batch.count, by: WireMessage.maxTransactionsPerMessage) {
                let part = Array(batch[start..<min(batch.count, start + WireMessage.maxTransactionsPerMessage)])
                follower.sent(part, at: stamp)
                host.send(.transactions(part), to: connected[position])
            }
        }
    }
}

/// Follows the chain through the peers' status messages, asking for every new block, and
/// keeps the figures of the measured run.
struct ChainFollower {
    let host: P2PHost
    var measuring = false
    private struct Sent {
        let stamp: UInt64
        let sender: PublicKey
        let nonce: UInt64
    }
    private var sentAt: [Hash256: Sent] = [:]
    /// The waiting transactions of the `restarted` senders by nonce (a nonce sent again after
    /// a resync has two); others need no index, so sending costs them nothing more.
    private var outstanding: [PublicKey: [UInt64: [Hash256]]] = [:]
    /// Sent transactions given up on (an earlier nonce of their sender was refused), less those
    /// that committed after all (a stall that was slowness, not a refusal), and those whose
    /// nonce the chain used for another transaction of their sender (one sent before a resync
    /// that waited in a mempool and committed): they never can.
    var lost: Int { forgotten.count + superseded }
    private var forgotten: Set<Hash256> = []
    private var superseded = 0
    /// Senders started again from the chain's nonce: only they can have two transactions of a nonce.
    private var restarted: Set<PublicKey> = []
    private(set) var resyncs = 0
    private var knownHeight: UInt64 = 0
    private var startHeight: UInt64? = nil
    private var requested: Set<UInt64> = []
    private(set) var latencies: [UInt64] = []
    private(set) var committed = 0
    private(set) var blocks = 0
    private(set) var blockTransactions = 0
    private(set) var firstBlockAt: UInt64? = nil
    private(set) var lastCommitAt: UInt64 = 0
    private(set) var lastBlockAt: UInt64 = 0

    init(host: P2PHost) { self.host = host }

    /// Transactions sent and not yet seen committed.
    var waiting: Int { sentAt.count }

    mutating func sent(_ transactions: [SignedTransaction], at stamp: UInt64) {
        for transaction in transactions {
            let sender = transaction.body.sender, nonce = transaction.body.nonce
            sentAt[transaction.hash] = Sent(stamp: stamp, sender: sender, nonce: nonce)
            if restarted.contains(sender) { outstanding[sender, default: [:]][nonce, default: []].append(transaction.hash) }
        }
    }

    /// Stops waiting for `sender`'s transactions from `nonce` on (they are counted lost).
    mutating func forget(sender: PublicKey, from nonce: UInt64) {
        if restarted.insert(sender).inserted {  // indexed from now on: what waits already, then what is sent
            for (hash, sent) in sentAt where sent.sender == sender { outstanding[sender, default: [:]][sent.nonce, default: []].append(hash) }
        }
        for hash in stopWaiting(sender) { $0 >= nonce } { forgotten.insert(hash) }
        resyncs += 1
    }

    /// Takes `sender`'s waiting transactions whose nonce passes `test` out of the waiting ones;
    /// returns their hashes.
    private mutating func stopWaiting(_ sender: PublicKey, _ test: (UInt64) -> Bool) -> [Hash256] {
        guard let byNonce = outstanding[sender] else { return [] }
        var taken: [Hash256] = []
        for (nonce, hashes) in byNonce where test(nonce) {
            taken += hashes
            outstanding[sender]?[nonce] = nil
        }
        if outstanding[sender]?.isEmpty == true { outstanding[sender] = nil }
        for hash in taken { sentAt[hash] = nil }
        return taken
    }

    mutating func pump(_ workload: inout any LoadWorkload) {
        for event in host.events!.drain(waitingMilliseconds: 2) {
            guard case .message(let message, let from) = event else { continue }
            switch message {
            case .status(let height, _):
                if startHeight == nil { startHeight = height; knownHeight = height }
                while knownHeight < height {
                    knownHeight += 1
                    if requested.insert(knownHeight).inserted { host.send(.blockRequest(height: knownHeight), to: from) }
                }
            case .block(let block, _):
                let arrival = LoadClock.microseconds()
                workload.committed(block)
                var ours = 0
                var highest: [PublicKey: UInt64] = [:]
                for transaction in block.transactions {
                    let sender = transaction.body.sender, nonce = transaction.body.nonce
                    if let sent = sentAt.removeValue(forKey: transaction.hash) {
                        outstanding[sender]?[nonce]?.removeAll { $0 == transaction.hash }
                        if outstanding[sender]?[nonce]?.isEmpty == true { outstanding[sender]?[nonce] = nil }
                        if measuring { latencies.append(arrival - sent.stamp) }
                        ours += 1
                    } else if forgotten.remove(transaction.hash) != nil {
                        ours += 1  // its latency is not known: the stall counted it lost
                    }
                    if restarted.contains(sender) { highest[sender] = max(highest[sender] ?? 0, nonce) }
                }
                // What still waits with a nonce this block used for another transaction never commits.
                for (sender, top) in highest { superseded += stopWaiting(sender) { $0 <= top }.count }
                guard measuring else { continue }
                blocks += 1
                blockTransactions += block.transactions.count
                firstBlockAt = firstBlockAt ?? arrival
                lastBlockAt = arrival
                if ours > 0 {
                    committed += ours
                    lastCommitAt = arrival
                }
            default: break
            }
        }
    }
}

import ArgumentParser
import KCCrypto
import KCNetwork
import KCNode
import KCTypes

#if canImport(Glibc)
import Glibc
#endif

/// A load generator and finality probe over P2P: signs transfers between the devnet users,
/// sends them to the given peers at a fixed rate, follows the chain by status messages and
/// block requests, and prints throughput and the time from sending each transaction to
/// receiving the committed block that holds it.
struct LoadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Send signed transfers to running nodes and measure commit throughput and latency.",
        discussion: """
        For devnets and benchmarks: the senders are the public devnet users, so the chain must \
        fund them (Genesis/devnet.json does). Latency is measured from the send to the arrival \
        of the committed block, asked of the node as soon as it announces the height.
        """,
        shouldDisplay: false
    )

    @Option(name: .long, help: ArgumentHelp("The chain's genesis file.", valueName: "file"))
    var genesis: String

    @Option(name: .long, help: ArgumentHelp("A node to send to, NODE_ID@HOST:PORT (repeatable).", valueName: "peer"))
    var peer: [String]

    @Option(name: .long, help: "Transactions per second to send.")
    var rate: Int = 100

    @Option(name: .long, help: "Seconds to send for.")
    var seconds: Int = 10

    @Option(name: .long, help: "Devnet users to send from (at most 4 in the devnet genesis).")
    var users: Int = 4

    @Option(name: .long, help: ArgumentHelp("First nonce of each sender, comma-separated (a previous run prints them).", valueName: "list"))
    var nonces: String? = nil

    func validate() throws {
        guard (1...1_000_000).contains(rate) else { throw ValidationError("--rate must be between 1 and 1000000") }
        guard (1...3_600).contains(seconds) else { throw ValidationError("--seconds must be between 1 and 3600") }
        guard (1...64).contains(users) else { throw ValidationError("--users must be between 1 and 64") }
        for entry in peer where PeerAddress.parse(entry) == nil { throw ValidationError("'\(entry)' is not NODE_ID@HOST:PORT") }
        guard !peer.isEmpty else { throw ValidationError("give at least one --peer") }
        if let nonces, nonces.split(separator: ",").count != users || nonces.split(separator: ",").contains(where: { UInt64($0) == nil }) {
            throw ValidationError("--nonces needs \(users) whole numbers separated by commas")
        }
    }

    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000 + UInt64(time.tv_nsec) / 1_000
    }

    func run() throws {
        try runReportingErrors {
            let chain = try NodeHome.loadGenesis(file: genesis)
            let settings = P2PSettings(chainID: chain.chainID, genesisHash: chain.hash, nodeKey: SigningKey.generate())
            let host = P2PHost(settings: settings, events: Inbox(capacity: 1_000_000), log: .silent)
            try host.start()
            defer { host.stop() }
            let targets = peer.compactMap(PeerAddress.parse)
            for target in targets { host.dial(target) }
            let connectDeadline = Self.now() + 10_000_000
            while host.connectedPeers.count < targets.count && Self.now() < connectDeadline { usleep(10_000) }
            guard !host.connectedPeers.isEmpty else { throw OperatorError("cannot connect to any --peer") }

            let senders = (0..<users).map { DevnetKeys.user(index: $0) }
            var nonces = self.nonces.map { $0.split(separator: ",").map { UInt64($0)! } } ?? [UInt64](repeating: 0, count: senders.count)
            var sentAt: [Hash256: UInt64] = [:]
            var latencies: [UInt64] = []
            var firstCommit: UInt64? = nil, lastCommit: UInt64 = 0, committed = 0, blocks = 0
            var knownHeight: UInt64 = 0, startHeight: UInt64? = nil
            var requested: Set<UInt64> = []
            let start = Self.now()
            let sendUntil = start + UInt64(seconds) * 1_000_000
            let endBy = sendUntil + 30_000_000
            var sent = 0
            let tick: UInt64 = 10_000  // send every 10 ms
            var nextSend = start
            let connected = host.connectedPeers
            while Self.now() < endBy {
                let now = Self.now()
                if now < sendUntil && now >= nextSend {
                    let due = Int((now - start) * UInt64(rate) / 1_000_000) - sent
                    // Each sender's run goes to one node, so its nonces arrive in order.
                    var batches = [[SignedTransaction]](repeating: [], count: connected.count)
                    for index in 0..<max(due, 0) {
                        let from = (sent + index) % senders.count
                        let body = TransactionBody(chainID: chain.chainID, sender: senders[from].publicKey, nonce: nonces[from],
                                                   fee: chain.parameters.fees.minFee,
                                                   call: .transfer(to: senders[(from + 1) % senders.count].publicKey, amount: Amount(units: 1)))
                        nonces[from] += 1
                        batches[from % connected.count].append(body.signed(with: senders[from]))
                    }
                    let stamp = Self.now()
                    for (position, batch) in batches.enumerated() where !batch.isEmpty {
                        for transaction in batch { sentAt[transaction.hash] = stamp }
                        host.send(.transactions(batch), to: connected[position])
                        sent += batch.count
                    }
                    nextSend = now + tick
                }
                if now >= sendUntil && sentAt.isEmpty { break }
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
                        let arrival = Self.now()
                        blocks += 1
                        var here = 0
                        for transaction in block.transactions {
                            if let stamp = sentAt.removeValue(forKey: transaction.hash) {
                                latencies.append(arrival - stamp)
                                here += 1
                            }
                        }
                        if here > 0 {
                            committed += here
                            firstCommit = firstCommit ?? arrival
                            lastCommit = arrival
                        }
                    default: break
                    }
                }
            }
            latencies.sort()
            func percentile(_ p: Int) -> String {
                guard !latencies.isEmpty else { return "-" }
                let value = latencies[min(latencies.count - 1, latencies.count * p / 100)]
                return "\(value / 1_000).\((value % 1_000) / 100) ms"
            }
            // Nothing committed leaves lastCommit at 0, before the start.
            let span = lastCommit > start ? lastCommit - start : 1
            print("sent \(sent) transactions at \(rate)/s for \(seconds) s to \(connected.count) node(s); committed \(committed) in \(blocks) block(s)")
            print("committed throughput: \(UInt64(committed) * 1_000_000 / span) tx/s (from the first send to the last commit)")
            print("send-to-commit latency: p50 \(percentile(50)), p90 \(percentile(90)), p99 \(percentile(99)), max \(percentile(100))")
            if committed < sent { print("not committed within 30 s after sending stopped: \(sent - committed)") }
            print("next nonces: \(nonces.map(String.init).joined(separator: ","))")
        }
    }
}

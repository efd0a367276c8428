import KCCrypto
@testable import KCNetwork
@testable import KCNode
import Testing

/// The figures other parts of the node keep reach the metrics, and gossip the node drops
/// because its inbox is full is counted and warned about at most every 10 s.
struct CounterFeedsTests {
    static func series(_ metrics: NodeMetrics, _ name: String) -> String? {
        metrics.registry.emitToString().split(separator: "\n").first { $0.hasPrefix(name + " ") }.map { String($0.dropFirst(name.count + 1)) }
    }

    @Test func droppedGossipIsCountedAndWarnedAboutAtMostEveryTenSeconds() throws {
        let metrics = NodeMetrics()
        let host = P2PHost(settings: P2PSettings(chainID: "feeds-test", genesisHash: .zero, nodeKey: SigningKey(seed: Bytes32([UInt8](repeating: 7, count: 32)))),
                           log: .silent) { _, _ in }
        defer { host.stop() }
        let inbox = Inbox<NodeEvent>(capacity: 2)
        let gossip = NodeEvent.checkedTransactions([], from: SigningKey(seed: Bytes32([UInt8](repeating: 8, count: 32))).publicKey)
        var feeds = CounterFeeds(metrics: metrics)
        let inbound = "membria_p2p_dropped_messages_total{direction=\"inbound\"}"
        let outbound = "membria_p2p_dropped_messages_total{direction=\"outbound\"}"
        func update(at now: UInt64) -> UInt64? { feeds.update(network: host, signatures: SignatureCache(), stage: nil, inbox: inbox, now: now) }

        #expect(update(at: 0) == nil, "nothing dropped, nothing to warn about")
        #expect(Self.series(metrics, inbound) == "0" && Self.series(metrics, outbound) == "0")

        // Gossip past the capacity is refused; what is not droppable is always taken.
        for _ in 0..<5 { inbox.push(gossip, droppable: true) }
        #expect(inbox.push(gossip, droppable: false))
        #expect(inbox.dropped == 3 && inbox.drain(waitingMilliseconds: 0).count == 3)
        host.droppedOutboundFrames.add(4, ordering: .relaxed)
        #expect(update(at: 1_000) == 3)
        #expect(Self.series(metrics, inbound) == "3" && Self.series(metrics, outbound) == "4")

        // Within ten seconds of that warning: counted, not warned about; then all of it at once.
        for _ in 0..<4 { inbox.push(gossip, droppable: true) }
        #expect(update(at: 5_000) == nil)
        #expect(Self.series(metrics, inbound) == "5")
        #expect(update(at: 10_999) == nil)
        #expect(update(at: 11_000) == 2)
        #expect(update(at: 30_000) == nil, "no new drops")
        #expect(Self.series(metrics, inbound) == "5" && Self.series(metrics, outbound) == "4")
    }
}

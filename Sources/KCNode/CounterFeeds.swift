import KCCrypto
import KCNetwork
import Prometheus

/// Totals kept by other parts of the node (the P2P host, the signature cache and stage, the
/// inbox) carried into the metrics' counters: each update adds what a total grew by since the
/// update before.
struct CounterFeeds {
    private struct Feed {
        let counter: Counter
        var counted: UInt64 = 0

        /// Adds the growth of `total` to the counter; returns it.
        @discardableResult
        mutating func feed(_ total: UInt64) -> UInt64 {
            guard total > counted else { return 0 }
            let growth = total - counted
            counter.increment(by: Int64(clamping: growth))
            counted = total
            return growth
        }
    }

    private var sentBytes, receivedBytes, bans, signatureChecks, stageRefusals, droppedInbound, droppedOutbound: Feed
    /// Inbound drops not yet warned about, and when the last warning went out.
    private var unreported: UInt64 = 0
    private var lastWarning: UInt64?
    /// At most one warning about dropped inbound messages per this many milliseconds.
    static let warningIntervalMilliseconds: UInt64 = 10_000

    init(metrics: NodeMetrics) {
        sentBytes = Feed(counter: metrics.p2pSentBytes)
        receivedBytes = Feed(counter: metrics.p2pReceivedBytes)
        bans = Feed(counter: metrics.peerBans)
        signatureChecks = Feed(counter: metrics.signatureChecks)
        stageRefusals = Feed(counter: metrics.signatureStageRefusals)
        droppedInbound = Feed(counter: metrics.p2pDroppedInbound)
        droppedOutbound = Feed(counter: metrics.p2pDroppedOutbound)
    }

    /// Reads every total once (`now`: monotonic milliseconds). Returns the inbound messages
    /// dropped since the last warning when one is due (at most one per
    /// `warningIntervalMilliseconds`), else nil.
    mutating func update(network: P2PHost, signatures: SignatureCache, stage: SignatureStage?, inbox: Inbox<NodeEvent>, now: UInt64) -> UInt64? {
        sentBytes.feed(network.sentBytes.load(ordering: .relaxed))
        receivedBytes.feed(network.receivedBytes.load(ordering: .relaxed))
        bans.feed(network.banCount)
        signatureChecks.feed(UInt64(signatures.verifications))
        stageRefusals.feed(UInt64(stage?.refusedBatches ?? 0))
        droppedOutbound.feed(network.droppedOutboundFrames.load(ordering: .relaxed))
        unreported += droppedInbound.feed(inbox.dropped)
        guard unreported > 0, lastWarning.map({ now < $0 || now - $0 >= Self.warningIntervalMilliseconds }) ?? true else { return nil }
        defer { unreported = 0; lastWarning = now }
        return unreported
    }
}

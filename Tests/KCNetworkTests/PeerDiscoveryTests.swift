import Foundation
import KCCrypto
import KCNetwork
import Testing

/// Discovery between P2P hosts on loopback (the multi-process test with real nodes is
/// `NetworkTests.validatorsGivenOnlyASeedDiscoverEachOther`).
struct PeerDiscoveryTests {
    /// A host that knows only a seed fills its outbound slots from the addresses the seed
    /// hands out (a live outbound connection once counted twice, as connected and as being
    /// dialled, and a node stopped at half its slots).
    @Test func aHostGivenASeedFillsItsOutboundSlots() throws {
        let (seed, seedPort) = try P2PHostTests.makeHost(seed: 120) { $0.seedMode = true; $0.discoveryIntervalMilliseconds = 200 }
        defer { seed.stop() }
        let seedAddress = PeerAddress(nodeID: seed.nodeID, host: "127.0.0.1", port: seedPort)
        // Eight listening hosts make themselves known to the seed by dialling it.
        var others: [P2PHost] = []
        defer { for host in others { host.stop() } }
        for index in 0..<8 {
            let (host, _) = try P2PHostTests.makeHost(seed: 121 + UInt8(index)) { settings in
                settings.seeds = [seedAddress]
                settings.maxOutboundPeers = 0  // only the seed, which is dialled whatever the slots
                settings.discoveryIntervalMilliseconds = 200
            }
            others.append(host)
        }
        // All from one source group and one address group (loopback): one bucket of 32 slots.
        #expect(P2PHostTests.wait(seconds: 20) { seed.addressBook.count >= 7 }, "the seed learned \(seed.addressBook.count) addresses")
        let (newcomer, _) = try P2PHostTests.makeHost(seed: 130) { settings in
            settings.seeds = [seedAddress]
            settings.maxOutboundPeers = 6  // more than one discovery pass dials (4 at most)
            settings.discoveryIntervalMilliseconds = 200
        }
        defer { newcomer.stop() }
        #expect(P2PHostTests.wait(seconds: 30) { newcomer.outboundPeerCount == 6 },
                "outbound peers: \(newcomer.outboundPeerCount), book: \(newcomer.addressBook.count)")
        // It never goes past its slots, and the book keeps what it learned.
        usleep(600_000)
        #expect(newcomer.outboundPeerCount == 6)
        #expect(newcomer.addressBook.count >= 6)
    }
}

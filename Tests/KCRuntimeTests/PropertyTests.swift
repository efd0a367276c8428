import Foundation
import KCCodec
import KCCrypto
@testable import KCRuntime
@testable import KCNode
import KCStorage
import KCTypes
import Testing

/// Seeded random transaction sequences. Each seed is a reproducible run: on failure the seed
/// is in the test's argument list.
struct RuntimePropertyTests {
    struct Generator {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(bound))
        }
    }

    /// A random but plausible call from a random actor, using events seen so far.
    static func randomCall(_ random: inout Generator, events: [Hash256], disputes: [Hash256]) -> (SigningKey, Call) {
        let actors = TestChain.gateways + TestChain.users
        let actor = actors[random.next(actors.count)]
        let other = actors[random.next(actors.count)].publicKey
        // Votes come mostly from gateways (anyone may try, and fail with not_gateway).
        let voter = random.next(6) == 0 ? actor : TestChain.gateways[random.next(TestChain.gateways.count)]
        // Votes and disputes aim mostly at recent events, so lifecycles actually complete.
        let recent = Array(events.suffix(3))
        let event = events.isEmpty ? Blake2b.hash256([UInt8(random.next(256))])
            : random.next(5) == 0 ? events[random.next(events.count)] : recent[random.next(recent.count)]
        switch random.next(13) {
        case 0: return (actor, .transfer(to: other, amount: .acti(UInt64(random.next(5_000)))))
        case 1: return (actor, .bond(amount: .acti(UInt64(random.next(30_000)))))
        case 2: return (actor, .unbond(amount: .acti(UInt64(random.next(30_000)))))
        case 3: return (actor, .withdrawUnbonded)
        case 4: return (actor, .registerGateway)
        case 5, 6:
            let parents = events.isEmpty ? [] : Array(Set((0..<random.next(3)).map { _ in events[random.next(events.count)] }))
            return (actor, .proposeEvent(parents: parents.sorted(), arTxID: arTxID("r\(random.next(1_000))"),
                                         contentHash: SHA256.hash([UInt8(random.next(256))]), kind: "k\(random.next(3))"))
        case 7, 8, 11:
            let verdict: Verdict = random.next(4) == 0 ? .invalid : .valid
            return (voter, .attest(votes: [AttestationVote(eventID: event, verdict: verdict)]))
        case 9: return (actor, .dispute(eventID: event, bond: .acti(UInt64(100 + random.next(200))), reason: arTxID("why")))
        case 10:
            let dispute = disputes.isEmpty ? Blake2b.hash256([1]) : disputes[disputes.count - 1 - random.next(min(2, disputes.count))]
            return (voter, .voteDispute(disputeID: dispute, uphold: random.next(2) == 0))
        case 12: return (actor, .unjail)
        default: preconditionFailure()
        }
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func randomSequencesKeepEveryInvariant(seed: UInt64) throws {
        var random = Generator(state: seed)
        var chain = TestChain()
        let memory = MemoryStore()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kc-prop-\(seed)-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let rocks = try RocksDBStore(path: directory)
        for store in [memory, rocks] as [any KeyValueStore] {
            var batch = WriteBatch()
            StatePersistence.add(chain.state, to: &batch)
            try store.write(batch, sync: false)
        }
        var events: [Hash256] = []
        var disputes: [Hash256] = []
        var succeeded = 0, statuses = Set<EventStatus>()
        for _ in 0..<100 {
            var transactions: [VerifiedTransaction] = []
            for _ in 0..<random.next(8) {
                let (key, call) = Self.randomCall(&random, events: events, disputes: disputes)
                transactions.append(chain.transaction(key, call))
            }
            let advance = UInt64(500 + random.next(4_000))
            chain.time += advance
            let context = BlockContext(height: chain.height + 1, timeMilliseconds: chain.time,
                                       lastCommitSigners: chain.state.validatorSets().previous.map(\.consensusKey))
            let executed = try chain.runtime.execute(transactions, context: context, on: chain.state)
            chain.state.commit(executed)
            for store in [memory, rocks] as [any KeyValueStore] {
                var batch = WriteBatch()
                try StatePersistence.add(executed, over: store, to: &batch)
                try store.write(batch, sync: false)
            }
            succeeded += executed.outcome.receipts.filter(\.succeeded).count
            for change in executed.outcome.eventChanges {
                statuses.insert(change.to)
                if change.from == nil { events.append(change.eventID) }
                if change.to == .disputed, let id = chain.state.event(change.eventID)?.disputeID { disputes.append(id) }
            }
            #expect(chain.state.auditSupply().isConserved, "seed \(seed) height \(chain.height): supply")
            chain.checkGatewayStake()
        }
        // The sequence did real work, not only failed calls.
        #expect(succeeded > 30, "seed \(seed): only \(succeeded) calls succeeded")
        #expect(statuses.contains(.pending) && statuses.count >= 2, "seed \(seed): statuses reached \(statuses)")
        print("seed \(seed): \(succeeded) successful calls, statuses \(statuses.map(\.name).sorted())")
        // Every stored event's parents exist and none was rejected when it was proposed.
        for id in events {
            let record = try #require(chain.state.event(id))
            for parent in record.header.parents {
                let parentRecord = try #require(chain.state.event(parent))
                #expect(parentRecord.header.height <= record.header.height)
            }
        }
        // The same sequence gives the same root through both stores, and each store holds
        // exactly the trie built afresh from its entries: no node left behind by an update.
        let rebuilt = ChainState(entries: Dictionary(uniqueKeysWithValues: chain.state.sortedEntries().map { ($0.key, $0.value) }))
        #expect(rebuilt.root == chain.state.root)
        for (name, store) in [("memory", memory), ("RocksDB", rocks)] as [(String, any KeyValueStore)] {
            let stored = BlockStore(store: store).storedState()
            #expect(stored.root == chain.state.root, "seed \(seed): \(name) store root")
            var nodes = 0
            for pair in try store.scan(.prefix(StatePersistence.triePrefix)) {
                let root = try #require(TriePosition(bytes: pair.key.dropFirst(StatePersistence.triePrefix.count)))
                let page = try #require(TriePage(bytes: pair.value), "seed \(seed): \(name) page \(root)")
                #expect(!page.isEmpty && TriePage.root(of: root) == root)
                nodes += page.slots.count
            }
            var expected = 0
            for (position, node) in rebuilt.unstored.nodes {
                let page = try StatePersistence.page(TriePage.root(of: position), in: store)
                #expect(page?.node(at: position) == node, "seed \(seed): \(name) node \(position)")
                expected += 1
            }
            #expect(nodes == expected, "seed \(seed): \(name) store holds \(nodes) trie nodes, the tree \(expected)")
        }
    }

    @Test func sameSequenceSameRootTwice() throws {
        func run() throws -> Hash256 {
            var random = Generator(state: 42)
            var chain = TestChain()
            var events: [Hash256] = []
            for _ in 0..<30 {
                var transactions: [VerifiedTransaction] = []
                for _ in 0..<random.next(6) {
                    let (key, call) = Self.randomCall(&random, events: events, disputes: [])
                    transactions.append(chain.transaction(key, call))
                }
                let outcome = try chain.block(transactions)
                events += outcome.eventChanges.filter { $0.from == nil }.map(\.eventID)
            }
            return chain.state.root
        }
        #expect(try run() == run())
    }
}

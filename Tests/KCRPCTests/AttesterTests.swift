import Foundation
import KCAttester
import KCCodec
import KCCrypto
import KCNode
import KCRPC
import KCRuntime
import KCStorage
import KCTypes
import Testing

/// The automatic attester in `fetch` mode against the dev content server.
@Suite(.serialized)
struct AttesterTests {
    /// The pending events are read from the attestation queue, oldest first: looks of a few at
    /// a time, each going on where the last stopped, reach every event (across entries, past
    /// emptied ones) and start over at the end; a window from the start each time would never
    /// get past the first events.
    @Test func theSweepReachesEveryPendingEventAndStartsOver() throws {
        let store = MemoryStore()
        var batch = WriteBatch()
        let ids = (0..<10).map { Blake2b.hash256(Array("pending \($0)".utf8)) }
        // Entries 0..3: three ids, none (its events were decided), four, three.
        let entries = [Array(ids[0..<3]), [], Array(ids[3..<7]), Array(ids[7..<10])]
        for (position, entry) in entries.enumerated() {
            batch.put(StatePersistence.storeKey(StateKey.queueEntry(.attestation, UInt64(position))),
                      QueueEntry(timeMilliseconds: 1, ids: entry).canonicalBytes)
        }
        batch.put(StatePersistence.storeKey(StateKey.queueEntry(.challenge, 0)), QueueEntry(timeMilliseconds: 1, ids: [ids[0]]).canonicalBytes)
        try store.write(batch, sync: false)
        var sweep = PendingSweep()
        var seen: [Hash256] = []
        var restarts = 0
        for _ in 0..<6 {
            let look = try PendingEvents.page(in: store, after: sweep.after, limit: 4)
            seen += look.events.map(\.id)
            if look.reachedEnd { restarts += 1 }
            sweep.looked(last: look.events.last?.position, reachedEnd: look.reachedEnd)
        }
        // 4 + 4 + 2 (end), then 4 + 4 + 2 again: the challenge queue is never looked at.
        #expect(seen == ids + ids)
        #expect(restarts == 2 && sweep.atStart)
        // A look that stops early (its round is full) goes on from the last event it took.
        sweep.looked(last: PendingEvents.Position(entry: 2, index: 1), reachedEnd: false)
        #expect(try PendingEvents.page(in: store, after: sweep.after, limit: 1).events.map(\.id) == [ids[5]])
        // A look bounded in entries that finds only emptied ones says where to go on.
        let emptied = try PendingEvents.page(in: store, after: PendingEvents.Position(entry: 0, index: .max), limit: 4, maxEntries: 1)
        #expect(emptied.events.isEmpty && !emptied.reachedEnd && emptied.resumeAfter == PendingEvents.Position(entry: 1, index: .max))
        #expect(try PendingEvents.page(in: store, after: emptied.resumeAfter, limit: 1).events.map(\.id) == [ids[3]])
        // A cursor survives its bytes (the RPC's form).
        let position = PendingEvents.Position(entry: 0x0102_0304_0506_0708, index: 0x0A0B_0C0D)
        #expect(PendingEvents.Position(bytes: position.bytes) == position && PendingEvents.Position(bytes: [1, 2]) == nil)
        #expect(try PendingEvents.count(in: store) == 10)
    }

    /// Rounds faster than blocks: the next transaction follows the attester's own waiting ones;
    /// when the mempool has lost those (one ahead of its line waits, `queued`) the attester
    /// starts again from the committed nonce and fills the gap; after a refusal it takes the
    /// nonce the mempool names.
    @Test func theNonceGoesOnPastTheAttestersOwnWaitingTransactions() throws {
        let key = SigningKey(seed: Blake2b.hash256(Array("attester-nonce".utf8)))
        let validator = SigningKey(seed: Blake2b.hash256(Array("attester-nonce-validator".utf8)))
        let runtime = Runtime(genesis: Genesis(
            chainID: "membria-attester-nonce", genesisTimeUnixMilliseconds: 1_000, parameters: LocalGenesis.developmentParameters,
            accounts: [GenesisAccount(address: key.publicKey, balance: .acti(100))],
            validators: [GenesisValidator(moniker: "v", address: validator.publicKey, consensusKey: validator.publicKey,
                                          nodeID: validator.publicKey, stake: .acti(10_000), gateway: true)]))
        let state = runtime.genesisState()
        var nonces = AttestNonce()
        var rounds: UInt128 = 0
        func submit(to pool: Mempool, committed: UInt64 = 0) -> Result<UInt64, MempoolRejection> {
            let nonce = nonces.next(committed: committed)
            rounds += 1  // each round's transaction its own (as each round's votes are)
            let transaction = TransactionBody(chainID: "membria-attester-nonce", sender: key.publicKey, nonce: nonce,
                                              fee: runtime.parameters.fees.minFee,
                                              call: .transfer(to: validator.publicKey, amount: Amount(units: rounds)))
                .signed(with: key)
            do {
                let admission = try pool.add(transaction, state: state)
                nonces.sent(nonce)
                if admission.queued { nonces.queued() }
                return .success(nonce)
            } catch {
                nonces.refused(error)
                return .failure(error)
            }
        }
        let pool = Mempool(runtime: runtime, signatures: SignatureCache())
        // Three rounds before any commit: three transactions wait, nonces 0, 1, 2.
        for expected in UInt64(0)..<3 { #expect(try submit(to: pool).get() == expected) }
        #expect(pool.count == 3)
        // The waiting transactions are lost (another pool, as after a restart): the next waits
        // for them, so the attester goes back to the committed nonce; the gap filled, the one
        // that waited joins the line.
        let other = Mempool(runtime: runtime, signatures: SignatureCache())
        #expect(try submit(to: other).get() == 3 && other.queuedCount == 1)
        for expected in UInt64(0)..<3 { #expect(try submit(to: other).get() == expected) }
        #expect(other.count == 4 && other.queuedCount == 0)
        // A nonce the line already holds is refused naming the next one, which the attester
        // takes (its next would be 3: the last it sent was 2).
        #expect(throws: MempoolRejection.nonce(expected: 4, found: 3)) { try submit(to: other).get() }
        #expect(try submit(to: other).get() == 4)
        // Once the chain has committed past what the attester sent, the committed nonce rules.
        #expect(nonces.next(committed: 5) == 5)
        #expect(nonces.following == nil)
    }

    /// A round's votes fill one `attest` transaction without passing the chain's size limit,
    /// whatever the limit, and never more than the decoder takes.
    @Test func oneRoundsVotesFitOneTransaction() throws {
        let key = DevnetKeys.user(index: 0)
        for limit: UInt64 in [2_048, 16_384, 65_536, 1 << 20] {
            let count = Attester.votesPerTransaction(maxTransactionBytes: limit)
            let votes = (0..<count).map { AttestationVote(eventID: Blake2b.hash256(Array("event \($0)".utf8)), verdict: .valid) }
            let chainID = String(repeating: "c", count: TransactionLimits.maxChainIDBytes)
            let body = TransactionBody(chainID: chainID, sender: key.publicKey, nonce: .max, fee: Amount(units: .max), call: .attest(votes: votes))
            let size = body.signed(with: key).canonicalBytes.count
            #expect(size <= Int(limit), "\(count) votes take \(size) bytes, over \(limit)")
            #expect(count == TransactionLimits.maxVotesPerAttestation || size > Int(limit) - 512 - 33,
                    "the transaction is filled: \(count) votes, \(size) of \(limit) bytes")
        }
        #expect(Attester.votesPerTransaction(maxTransactionBytes: 1 << 30) == TransactionLimits.maxVotesPerAttestation)
        #expect(Attester.votesPerTransaction(maxTransactionBytes: 100) == 1)
    }

    @Test func matchingTamperedAndMissingPayloads() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kc-content-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let content = ContentServer(directory: folder, port: 0)
        let contentPort = try content.start()
        defer { content.stop() }
        let node = try LiveNode(attester: Attester.Settings(mode: .fetch, gateway: "http://127.0.0.1:\(contentPort)",
                                                           timeoutMilliseconds: 2_000, maxPayloadBytes: 1 << 20))
        defer { node.stop() }
        #expect(node.waitHeight(1))
        let author = DevnetKeys.user(index: 0)
        node.makeGateway(author)

        let good = Array("{\"answer\": 42}".utf8)
        let goodID = try ContentServer.store(good, in: folder)
        let tampered = Array("{\"answer\": 41}".utf8)
        let tamperedID = try ContentServer.store(tampered, in: folder)
        let missingID = ContentServer.arTxID(for: Array("never uploaded".utf8))
        let huge = [UInt8](repeating: 0x61, count: (1 << 20) + 1)
        let hugeID = try ContentServer.store(huge, in: folder)
        // The content server answers what was stored, and 404 otherwise.
        let fetched = node.requestURL("http://127.0.0.1:\(contentPort)/\(goodID.text)")
        #expect(fetched.status == 200 && fetched.text == String(decoding: good, as: UTF8.self))
        #expect(node.requestURL("http://127.0.0.1:\(contentPort)/\(missingID.text)").status == 404)

        var ids: [String: Hash256] = [:]
        for (name, arTxID, hash) in [("good", goodID, SHA256.hash(good)), ("tampered", tamperedID, SHA256.hash(good)),
                                     ("missing", missingID, SHA256.hash(Array("never uploaded".utf8))),
                                     ("oversized", hugeID, SHA256.hash(huge))] {
            let answer = node.send(.proposeEvent(parents: [], arTxID: arTxID, contentHash: hash, kind: "test"), from: author)
            let height = try #require(answer.json?["transaction"]?["height"]?.numberText, "\(answer.text)")
            let change = node.get("/blocks/\(height)").json?["event_changes"]?.arrayValue?.first { $0["from"] == .null }
            ids[name] = try #require(change?["event_id"]?.stringValue.flatMap { Hash256(hex: $0) })
        }
        func status(_ name: String) -> String? { node.get("/events/\(ids[name]!.hex)").json?["status"]?.stringValue }
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline && (status("good") == "pending" || status("tampered") == "pending") { usleep(50_000) }
        // The validator's gateway holds most of the stake: its verdict decides.
        #expect(status("good") == "accepted" || status("good") == "finalized")
        #expect(status("tampered") == "rejected")
        let accepted = try #require(node.get("/events/\(ids["good"]!.hex)").json)
        #expect(accepted["tally"]?["valid_count"]?.numberText == "1")
        let votes = node.get("/events/\(ids["good"]!.hex)/votes").json?["votes"]?.arrayValue ?? []
        #expect(votes.first?["voter"]?.stringValue == LiveNode.validatorAccount.publicKey.hex && votes.first?["verdict"]?.stringValue == "valid")
        for name in ["missing", "oversized"] {
            let event = try #require(node.get("/events/\(ids[name]!.hex)").json)
            #expect(event["status"]?.stringValue == "pending", "\(name): no payload, no vote")
            #expect(event["tally"]?["valid_count"]?.numberText == "0", "\(name)")
            #expect(event["tally"]?["invalid_count"]?.numberText == "0", "\(name)")
        }
    }

    @Test func anUnreachableGatewayGivesNoVote() throws {
        // A port nothing listens on.
        let node = try LiveNode(attester: Attester.Settings(mode: .fetch, gateway: "http://127.0.0.1:9",
                                                           timeoutMilliseconds: 500, maxPayloadBytes: 1 << 20))
        defer { node.stop() }
        #expect(node.waitHeight(1))
        let author = DevnetKeys.user(index: 0)
        node.makeGateway(author)
        let answer = node.send(.proposeEvent(parents: [], arTxID: ContentServer.arTxID(for: [1]), contentHash: SHA256.hash([1]),
                                             kind: "test"), from: author)
        let height = try #require(answer.json?["transaction"]?["height"]?.numberText.flatMap { UInt64($0) })
        #expect(node.waitHeight(height + 5))
        usleep(1_500_000)
        let id = try #require(node.get("/events?status=pending").json?["events"]?.arrayValue?.first?["id"]?.stringValue)
        let event = try #require(node.get("/events/\(id)").json)
        #expect(event["tally"]?["valid_count"]?.numberText == "0")
        #expect(event["tally"]?["invalid_count"]?.numberText == "0")
    }
}

import Foundation
import KCCodec
import KCCrypto
import KCNode
import KCRPC
import KCRuntime
import KCTestSupport
import KCTypes
import Synchronization
import Testing

/// The API through a live HTTP server on a running one-validator node.
@Suite(.serialized)
struct RPCTests {
    static let author = DevnetKeys.user(index: 0)
    static let other = DevnetKeys.user(index: 1)
    static let arTxID = "bNbA3TEQVL60xlgCcqdz4ZPHFZ711cZ3hmkpGttDt_U"

    static func contentHash(_ index: Int) -> Hash256 { SHA256.hash(Array("payload \(index)".utf8)) }

    /// Proposes `count` events by the test author, each child of the previous one; returns
    /// their ids in order.
    static func proposeChain(_ node: LiveNode, count: Int, kind: String = "answer") throws -> [Hash256] {
        var ids: [Hash256] = []
        for index in 0..<count {
            let answer = node.send(.proposeEvent(parents: ids.suffix(1), arTxID: try ArTxID(parsing: arTxID),
                                                 contentHash: contentHash(index), kind: kind), from: author)
            #expect(answer.status == 200, "propose \(index): \(answer.text)")
            #expect(answer.json?["transaction"]?["receipt"]?["succeeded"]?.boolValue == true, "\(answer.text)")
            let height = try #require(answer.json?["transaction"]?["height"]?.numberText)
            let block = node.get("/blocks/\(height)").json
            let proposed = (block?["event_changes"]?.arrayValue ?? []).filter { $0["from"] == .null }
            let id = try #require(proposed.last?["event_id"]?.stringValue.flatMap { Hash256(hex: $0) })
            ids.append(id)
        }
        return ids
    }

    @Test func theOpenAPIFileListsExactlyTheServedRoutes() throws {
        let text = try String(contentsOf: packageRoot.appendingPathComponent("specs/openapi.yaml"), encoding: .utf8)
        var documented: Set<String> = []
        var path: String? = nil
        var inPaths = false
        for line in text.split(separator: "\n") {
            if line == "paths:" { inPaths = true; continue }
            if inPaths && !line.hasPrefix(" ") { inPaths = false }
            guard inPaths else { continue }
            if line.hasPrefix("  /") && line.hasSuffix(":") { path = String(line.dropFirst(2).dropLast()) }
            for method in ["get", "head", "post", "put", "delete", "patch"] where line == "    \(method):" {
                documented.insert("\(method.uppercased()) \(path ?? "?")")
            }
        }
        let served = Set(Routes.table.map { "\($0.method) \($0.path)" })
        #expect(documented == served, "only documented: \(documented.subtracting(served)); only served: \(served.subtracting(documented))")
    }

    /// Every route answers 2xx on a chain with gateways, events, a dispute and transactions.
    @Test func everyRouteAnswers() throws {
        let node = try LiveNode()
        defer { node.stop() }
        #expect(node.waitHeight(1))
        node.makeGateway(Self.author)
        let ids = try Self.proposeChain(node, count: 2)
        let transfer = node.send(.transfer(to: Self.other.publicKey, amount: .acti(1)), from: Self.author)
        let hash = try #require(transfer.json?["hash"]?.stringValue)
        // The validator (a gateway with most of the stake) accepts the first event, then disputes it.
        node.send(.attest(votes: [AttestationVote(eventID: ids[0], verdict: .valid)]), from: LiveNode.validatorAccount)
        let disputed = node.send(.dispute(eventID: ids[0], bond: .acti(100), reason: try ArTxID(parsing: Self.arTxID)), from: Self.other)
        #expect(disputed.json?["transaction"]?["receipt"]?["succeeded"]?.boolValue == true, "\(disputed.text)")
        let disputeID = DisputeRecord.id(forEvent: ids[0], sequence: 0).hex
        for (method, template) in Routes.table where method == "GET" && template != "/subscribe" {
            let path = template.replacingOccurrences(of: "{height}", with: "1").replacingOccurrences(of: "{hash}", with: hash)
                .replacingOccurrences(of: "{address}", with: Self.author.publicKey.hex)
                .replacingOccurrences(of: "/disputes/{id}", with: "/disputes/\(disputeID)")
                .replacingOccurrences(of: "{id}", with: ids[0].hex)
            let query = path == "/events" ? "?author=\(Self.author.publicKey.hex)" : ""
            let answer = node.get(path + query)
            #expect((200..<300).contains(answer.status), "GET \(path) → \(answer.status) \(answer.text.prefix(200))")
        }
        let event = try #require(node.get("/events/\(ids[0].hex)").json)
        #expect(event["status"]?.stringValue == "disputed")
        #expect(event["dispute"]?["id"]?.stringValue == disputeID)
        #expect(event["electorate"]?["epoch"]?.numberText != nil && event["tally"]?["valid_count"]?.numberText == "1")
        let votes = try #require(node.get("/events/\(ids[0].hex)/votes").json)
        #expect(votes["votes"]?.arrayValue?.first?["voter"]?.stringValue == LiveNode.validatorAccount.publicKey.hex, "\(votes)")
        #expect(node.get("/events/\(ids[0].hex)/votes?verdict=maybe").status == 400)
        #expect(node.get("/events/\(ids[1].hex)/parents").json?["levels"]?.arrayValue?.first?["events"]?.arrayValue?.first?["id"]?.stringValue == ids[0].hex)
        // Every block-time field in ms has its RFC 3339 twin; durations do not.
        let proposedAt = try #require(event["proposed_at_ms"]?.numberText.flatMap { UInt64($0) })
        #expect(event["proposed_at"]?.stringValue == UTCTime.rfc3339(milliseconds: proposedAt))
        let closes = try #require(event["challenge_window_closes_ms"]?.numberText.flatMap { UInt64($0) })
        #expect(event["challenge_window_closes"]?.stringValue == UTCTime.rfc3339(milliseconds: closes))
        let pending = try #require(node.get("/events/\(ids[1].hex)").json)
        #expect(pending["accepted_at_ms"] == .null && pending["accepted_at"] == .null, "never accepted: both null")
        let status = try #require(node.get("/status").json)
        let blockTime = try #require(status["latest_block_time_ms"]?.numberText.flatMap { UInt64($0) })
        #expect(status["latest_block_time"]?.stringValue == UTCTime.rfc3339(milliseconds: blockTime))
        let params = try #require(node.get("/params").json)
        #expect(params["events"]?["attestation_period_ms"] != nil && params["events"]?["attestation_period"] == nil)
        let health = node.get("/health")
        #expect(health.status == 200 && health.json?["status"]?.stringValue == "ok" && health.json?["problems"]?.arrayValue?.isEmpty == true,
                "\(health.text)")
        let metrics = node.get("/metrics").text
        #expect(metrics.contains("membria_height "))
        #expect(metrics.contains("membria_events{status=\"disputed\"} 1"))
        #expect(metrics.contains("membria_rocksdb_estimated_keys "))
    }

    /// `POST /txs/check` answers what an unsigned transaction would do, with the runtime's own
    /// code and message, and commits nothing.
    @Test func aCheckAnswersWithoutCommitting() throws {
        let node = try LiveNode()
        defer { node.stop() }
        #expect(node.waitHeight(1))
        func check(_ call: Call, fee: Amount? = nil, chainID: String? = nil) -> LiveNode.Answer {
            let body = TransactionBody(chainID: chainID ?? node.genesis.chainID, sender: Self.author.publicKey, nonce: 0,
                                       fee: fee ?? node.genesis.parameters.fees.minFee, call: call)
            return node.request("POST", "/txs/check", body: "{\"body\":\"\(Hex.encode(body.canonicalBytes))\"}")
        }
        let good = check(.bond(amount: .acti(10_000)))
        #expect(good.status == 200 && good.json?["would_succeed"]?.boolValue == true, "\(good.text)")
        #expect(good.json?["receipt"]?["name"]?.stringValue == "ok" && good.json?["height"]?.numberText != nil)
        let doomed = check(.transfer(to: Self.other.publicKey, amount: .acti(1_000_000_000)))
        #expect(doomed.json?["would_succeed"]?.boolValue == false, "\(doomed.text)")
        #expect(doomed.json?["receipt"]?["name"]?.stringValue == "insufficient_balance", "\(doomed.text)")
        let early = check(.withdrawUnbonded)
        #expect(early.json?["receipt"]?["name"]?.stringValue == "nothing_to_withdraw", "\(early.text)")
        let cheap = check(.bond(amount: .acti(1)), fee: .zero)
        #expect(cheap.json?["would_succeed"]?.boolValue == false && cheap.json?["refused"]?.stringValue?.contains("below the minimum fee") == true,
                "\(cheap.text)")
        let elsewhere = check(.bond(amount: .acti(1)), chainID: "another-chain")
        #expect(elsewhere.status == 400 && elsewhere.json?["message"]?.stringValue?.contains("another-chain") == true, "\(elsewhere.text)")
        // Nothing was committed or pooled: the account is as it was.
        let account = try #require(node.get("/accounts/\(Self.author.publicKey.hex)").json)
        #expect(account["nonce"]?.numberText == "0" && account["bonded"]?.stringValue == "0", "\(account)")
    }

    /// A client that sends two nonces at once, the later one first (two connections, two
    /// requests in flight): the later one waits (`queued`, counted in /status), the earlier one
    /// lets it into the line, and both commit. A third transaction with the waiting one's nonce
    /// is refused by name while it waits.
    @Test func noncesSentOutOfOrderBothCommit() throws {
        let node = try LiveNode()
        defer { node.stop() }
        #expect(node.waitHeight(2), "no blocks")
        let user = DevnetKeys.user(index: 2)
        func transfer(_ nonce: UInt64, amount: UInt64 = 1) -> SignedTransaction {
            TransactionBody(chainID: node.genesis.chainID, sender: user.publicKey, nonce: nonce, fee: node.genesis.parameters.fees.minFee,
                            call: .transfer(to: Self.other.publicKey, amount: .acti(amount))).signed(with: user)
        }
        func post(_ transaction: SignedTransaction) -> LiveNode.Answer {
            node.request("POST", "/txs", body: "{\"tx\":\"\(Hex.encode(transaction.canonicalBytes))\"}")
        }
        let later = post(transfer(1))
        #expect(later.status == 202 && later.json?["status"]?.stringValue == "queued", "\(later.status) \(later.text)")
        let rival = post(transfer(1, amount: 2))
        #expect(rival.status == 409 && rival.json?["code"]?.stringValue == "nonce_queued", "\(rival.status) \(rival.text)")
        var queued: Int? = nil
        for _ in 0..<100 where queued != 1 {
            queued = node.get("/status").json?["mempool"]?["queued"]?.numberText.flatMap { Int($0) }
            if queued != 1 { usleep(50_000) }
        }
        #expect(queued == 1, "the waiting transaction is counted in /status")
        let earlier = post(transfer(0))
        #expect(earlier.status == 202 && earlier.json?["status"]?.stringValue == "pending", "\(earlier.status) \(earlier.text)")
        var committed = false
        for _ in 0..<200 where !committed {
            committed = node.get("/txs/\(transfer(1).hash.hex)").status == 200
            if !committed { usleep(50_000) }
        }
        #expect(committed, "the transaction that waited was committed")
        #expect(node.get("/accounts/\(user.publicKey.hex)").json?["nonce"]?.numberText == "2")
    }

    @Test func badRequestsGetTheirStatusAndAReasonNeverA500() throws {
        let node = try LiveNode(maxBodyBytes: 4_096)
        defer { node.stop() }
        #expect(node.waitHeight(1))
        let cases: [(String, String, String?, Int, String)] = [
            ("GET", "/events/xyz", nil, 400, "event id 'xyz' is not 64 hex characters"),
            ("GET", "/events/" + String(repeating: "0", count: 64), nil, 404, "no event"),
            ("GET", "/blocks/99999999", nil, 404, "no block at height 99999999"),
            ("GET", "/blocks/-1", nil, 400, "is not a whole number"),
            ("GET", "/txs/" + String(repeating: "a", count: 64), nil, 404, "no committed transaction"),
            ("GET", "/accounts/nothex", nil, 400, "address 'nothex'"),
            ("GET", "/events?limit=0&status=pending", nil, 400, "limit must be 1 to 500"),
            ("GET", "/events?status=lost", nil, 400, "status 'lost' is not one of"),
            ("GET", "/events", nil, 400, "give one of author, ar_tx_id, kind or status"),
            ("GET", "/events?status=pending&cursor=zz", nil, 400, "does not belong to this list"),
            ("GET", "/events?ar_tx_id=short", nil, 400, "ar_tx_id"),
            ("GET", "/events/" + String(repeating: "0", count: 64) + "/ancestors?depth=99", nil, 400, "depth must be 1 to 16"),
            ("GET", "/nowhere", nil, 404, "no route GET /nowhere"),
            ("POST", "/txs", "not json", 400, "the body is not JSON"),
            ("POST", "/txs", "[1,2]", 400, "must be a JSON object"),
            ("POST", "/txs", "{\"tx\": 5}", 400, "needs \"tx\""),
            ("POST", "/txs", "{\"tx\": \"zz\"}", 400, "\"tx\" is not hex"),
            ("POST", "/txs", "{\"tx\": \"00ff\"}", 400, "transaction is malformed"),
            ("POST", "/txs", "{\"tx\": \"\(String(repeating: "ab", count: 3_000))\"}", 413, "over the limit"),
            ("POST", "/txs?wait=maybe", "{\"tx\": \"00\"}", 400, "wait must be true or false"),
            ("POST", "/txs/check", "{\"tx\": \"00\"}", 400, "needs \"body\""),
            ("POST", "/txs/check", "{\"body\": \"00ff\"}", 400, "is not a canonical transaction body"),
            ("POST", "/txs/check", "{\"body\": \"\(String(repeating: "ab", count: 3_000))\"}", 413, "over the limit"),
            ("DELETE", "/status", nil, 405, "not allowed"),
        ]
        for (method, path, body, status, message) in cases {
            let answer = node.request(method, path, body: body)
            #expect(answer.status == status, "\(method) \(path): \(answer.status) \(answer.text.prefix(200))")
            #expect(answer.json?["message"]?.stringValue?.contains(message) == true, "\(method) \(path): \(answer.text.prefix(200))")
            #expect(answer.json?["code"]?.stringValue != nil)
        }
        // A forged signature and a duplicate.
        let body = TransactionBody(chainID: node.genesis.chainID, sender: Self.author.publicKey, nonce: 0,
                                   fee: node.genesis.parameters.fees.minFee, call: .transfer(to: Self.other.publicKey, amount: .acti(1)))
        let forged = SignedTransaction(body: body, signature: Self.other.sign(rawMessage: body.canonicalBytes))
        let forgedAnswer = node.request("POST", "/txs", body: "{\"tx\":\"\(Hex.encode(forged.canonicalBytes))\"}")
        #expect(forgedAnswer.status == 400 && forgedAnswer.json?["code"]?.stringValue == "invalid_transaction", "\(forgedAnswer.text)")
        let good = Hex.encode(body.signed(with: Self.author).canonicalBytes)
        #expect(node.request("POST", "/txs", body: "{\"tx\":\"\(good)\"}").status == 202)
        let duplicate = node.request("POST", "/txs", body: "{\"tx\":\"\(good)\"}")
        #expect(duplicate.status == 409 || duplicate.json?["code"]?.stringValue == "bad_nonce", "\(duplicate.text)")
        // Garbage of every shape: never a server error.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<60 {
            let alphabet = Array("abz09/?&=._-~")
            let junk = String((0..<Int.random(in: 0...40, using: &generator)).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &generator)] })
            let post = Bool.random(using: &generator)
            let answer = node.request(post ? "POST" : "GET", "/" + junk, body: post ? junk : nil)
            #expect(answer.status > 0 && answer.status < 500, "/\(junk) → \(answer.status) \(answer.error ?? "")")
        }
    }

    @Test func aClientOverTheRateLimitGets429() throws {
        let node = try LiveNode(rateLimit: 5)
        defer { node.stop() }
        let statuses = (0..<20).map { _ in node.get("/health").status }
        #expect(statuses.prefix(5).allSatisfy { $0 == 200 })
        #expect(statuses.contains(429))
        let limited = node.get("/health")
        if limited.status == 429 {
            #expect(limited.json?["code"]?.stringValue == "rate_limited")
        }
        usleep(1_200_000)
        #expect(node.get("/health").status == 200, "the bucket refills")
    }

    /// 32 keep-alive connections from one address sending requests back to back killed the
    /// node within seconds before the rate limiter read its clock inside the lock.
    @Test func thirtyTwoKeepAliveClientsCannotCrashTheNode() throws {
        let node = try LiveNode(rateLimit: 200)
        defer { node.stop() }
        let answered = Mutex(0)
        let deadline = Date().addingTimeInterval(4)
        DispatchQueue.concurrentPerform(iterations: 32) { _ in
            guard let socket = try? RawSocket(port: node.port) else { return }
            var count = 0
            while Date() < deadline && count < 20_000 {
                guard socket.send("GET /health HTTP/1.1\r\nHost: test\r\n\r\n"), socket.readHTTPResponse() != nil else { break }
                count += 1
            }
            answered.withLock { $0 += count }
        }
        #expect(answered.withLock { $0 } > 1_000)
        usleep(1_100_000)
        #expect(node.get("/health").status == 200, "the node still serves")
    }

    @Test func listsPageWithCursorsAndWalkTheDAG() throws {
        let node = try LiveNode()
        defer { node.stop() }
        #expect(node.waitHeight(1))
        node.makeGateway(Self.author)
        let ids = try Self.proposeChain(node, count: 7, kind: "chain")
        var seen: [String] = []
        var cursor: String? = nil
        var pages = 0
        repeat {
            let query = "/events?author=\(Self.author.publicKey.hex)&limit=3" + (cursor.map { "&cursor=\($0)" } ?? "")
            let page = try #require(node.get(query).json)
            seen += (page["events"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }
            cursor = page["next_cursor"]?.stringValue
            pages += 1
        } while cursor != nil && pages < 10
        #expect(pages == 3)
        #expect(seen == ids.map(\.hex), "author order is height order")
        let byKind = node.get("/events?kind=chain&limit=500").json?["events"]?.arrayValue?.count
        #expect(byKind == 7)
        #expect(node.get("/events?kind=other").json?["events"]?.arrayValue?.isEmpty == true)
        #expect(node.get("/events?status=pending&limit=500").json?["events"]?.arrayValue?.count == 7)
        #expect(node.get("/events?ar_tx_id=\(Self.arTxID)&limit=500").json?["events"]?.arrayValue?.count == 7)
        // The chain: each event's only child is the next one.
        let children = node.get("/events/\(ids[2].hex)/children").json?["events"]?.arrayValue?.compactMap { $0["id"]?.stringValue }
        #expect(children == [ids[3].hex])
        let ancestors = try #require(node.get("/events/\(ids[6].hex)/ancestors?depth=3").json?["levels"]?.arrayValue)
        #expect(ancestors.compactMap { $0["events"]?.arrayValue?.first?["id"]?.stringValue } == [ids[5].hex, ids[4].hex, ids[3].hex])
        let descendants = try #require(node.get("/events/\(ids[0].hex)/descendants?depth=16").json?["levels"]?.arrayValue)
        #expect(descendants.count == 6)
    }

    @Test func anEventProofVerifiesAgainstTheBlockHeader() throws {
        let node = try LiveNode()
        defer { node.stop() }
        #expect(node.waitHeight(1))
        node.makeGateway(Self.author)
        let id = try Self.proposeChain(node, count: 1)[0]
        let proof = try #require(node.get("/events/\(id.hex)/proof").json)
        let height = try #require(proof["height"]?.numberText)
        let header = try #require(node.get("/blocks/\(height)").json)
        #expect(header["state_root"] == proof["state_root"], "the proof is against the state root in block \(height)")
        let root = try #require(proof["state_root"]?.stringValue.flatMap { Hash256(hex: $0) })
        let value = try #require(proof["value"]?.stringValue.flatMap { Hex.decode($0) })
        let key = try #require(proof["key"]?.stringValue.flatMap { Hex.decode($0) })
        #expect(key == StateKey.event(id).bytes)
        let encoded = try #require(proof["proof"]?["encoded"]?.stringValue.flatMap { Hex.decode($0) })
        let decoded = try StateTrie.Proof.decode(exactly: encoded)
        #expect(StateTrie.verify(proof: decoded, root: root, path: Blake2b.hash256(key), valueHash: Blake2b.hash256(value)))
        // The record in the proof is the event.
        let record = try EventRecord.decode(exactly: value)
        #expect(record.header.id == id)
        // A changed value does not verify.
        #expect(!StateTrie.verify(proof: decoded, root: root, path: Blake2b.hash256(key), valueHash: Blake2b.hash256(value + [0])))
    }

    /// An archive-style subscriber reads status changes, is cut off, resumes from its last
    /// closed height, and in the end has every change exactly once, in order.
    @Test func aSubscriberResumesWithoutGapsOrRepeats() throws {
        let node = try LiveNode()
        defer { node.stop() }
        #expect(node.waitHeight(1))
        node.makeGateway(Self.author)
        var received: [String] = []
        var lastClosed: UInt64 = 0
        var connections = 0
        func readFor(_ seconds: Double) throws {
            let client = try WebSocketClient(port: node.port, path: "/subscribe?from_height=\(lastClosed + 1)")
            connections += 1
            var pending: [String] = []
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline, let text = client.next() {
                let message = try StrictJSON.parse(text)
                let height = message["height"]?.numberText.flatMap { UInt64($0) } ?? 0
                if message["type"]?.stringValue == "event" {
                    pending.append("\(height):\(message["index"]!.numberText!):\(message["event_id"]!.stringValue!):\(message["to"]!.stringValue!)")
                } else {
                    #expect(height == lastClosed + 1, "heights arrive in order")
                    received += pending
                    pending = []
                    lastClosed = height
                }
            }
            // Leaving without a close frame; events of an unclosed height are dropped and re-read.
        }
        try readFor(1)
        let ids = try Self.proposeChain(node, count: 3)
        try readFor(0.5)
        node.send(.attest(votes: ids.map { AttestationVote(eventID: $0, verdict: .valid) }), from: LiveNode.validatorAccount)
        try readFor(0.5)
        // Accepted events finalize when the challenge window passes.
        usleep(2_500_000)
        try readFor(1)
        let top = node.height
        while lastClosed < top { try readFor(1) }
        // The truth: the event changes stored with every block up to lastClosed.
        var expected: [String] = []
        for height in 1...lastClosed {
            let block = try #require(node.get("/blocks/\(height)").json)
            for (index, change) in (block["event_changes"]?.arrayValue ?? []).enumerated() {
                expected.append("\(height):\(index):\(change["event_id"]!.stringValue!):\(change["to"]!.stringValue!)")
            }
        }
        #expect(connections >= 4)
        #expect(received == expected)
        #expect(received.filter { $0.hasSuffix(":finalized") }.count == 3, "\(received)")
    }
}

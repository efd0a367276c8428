import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import KCCrypto
import KCNode
import KCTestSupport
import KCTypes
import Synchronization
import Testing

/// A real devnet of five validator processes with fetch attesters and the dev content server,
/// driven only through the CLI and the HTTP API.
@Suite(.serialized)
struct EndToEndTests {
    final class Devnet {
        let network: TestNetwork
        let content: ChildProcess
        let contentURL: String
        let keys: String

        init() throws {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kc-e2e-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: folder + "/content", withIntermediateDirectories: true)
            keys = folder
            let contentPort = TestPorts.contentServer
            contentURL = "http://127.0.0.1:\(contentPort)"
            let server = try ChildProcess(["arweave-dev-server", "--dir", folder + "/content", "--port", "\(contentPort)"])
            #expect(server.wait(seconds: 30) { server.text.contains("serving") }, "\(server.text)")
            content = server
            network = try TestNetwork(validators: 5, commitMilliseconds: 200, attesterGateway: contentURL)
            for index in 0..<5 { try network.start(index) }
            #expect(network.waitHeight(2, seconds: 60), "\(network.describe())")
            for index in 0..<4 { try KeyFile.write(DevnetKeys.user(index: index), role: .account, to: key(index)) }
        }

        func key(_ index: Int) -> String { keys + "/user\(index).json" }

        func stop() {
            network.stopAll()
            network.remove()
            content.stop(signal: SIGTERM)
            try? FileManager.default.removeItem(atPath: keys)
        }

        /// `node ...` against node `index`'s RPC.
        @discardableResult
        func cli(_ arguments: [String], node index: Int = 0, _ line: Int = #line) throws -> RunResult {
            let result = try runNode(arguments + ["--node", network.rpc(index)])
            #expect(result.status == 0, "line \(line): node \(arguments.joined(separator: " ")): \(result.standardError)")
            return result
        }

        func http(_ method: String, _ address: String, body: [UInt8]? = nil) -> (status: Int, text: String) {
            EndToEndTests.request(method, address, body: body.map { String(decoding: $0, as: UTF8.self) })
        }

        func json(_ path: String, node index: Int = 0) throws -> JSONValue {
            let answer = http("GET", network.rpc(index) + path)
            #expect(answer.status == 200, "GET \(path): \(answer.status) \(answer.text.prefix(200))")
            return try StrictJSON.parse(answer.text)
        }

        /// Stores a payload on the content server; returns its ArTxID.
        func upload(_ payload: String) throws -> String {
            let answer = http("POST", contentURL + "/tx", body: Array(payload.utf8))
            #expect(answer.status == 200)
            return answer.text.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// Proposes an event as user `index` with the CLI; returns its id.
        func propose(_ payload: String, arTxID: String, parents: [String] = [], as index: Int = 0) throws -> String {
            let file = keys + "/payload-\(UUID().uuidString)"
            try payload.write(toFile: file, atomically: true, encoding: .utf8)
            var arguments = ["propose-event", "--key", key(index), "--ar-tx-id", arTxID, "--payload", file, "--kind", "answer",
                             "--wait", "--output", "json"]
            for parent in parents { arguments += ["--parent", parent] }
            let answer = try StrictJSON.parse(try cli(arguments).standardOutput)
            let height = try #require(answer["transaction"]?["height"]?.numberText)
            let block = try json("/blocks/\(height)")
            let proposed = (block["event_changes"]?.arrayValue ?? []).filter { $0["from"] == .null }
            return try #require(proposed.last?["event_id"]?.stringValue)
        }

        func status(of event: String) throws -> String { try json("/events/\(event)")["status"]?.stringValue ?? "?" }

        func waitStatus(_ event: String, _ wanted: Set<String>, seconds: Double) throws -> String {
            let deadline = Date().addingTimeInterval(seconds)
            var current = try status(of: event)
            while !wanted.contains(current) && Date() < deadline {
                usleep(200_000)
                current = try status(of: event)
            }
            return current
        }
    }

    /// A gateway stakes and proposes an event with two parents whose payloads are on the
    /// content server; the attesters accept all three and they finalize after the window; the
    /// DAG queries show the child under its parents. A tampered payload is rejected.
    @Test func eventsGoFromProposedToFinalizedAndTamperedOnesAreRejected() throws {
        let devnet = try Devnet()
        defer { devnet.stop() }
        try devnet.cli(["stake", "--key", devnet.key(0), "--amount", "10000ACTI", "--wait"])
        try devnet.cli(["register-gateway", "--key", devnet.key(0), "--wait"])

        let parentPayloads = ["{\"answer\": \"first\"}", "{\"answer\": \"second\"}"]
        var parents: [String] = []
        for payload in parentPayloads {
            parents.append(try devnet.propose(payload, arTxID: try devnet.upload(payload)))
        }
        let childPayload = "{\"answer\": \"built on both\"}"
        let child = try devnet.propose(childPayload, arTxID: try devnet.upload(childPayload), parents: parents)

        // Tampered: the content hash is of other bytes than the payload stored under the id.
        let stored = "{\"answer\": \"what the server has\"}"
        let tampered = try devnet.propose("{\"answer\": \"what the author claims\"}", arTxID: try devnet.upload(stored))
        #expect(try devnet.waitStatus(tampered, ["rejected"], seconds: 30) == "rejected")

        for event in parents + [child] {
            #expect(try devnet.waitStatus(event, ["accepted", "finalized"], seconds: 30) != "pending", "event \(event)")
        }
        // The devnet's challenge window is 30 s of block time.
        for event in parents + [child] {
            #expect(try devnet.waitStatus(event, ["finalized"], seconds: 60) == "finalized", "event \(event)")
        }
        let record = try devnet.json("/events/\(child)", node: 3)
        #expect(record["parents"]?.arrayValue?.compactMap(\.stringValue).sorted() == parents.sorted())
        // The electorate is the five validators' gateways (500k; the user's gateway joined
        // during the epoch and votes from the next): four attesters (400k) are the fewest that
        // exceed 2/3, and votes arriving after acceptance are not counted.
        #expect(record["electorate"]?["total"]?.stringValue == String(Amount.acti(500_000).units))
        let votes = try devnet.json("/events/\(child)/votes", node: 3)["votes"]?.arrayValue ?? []
        #expect(votes.count >= 4 && votes.allSatisfy { $0["verdict"]?.stringValue == "valid" }, "the attesters voted valid: \(votes)")
        #expect(record["tally"]?["invalid_count"]?.numberText == "0")
        for parent in parents {
            let children = try devnet.json("/events/\(parent)/children", node: 1)["events"]?.arrayValue?.compactMap { $0["id"]?.stringValue }
            #expect(children == [child])
        }
        let ancestors = try devnet.json("/events/\(child)/ancestors?depth=2", node: 2)["levels"]?.arrayValue ?? []
        #expect(Set(ancestors.first?["events"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []) == Set(parents))
        // An archive-style subscriber on node 2, cut off half way and resumed from its last
        // closed height, sees each of the three finalizations exactly once.
        let top = try #require(try devnet.json("/status", node: 2)["height"]?.numberText.flatMap { UInt64($0) })
        var finalized: [String] = []
        var lastClosed: UInt64 = 0
        for stopAt in [top / 2, top] {
            let client = try WebSocketClient(port: devnet.network.rpcPorts[2], path: "/subscribe?from_height=\(lastClosed + 1)")
            var pending: [String] = []
            while lastClosed < stopAt, let text = client.next() {
                let message = try StrictJSON.parse(text)
                if message["type"]?.stringValue == "block" {
                    finalized += pending
                    pending = []
                    lastClosed = message["height"]?.numberText.flatMap { UInt64($0) } ?? lastClosed
                } else if message["to"]?.stringValue == "finalized", let id = message["event_id"]?.stringValue {
                    pending.append(id)
                }
            }
            // The socket closes here without a close frame: a forced disconnect.
        }
        #expect(finalized.sorted() == (parents + [child]).sorted(), "\(finalized)")

        // Every node answers the same for the same height.
        let height = try #require(try devnet.json("/status")["height"]?.numberText)
        let ids = try (0..<5).map { try devnet.json("/blocks/\(height)", node: $0)["id"]?.stringValue }
        #expect(Set(ids).count == 1)
    }

    /// Every devnet validator is a gateway whose attester votes on every event, so a dispute
    /// accuses them all: no validator may judge it, and it is a bond round. Undefended, it is
    /// upheld at its deadline: the event ends rejected, every valid attester loses exactly the
    /// dispute slash fraction of the weight it voted with and the author of the stake it
    /// proposed with, and the disputer gets the bond back plus the reward share of the slash.
    /// Defended with twice the bond, the event stands and finalizes; the defender gets half the
    /// disputer's bond, and its own bond back at finality. Balances are checked to the base unit.
    @Test func disputesUpheldAndDefendedMoveExactAmounts() throws {
        let devnet = try Devnet()
        defer { devnet.stop() }
        try devnet.cli(["stake", "--key", devnet.key(0), "--amount", "10000ACTI", "--wait"])
        try devnet.cli(["register-gateway", "--key", devnet.key(0), "--wait"])
        let params = try devnet.json("/params")
        func units(_ value: JSONValue?) throws -> UInt128 {
            let text = try #require(value?.stringValue)
            if let plain = UInt128(text) { return plain }
            return try Amount(parsing: text).units
        }
        let slashBps = UInt128(try #require(params["slashing"]?["dispute_slash_bps"]?.numberText.flatMap { UInt64($0) }))
        let rewardBps = UInt128(try #require(params["events"]?["disputer_reward_bps"]?.numberText.flatMap { UInt64($0) }))

        let payloads = ["{\"claim\": \"upheld\"}", "{\"claim\": \"stands\"}"]
        let upheldEvent = try devnet.propose(payloads[0], arTxID: try devnet.upload(payloads[0]))
        let standingEvent = try devnet.propose(payloads[1], arTxID: try devnet.upload(payloads[1]))
        for event in [upheldEvent, standingEvent] {
            #expect(try devnet.waitStatus(event, ["accepted"], seconds: 20) == "accepted")
        }
        // The accused: every valid attester, with the weight it voted with, and the author.
        let votes = try devnet.json("/events/\(upheldEvent)/votes?verdict=valid")["votes"]?.arrayValue ?? []
        #expect(votes.count >= 4)
        var expectedSlash: [String: UInt128] = [:]
        for vote in votes { expectedSlash[try #require(vote["voter"]?.stringValue)] = try units(vote["weight"]) * slashBps / 10_000 }
        let author = DevnetKeys.user(index: 0).publicKey.hex
        expectedSlash[author] = try units(devnet.json("/events/\(upheldEvent)")["author_stake"]) * slashBps / 10_000
        var bondedBefore: [String: UInt128] = [:]
        for accused in expectedSlash.keys { bondedBefore[accused] = try units(devnet.json("/accounts/\(accused)")["bonded"]) }
        let disputer = DevnetKeys.user(index: 1).publicKey.hex
        let loser = DevnetKeys.user(index: 2).publicKey.hex
        let defender = DevnetKeys.user(index: 3).publicKey.hex
        let disputerBefore = try units(devnet.json("/accounts/\(disputer)")["balance"])
        let loserBefore = try units(devnet.json("/accounts/\(loser)")["balance"])
        let defenderBefore = try units(devnet.json("/accounts/\(defender)")["balance"])
        let reason = try devnet.upload("{\"why\": \"it is wrong\"}")

        func fee(_ arguments: [String]) throws -> UInt128 {
            let answer = try StrictJSON.parse(try devnet.cli(arguments + ["--wait", "--output", "json"]).standardOutput)
            return try units(answer["transaction"]?["receipt"]?["fee_paid"])
        }
        func dispute(_ event: String, as index: Int) throws -> (dispute: String, fee: UInt128) {
            let paid = try fee(["dispute", "--key", devnet.key(index), "--event", event, "--bond", "100ACTI", "--reason", reason])
            let record = try devnet.json("/events/\(event)")["dispute"]
            #expect(record?["mode"]?.stringValue == "bonds", "every validator is accused: \(String(describing: record))")
            return (try #require(record?["id"]?.stringValue), paid)
        }
        let upheld = try dispute(upheldEvent, as: 1)
        let standing = try dispute(standingEvent, as: 2)
        let defenceFee = try fee(["defend", "--key", devnet.key(3), "--dispute", standing.dispute, "--bond", "200ACTI"])
        #expect(try devnet.json("/disputes/\(standing.dispute)")["status"]?.stringValue == "defended")

        // Nobody defends the first: upheld at its deadline (15 s of block time).
        #expect(try devnet.waitStatus(upheldEvent, ["rejected"], seconds: 40) == "rejected")
        var slashedTotal: UInt128 = 0
        for (accused, slash) in expectedSlash {
            slashedTotal += slash
            #expect(try units(devnet.json("/accounts/\(accused)")["bonded"]) == bondedBefore[accused]! - slash,
                    "\(accused.prefix(12)) lost exactly its slash")
        }
        let record = try devnet.json("/disputes/\(upheld.dispute)")
        #expect(record["status"]?.stringValue == "upheld")
        #expect(try units(record["slashed_total"]) == slashedTotal)
        let reward = slashedTotal * rewardBps / 10_000
        #expect(try units(record["disputer_reward"]) == reward)
        #expect(try units(devnet.json("/accounts/\(disputer)")["balance"]) == disputerBefore - upheld.fee + reward,
                "the disputer paid the fee and got the bond back plus the reward")

        // The defended event stands and finalizes when its window closes; the defender has
        // half the disputer's bond and its own bond back; the disputer lost its bond.
        #expect(try devnet.waitStatus(standingEvent, ["finalized"], seconds: 40) == "finalized")
        let bond = Amount.acti(100).units
        #expect(try units(devnet.json("/accounts/\(loser)")["balance"]) == loserBefore - standing.fee - bond)
        #expect(try units(devnet.json("/accounts/\(defender)")["balance"]) == defenderBefore - defenceFee + bond / 2)
    }

    /// One validator killed with SIGKILL under a steady load of transfers, each acknowledged
    /// by the API only once committed: blocks keep coming, the node restarts and catches up,
    /// all nodes agree on every block, and every acknowledged transaction is on every node.
    @Test func aValidatorKilledUnderLoadCatchesUpAndNothingAcknowledgedIsLost() throws {
        let network = try TestNetwork(validators: 5, commitMilliseconds: 100)
        defer { network.stopAll(); network.remove() }
        for index in 0..<5 { try network.start(index) }
        #expect(network.waitHeight(3, seconds: 60), "\(network.describe())")
        let acknowledged = Mutex<[String]>([])
        let running = Mutex(true)
        let sender = DevnetKeys.user(index: 0)
        let genesis = network.genesis
        let rpc = network.rpc(0)
        let loader = Thread {
            var nonce: UInt64 = 0
            while running.withLock({ $0 }) {
                let body = TransactionBody(chainID: genesis.chainID, sender: sender.publicKey, nonce: nonce,
                                           fee: genesis.parameters.fees.minFee,
                                           call: .transfer(to: DevnetKeys.user(index: 1).publicKey, amount: Amount(units: 1)))
                let hex = body.signed(with: sender).canonicalBytes.map { String(format: "%02x", $0) }.joined()
                let answer = Self.post(rpc + "/txs?wait=true&timeout_ms=10000", "{\"tx\":\"\(hex)\"}")
                if answer.status == 200, let hash = (try? StrictJSON.parse(answer.text))?["hash"]?.stringValue {
                    acknowledged.withLock { $0.append(hash) }
                    nonce += 1
                } else if answer.text.contains("nonce") {
                    nonce += 1  // the previous one went through after all
                }
            }
        }
        loader.start()
        #expect(network.waitHeight(network.height(0) + 5, seconds: 60))
        network.stop(4, signal: SIGKILL)
        let atKill = network.height(0)
        #expect(network.waitHeight(atKill + 10, nodes: [0, 1, 2, 3], seconds: 60), "blocks must keep coming: \(network.describe())")
        try network.start(4)
        #expect(network.waitHeight(network.height(0), nodes: [4], seconds: 60), "the killed node must catch up: \(network.describe())")
        running.withLock { $0 = false }
        while loader.isExecuting { usleep(50_000) }
        let hashes = acknowledged.withLock { $0 }
        #expect(hashes.count >= 10, "only \(hashes.count) acknowledged transfers")
        let top = network.height(4)
        for index in 0..<5 {
            for hash in hashes {
                #expect(Self.get(network.rpc(index) + "/txs/\(hash)").status == 200, "node \(index) lacks \(hash)")
            }
        }
        for height in stride(from: UInt64(1), through: top, by: 1) {
            let ids = (0..<5).map { (try? StrictJSON.parse(Self.get(network.rpc($0) + "/blocks/\(height)").text))?["id"]?.stringValue }
            #expect(Set(ids).count == 1 && ids[0] != nil, "height \(height): \(ids)")
        }
    }

    static func get(_ address: String) -> (status: Int, text: String) { request("GET", address, body: nil) }
    static func post(_ address: String, _ body: String) -> (status: Int, text: String) { request("POST", address, body: body) }

    static func request(_ method: String, _ address: String, body: String?) -> (status: Int, text: String) {
        var request = URLRequest(url: URL(string: address)!)
        request.httpMethod = method
        request.timeoutInterval = 30
        if let body { request.httpBody = Data(body.utf8) }
        final class Box: @unchecked Sendable { var result: (Data?, URLResponse?) = (nil, nil) }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        let session = URLSession(configuration: .ephemeral)
        session.dataTask(with: request) { data, response, _ in box.result = (data, response); done.signal() }.resume()
        done.wait()
        // The task is finished; cancelling it as well raced with its completion inside
        // FoundationNetworking (`invalidateAndCancel` crashed the test process once).
        session.finishTasksAndInvalidate()
        return ((box.result.1 as? HTTPURLResponse)?.statusCode ?? -1, String(decoding: box.result.0 ?? Data(), as: UTF8.self))
    }

    /// Two of five validators stopped (40% of the power): the other three cannot make a
    /// quorum, so the chain halts without forking; with the two back it resumes, and every
    /// node ends with the same blocks and state roots.
    @Test func twoOfFiveStoppedHaltsWithoutForkingAndResumes() throws {
        let network = try TestNetwork(validators: 5, commitMilliseconds: 100)
        defer { network.stopAll(); network.remove() }
        for index in 0..<5 { try network.start(index) }
        #expect(network.waitHeight(5, seconds: 60), "\(network.describe())")
        network.stop(3)
        network.stop(4)
        usleep(1_000_000)
        let halted = (0..<3).map { network.height($0) }.max()!
        usleep(4_000_000)
        let after = (0..<3).map { network.height($0) }.max()!
        #expect(after <= halted + 1, "three of five made progress alone: \(halted) → \(after)")
        try network.start(3)
        try network.start(4)
        #expect(network.waitHeight(after + 5, seconds: 90), "no recovery: \(network.describe())")
        network.stopAll()
        _ = try network.checkStoresAgree()
    }
}

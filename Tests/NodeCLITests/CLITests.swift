import Foundation
import KCCrypto
import KCNode
import KCTestSupport
import KCTypes
import Testing

/// The operator CLI, run as the built binary against a running node: every command on a
/// happy path, and the documented error on a bad one.
@Suite(.serialized)
struct CLITests {
    final class Setup {
        let network: TestNetwork
        let url: String
        let keys: String

        init() throws {
            network = try TestNetwork(validators: 1)
            url = "http://127.0.0.1:\(network.rpcPorts[0])"
            keys = network.root + "/user-keys"
            try FileManager.default.createDirectory(atPath: keys, withIntermediateDirectories: true)
            for index in 0..<4 { try KeyFile.write(DevnetKeys.user(index: index), role: .account, to: key(index)) }
            try network.start(0)
            #expect(network.waitHeight(2, seconds: 60), "\(network.describe())")
        }

        func key(_ index: Int) -> String { keys + "/user\(index).json" }
        var home: String { network.home(0) }

        /// Runs `node arguments` against the node; returns (status, stdout, stderr).
        func run(_ arguments: [String]) throws -> RunResult {
            try runNode(arguments + ["--node", url])
        }

        func stop() {
            network.stopAll()
            network.remove()
        }
    }

    static let arTxID = "bNbA3TEQVL60xlgCcqdz4ZPHFZ711cZ3hmkpGttDt_U"
    static let dashArTxID = "-YXvtZoXsxLkwsH5aJ8KL_h6p_n52_7wl5MDgeWxjVk"

    /// A chain that cannot commit (one of two validators up): `--wait` runs out and says the
    /// transaction was sent, may still be committed, and how to find out.
    @Test func aWaitThatRunsOutSaysWhatHappensNext() throws {
        let network = try TestNetwork(validators: 2)
        defer { network.stopAll(); network.remove() }
        try network.start(0)
        let url = "http://127.0.0.1:\(network.rpcPorts[0])"
        let key = network.root + "/user0.json"
        try KeyFile.write(DevnetKeys.user(index: 0), role: .account, to: key)
        var result = try runNode(["status", "--node", url])
        for _ in 0..<100 where result.status != 0 {
            usleep(100_000)
            result = try runNode(["status", "--node", url])
        }
        let to = DevnetKeys.user(index: 1).publicKey.hex
        let sent = try runNode(["transfer", "--key", key, "--to", to, "--amount", "1ACTI", "--wait", "--timeout", "1", "--node", url])
        #expect(sent.status != 0)
        #expect(sent.standardError.contains("but not committed within 1 s; it may still be committed: node query tx "), "\(sent.standardError)")
        #expect(sent.standardError.hasSuffix("(--timeout waits longer)\n"), "\(sent.standardError)")
        let other = network.root + "/user2.json"
        try KeyFile.write(DevnetKeys.user(index: 2), role: .account, to: other)
        let json = try runNode(["transfer", "--key", other, "--to", to, "--amount", "1ACTI", "--wait", "--timeout", "1", "--node", url, "--output", "json"])
        #expect(json.status != 0 && json.standardOutput.contains(#""code": "timeout""#), "\(json.standardOutput) \(json.standardError)")
    }

    @Test func everyCommandOnAHappyPathAndItsErrorOnABadOne() throws {
        let setup = try Setup()
        defer { setup.stop() }
        func ok(_ arguments: [String], _ expected: String, _ line: Int = #line) throws -> String {
            let result = try setup.run(arguments)
            #expect(result.status == 0, "line \(line): node \(arguments.joined(separator: " ")): \(result.standardError)")
            #expect(result.standardOutput.contains(expected), "line \(line): \(result.standardOutput.prefix(500))")
            return result.standardOutput
        }
        func fails(_ arguments: [String], _ expected: String, _ line: Int = #line) throws {
            let result = try setup.run(arguments)
            #expect(result.status != 0, "line \(line): node \(arguments.joined(separator: " ")) should fail")
            #expect(result.standardError.contains(expected), "line \(line): \(result.standardError.prefix(500))")
        }
        let user0 = DevnetKeys.user(index: 0).publicKey.hex
        try ok(["status"], "chain:    membria-devnet-1")
        try ok(["query", "account", "--home", setup.home], "balance:   1,000,000 ACTI")
        try ok(["query", "validators"], "missed 0 in the window")
        // Times in RFC 3339 UTC, with the age of the latest block.
        let status = try ok(["status"], "s ago")
        #expect(status.range(of: #"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"#, options: .regularExpression) != nil, "\(status)")
        // Under --output json, errors are JSON on stdout too, with a code, and a non-zero exit.
        let jsonError = try setup.run(["stake", "--key", setup.key(0), "--amount", "1,5ACTI", "--output", "json"])
        #expect(jsonError.status == 1)
        let parsedError = try StrictJSON.parse(jsonError.standardOutput)
        #expect(parsedError["code"]?.stringValue == "invalid_input" && parsedError["message"]?.stringValue?.contains("',' at position 2") == true,
                "\(jsonError.standardOutput)")
        let unreachable = try runNode(["status", "--node", "http://127.0.0.1:1"])
        #expect(unreachable.status == 1)
        #expect(unreachable.standardError == "error: cannot reach node at http://127.0.0.1:1: connection refused\n")

        // A user becomes a gateway.
        try fails(["register-gateway", "--key", setup.key(0), "--wait"], "stake 0 ACTI is below the minimum 10,000 ACTI")
        try fails(["propose-event", "--key", setup.key(0), "--ar-tx-id", Self.arTxID, "--content-hash", String(repeating: "1", count: 64),
                   "--kind", "answer"], "is not a registered gateway")
        try fails(["stake", "--key", setup.key(0), "--amount", "lots"], "--amount: 'lots' is not an amount")
        // Money input is exact or refused before anything is signed (these once sent 15 and 10 ACTI).
        try fails(["stake", "--key", setup.key(0), "--amount", "1,5ACTI"], "--amount: '1,5ACTI' is not an amount: ',' at position 2 is not allowed")
        try fails(["transfer", "--key", setup.key(0), "--to", user0, "--amount", "1,,0ACTI"], "',' at position 2 is not allowed")
        try fails(["stake", "--key", setup.key(0), "--amount", "-5"], "--amount: '-5' is not an amount: '-' at position 1")
        try fails(["stake", "--key", setup.key(0), "--amount", "5ACTI", "--fee", "0,001ACTI"], "--fee: '0,001ACTI' is not an amount")
        try fails(["stake", "--key", setup.key(0), "--amount", "1.5"], "has a decimal point but no unit")
        try ok(["query", "account", user0], "nonce:     0")
        try ok(["stake", "--key", setup.key(0), "--amount", "10000ACTI", "--wait"], "stake of 10,000 ACTI: committed at height")
        try ok(["register-gateway", "--key", setup.key(0), "--wait"], "gateway registration: committed")
        try ok(["query", "gateways"], user0)

        // It proposes an event from a payload file.
        let payload = setup.keys + "/payload.json"
        try "{\"answer\": 42}".write(toFile: payload, atomically: true, encoding: .utf8)
        try fails(["propose-event", "--key", setup.key(0), "--ar-tx-id", "short", "--payload", payload, "--kind", "answer"], "--ar-tx-id")
        // Without --wait too: the id covers the block's height, so it waits for the commit and prints it.
        let proposed = try ok(["propose-event", "--key", setup.key(0), "--ar-tx-id", Self.arTxID, "--payload", payload, "--kind", "answer"],
                              "event of kind answer proposed: committed")
        let printedID = try #require(proposed.split(separator: "\n").first { $0.hasPrefix("event id: ") }?.dropFirst(10))
        let listed = try ok(["query", "events", "--author", user0, "--output", "json"], "\"events\"")
        let page = try StrictJSON.parse(listed)
        let event = try #require(page["events"]?.arrayValue?.first?["id"]?.stringValue)
        #expect(String(printedID) == event, "propose-event printed the id the chain gave the event")
        // An Arweave id may start with '-' (base64url): it is a value, not an option.
        let second = try StrictJSON.parse(try ok(["propose-event", "--key", setup.key(0), "--ar-tx-id", Self.dashArTxID, "--payload", payload,
                                                  "--kind", "answer", "--output", "json"], "event_id"))
        let secondID = try #require(second["event_id"]?.stringValue)
        let secondEvent = try StrictJSON.parse(try ok(["query", "event", secondID, "--output", "json"], secondID))
        #expect(secondEvent["author"]?.stringValue == user0 && secondEvent["ar_tx_id"]?.stringValue == Self.dashArTxID)

        // Doomed transactions are refused before signing, with the runtime's own reason, and cost
        // nothing: the nonce does not move.
        let nonceBefore = try StrictJSON.parse(try ok(["query", "account", user0, "--output", "json"], "nonce"))["nonce"]?.numberText
        try fails(["transfer", "--key", setup.key(0), "--to", user0, "--amount", "5000000ACTI"], "would fail:")
        try fails(["transfer", "--key", setup.key(0), "--to", user0, "--amount", "5000000ACTI"], "[insufficient_balance]; nothing was signed or sent")
        try fails(["attest", "--key", setup.key(0), "--event", event, "--valid"], "[own_event]")
        let doomedJSON = try setup.run(["withdraw", "--key", setup.key(0), "--output", "json"])
        #expect(doomedJSON.status == 1 && (try? StrictJSON.parse(doomedJSON.standardOutput))?["code"]?.stringValue == "nothing_to_withdraw",
                "\(doomedJSON.standardOutput)")
        try fails(["withdraw", "--key", setup.key(0)], "[nothing_to_withdraw]")
        try fails(["unjail", "--key", setup.key(0)], "would fail")
        try fails(["stake", "--key", setup.key(0), "--amount", "0ACTI"], "would fail")
        try fails(["register-gateway", "--key", setup.key(0)], "would fail")
        try fails(["unstake", "--key", setup.key(0), "--amount", "20000ACTI"], "would fail")
        #expect(try StrictJSON.parse(try ok(["query", "account", user0, "--output", "json"], "nonce"))["nonce"]?.numberText == nonceBefore)
        // --skip-checks sends it anyway: it is committed, fails and pays its fee.
        try fails(["withdraw", "--key", setup.key(0), "--skip-checks", "--wait"], "failed at height")
        #expect(try StrictJSON.parse(try ok(["query", "account", user0, "--output", "json"], "nonce"))["nonce"]?.numberText != nonceBefore)
        // Without --wait the CLI says inclusion is not yet known.
        let afterSkip = try StrictJSON.parse(try ok(["query", "account", user0, "--output", "json"], "nonce"))["nonce"]?.numberText
        try ok(["transfer", "--key", setup.key(0), "--to", DevnetKeys.user(index: 1).publicKey.hex, "--amount", "1ACTI"], "not yet included")
        for _ in 0..<40 {  // let it commit before the next command reads the nonce
            if try StrictJSON.parse(try ok(["query", "account", user0, "--output", "json"], "nonce"))["nonce"]?.numberText != afterSkip { break }
            Thread.sleep(forTimeInterval: 0.25)
        }
        #expect(page["events"]?.arrayValue?.first?["content_hash"]?.stringValue == SHA256.hash(Array("{\"answer\": 42}".utf8)).hex)

        // Disputes need an accepted event; a pending one is refused up front.
        try fails(["dispute", "--key", setup.key(1), "--event", event, "--bond", "100ACTI", "--reason", Self.arTxID],
                  "is not in its challenge window (it is pending)")
        try fails(["attest", "--home", setup.home, "--event", event, "--valid", "--invalid"], "give exactly one of --valid and --invalid")
        let batch = setup.keys + "/verdicts.txt"
        try "# verdicts\n\(event) valid\n".write(toFile: batch, atomically: true, encoding: .utf8)
        try ok(["attest", "--home", setup.home, "--file", batch, "--wait"], "1 attestation(s): committed")
        try ok(["query", "event", event], "status:        accepted")
        // A verdict on a decided event would be skipped by the rules and still charged: refused before signing.
        try fails(["attest", "--home", setup.home, "--file", batch, "--wait"], "nothing to attest: \(event.prefix(12))… is accepted, no longer open for verdicts")
        try fails(["dispute", "--key", setup.key(1), "--event", event, "--bond", "1ACTI", "--reason", Self.arTxID],
                  "bond 1 ACTI is below the 100 ACTI this event's next dispute must post")
        try ok(["dispute", "--key", setup.key(1), "--event", event, "--bond", "100ACTI", "--reason", Self.dashArTxID, "--wait"],
               "committed")
        let disputed = try StrictJSON.parse(try ok(["query", "event", event, "--output", "json"], "disputed"))
        let dispute = try #require(disputed["dispute"]?["id"]?.stringValue)
        // The only validator attested the event: it is accused, so the dispute is a bond round.
        try ok(["query", "dispute", dispute], "decided:  by bonds: upheld at the deadline unless defended with at least 100 ACTI")
        try fails(["vote-dispute", "--home", setup.home, "--dispute", dispute], "give exactly one of --uphold and --reject")
        try fails(["vote-dispute", "--home", setup.home, "--dispute", dispute, "--uphold", "--wait"], "is a bond round")
        try fails(["defend", "--key", setup.key(2), "--dispute", dispute, "--bond", "99ACTI"], "bond 99 ACTI is below the dispute's bond 100 ACTI")
        try ok(["defend", "--key", setup.key(2), "--dispute", dispute, "--bond", "100ACTI", "--wait"], "defence of dispute")
        try ok(["query", "dispute", dispute], "status:   defended")

        // Money and staking.
        let sent = try StrictJSON.parse(try ok(["transfer", "--key", setup.key(2), "--to", user0, "--amount", "1.5ACTI", "--wait",
                                                "--output", "json"], "\"committed\""))
        let hash = try #require(sent["hash"]?.stringValue)
        try ok(["query", "tx", hash], "call:   transfer")
        try ok(["query", "block", "latest"], "block ")
        try fails(["transfer", "--key", setup.key(2), "--to", "nobody", "--amount", "1ACTI"], "--to 'nobody' is not a 64-character hex key")
        try fails(["unstake", "--key", setup.key(0), "--amount", "1ACTI", "--wait"], "below the minimum gateway stake")
        try fails(["withdraw", "--key", setup.key(0), "--wait"], "withdrawal would fail: there is nothing unbonding")
        try ok(["stake", "--key", setup.key(3), "--amount", "10000ACTI", "--wait"], "committed")
        try ok(["register-validator", "--key", setup.key(3), "--consensus-key", DevnetKeys.key(.validator, index: 7).publicKey.hex,
                "--wait"], "validator registration: committed")
        try ok(["unstake", "--key", setup.key(0), "--amount", "10000ACTI", "--wait"], "unstake of 10,000 ACTI: committed")
        try fails(["unjail", "--home", setup.home, "--wait"], "validator is not jailed")
        try fails(["query", "event", "xyz"], "--id 'xyz' is not 64 hex characters")
        try fails(["stake", "--amount", "1ACTI"], "give --home DIR or --key FILE")
    }
}

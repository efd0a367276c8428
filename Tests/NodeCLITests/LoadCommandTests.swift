import Foundation
import KCNode
import KCTypes
import Testing

/// The benchmark's tools through the binary: `node load` with the knowledge-event workload
/// against a real validator (its users become gateways, propose events with parents, the
/// validator's attester accepts them), carried on by a second run from the printed nonces,
/// and `node verify-rate`.
struct LoadCommandTests {
    static func json(_ text: String) throws -> JSONValue { try StrictJSON.parse(text) }

    @Test func theEventWorkloadProposesEventsThatTheAttesterAccepts() throws {
        let network = try TestNetwork(validators: 1, commitMilliseconds: 20)
        defer { network.stopAll(); network.remove() }
        try network.editConfig(0) { $0.replacingOccurrences(of: "mode = \"off\"", with: "mode = \"format\"") }
        try network.start(0)
        #expect(network.waitHeight(2, seconds: 30), "\(network.describe())")
        let arguments = ["load", "--genesis", network.root + "/genesis.json", "--peer", network.address(0), "--workload", "events",
                         "--rate", "40", "--seconds", "3", "--drain", "15", "--users", "4", "--json"]
        let first = try runNode(arguments)
        #expect(first.status == 0, "\(first.standardError)")
        let report = try Self.json(first.standardOutput)
        #expect(report["workload"]?.stringValue == "events")
        let sent = try #require(report["sent"]?.numberText.flatMap { Int($0) })
        #expect(sent >= 100, "40 a second for 3 s")
        #expect(report["committed"]?.numberText == "\(sent)", "every proposal committed: \(first.standardOutput)")
        #expect(report["p50_ms"] != .null && report["blocks"]?.numberText != "0")
        // Each user bonded and registered (two transactions) before proposing.
        let nonces = try #require(report["next_nonces"]?.stringValue)
        #expect(nonces.split(separator: ",").map { Int($0) ?? 0 }.reduce(0, +) == sent + 8, "\(nonces)")

        // The events are on chain, with parents, and the validator's attester accepts them.
        let listed = EndToEndTests.get(network.rpc(0) + "/events?kind=bench.note&limit=100")
        let events = try Self.json(listed.text)["events"]?.arrayValue ?? []
        #expect(events.count == 100, "\(listed.text)")
        #expect(events.contains { ($0["parents"]?.arrayValue ?? []).count > 0 }, "later events name earlier ones as parents")
        #expect(network.wait(seconds: 20) {
            let accepted = EndToEndTests.get(network.rpc(0) + "/events?kind=bench.note&status=accepted&limit=1")
            return ((try? Self.json(accepted.text))?["events"]?.arrayValue ?? []).count == 1
        }, "no event accepted by the attester")

        // A second run starts from the printed nonces: no setup, everything commits.
        let second = try runNode(arguments.map { $0 == "3" ? "2" : $0 } + ["--nonces", nonces])
        #expect(second.status == 0, "\(second.standardError)")
        let again = try Self.json(second.standardOutput)
        #expect(again["committed"]?.numberText == again["sent"]?.numberText, "\(second.standardOutput)")
    }

    @Test func verifyRateMeasuresOneThreadAndTheGivenThreads() throws {
        let result = try runNode(["verify-rate", "--threads", "2", "--milliseconds", "200"])
        #expect(result.status == 0, "\(result.standardError)")
        let report = try Self.json(result.standardOutput)
        #expect(report["threads"]?.numberText == "2")
        for field in ["per_second_one_thread", "per_second_all_threads"] {
            let rate = try #require(report[field]?.numberText.flatMap { Int($0) })
            #expect(rate > 100, Comment(rawValue: "\(field): \(rate)"))
        }
        let refused = try runNode(["verify-rate", "--threads", "0"])
        #expect(refused.status != 0 && refused.standardError.contains("--threads must be between 1 and 256"), "\(refused.standardError)")
    }
}

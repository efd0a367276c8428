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

    /// One validator (20 ms commit pause) with `edit` applied to its config, started and past
    /// height 2. The caller stops and removes it.
    static func validator(_ edit: (String) -> String) throws -> TestNetwork {
        let network = try TestNetwork(validators: 1, commitMilliseconds: 20)
        do {
            try network.editConfig(0, edit)
            try network.start(0)
        } catch {
            network.stopAll()
            network.remove()
            throw error
        }
        #expect(network.waitHeight(2, seconds: 30), "\(network.describe())")
        return network
    }

    @Test func theEventWorkloadProposesEventsThatTheAttesterAccepts() throws {
        let network = try Self.validator { $0.replacingOccurrences(of: "mode = \"off\"", with: "mode = \"format\"") }
        defer { network.stopAll(); network.remove() }
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

    /// A node whose mempool takes ten transactions from one peer refuses most of a burst, and
    /// each refused nonce leaves its sender's later ones uncommittable: the generator notices a
    /// sender that stopped committing, counts what it sent past the gap as lost, and starts that
    /// sender again from the chain's nonce, so the run goes on committing and ends with every
    /// sent transaction either committed or lost.
    @Test func theGeneratorStartsAStuckSenderAgainFromTheChainsNonce() throws {
        let network = try Self.validator { $0.replacingOccurrences(of: "max_transactions = 50000", with: "max_transactions = 40") }
        defer { network.stopAll(); network.remove() }
        let run = try runNode(["load", "--genesis", network.root + "/genesis.json", "--peer", network.address(0), "--workload", "events",
                               "--rate", "2000", "--seconds", "4", "--drain", "20", "--users", "4", "--resync-after-ms", "500", "--json"])
        #expect(run.status == 0, "\(run.standardError)")
        let report = try Self.json(run.standardOutput)
        func figure(_ name: String) throws -> Int { try #require(report[name]?.numberText.flatMap { Int($0) }, "\(name) in \(run.standardOutput)") }
        let sent = try figure("sent"), committed = try figure("committed"), lost = try figure("lost"), resyncs = try figure("resyncs")
        #expect(lost > 0 && resyncs > 0, "the quota refused some: \(run.standardOutput)")
        #expect(committed > 0)
        #expect(committed + lost == sent, "every sent transaction committed or known lost: \(run.standardOutput)")
        // What the node says it refused (a peer's quota, then the nonces past the gap).
        let metrics = EndToEndTests.get(network.rpc(0) + "/metrics").text
        func refused(_ reason: String) -> Double? {
            let series = "membria_mempool_refused_transactions_total{reason=\"\(reason)\"} "
            return metrics.split(separator: "\n").first { $0.hasPrefix(series) }.flatMap { Double($0.dropFirst(series.count)) }
        }
        #expect(refused("peer_quota").map { $0 > 0 } == true, "the peer's quota refused some")
        #expect(refused("future_nonce").map { $0 > 0 } == true, "and then the nonces past each gap")
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

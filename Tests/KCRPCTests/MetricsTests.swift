import Foundation
import KCCodec
import KCNode
import KCTestSupport
import KCTypes
import Testing

/// `GET /metrics` of a live node: base units, histograms, build and process figures, labels
/// from bounded sets only, and an exposition that Prometheus' own checker (promtool) accepts.
@Suite(.serialized)
struct MetricsTests {
    /// Debian's promtool: on PATH, or where Scripts/install-deps.sh puts it.
    static var promtool: String? {
        let candidates = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/promtool" }
            + [packageRoot.appendingPathComponent(".build/tools/promtool").path]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// The value of an exposition line that starts with `series ` (name and labels).
    func value(_ series: String, in text: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    @Test func theExpositionUsesBaseUnitsHistogramsAndPassesPromtool() throws {
        let node = try LiveNode()
        defer { node.stop() }
        #expect(node.waitHeight(4), "no blocks")
        for _ in 0..<3 { _ = node.get("/status") }
        _ = node.request("DELETE", "/some/path/\(UUID().uuidString)")  // an attacker's method and path
        // A transaction too far ahead of its sender's next nonce to wait for the ones before it:
        // refused, and counted so.
        let user = DevnetKeys.user(index: 0)
        let ahead = TransactionBody(chainID: node.genesis.chainID, sender: user.publicKey, nonce: 500, fee: node.genesis.parameters.fees.minFee,
                                    call: .transfer(to: DevnetKeys.user(index: 1).publicKey, amount: .acti(1))).signed(with: user)
        let refused = node.request("POST", "/txs", body: "{\"tx\":\"\(Hex.encode(ahead.canonicalBytes))\"}")
        #expect((400..<500).contains(refused.status), "\(refused.status) \(refused.text)")
        let text = node.get("/metrics").text
        #expect(value(#"membria_mempool_refused_transactions_total{reason="future_nonce"}"#, in: text) == 1)
        #expect(value(#"membria_mempool_refused_transactions_total{reason="used_nonce"}"#, in: text) == 0)
        #expect(value(#"membria_p2p_dropped_messages_total{direction="inbound"}"#, in: text) == 0)
        // Histograms in seconds, fed by real commits and steps.
        #expect(value("membria_block_interval_seconds_count", in: text).map { $0 >= 2 } == true, "\(text.prefix(2_000))")
        #expect(value("membria_commit_latency_seconds_count", in: text).map { $0 >= 3 } == true)
        #expect(text.contains("membria_block_interval_seconds_bucket{le=\"+Inf\"}"))
        #expect(value("membria_heap_trim_duration_seconds_count", in: text) != nil, "the trim histogram is served from the start")
        // The proposal cap (ADR 0025): the blocks here hold a transaction or none, no samples yet.
        #expect(value("membria_proposal_max_transactions", in: text) == Double(ProposalPace.initialLimit))
        #expect(value("membria_failed_rounds_total", in: text) == 0, "a lone validator decides every height in round 0")
        #expect(value(#"membria_step_duration_seconds_count{step="prevote"}"#, in: text).map { $0 >= 3 } == true)
        #expect(value(#"membria_rpc_request_duration_seconds_count{route="/status",method="GET"}"#, in: text).map { $0 >= 3 } == true,
                "\(text.split(separator: "\n").filter { $0.contains("rpc_request") }.prefix(8))")
        // Labels come from bounded sets: the stranger's path and method are not series.
        #expect(text.contains(#"route="unmatched",method="other""#))
        #expect(!text.contains("/some/path/") && !text.contains("DELETE"))
        #expect(!text.contains("milliseconds"))
        // Build and process figures.
        #expect(text.contains("membria_build_info{version=\"\(BuildInfo.version)\",commit=\"\(BuildInfo.commit)\",swift=\"\(BuildInfo.swiftVersion)\"} 1"))
        #expect(value("process_resident_memory_bytes", in: text).map { $0 > 1_000_000 } == true)
        #expect(value("process_open_fds", in: text).map { $0 > 3 } == true)
        #expect(value("process_cpu_seconds_total", in: text).map { $0 > 0 } == true)
        #expect(value("process_start_time_seconds", in: text).map { abs($0 - Date().timeIntervalSince1970) < 3_600 } == true)
        #expect(value("membria_last_commit_age_seconds", in: text).map { $0 < 30 } == true)
        // Prometheus' checker.
        let promtool = try #require(Self.promtool, "promtool is missing: Scripts/install-deps.sh fetches it into .build/tools")
        let check = try runTool(promtool, ["check", "metrics"], input: text)
        #expect(check.status == 0 && check.output.isEmpty, "promtool check metrics: \(check.output)")
    }

    /// What ships in Docker/ for monitoring is valid for Prometheus, and the dashboard and the
    /// alerts ask only for series a node serves.
    @Test func theShippedMonitoringConfigMatchesTheExposition() throws {
        let promtool = try #require(Self.promtool, "promtool is missing: Scripts/install-deps.sh fetches it into .build/tools")
        for arguments in [["check", "config", "Docker/prometheus.yml"], ["check", "rules", "Docker/alerts.yml"]] {
            let check = try runTool(promtool, arguments, in: packageRoot)
            #expect(check.status == 0, "promtool \(arguments.joined(separator: " ")): \(check.output)")
        }
        let node = try LiveNode()
        defer { node.stop() }
        #expect(node.waitHeight(3), "no blocks")
        _ = node.get("/status")
        let exposition = node.get("/metrics").text
        let served = Set(exposition.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { line in
            line.split(whereSeparator: { $0 == "{" || $0 == " " }).first.map(String.init)
        })
        let dashboard = try String(contentsOf: packageRoot.appendingPathComponent("Docker/grafana/dashboards/membria-node.json"), encoding: .utf8)
        let alerts = try String(contentsOf: packageRoot.appendingPathComponent("Docker/alerts.yml"), encoding: .utf8)
        _ = try StrictJSON.parse(dashboard)
        let pattern = try Regex("(membria|process)_[a-z0-9_]+")
        var asked: Set<String> = []
        for text in [dashboard, alerts] {
            for match in text.matches(of: pattern) { asked.insert(String(text[match.range])) }
        }
        #expect(asked.count >= 15, "\(asked.sorted())")
        #expect(asked.subtracting(served).isEmpty, "asked for but not served: \(asked.subtracting(served).sorted())")
    }

    /// Probes ask with HEAD: 200 with the content type and no body.
    @Test func headAnswersWithoutABody() throws {
        let node = try LiveNode()
        defer { node.stop() }
        let socket = try RawSocket(port: node.port)
        #expect(socket.send("HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        var bytes: [UInt8] = []
        while let chunk = socket.receive(), !chunk.isEmpty { bytes += chunk }
        let answer = String(decoding: bytes, as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
        #expect(answer.lowercased().contains("content-type: text/plain; version=0.0.4"))
        #expect(answer.hasSuffix("\r\n\r\n"), "no body after the headers: \(answer)")
    }
}

import Foundation
import KCNode
import KCStorage
import Testing

struct NodeConfigTests {
    @Test func theInitTemplateParsesToItsValues() throws {
        let peer = String(repeating: "ab", count: 32) + "@127.0.0.1:26666"
        let text = ConfigTemplate.render(moniker: "alice", ports: NodePorts(p2pPort: 26676, rpcPort: 26677), persistentPeers: [peer])
        let config = try NodeConfig.parse(text)
        #expect(config.moniker == "alice")
        #expect(config.p2pListenAddress == "127.0.0.1:26676")
        #expect(config.rpcListenAddress == "127.0.0.1:26677")
        #expect(config.persistentPeers == [peer])
        #expect(config.timeouts.proposeMilliseconds == 1_000 && config.timeouts.proposeDeltaMilliseconds == 500)
        #expect(config.attesterMode == .off)
        #expect(config.mempoolMaxBytes == 67_108_864)
        #expect(config.stateCacheMiB == 64)
        #expect(try NodeConfig.parse("[storage]\nstate_cache_mb = 512").stateCacheMiB == 512)
        let store = try NodeConfig.parse("[storage]\nblock_cache_mb = 16\nwrite_buffer_mb = 8").storeConfiguration
        #expect(store.blockCacheBytes == 16 << 20 && store.writeBufferBytes == 8 << 20)
        #expect(config.storeConfiguration.blockCacheBytes == RocksDBStore.Configuration().blockCacheBytes)
        #expect(config.heapTrimIntervalMilliseconds == 10_000)
        #expect(try NodeConfig.parse("[storage]\nheap_trim_interval_ms = 0").heapTrimIntervalMilliseconds == 0)
        #expect(config.queryIndexes && NodeConfig().queryIndexes)
        #expect(try NodeConfig.parse("[storage]\nindexes = false").queryIndexes == false)
        #expect(config.logLevel == .info && config.logFormat == .text)
        #expect(try NodeConfig.parse("[log]\nlevel = \"warning\"\nformat = \"json\"").logFormat == .json)
    }

    /// The template's commented-out keys show what the node derives when they are unset: set
    /// to the values shown, they change nothing (a comment left behind by a changed default fails).
    @Test func theTemplatesCommentedKeysShowTheDerivedDefaults() throws {
        let text = ConfigTemplate.render(moniker: "m", ports: NodePorts(p2pPort: 1, rpcPort: 2), persistentPeers: [])
        let pattern = #"(?m)^(\s*)# ([a-z_]+ = )"#
        let commented = text.split(separator: "\n").filter { $0.range(of: pattern, options: .regularExpression) != nil }
        #expect(commented.count == 3, "\(commented)")
        let unset = try NodeConfig.parse(text)
        let set = try NodeConfig.parse(text.replacingOccurrences(of: pattern, with: "$1$2", options: .regularExpression))
        #expect(set.proposalBudgetMilliseconds != nil && set.mempoolMaxPerPeer != nil && set.mempoolMaxQueued != nil, "the keys were read")
        #expect(set.effectiveProposalBudgetMilliseconds == unset.effectiveProposalBudgetMilliseconds)
        #expect(set.mempoolLimits == unset.mempoolLimits)
    }

    /// The mempool's bounds come from `[mempool]`: the template's values are the built-in ones,
    /// a peer's share and the waiting transactions default to parts of `max_transactions`, and
    /// a part set above the whole is refused with its own line, whichever key comes first.
    @Test func mempoolBoundsAreTheOperators() throws {
        let template = try NodeConfig.parse(ConfigTemplate.render(moniker: "m", ports: NodePorts(p2pPort: 1, rpcPort: 2), persistentPeers: []))
        let built = Mempool.Limits()
        let limits = template.mempoolLimits
        #expect(limits.maxTransactions == built.maxTransactions && limits.maxBytes == built.maxBytes)
        #expect(limits.maxPerPeer == built.maxPerPeer && limits.maxPerPeer == 12_500)
        #expect(limits.maxNonceGap == built.maxNonceGap && limits.maxQueued == built.maxQueued && limits.maxQueued == 6_250)
        #expect(limits.queuedHeights == built.queuedHeights)
        let derived = try NodeConfig.parse("[mempool]\nmax_transactions = 800").mempoolLimits
        #expect(derived.maxPerPeer == 200 && derived.maxQueued == 100)
        let set = try NodeConfig.parse("[mempool]\nmax_per_peer = 900\nmax_nonce_gap = 0\nmax_queued = 10\nqueued_heights = 20").mempoolLimits
        #expect(set.maxPerPeer == 900 && set.maxNonceGap == 0 && set.maxQueued == 10 && set.queuedHeights == 20)
        for (text, expected) in [
            ("[mempool]\nmax_queued = 900\nmax_transactions = 800", "config.toml line 2: mempool.max_queued = 900 is more than mempool.max_transactions (800)"),
            ("[mempool]\nmax_transactions = 800\n\nmax_per_peer = 801", "config.toml line 4: mempool.max_per_peer = 801 is more than mempool.max_transactions (800)"),
            ("[mempool]\nmax_nonce_gap = 5000", "config.toml line 2: mempool.max_nonce_gap = 5000 is outside 0...1024"),
            ("[mempool]\nqueued_heights = 0", "config.toml line 2: mempool.queued_heights = 0 is outside 1...100000"),
        ] {
            do {
                _ = try NodeConfig.parse(text)
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.description.contains(expected), "\(text) -> \(error.description)")
            }
        }
    }

    @Test func emptyFileGivesDefaults() throws {
        #expect(try NodeConfig.parse("# nothing set\n") == NodeConfig())
    }

    @Test func mistakesNameTheLineAndKey() {
        let cases: [(String, String)] = [
            ("[p2p]\nlisten_adress = \"127.0.0.1:1\"", "config.toml line 2: unknown key p2p.listen_adress"),
            ("[rpcc]", "config.toml line 1: unknown section [rpcc]"),
            ("[consensus]\ntimeout_propose_ms = \"fast\"", "config.toml line 2: consensus.timeout_propose_ms must be a whole number"),
            ("[consensus]\ntimeout_propose_ms = 99999999", "outside 0...3600000"),
            ("[log]\nlevel = \"loud\"", "log.level \"loud\" is not one of"),
            ("[log]\nformat = \"xml\"", "config.toml line 2: log.format \"xml\" is not one of text, json"),
            ("[attester]\nmode = \"maybe\"", "attester.mode \"maybe\" is not one of off, format, fetch"),
            ("[p2p]\npersistent_peers = [\"nobody\"]", "'nobody' is not NODE_ID@HOST:PORT"),
            ("[rpc]\nlisten_address = \"localhost\"", "is not HOST:PORT"),
            ("moniker = \"a\"\nmoniker = \"b\"", "config.toml line 2: moniker is set twice"),
            ("moniker \"a\"", "config.toml line 1: expected 'key = value'"),
            ("moniker = \"unterminated", "config.toml line 1: moniker: malformed string"),
            ("moniker = \"a\" b", "config.toml line 1: moniker: malformed string"),
            ("moniker = \"bad \\q escape\"", "config.toml line 1: moniker: malformed string"),
            ("[p2p]\npersistent_peers = [\n  \"a\",\n", "config.toml line 2: p2p.persistent_peers: the array opened on this line is never closed"),
            ("[mempool]\nmax_transactions = 1__0", "is not a string, whole number, boolean or array of strings"),
            ("[consensus]\ntimeout_commit_ms = 1.5", "config.toml line 2: consensus.timeout_commit_ms must be a whole number, found 1.5"),
            ("[mempool]\n\nmax_transactions = \"many\"", "config.toml line 3: mempool.max_transactions must be a whole number, found the string \"many\""),
            ("[p2p]\npersistent_peers = [1, 2]", "p2p.persistent_peers must be an array of strings"),
            ("[p2p.extra]\nkey = 1", "config.toml line 1: unknown section [p2p.extra]"),
            // Inputs on which toml++ (TOMLKit 0.6.0) aborted, found by the config fuzz target (ADR 0012).
            ("[\r\r\r\r", "config.toml line 1: not valid TOML: control character U+000D"),
            ("moniker = \"a\"\r\n[\u{FFFD}\u{FFFD}:]", "config.toml line 2: unknown section [\u{FFFD}\u{FFFD}:]"),
            ("[[ # x\n", "config.toml line 1: malformed section header '[['"),
            ("#\"\n\n[\u{34F}\u{FFFD}\n\u{FFFD}is]", "config.toml line 3: expected 'key = value'"),
            ("rpc.max_connections= [}", "config.toml line 1: rpc.max_connections: the array opened on this line is never closed"),
            ("rpc.max_connections= [1]]", "config.toml line 1: rpc.max_connections: malformed array"),
            ("moniker = \"a\"\n[log]\nlevel = \"info\u{7}\"", "config.toml line 3: not valid TOML: control character U+0007"),
            ("[arweave]\ngateway = \"ftp://x\"", "must start with http:// or https://"),
            ("[storage]\nstate_cache_mb = 0", "config.toml line 2: storage.state_cache_mb"),
            ("[storage]\nwrite_buffer_mb = 1", "config.toml line 2: storage.write_buffer_mb"),
            ("[storage]\nheap_trim_interval_ms = -5", "config.toml line 2: storage.heap_trim_interval_ms"),
            ("[storage]\nheap_trim_interval_ms = 50", "config.toml line 2: storage.heap_trim_interval_ms = 50: use 0 (never) or at least 1000"),
            ("[storage]\nindexes = \"off\"", "config.toml line 2: storage.indexes must be true or false"),
        ]
        for (text, expected) in cases {
            do {
                _ = try NodeConfig.parse(text)
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.description.contains(expected), "\(text) -> \(error.description)")
            }
        }
    }

    /// The TOML a config is written in, in any layout: a multi-line array with comments and a
    /// trailing comma (how most operators write peers), literal strings, escapes, signs and
    /// underscores in numbers, inline whitespace.
    @Test func validTOMLInAnyLayoutIsRead() throws {
        let first = String(repeating: "ab", count: 32) + "@127.0.0.1:26666"
        let second = String(repeating: "cd", count: 32) + "@127.0.0.2:26666"
        let text = """
        moniker = 'literal # not a comment'

        [p2p]
        persistent_peers = [
            "\(first)",  # the first
            "\(second)",
        ]
            max_inbound_peers   =   41
        """
        let config = try NodeConfig.parse(text)
        #expect(config.moniker == "literal # not a comment")
        #expect(config.persistentPeers == [first, second])
        #expect(config.maxInboundPeers == 41)
        let escaped = try NodeConfig.parse("moniker = \"tab\\there \\u00e9 \\\"q\\\" # not a comment\" # a comment\n[p2p]\nmax_outbound_peers = +1_0\n")
        #expect(escaped.moniker == "tab\there é \"q\" # not a comment" && escaped.maxOutboundPeers == 10)
    }

    @Test func windowsLineEndingsAreFine() throws {
        let config = try NodeConfig.parse("moniker = \"crlf\"\r\n[mempool]\r\nmax_transactions = 12\r\n")
        #expect(config.moniker == "crlf" && config.mempoolMaxTransactions == 12)
        do {
            _ = try NodeConfig.parse("moniker = \"crlf\"\r\n[mempool]\r\nmax_transactions = \"x\"\r\n")
            Issue.record("accepted a string for a number")
        } catch {
            #expect(error.description.hasPrefix("config.toml line 3:"), "\(error.description)")
        }
    }

    @Test func commentsAndUnderscoresAreFine() throws {
        let config = try NodeConfig.parse("moniker = \"a#b\" # the name\n[mempool]\nmax_transactions = 10_000 # ten thousand\n")
        #expect(config.moniker == "a#b")
        #expect(config.mempoolMaxTransactions == 10_000)
    }
}

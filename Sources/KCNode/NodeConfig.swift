import Foundation
import KCConsensus
import KCCrypto
import KCNetwork
import KCStorage

/// The node's local settings, read from `HOME/config.toml` (the commented template that
/// `node init` writes lists every key). Anything every node must agree on is in the genesis
/// file instead. The file is TOML, read by the strict parser below (ADR 0012: the subset a node
/// config uses, multi-line arrays included). Missing keys take the defaults below; unknown
/// keys, sections and values of the wrong type or range are refused with the key and its line.
public struct NodeConfig: Equatable, Sendable {
    public enum AttesterMode: String, Sendable, CaseIterable { case off, format, fetch }

    public var moniker = "node"
    public var logLevel = LogLevel.info
    public var logFormat = LogFormat.text
    public var p2pListenAddress = "127.0.0.1:26656"
    public var persistentPeers: [String] = []
    /// Nodes asked for addresses when the address book knows too few (NODE_ID@HOST:PORT).
    public var seeds: [String] = []
    /// Peer exchange: keep an address book and dial from it (`p2p.pex`).
    public var pex = true
    /// Crawl, hand out addresses and hang up (`p2p.seed_mode`).
    public var seedMode = false
    /// HOST:PORT other nodes should dial to reach this one ("" : what they observe).
    public var externalAddress = ""
    public var maxInboundPeers = 40
    public var maxOutboundPeers = 10
    public var maxInboundPeersPerAddress = 8
    public var maxInboundFramesPerSecond = 2_000
    /// Prove the validator key in P2P handshakes, so peers keep a slot for this node.
    public var announceValidator = true
    public var maxInboundBytesPerSecond = 20 << 20
    /// Node ids (hex) admitted beyond the inbound limits and never evicted.
    public var unconditionalPeerIDs: [String] = []
    public var rpcListenAddress = "127.0.0.1:26657"
    public var rpcMaxBodyBytes = 1 << 20
    public var rpcRateLimitPerSecond = 200
    public var rpcMaxConnections = 1_024
    public var rpcMaxConnectionsPerAddress = 64
    public var rpcRequestTimeoutMilliseconds: UInt64 = 10_000
    public var rpcIdleTimeoutMilliseconds: UInt64 = 30_000
    public var rpcHealthMaxBlockAgeMilliseconds: UInt64 = 60_000
    public var rpcMaxConcurrentChecks = 4
    public var timeouts = TimeoutConfig()
    public var timeoutCommitMilliseconds: UInt64 = 1_000
    /// The execution time this node's proposals are sized to (ADR 0025); nil: a quarter of
    /// `timeout_propose_ms`; 0: only the genesis limits.
    public var proposalBudgetMilliseconds: UInt64? = nil
    /// Before signing anything, refuse to start if this validator's key signed any of the last
    /// this many committed blocks (0: no check). Guards against running one key on two machines.
    public var doubleSignCheckHeights = 0
    public var mempoolMaxTransactions = 50_000
    public var mempoolMaxBytes = 64 << 20
    /// Transactions one peer's messages may hold in the mempool (nil: a quarter of
    /// `mempoolMaxTransactions`).
    public var mempoolMaxPerPeer: Int? = nil
    /// How far ahead of its sender's next nonce a transaction may wait (ADR 0026).
    public var mempoolMaxNonceGap: UInt64 = 64
    /// Transactions waiting for an earlier nonce, in all (nil: an eighth of `mempoolMaxTransactions`).
    public var mempoolMaxQueued: Int? = nil
    /// Heights a transaction may wait for an earlier nonce before it is dropped.
    public var mempoolQueuedHeights: UInt64 = 300
    public var attesterMode = AttesterMode.off
    public var arweaveGateway = "https://arweave.net"
    public var arweaveTimeoutMilliseconds: UInt64 = 5_000
    public var arweaveMaxPayloadBytes = 10 << 20
    /// The file holding the passphrase of encrypted key files (nil: ask on the terminal).
    public var keyPassphraseFile: String? = nil
    /// Blocks kept below the tip (0: every block, an archive node). See specs/storage.md.
    public var retainBlocks: UInt64 = 0
    /// A snapshot of the state every this many heights, for state sync (0: none).
    public var snapshotInterval: UInt64 = 0
    /// Snapshots kept (the newest).
    public var snapshotKeep = 2
    /// Memory for the newest state's hot entries and trie nodes, in MiB (ADR 0018).
    public var stateCacheMiB = 64
    /// RocksDB's block cache (data, index and filter blocks) and memtable size, in MiB.
    public var blockCacheMiB = 64
    public var writeBufferMiB = 32
    /// Keep the query indexes (transactions by hash, events by status, author, kind, ArTxID and
    /// parent): false keeps none; the attester still finds the pending events in the state's
    /// attestation queue (ADRs 0027, 0030).
    public var queryIndexes = true
    /// Every this many milliseconds `node start` gives the allocator's free pages back to the
    /// system (`malloc_trim`, ADR 0021); 0: never.
    public var heapTrimIntervalMilliseconds: UInt64 = 10_000

    /// The budget in force: the one set, or a quarter of the propose timeout.
    public var effectiveProposalBudgetMilliseconds: UInt64 { proposalBudgetMilliseconds ?? timeouts.proposeMilliseconds / 4 }

    /// The store's settings from this config.
    public var storeConfiguration: RocksDBStore.Configuration {
        var configuration = RocksDBStore.Configuration()
        configuration.blockCacheBytes = blockCacheMiB << 20
        configuration.writeBufferBytes = writeBufferMiB << 20
        return configuration
    }
    /// On an empty store, restore a peer's snapshot instead of replaying from genesis.
    public var stateSync = false

    /// Where the passphrase of an encrypted key file comes from.
    public var keyPassphrase: KeyPassphrase { keyPassphraseFile.map { .file($0) } ?? .prompt }

    public init() {}

    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        /// The line (from 1) the problem is on; 0 when it has none.
        public let line: Int
        public let message: String
        public var description: String { line > 0 ? "config.toml line \(line): \(message)" : "config.toml: \(message)" }
    }

    /// A TOML value of the kinds the config uses; `other` names any other kind.
    enum Value: Equatable {
        case string(String)
        case integer(Int)
        case bool(Bool)
        case strings([String])
        case other(kind: String, text: String)
    }

    static let sections = ["log", "p2p", "rpc", "consensus", "mempool", "attester", "arweave", "keys", "storage", "statesync"]

    /// Reads the TOML a node config uses: `[section]` headers, `key = value` lines, values that
    /// are basic strings (with TOML's escapes), literal strings, whole numbers (`10_000`, signs),
    /// booleans, and arrays of strings over one or several lines (comments and a trailing comma
    /// allowed); `#` comments; LF or CRLF line ends. Anything else is refused with its line.
    public static func parse(_ text: String) throws(ParseError) -> NodeConfig {
        if let (line, scalar) = firstControlCharacter(text) {
            let code = String(scalar.value, radix: 16, uppercase: true)
            throw ParseError(line: line, message: "not valid TOML: control character U+\(String(repeating: "0", count: max(0, 4 - code.count)))\(code) (only tab, and a carriage return before a line feed, are allowed)")
        }
        let lines = text.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false)
        var config = NodeConfig()
        var section = ""
        var seen = Set<String>()
        var lineOf: [String: Int] = [:]
        var index = 0
        while index < lines.count {
            let lineNumber = index + 1
            let line = stripComment(String(lines[index])).trimmingSpaces()
            index += 1
            if line.isEmpty { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.count > 2 else { throw ParseError(line: lineNumber, message: "malformed section header '\(line)'") }
                section = String(line.dropFirst().dropLast()).trimmingSpaces()
                guard sections.contains(section) else { throw ParseError(line: lineNumber, message: "unknown section [\(section)]") }
                continue
            }
            guard let equals = line.firstIndex(of: "=") else {
                throw ParseError(line: lineNumber, message: "expected 'key = value', found '\(line.prefix(80))'")
            }
            let key = String(line[..<equals]).trimmingSpaces()
            var valueText = String(line[line.index(after: equals)...]).trimmingSpaces()
            let path = section.isEmpty ? key : "\(section).\(key)"
            guard seen.insert(path).inserted else { throw ParseError(line: lineNumber, message: "\(path) is set twice") }
            // An array may go on over the next lines, until its brackets close.
            if valueText.hasPrefix("[") {
                while openBrackets(valueText) > 0 {
                    guard index < lines.count else {
                        throw ParseError(line: lineNumber, message: "\(path): the array opened on this line is never closed")
                    }
                    valueText += " " + stripComment(String(lines[index])).trimmingSpaces()
                    index += 1
                }
            }
            let value = try parseValue(valueText, line: lineNumber, key: path)
            try config.apply(path, value, line: lineNumber)
            lineOf[path] = lineNumber
        }
        try config.checkMempoolShares(lineOf: lineOf)
        return config
    }

    /// The mempool's limits, from `[mempool]`.
    public var mempoolLimits: Mempool.Limits {
        Mempool.Limits(maxTransactions: mempoolMaxTransactions, maxBytes: mempoolMaxBytes, maxPerPeer: mempoolMaxPerPeer,
                       maxNonceGap: mempoolMaxNonceGap, maxQueued: mempoolMaxQueued, queuedHeights: mempoolQueuedHeights)
    }

    /// A peer's share and the waiting transactions are parts of `mempool.max_transactions`:
    /// either set above it is a mistake, named with its line once every key is read.
    func checkMempoolShares(lineOf: [String: Int]) throws(ParseError) {
        for (key, value) in [("mempool.max_per_peer", mempoolMaxPerPeer), ("mempool.max_queued", mempoolMaxQueued)] {
            guard let value, value > mempoolMaxTransactions else { continue }
            throw ParseError(line: lineOf[key] ?? 0, message: "\(key) = \(value) is more than mempool.max_transactions (\(mempoolMaxTransactions)): it is a part of it; lower it or raise max_transactions")
        }
    }

    /// The first control character TOML forbids, and its line.
    static func firstControlCharacter(_ text: String) -> (Int, Unicode.Scalar)? {
        var line = 1
        var previousCR = false
        for scalar in text.unicodeScalars {
            if previousCR && scalar != "\n" { return (line, "\r") }
            previousCR = scalar == "\r"
            if scalar == "\n" { line += 1; continue }
            if scalar == "\t" || scalar == "\r" { continue }
            if scalar.value < 0x20 || scalar.value == 0x7F { return (line, scalar) }
        }
        return previousCR ? (line, "\r") : nil
    }

    /// Walks `text`, calling `visit` with each character and whether it stands outside basic
    /// and literal strings (quotes themselves count as inside); `visit` returns false to stop.
    static func scan(_ text: String, _ visit: (Character, _ outside: Bool) -> Bool) {
        var quote: Character? = nil
        var escaped = false
        for character in text {
            var outside = false
            if let open = quote {
                if escaped { escaped = false } else if open == "\"" && character == "\\" { escaped = true } else if character == open { quote = nil }
            } else if character == "\"" || character == "'" {
                quote = character
            } else {
                outside = true
            }
            guard visit(character, outside) else { return }
        }
    }

    /// `line` up to its comment: a `#` outside basic and literal strings.
    static func stripComment(_ line: String) -> String {
        var result = ""
        scan(line) { character, outside in
            if outside && character == "#" { return false }
            result.append(character)
            return true
        }
        return result
    }

    /// `[` minus `]` outside strings: above zero while an array is still open.
    static func openBrackets(_ text: String) -> Int {
        var depth = 0
        scan(text) { character, outside in
            if outside && character == "[" { depth += 1 }
            if outside && character == "]" { depth -= 1 }
            return true
        }
        return depth
    }

    static func parseValue(_ text: String, line: Int, key: String) throws(ParseError) -> Value {
        if text.hasPrefix("\"") || text.hasPrefix("'") {
            guard let string = parseString(text) else {
                throw ParseError(line: line, message: "\(key): malformed string \(text.prefix(80)) (a string ends at its closing quote; write \\\" for a quote inside)")
            }
            return .string(string)
        }
        if text == "true" { return .bool(true) }
        if text == "false" { return .bool(false) }
        if text.hasPrefix("[") {
            guard text.hasSuffix("]"), openBrackets(text) == 0 else { throw ParseError(line: line, message: "\(key): malformed array \(text.prefix(80))") }
            var items: [String] = []
            for part in splitTopLevel(String(text.dropFirst().dropLast())) {
                let item = part.trimmingSpaces()
                if item.isEmpty { continue }  // a trailing comma, or an empty array
                guard case .string(let string) = try parseValue(item, line: line, key: key) else {
                    return .other(kind: "array with \(item.prefix(40)) in it", text: text)
                }
                items.append(string)
            }
            return .strings(items)
        }
        if let number = wholeNumber(text) { return .integer(number) }
        if text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) && text.first.map({ $0.isNumber || $0 == "-" || $0 == "+" }) == true {
            return .other(kind: "floating-point number", text: text)
        }
        throw ParseError(line: line, message: "\(key): '\(text.prefix(80))' is not a string, whole number, boolean or array of strings")
    }

    /// A TOML decimal integer: an optional sign, digits, single underscores between digits.
    static func wholeNumber(_ text: String) -> Int? {
        var digits = Substring(text)
        var negative = false
        if let sign = digits.first, sign == "+" || sign == "-" { negative = sign == "-"; digits = digits.dropFirst() }
        guard let first = digits.first, let last = digits.last, first.isASCII && first.isNumber, last.isASCII && last.isNumber,
              !digits.contains("__"), digits.allSatisfy({ ($0.isASCII && $0.isNumber) || $0 == "_" }) else { return nil }
        guard let magnitude = Int(digits.filter { $0 != "_" }) else { return nil }
        return negative ? -magnitude : magnitude
    }

    /// A basic string with TOML's escapes, or a literal string; nil if malformed.
    static func parseString(_ text: String) -> String? {
        guard let open = text.first, text.count >= 2, text.last == open else { return nil }
        let body = text.dropFirst().dropLast()
        if open == "'" { return body.contains("'") ? nil : String(body) }
        var result = ""
        var iterator = body.makeIterator()
        while let character = iterator.next() {
            if character == "\"" { return nil }
            guard character == "\\" else { result.append(character); continue }
            switch iterator.next() {
            case "b": result.append("\u{8}")
            case "t": result.append("\t")
            case "n": result.append("\n")
            case "f": result.append("\u{C}")
            case "r": result.append("\r")
            case "\"": result.append("\"")
            case "\\": result.append("\\")
            case let marker where marker == "u" || marker == "U":
                var hex = ""
                for _ in 0..<(marker == "u" ? 4 : 8) { guard let digit = iterator.next() else { return nil }; hex.append(digit) }
                guard let value = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(value) else { return nil }
                result.unicodeScalars.append(scalar)
            default: return nil
            }
        }
        return result
    }

    /// `text` split at commas outside strings.
    static func splitTopLevel(_ text: String) -> [String] {
        var parts: [String] = []
        var current = ""
        scan(text) { character, outside in
            if outside && character == "," {
                parts.append(current)
                current = ""
            } else {
                current.append(character)
            }
            return true
        }
        parts.append(current)
        return parts
    }

    mutating func apply(_ key: String, _ value: Value, line: Int) throws(ParseError) {
        let found: String
        switch value {
        case .string(let text): found = ", found the string \"\(text.prefix(80))\""
        case .integer(let number): found = ", found the number \(number)"
        case .bool(let flag): found = ", found \(flag)"
        case .strings: found = ", found an array"
        case .other(let kind, let text): found = ", found \(text.prefix(80)) (\(kind))"
        }
        func string() throws(ParseError) -> String {
            guard case .string(let text) = value else { throw ParseError(line: line, message: "\(key) must be a string in quotes\(found)") }
            return text
        }
        func boolean() throws(ParseError) -> Bool {
            guard case .bool(let flag) = value else { throw ParseError(line: line, message: "\(key) must be true or false\(found)") }
            return flag
        }
        func integer(_ range: ClosedRange<Int>) throws(ParseError) -> Int {
            guard case .integer(let number) = value else { throw ParseError(line: line, message: "\(key) must be a whole number\(found)") }
            guard range.contains(number) else {
                throw ParseError(line: line, message: "\(key) = \(number) is outside \(range.lowerBound)...\(range.upperBound)")
            }
            return number
        }
        func milliseconds() throws(ParseError) -> UInt64 { UInt64(try integer(0...3_600_000)) }
        func address(allowAnyPort: Bool = false) throws(ParseError) -> String {
            let text = try string()
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
                  ((allowAnyPort ? 0 : 1)...65535).contains(port), colon != text.startIndex else {
                throw ParseError(line: line, message: "\(key) = \"\(text)\" is not HOST:PORT")
            }
            return text
        }
        switch key {
        case "moniker": moniker = try string()
        case "log.level":
            let level = try string()
            guard let known = LogLevel(name: level) else {
                throw ParseError(line: line, message: "log.level \"\(level)\" is not one of \(LogLevel.allCases.map(\.name).joined(separator: ", "))")
            }
            logLevel = known
        case "log.format":
            let format = try string()
            guard let known = LogFormat(rawValue: format) else {
                throw ParseError(line: line, message: "log.format \"\(format)\" is not one of \(LogFormat.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            logFormat = known
        case "p2p.listen_address": p2pListenAddress = try address(allowAnyPort: true)  // port 0: any free port
        case "p2p.persistent_peers":
            guard case .strings(let peers) = value else { throw ParseError(line: line, message: "\(key) must be an array of strings\(found)") }
            for peer in peers where !PeerAddress.isWellFormed(peer) {
                throw ParseError(line: line, message: "\(key): '\(peer)' is not NODE_ID@HOST:PORT")
            }
            persistentPeers = peers
        case "p2p.seeds":
            guard case .strings(let list) = value else { throw ParseError(line: line, message: "\(key) must be an array of strings\(found)") }
            for peer in list where !PeerAddress.isWellFormed(peer) {
                throw ParseError(line: line, message: "\(key): '\(peer)' is not NODE_ID@HOST:PORT")
            }
            seeds = list
        case "p2p.pex": pex = try boolean()
        case "p2p.seed_mode": seedMode = try boolean()
        case "p2p.external_address":
            let text = try string()
            if !text.isEmpty {
                guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65_535).contains(port),
                      PeerAddress.isValidHost(String(text[..<colon])) else {
                    throw ParseError(line: line, message: "\(key) \"\(text)\" is not HOST:PORT (an IP address or host name, and a port 1-65535)")
                }
            }
            externalAddress = text
        case "p2p.max_inbound_peers": maxInboundPeers = try integer(0...10_000)
        case "p2p.max_outbound_peers": maxOutboundPeers = try integer(0...1_000)
        case "p2p.max_inbound_peers_per_address": maxInboundPeersPerAddress = try integer(1...10_000)
        case "p2p.max_inbound_frames_per_second": maxInboundFramesPerSecond = try integer(10...10_000_000)
        case "p2p.announce_validator": announceValidator = try boolean()
        case "p2p.max_inbound_bytes_per_second": maxInboundBytesPerSecond = try integer(65_536...(1 << 34))
        case "p2p.unconditional_peer_ids":
            guard case .strings(let ids) = value else { throw ParseError(line: line, message: "\(key) must be an array of strings\(found)") }
            for id in ids where PublicKey(hex: id) == nil {
                throw ParseError(line: line, message: "\(key): '\(id)' is not a node id (64 hex digits)")
            }
            unconditionalPeerIDs = ids
        case "rpc.listen_address": rpcListenAddress = try address(allowAnyPort: true)  // port 0: any free port
        case "rpc.max_body_bytes": rpcMaxBodyBytes = try integer(1_024...(64 << 20))
        case "rpc.rate_limit_per_second": rpcRateLimitPerSecond = try integer(1...1_000_000)
        case "rpc.max_connections": rpcMaxConnections = try integer(1...1_000_000)
        case "rpc.max_connections_per_address": rpcMaxConnectionsPerAddress = try integer(1...1_000_000)
        case "rpc.request_timeout_ms": rpcRequestTimeoutMilliseconds = try milliseconds()
        case "rpc.idle_timeout_ms": rpcIdleTimeoutMilliseconds = try milliseconds()
        case "rpc.health_max_block_age_ms": rpcHealthMaxBlockAgeMilliseconds = UInt64(try integer(1_000...86_400_000))
        case "rpc.max_concurrent_checks": rpcMaxConcurrentChecks = try integer(0...256)
        case "consensus.timeout_propose_ms": timeouts.proposeMilliseconds = try milliseconds()
        case "consensus.timeout_propose_delta_ms": timeouts.proposeDeltaMilliseconds = try milliseconds()
        case "consensus.timeout_prevote_ms": timeouts.prevoteMilliseconds = try milliseconds()
        case "consensus.timeout_prevote_delta_ms": timeouts.prevoteDeltaMilliseconds = try milliseconds()
        case "consensus.timeout_precommit_ms": timeouts.precommitMilliseconds = try milliseconds()
        case "consensus.timeout_precommit_delta_ms": timeouts.precommitDeltaMilliseconds = try milliseconds()
        case "consensus.timeout_commit_ms": timeoutCommitMilliseconds = try milliseconds()
        case "consensus.proposal_budget_ms": proposalBudgetMilliseconds = try milliseconds()
        case "consensus.double_sign_check_heights": doubleSignCheckHeights = try integer(0...100_000)
        case "mempool.max_transactions": mempoolMaxTransactions = try integer(1...10_000_000)
        case "mempool.max_bytes": mempoolMaxBytes = try integer(1_024...(4 << 30))
        case "mempool.max_per_peer": mempoolMaxPerPeer = try integer(1...10_000_000)
        case "mempool.max_nonce_gap": mempoolMaxNonceGap = UInt64(try integer(0...1_024))
        case "mempool.max_queued": mempoolMaxQueued = try integer(0...10_000_000)
        case "mempool.queued_heights": mempoolQueuedHeights = UInt64(try integer(1...100_000))
        case "attester.mode":
            let mode = try string()
            guard let parsed = AttesterMode(rawValue: mode) else {
                throw ParseError(line: line, message: "attester.mode \"\(mode)\" is not one of off, format, fetch")
            }
            attesterMode = parsed
        case "arweave.gateway":
            let url = try string()
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                throw ParseError(line: line, message: "arweave.gateway \"\(url)\" must start with http:// or https://")
            }
            arweaveGateway = url
        case "arweave.timeout_ms": arweaveTimeoutMilliseconds = try milliseconds()
        case "arweave.max_payload_bytes": arweaveMaxPayloadBytes = try integer(1...(1 << 30))
        case "keys.passphrase_file":
            let file = try string()
            keyPassphraseFile = file.isEmpty ? nil : file
        case "storage.retain_blocks": retainBlocks = UInt64(try integer(0...Int(Int64.max)))
        case "storage.snapshot_interval": snapshotInterval = UInt64(try integer(0...Int(Int64.max)))
        case "storage.snapshot_keep": snapshotKeep = try integer(1...100)
        case "storage.state_cache_mb": stateCacheMiB = try integer(1...65_536)
        case "storage.block_cache_mb": blockCacheMiB = try integer(1...65_536)
        case "storage.write_buffer_mb": writeBufferMiB = try integer(4...4_096)
        case "storage.heap_trim_interval_ms":
            let interval = try integer(0...3_600_000)
            // Each trim locks the allocator while it walks the heap: more than once a second
            // would stall every thread for little memory.
            guard interval == 0 || interval >= 1_000 else {
                throw ParseError(line: line, message: "storage.heap_trim_interval_ms = \(interval): use 0 (never) or at least 1000 (once a second)")
            }
            heapTrimIntervalMilliseconds = UInt64(interval)
        case "storage.indexes": queryIndexes = try boolean()
        case "statesync.enable": stateSync = try boolean()
        default:
            throw ParseError(line: line, message: "unknown key \(key) (see the template that `node init` writes)")
        }
    }
}

extension String {
    func trimmingSpaces() -> String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return String(slice)
    }
}

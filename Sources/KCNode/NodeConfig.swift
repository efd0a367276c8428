import Foundation
import KCConsensus
import KCCrypto
import KCNetwork
import TOMLKit

/// The node's local settings, read from `HOME/config.toml` (the commented template that
/// `node init` writes lists every key). Anything every node must agree on is in the genesis
/// file instead. The file is TOML, read by TOMLKit (toml++): any valid TOML, multi-line arrays
/// included. Missing keys take the defaults below; unknown keys, sections and values of the
/// wrong type or range are refused with the key and its line named.
public struct NodeConfig: Equatable, Sendable {
    public enum AttesterMode: String, Sendable, CaseIterable { case off, format, fetch }

    public var moniker = "node"
    public var logLevel = "info"
    public var p2pListenAddress = "127.0.0.1:26656"
    public var persistentPeers: [String] = []
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
    public var timeouts = TimeoutConfig()
    public var timeoutCommitMilliseconds: UInt64 = 1_000
    /// Before signing anything, refuse to start if this validator's key signed any of the last
    /// this many committed blocks (0: no check). Guards against running one key on two machines.
    public var doubleSignCheckHeights = 0
    public var mempoolMaxTransactions = 50_000
    public var mempoolMaxBytes = 64 << 20
    public var attesterMode = AttesterMode.off
    public var arweaveGateway = "https://arweave.net"
    public var arweaveTimeoutMilliseconds: UInt64 = 5_000
    public var arweaveMaxPayloadBytes = 10 << 20
    /// The file holding the passphrase of encrypted key files (nil: ask on the terminal).
    public var keyPassphraseFile: String? = nil

    /// Where the passphrase of an encrypted key file comes from.
    public var keyPassphrase: KeyPassphrase { keyPassphraseFile.map { .file($0) } ?? .prompt }

    public init() {}

    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

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

        init(_ value: TOMLValueConvertible) {
            switch value.type {
            case .string: self = .string(value.string ?? "")
            case .int: self = .integer(value.int ?? 0)
            case .bool: self = .bool(value.bool ?? false)
            case .array:
                let items = value.array.map { Array($0) } ?? []
                let strings = items.compactMap { $0.string }
                self = strings.count == items.count ? .strings(strings) : .other(kind: "array of non-strings", text: value.debugDescription)
            default: self = .other(kind: "\(value.type)", text: value.debugDescription)
            }
        }
    }

    static let sections = ["log", "p2p", "rpc", "consensus", "mempool", "attester", "arweave", "keys"]

    public static func parse(_ text: String) throws(ParseError) -> NodeConfig {
        // TOML allows no control character but tab, and carriage return only before a line
        // feed; toml++ asserts (aborts) on some of them instead of reporting an error (found
        // by the config fuzz target: "[\r\r\r\r"), so they are refused here first.
        if let (line, scalar) = firstControlCharacter(text) {
            let code = String(scalar.value, radix: 16, uppercase: true)
            throw ParseError(line: line, message: "not valid TOML: control character U+\(String(repeating: "0", count: max(0, 4 - code.count)))\(code) (only tab, and a carriage return before a line feed, are allowed)")
        }
        // toml++ 3 assumes (an assertion; undefined behaviour without assertions) that a table
        // header's first key starts with a key character; the fuzz target found it does not
        // check (`[\u{FFFD}…]`). Such a line is refused here before it reaches the parser.
        if let line = firstMalformedHeader(text) {
            throw ParseError(line: line, message: "not valid TOML: a [section] header must start with a key (letters, digits, _ or -, or a quoted key)")
        }
        let document: TOMLTable
        do {
            document = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ParseError(line: error.source.begin.line, message: "not valid TOML: \(error.description)")
        } catch {
            throw ParseError(line: 0, message: "not valid TOML: \(error)")
        }
        var config = NodeConfig()
        for name in document.keys {
            guard let value = document[name] else { continue }
            guard let section = value.table else {
                try config.apply(name, Value(value), line: line(of: name, section: nil, in: text))
                continue
            }
            guard sections.contains(name) else {
                throw ParseError(line: line(of: nil, section: name, in: text), message: "unknown section [\(name)]")
            }
            for key in section.keys {
                guard let inner = section[key] else { continue }
                try config.apply("\(name).\(key)", Value(inner), line: line(of: key, section: name, in: text))
            }
        }
        return config
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

    /// The first line that opens with `[` or `[[` not followed (after spaces) by a key
    /// character, a quote or `]`. Scanned by Unicode scalar, as the parser reads: a combining
    /// mark after `[` makes one Character with it, but it is still a header to toml++.
    static func firstMalformedHeader(_ text: String) -> Int? {
        for (index, line) in text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var rest = line.drop { $0 == " " || $0 == "\t" }
            guard rest.first == "[" else { continue }
            rest = rest.dropFirst()
            if rest.first == "[" { rest = rest.dropFirst() }
            rest = rest.drop { $0 == " " || $0 == "\t" }
            guard let first = rest.first else { return index + 1 }
            switch first {
            case "a"..."z", "A"..."Z", "0"..."9", "_", "-", "\"", "'", "]": continue
            default: return index + 1
            }
        }
        return nil
    }

    /// The lines of `text` (LF or CRLF endings), for the scans above and below.
    static func lines(_ text: String) -> [Substring] {
        text.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false)
    }

    /// The line of `key` in `[section]` (or of the section's header when `key` is nil), found
    /// in the text TOMLKit has already accepted; 0 if it is written in a form this does not
    /// follow (a dotted or quoted key).
    static func line(of key: String?, section: String?, in text: String) -> Int {
        var current: String? = nil
        for (index, raw) in lines(text).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.hasPrefix("[") {
                current = String(line.dropFirst().prefix { $0 != "]" }).trimmingCharacters(in: .whitespaces)
                if key == nil && current == section { return index + 1 }
                continue
            }
            guard let key, current == section, line.hasPrefix(key) else { continue }
            if line.dropFirst(key.count).trimmingCharacters(in: .whitespaces).hasPrefix("=") { return index + 1 }
        }
        return 0
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
            guard Self.logLevels.contains(level) else {
                throw ParseError(line: line, message: "log.level \"\(level)\" is not one of \(Self.logLevels.joined(separator: ", "))")
            }
            logLevel = level
        case "p2p.listen_address": p2pListenAddress = try address(allowAnyPort: true)  // port 0: any free port
        case "p2p.persistent_peers":
            guard case .strings(let peers) = value else { throw ParseError(line: line, message: "\(key) must be an array of strings\(found)") }
            for peer in peers where !PeerAddress.isWellFormed(peer) {
                throw ParseError(line: line, message: "\(key): '\(peer)' is not NODE_ID@HOST:PORT")
            }
            persistentPeers = peers
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
        case "consensus.timeout_propose_ms": timeouts.proposeMilliseconds = try milliseconds()
        case "consensus.timeout_propose_delta_ms": timeouts.proposeDeltaMilliseconds = try milliseconds()
        case "consensus.timeout_prevote_ms": timeouts.prevoteMilliseconds = try milliseconds()
        case "consensus.timeout_prevote_delta_ms": timeouts.prevoteDeltaMilliseconds = try milliseconds()
        case "consensus.timeout_precommit_ms": timeouts.precommitMilliseconds = try milliseconds()
        case "consensus.timeout_precommit_delta_ms": timeouts.precommitDeltaMilliseconds = try milliseconds()
        case "consensus.timeout_commit_ms": timeoutCommitMilliseconds = try milliseconds()
        case "consensus.double_sign_check_heights": doubleSignCheckHeights = try integer(0...100_000)
        case "mempool.max_transactions": mempoolMaxTransactions = try integer(1...10_000_000)
        case "mempool.max_bytes": mempoolMaxBytes = try integer(1_024...(4 << 30))
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
        default:
            throw ParseError(line: line, message: "unknown key \(key) (see the template that `node init` writes)")
        }
    }
}

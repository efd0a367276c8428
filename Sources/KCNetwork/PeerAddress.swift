import KCCodec
import KCCrypto

/// A peer written as `NODE_ID@HOST:PORT`, NODE_ID being the peer's node key in hex.
public struct PeerAddress: Sendable, Hashable, CustomStringConvertible {
    public let nodeID: PublicKey
    public let host: String
    public let port: Int

    public init(nodeID: PublicKey, host: String, port: Int) {
        self.nodeID = nodeID
        self.host = host
        self.port = port
    }

    public static func parse(_ text: String) -> PeerAddress? {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 64, let id = PublicKey(hex: parts[0]) else { return nil }
        guard let colon = parts[1].lastIndex(of: ":") else { return nil }
        let host = String(parts[1][..<colon])
        guard !host.isEmpty, let port = Int(parts[1][parts[1].index(after: colon)...]), (1...65535).contains(port) else { return nil }
        return PeerAddress(nodeID: id, host: host, port: port)
    }

    public static func isWellFormed(_ text: String) -> Bool { parse(text) != nil }

    public var description: String { "\(nodeID.hex)@\(host):\(port)" }
}

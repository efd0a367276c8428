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

extension PeerAddress: CanonicalCodable {
    /// The longest host name accepted (DNS's limit).
    public static let maxHostBytes = 253

    /// Whether `host` is an IPv4 or IPv6 literal or a DNS name: letters, digits, `.`, `-`, and
    /// `:` (IPv6), at most 253 bytes, not the unspecified address.
    public static func isValidHost(_ host: String) -> Bool {
        let bytes = Array(host.utf8)
        guard !bytes.isEmpty, bytes.count <= maxHostBytes, host != "0.0.0.0", host != "::" else { return false }
        return bytes.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2E || byte == 0x2D || byte == 0x3A
        }
    }

    /// `node id | string host | u16 port`; a host that is not an address or name, or port 0, is
    /// refused.
    public func encode(to writer: inout CanonicalWriter) {
        writer.write(nodeID)
        writer.writeString(host)
        writer.write(UInt16(clamping: port))
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        let id = try reader.read(PublicKey.self)
        let host = try reader.readString("host", limit: Self.maxHostBytes)
        let port = try reader.readUInt16("port")
        guard Self.isValidHost(host) else { throw .invalidValue(what: "peer address", reason: "'\(host)' is not an IP address or host name") }
        guard port > 0 else { throw .invalidValue(what: "peer address", reason: "port 0") }
        self.init(nodeID: id, host: host, port: Int(port))
    }
}

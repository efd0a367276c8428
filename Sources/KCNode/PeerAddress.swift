/// A peer written as `NODE_ID@HOST:PORT`, NODE_ID being the peer's node key in hex.
public enum PeerAddress {
    public static func isWellFormed(_ text: String) -> Bool {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 64, Hex.decodeCount(parts[0]) == 32 else { return false }
        guard let colon = parts[1].lastIndex(of: ":") else { return false }
        let host = parts[1][..<colon]
        guard !host.isEmpty, let port = Int(parts[1][parts[1].index(after: colon)...]), (1...65535).contains(port) else { return false }
        return true
    }
}

import KCCodec

extension Hex {
    static func decodeCount(_ text: Substring) -> Int? { decode(text)?.count }
}

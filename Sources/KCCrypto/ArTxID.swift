import KCCodec

/// An Arweave transaction id: 32 bytes, written as 43 characters of base64url without padding.
///
/// Only the canonical text form is accepted: exactly 43 characters from the URL-safe
/// alphabet, no `=` padding, no `+` or `/`, and the two unused low bits of the last
/// character zero (otherwise two strings would name the same id).
public struct ArTxID: Hashable, Comparable, Sendable, CanonicalCodable, CustomStringConvertible {
    public let bytes32: Bytes32

    public init(_ bytes32: Bytes32) { self.bytes32 = bytes32 }

    public enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        case wrongLength(Int)
        case padding
        case invalidCharacter(Character, position: Int)
        case nonCanonicalTrailingBits

        public var description: String {
            switch self {
            case .wrongLength(let count):
                return "an ArTxID is 43 base64url characters, this one has \(count)"
            case .padding:
                return "an ArTxID carries no '=' padding"
            case .invalidCharacter(let character, let position):
                return "character '\(character)' at position \(position + 1) is not base64url (A-Z a-z 0-9 - _)"
            case .nonCanonicalTrailingBits:
                return "the last character of an ArTxID must leave its two unused bits zero (non-canonical form)"
            }
        }
    }

    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    private static func value(of character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return character - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return character - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return character - UInt8(ascii: "0") + 52
        case UInt8(ascii: "-"): return 62
        case UInt8(ascii: "_"): return 63
        default: return nil
        }
    }

    public init(parsing text: some StringProtocol) throws(ParseError) {
        let utf8 = Array(text.utf8)
        if utf8.contains(UInt8(ascii: "=")) { throw .padding }
        for (position, character) in utf8.enumerated() where Self.value(of: character) == nil {
            let scalarText = String(decoding: [character], as: UTF8.self)
            throw .invalidCharacter(scalarText.first ?? "?", position: position)
        }
        guard utf8.count == 43 else { throw .wrongLength(utf8.count) }
        var out: [UInt8] = []
        out.reserveCapacity(33)
        var accumulator: UInt32 = 0
        var bits = 0
        for character in utf8 {
            accumulator = accumulator << 6 | UInt32(Self.value(of: character)!)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
                accumulator &= (1 << UInt32(bits)) - 1
            }
        }
        // 43 * 6 = 258 bits: 32 whole bytes and 2 spare bits that must be zero.
        precondition(out.count == 32 && bits == 2)
        guard accumulator == 0 else { throw .nonCanonicalTrailingBits }
        self.init(Bytes32(out))
    }

    public init?(_ text: some StringProtocol) {
        guard let parsed = try? ArTxID(parsing: text) else { return nil }
        self = parsed
    }

    /// The canonical 43-character form.
    public var text: String {
        let raw = bytes32.bytes
        var out: [UInt8] = []
        out.reserveCapacity(43)
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in raw {
            accumulator = accumulator << 8 | UInt32(byte)
            bits += 8
            while bits >= 6 {
                bits -= 6
                out.append(Self.alphabet[Int((accumulator >> UInt32(bits)) & 0x3f)])
            }
            accumulator &= (1 << UInt32(bits)) - 1
        }
        if bits > 0 { out.append(Self.alphabet[Int((accumulator << UInt32(6 - bits)) & 0x3f)]) }
        precondition(out.count == 43)
        return String(decoding: out, as: UTF8.self)
    }

    public var description: String { text }

    public static func < (lhs: ArTxID, rhs: ArTxID) -> Bool { lhs.bytes32 < rhs.bytes32 }

    public func encode(to writer: inout CanonicalWriter) { bytes32.encode(to: &writer) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        bytes32 = try Bytes32(from: &reader)
    }
}

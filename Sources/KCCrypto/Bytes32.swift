import KCCodec

/// Thirty-two bytes held inline (no heap allocation), ordered byte by byte.
///
/// The base of hashes, public keys and ArTxIDs. Values are stored as four machine words in
/// memory order, so `withUnsafeBytes` exposes the bytes exactly as they were given.
public struct Bytes32: Hashable, Comparable, Sendable {
    @usableFromInline var w0: UInt64
    @usableFromInline var w1: UInt64
    @usableFromInline var w2: UInt64
    @usableFromInline var w3: UInt64

    public static let zero = Bytes32(w0: 0, w1: 0, w2: 0, w3: 0)

    @inlinable init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        self.w0 = w0; self.w1 = w1; self.w2 = w2; self.w3 = w3
    }

    /// Copies exactly 32 bytes; precondition: `bytes.count == 32`.
    public init<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        precondition(bytes.count == 32, "Bytes32 needs exactly 32 bytes, got \(bytes.count)")
        // Arrays and slices of them: one copy, not a generic element-by-element walk.
        if let copied = bytes.withContiguousStorageIfAvailable({ source -> Bytes32 in
            var value = Bytes32.zero
            withUnsafeMutableBytes(of: &value) { $0.copyMemory(from: UnsafeRawBufferPointer(source)) }
            return value
        }) {
            self = copied
            return
        }
        self = .zero
        withUnsafeMutableBytes(of: &self) { destination in
            _ = destination.initializeMemory(as: UInt8.self, from: bytes)
        }
    }

    /// Reads from raw memory holding at least 32 bytes.
    public init(unsafeRawPointer pointer: UnsafeRawPointer) {
        self = .zero
        withUnsafeMutableBytes(of: &self) { $0.copyMemory(from: UnsafeRawBufferPointer(start: pointer, count: 32)) }
    }

    /// Parses 64 hex digits.
    public init?(hex: some StringProtocol) {
        guard let raw = Hex.decode(hex), raw.count == 32 else { return nil }
        self.init(raw)
    }

    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Bit `index` (0 = most significant bit of byte 0, 255 = least significant of byte 31).
    /// Merkle paths walk the bits in this order, which is also the order `<` sorts by.
    @inlinable public func bit(at index: Int) -> Bool {
        precondition(index >= 0 && index < 256, "bit index out of range")
        let word: UInt64
        switch index >> 6 {
        case 0: word = w0
        case 1: word = w1
        case 2: word = w2
        default: word = w3
        }
        // bigEndian puts byte 0 of the word in the top 8 bits on any host.
        return (word.bigEndian >> (63 - UInt64(index & 63))) & 1 == 1
    }
    public var hex: String { withUnsafeBytes { Hex.encode($0) } }

    /// The first `count` bits (0...256) kept, the rest zero: a Merkle path cut to a depth.
    @inlinable public func keepingLeadingBits(_ count: Int) -> Bytes32 {
        precondition(count >= 0 && count <= 256, "bit count out of range")
        @inline(__always) func masked(_ word: UInt64, _ start: Int) -> UInt64 {
            let kept = count - start
            if kept >= 64 { return word }
            if kept <= 0 { return 0 }
            // In numeric (big-endian) order the leading bits are the high ones.
            return UInt64(bigEndian: word.bigEndian & ~(UInt64.max >> UInt64(kept)))
        }
        return Bytes32(w0: masked(w0, 0), w1: masked(w1, 64), w2: masked(w2, 128), w3: masked(w3, 192))
    }

    /// The same bytes with bit `index` set (bits numbered as in `bit(at:)`).
    @inlinable public func settingBit(_ index: Int) -> Bytes32 {
        precondition(index >= 0 && index < 256, "bit index out of range")
        let mask = UInt64(bigEndian: UInt64(1) << UInt64(63 - (index & 63)))
        var copy = self
        switch index >> 6 {
        case 0: copy.w0 |= mask
        case 1: copy.w1 |= mask
        case 2: copy.w2 |= mask
        default: copy.w3 |= mask
        }
        return copy
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: self, body)
    }

    public static func < (lhs: Bytes32, rhs: Bytes32) -> Bool {
        // `bigEndian` turns memory order into numeric order on any host.
        if lhs.w0 != rhs.w0 { return lhs.w0.bigEndian < rhs.w0.bigEndian }
        if lhs.w1 != rhs.w1 { return lhs.w1.bigEndian < rhs.w1.bigEndian }
        if lhs.w2 != rhs.w2 { return lhs.w2.bigEndian < rhs.w2.bigEndian }
        return lhs.w3.bigEndian < rhs.w3.bigEndian
    }
}

extension Bytes32: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        withUnsafeBytes { writer.writeFixed($0) }
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        self = try reader.readFixed(32, "32-byte value") { raw in
            Bytes32(w0: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self), w1: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                    w2: raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self), w3: raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        }
    }
}

extension Bytes32: CustomStringConvertible {
    public var description: String { hex }
}

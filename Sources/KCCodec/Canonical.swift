// Canonical binary encoding: the one byte form of everything that is hashed or signed.
//
// The rules are written down in specs/encoding.md; this file implements them and nothing
// else. In short:
//   - fixed-width integers are little-endian (u8, u16, u32, u64, u128);
//   - lengths, counts and enum tags are unsigned LEB128 varints in their shortest form,
//     limited to 32 bits;
//   - bool is one byte, 0x00 or 0x01; an optional is 0x00, or 0x01 followed by the value;
//   - fixed-size byte arrays are written raw; variable byte strings, UTF-8 strings and lists
//     are a varint length followed by the bytes or items;
//   - a structure is its fields in declaration order, with no padding and no field names.
// Every decoder call names an upper limit for lengths and counts, so a hostile length prefix
// can never make us allocate more than the caller allowed.

/// Why a byte string is not the canonical encoding of the expected value.
public enum DecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input ended `needed` bytes short while reading `what`.
    case truncated(what: String, needed: Int)
    /// The value decoded completely but `count` bytes were left over.
    case trailingBytes(count: Int)
    /// The bytes describe a value, but not in its one canonical form.
    case nonCanonical(what: String, reason: String)
    /// An enum tag that this version does not know.
    case unknownTag(what: String, tag: UInt32)
    /// A length or count above the stated limit.
    case overLimit(what: String, length: UInt64, limit: Int)
    /// A value that is well formed but violates a rule of its type.
    case invalidValue(what: String, reason: String)

    public var description: String {
        switch self {
        case .truncated(let what, let needed):
            return "truncated input: \(needed) more byte(s) needed for \(what)"
        case .trailingBytes(let count):
            return "\(count) trailing byte(s) after the value"
        case .nonCanonical(let what, let reason):
            return "non-canonical \(what): \(reason)"
        case .unknownTag(let what, let tag):
            return "unknown tag \(tag) for \(what)"
        case .overLimit(let what, let length, let limit):
            return "\(what) has length \(length), over the limit of \(limit)"
        case .invalidValue(let what, let reason):
            return "invalid \(what): \(reason)"
        }
    }
}

/// A type with exactly one canonical byte form.
public protocol CanonicalEncodable {
    func encode(to writer: inout CanonicalWriter)
}

/// A type that can be read back from its canonical form, rejecting every other form.
public protocol CanonicalDecodable {
    init(from reader: inout CanonicalReader) throws(DecodingError)
}

public typealias CanonicalCodable = CanonicalEncodable & CanonicalDecodable

extension CanonicalEncodable {
    /// The canonical bytes of this value.
    @inlinable
    public var canonicalBytes: [UInt8] {
        var writer = CanonicalWriter()
        encode(to: &writer)
        return writer.bytes
    }
}

extension CanonicalDecodable {
    /// Decodes a value that must occupy `bytes` exactly: trailing bytes are an error.
    @inlinable
    public static func decode(exactly bytes: [UInt8]) throws(DecodingError) -> Self {
        var reader = CanonicalReader(bytes)
        let value = try Self(from: &reader)
        try reader.finish()
        return value
    }
}

/// Appends canonical encodings to a growing byte buffer.
public struct CanonicalWriter: Sendable {
    // The reader and writer are @inlinable so that the generic list and optional helpers are
    // specialized in the modules that call them (unspecialized, each call looked up generic
    // metadata at run time, a visible share of block execution).
    @usableFromInline var storage: [UInt8]

    public var bytes: [UInt8] { storage }

    @inlinable
    public init(reservingCapacity capacity: Int = 128) {
        storage = []
        storage.reserveCapacity(capacity)
    }

    @inlinable
    public mutating func write(_ value: UInt8) { storage.append(value) }

    @inlinable
    public mutating func write(_ value: UInt16) { appendLittleEndian(value) }
    @inlinable
    public mutating func write(_ value: UInt32) { appendLittleEndian(value) }
    @inlinable
    public mutating func write(_ value: UInt64) { appendLittleEndian(value) }
    @inlinable
    public mutating func write(_ value: UInt128) {
        appendLittleEndian(UInt64(truncatingIfNeeded: value))
        appendLittleEndian(UInt64(truncatingIfNeeded: value >> 64))
    }

    @inlinable
    public mutating func write(_ value: Bool) { storage.append(value ? 1 : 0) }

    /// Unsigned LEB128 in its shortest form. Used for lengths, counts and enum tags.
    @inlinable
    public mutating func writeVarint(_ value: UInt32) {
        var remaining = value
        while remaining >= 0x80 {
            storage.append(UInt8(truncatingIfNeeded: remaining) | 0x80)
            remaining >>= 7
        }
        storage.append(UInt8(remaining))
    }

    /// Writes a length or count; precondition: it fits the 32-bit varint range.
    @inlinable
    public mutating func writeLength(_ count: Int) {
        precondition(count >= 0 && count <= Int(UInt32.max), "length out of the encodable range")
        writeVarint(UInt32(count))
    }

    /// Raw bytes with no length prefix, for fixed-size fields (keys, hashes, signatures).
    @inlinable
    public mutating func writeFixed<Bytes: Collection>(_ raw: Bytes) where Bytes.Element == UInt8 {
        storage.append(contentsOf: raw)
    }

    /// A variable-length byte string: varint length, then the bytes.
    @inlinable
    public mutating func writeBytes<Bytes: Collection>(_ raw: Bytes) where Bytes.Element == UInt8 {
        writeLength(raw.count)
        storage.append(contentsOf: raw)
    }

    /// A UTF-8 string: varint byte length, then the bytes.
    @inlinable
    public mutating func writeString(_ string: String) {
        var copy = string
        copy.withUTF8 { utf8 in
            writeLength(utf8.count)
            storage.append(contentsOf: utf8)
        }
    }

    @inlinable
    public mutating func writeOptional<T: CanonicalEncodable>(_ value: T?) {
        if let value {
            storage.append(1)
            value.encode(to: &self)
        } else {
            storage.append(0)
        }
    }

    @inlinable
    public mutating func writeList<T: CanonicalEncodable>(_ items: [T]) {
        writeLength(items.count)
        for item in items { item.encode(to: &self) }
    }

    @inlinable
    public mutating func write<T: CanonicalEncodable>(_ value: T) {
        value.encode(to: &self)
    }

    @inlinable
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { storage.append(contentsOf: $0) }
    }
}

/// Reads canonical encodings from a byte buffer, front to back.
public struct CanonicalReader: Sendable {
    public let bytes: [UInt8]
    @usableFromInline var offset: Int

    public var position: Int { offset }

    @inlinable
    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.offset = 0
    }

    @inlinable
    public var remaining: Int { bytes.count - offset }

    /// Fails unless every byte has been consumed.
    @inlinable
    public func finish() throws(DecodingError) {
        if remaining != 0 { throw .trailingBytes(count: remaining) }
    }

    @inlinable
    public mutating func readUInt8(_ what: String = "u8") throws(DecodingError) -> UInt8 {
        try require(1, what)
        defer { offset += 1 }
        return bytes[offset]
    }

    @inlinable
    public mutating func readUInt16(_ what: String = "u16") throws(DecodingError) -> UInt16 {
        try readLittleEndian(UInt16.self, what)
    }

    @inlinable
    public mutating func readUInt32(_ what: String = "u32") throws(DecodingError) -> UInt32 {
        try readLittleEndian(UInt32.self, what)
    }

    @inlinable
    public mutating func readUInt64(_ what: String = "u64") throws(DecodingError) -> UInt64 {
        try readLittleEndian(UInt64.self, what)
    }

    @inlinable
    public mutating func readUInt128(_ what: String = "u128") throws(DecodingError) -> UInt128 {
        try require(16, what)
        let low = try readLittleEndian(UInt64.self, what)
        let high = try readLittleEndian(UInt64.self, what)
        return UInt128(high) << 64 | UInt128(low)
    }

    @inlinable
    public mutating func readBool(_ what: String = "bool") throws(DecodingError) -> Bool {
        switch try readUInt8(what) {
        case 0: return false
        case 1: return true
        case let other: throw .nonCanonical(what: what, reason: "bool byte is \(other), not 0 or 1")
        }
    }

    /// Unsigned LEB128, at most 5 bytes, value at most 2^32-1, shortest form only.
    @inlinable
    public mutating func readVarint(_ what: String = "varint") throws(DecodingError) -> UInt32 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        for index in 0..<5 {
            let byte = try readUInt8(what)
            result |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 {
                // A final byte of zero after at least one byte means a longer form than needed.
                if byte == 0 && index > 0 {
                    throw .nonCanonical(what: what, reason: "varint has a redundant trailing zero byte")
                }
                guard result <= UInt64(UInt32.max) else {
                    throw .nonCanonical(what: what, reason: "varint exceeds 32 bits")
                }
                return UInt32(result)
            }
            shift += 7
        }
        throw .nonCanonical(what: what, reason: "varint longer than 5 bytes")
    }

    /// A length or count, checked against `limit` before anything is allocated.
    @inlinable
    public mutating func readLength(_ what: String, limit: Int) throws(DecodingError) -> Int {
        let length = try readVarint(what)
        guard Int(length) <= limit else {
            throw .overLimit(what: what, length: UInt64(length), limit: limit)
        }
        return Int(length)
    }

    @inlinable
    public mutating func readFixed(_ count: Int, _ what: String) throws(DecodingError) -> [UInt8] {
        try require(count, what)
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// Hands the next `count` bytes to `body` in place (no copy, no allocation) and moves past them.
    @inlinable
    public mutating func readFixed<Result>(_ count: Int, _ what: String,
                                           _ body: (UnsafeRawBufferPointer) -> Result) throws(DecodingError) -> Result {
        try require(count, what)
        defer { offset += count }
        return bytes.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[offset..<offset + count])) }
    }

    @inlinable
    public mutating func readBytes(_ what: String, limit: Int) throws(DecodingError) -> [UInt8] {
        let count = try readLength(what, limit: limit)
        return try readFixed(count, what)
    }

    @inlinable
    public mutating func readString(_ what: String, limit: Int) throws(DecodingError) -> String {
        // Validated straight from the buffer: no intermediate array (short strings then need
        // no allocation at all).
        let count = try readLength(what, limit: limit)
        guard let string = try readFixed(count, what, { String(validating: $0, as: UTF8.self) }) else {
            throw .invalidValue(what: what, reason: "not valid UTF-8")
        }
        return string
    }

    @inlinable
    public mutating func readOptional<T: CanonicalDecodable>(_ type: T.Type, _ what: String) throws(DecodingError) -> T? {
        switch try readUInt8(what) {
        case 0: return nil
        case 1: return try T(from: &self)
        case let other: throw .nonCanonical(what: what, reason: "option tag is \(other), not 0 or 1")
        }
    }

    @inlinable
    public mutating func readList<T: CanonicalDecodable>(_ type: T.Type, _ what: String, limit: Int) throws(DecodingError) -> [T] {
        let count = try readLength(what, limit: limit)
        var items: [T] = []
        items.reserveCapacity(count)
        for _ in 0..<count { items.append(try T(from: &self)) }
        return items
    }

    @inlinable
    public mutating func read<T: CanonicalDecodable>(_ type: T.Type) throws(DecodingError) -> T {
        try T(from: &self)
    }

    @inlinable
    func require(_ count: Int, _ what: String) throws(DecodingError) {
        if remaining < count { throw .truncated(what: what, needed: count - remaining) }
    }

    @inlinable
    mutating func readLittleEndian<T: FixedWidthInteger>(_ type: T.Type, _ what: String) throws(DecodingError) -> T {
        let size = MemoryLayout<T>.size
        try require(size, what)
        let value = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
        offset += size
        return T(littleEndian: value)
    }
}

// Conformances for the primitive types, so they can sit in lists and optionals.
extension UInt8: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) { writer.write(self) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) { self = try reader.readUInt8() }
}
extension UInt16: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) { writer.write(self) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) { self = try reader.readUInt16() }
}
extension UInt32: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) { writer.write(self) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) { self = try reader.readUInt32() }
}
extension UInt64: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) { writer.write(self) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) { self = try reader.readUInt64() }
}
extension UInt128: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) { writer.write(self) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) { self = try reader.readUInt128() }
}
extension Bool: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) { writer.write(self) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) { self = try reader.readBool() }
}

/// A field-less enum encoded as its varint tag: encoding and strict decoding for free.
public protocol CanonicalTag: CanonicalCodable, RawRepresentable where RawValue == UInt32 {
    /// How decoding errors name the type ("verdict", "vote kind").
    static var tagName: String { get }
}

extension CanonicalTag {
    @inlinable
    public func encode(to writer: inout CanonicalWriter) { writer.writeVarint(rawValue) }

    /// The name alone labels a read error (an interpolated label would build a string on every
    /// decode, a visible cost when event records are read).
    @inlinable
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        let tag = try reader.readVarint(Self.tagName)
        guard let value = Self(rawValue: tag) else { throw .unknownTag(what: Self.tagName, tag: tag) }
        self = value
    }
}

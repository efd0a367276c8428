#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one key order of the project: byte by byte (memcmp), a prefix before its extensions.
/// RocksDB's default comparator uses it, so the in-memory stores and state keys do too.
public enum ByteOrder {
    /// Negative, zero or positive as `lhs` sorts before, equal to, or after `rhs`.
    public static func compare(_ lhs: [UInt8], _ rhs: [UInt8]) -> Int {
        lhs.withUnsafeBytes { left in rhs.withUnsafeBytes { right in compare(left, right) } }
    }

    public static func compare(_ left: UnsafeRawBufferPointer, _ right: UnsafeRawBufferPointer) -> Int {
        let common = min(left.count, right.count)
        if common > 0 {
            let result = memcmp(left.baseAddress!, right.baseAddress!, common)
            if result != 0 { return Int(result) }
        }
        return left.count - right.count
    }

    public static func precedes(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool { compare(lhs, rhs) < 0 }
}

/// Integers inside keys are written big-endian, so that they sort as numbers under the byte
/// order above; these write and read them.
extension ByteOrder {
    /// Appends `value`'s bytes, most significant first.
    public static func appendBigEndian<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// The integer whose big-endian bytes are `bytes`. The caller has checked the length: at
    /// most the type's width (fewer read as the low bytes).
    public static func bigEndian<T: FixedWidthInteger & UnsignedInteger>(_ bytes: some Collection<UInt8>, as type: T.Type = T.self) -> T {
        precondition(bytes.count <= T.bitWidth / 8, "\(bytes.count) bytes do not fit a \(T.bitWidth)-bit integer")
        return bytes.reduce(0) { $0 << 8 | T($1) }
    }
}

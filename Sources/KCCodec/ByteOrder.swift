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

import KCCodec

/// Key layout shared by the crash-test writer (`node debug-store-writer`) and the test that
/// checks what survived, so the two can never disagree on it.
public enum CrashBatchLayout {
    public static let prefix: [UInt8] = Array("crash/".utf8)

    public static func key(batch: UInt64, index: Int) -> [UInt8] {
        var key = prefix
        ByteOrder.appendBigEndian(batch, to: &key)
        key.append(UInt8(ascii: "/"))
        ByteOrder.appendBigEndian(UInt32(index), to: &key)
        return key
    }

    public static func value(batch: UInt64, index: Int) -> [UInt8] {
        Array("batch \(batch) key \(index) ".utf8) + [UInt8](repeating: UInt8(truncatingIfNeeded: batch &+ UInt64(index)), count: 100)
    }

    /// Splits a key written by `key(batch:index:)`.
    public static func parse(_ key: [UInt8]) -> (batch: UInt64, index: Int)? {
        guard key.count == prefix.count + 8 + 1 + 4, Array(key[0..<prefix.count]) == prefix else { return nil }
        let batch: UInt64 = ByteOrder.bigEndian(key[prefix.count..<prefix.count + 8])
        let index: UInt32 = ByteOrder.bigEndian(key[(prefix.count + 9)...])
        return (batch, Int(index))
    }
}

/// Key layout shared by the crash-test writer (`node debug-store-writer`) and the test that
/// checks what survived, so the two can never disagree on it.
public enum CrashBatchLayout {
    public static let prefix: [UInt8] = Array("crash/".utf8)

    public static func key(batch: UInt64, index: Int) -> [UInt8] {
        var key = prefix
        withUnsafeBytes(of: batch.bigEndian) { key.append(contentsOf: $0) }
        key.append(UInt8(ascii: "/"))
        withUnsafeBytes(of: UInt32(index).bigEndian) { key.append(contentsOf: $0) }
        return key
    }

    public static func value(batch: UInt64, index: Int) -> [UInt8] {
        Array("batch \(batch) key \(index) ".utf8) + [UInt8](repeating: UInt8(truncatingIfNeeded: batch &+ UInt64(index)), count: 100)
    }

    /// Splits a key written by `key(batch:index:)`.
    public static func parse(_ key: [UInt8]) -> (batch: UInt64, index: Int)? {
        guard key.count == prefix.count + 8 + 1 + 4, Array(key[0..<prefix.count]) == prefix else { return nil }
        var batch: UInt64 = 0
        for byte in key[prefix.count..<prefix.count + 8] { batch = batch << 8 | UInt64(byte) }
        var index: UInt32 = 0
        for byte in key[(prefix.count + 9)...] { index = index << 8 | UInt32(byte) }
        return (batch, Int(index))
    }
}

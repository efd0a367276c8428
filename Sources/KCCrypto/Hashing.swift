import CSodium
import KCCodec

/// A 32-byte digest: a BLAKE2b-256 id or a SHA-256 content hash.
public typealias Hash256 = Bytes32

/// BLAKE2b with a 256-bit output (libsodium `crypto_generichash`): ids and Merkle nodes.
public enum Blake2b {
    public static func hash256<Bytes: ContiguousBytes>(_ input: Bytes) -> Hash256 {
        Sodium.ensureReady()
        var out = Hash256.zero
        withUnsafeMutableBytes(of: &out) { output in
            input.withUnsafeBytes { data in
                let status = crypto_generichash(output.baseAddress!.assumingMemoryBound(to: UInt8.self), 32,
                                                data.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                                UInt64(data.count), nil, 0)
                precondition(status == 0, "crypto_generichash failed")
            }
        }
        return out
    }

    /// Hash of a tag byte followed by two 32-byte values (Merkle nodes), built on the stack.
    public static func hash256(tag: UInt8, _ first: Bytes32, _ second: Bytes32) -> Hash256 {
        withUnsafeTemporaryAllocation(byteCount: 65, alignment: 8) { buffer in
            buffer[0] = tag
            withUnsafeBytes(of: first) { buffer.baseAddress!.advanced(by: 1).copyMemory(from: $0.baseAddress!, byteCount: 32) }
            withUnsafeBytes(of: second) { buffer.baseAddress!.advanced(by: 33).copyMemory(from: $0.baseAddress!, byteCount: 32) }
            return hash256(UnsafeRawBufferPointer(buffer))
        }
    }

    /// Hash of several byte strings joined, without building the joined copy.
    public static func hash256(parts: [[UInt8]]) -> Hash256 {
        Sodium.ensureReady()
        let stateSize = crypto_generichash_statebytes()
        // The state must be 64-byte aligned.
        let state = UnsafeMutableRawPointer.allocate(byteCount: stateSize, alignment: 64)
        defer { state.deallocate() }
        // libsodium's state struct is 64-byte aligned and imported opaquely.
        let typed = OpaquePointer(state)
        precondition(crypto_generichash_init(typed, nil, 0, 32) == 0)
        for part in parts {
            part.withUnsafeBufferPointer { buffer in
                precondition(crypto_generichash_update(typed, buffer.baseAddress, UInt64(buffer.count)) == 0)
            }
        }
        var out = Hash256.zero
        withUnsafeMutableBytes(of: &out) { output in
            precondition(crypto_generichash_final(typed, output.baseAddress!.assumingMemoryBound(to: UInt8.self), 32) == 0)
        }
        return out
    }
}

/// SHA-256 (libsodium `crypto_hash_sha256`): the content hash Arweave payloads are checked against.
public enum SHA256 {
    public static func hash<Bytes: ContiguousBytes>(_ input: Bytes) -> Hash256 {
        Sodium.ensureReady()
        var out = Hash256.zero
        withUnsafeMutableBytes(of: &out) { output in
            input.withUnsafeBytes { data in
                let status = crypto_hash_sha256(output.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                                data.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                                UInt64(data.count))
                precondition(status == 0, "crypto_hash_sha256 failed")
            }
        }
        return out
    }
}

/// Anything that exposes contiguous bytes; kept local so the crypto layer needs no Foundation.
public protocol ContiguousBytes {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: ContiguousBytes where Element == UInt8 {}
extension ArraySlice: ContiguousBytes where Element == UInt8 {}
extension Bytes32: ContiguousBytes {}
extension UnsafeRawBufferPointer: ContiguousBytes {
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try body(self) }
}

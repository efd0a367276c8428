import CSodium

/// libsodium must be initialised once before use; `sodium_init` is thread-safe and idempotent,
/// and a global `let` runs it exactly once, on first touch.
enum Sodium {
    static let ready: Bool = {
        let status = sodium_init()
        // 0: initialised now, 1: already initialised. Anything else means no usable CSPRNG
        // or CPU features; continuing would make signatures unsafe.
        precondition(status >= 0, "libsodium failed to initialise (sodium_init returned \(status))")
        return true
    }()

    @inline(__always) static func ensureReady() { precondition(ready) }

    /// Cryptographically secure random bytes from the operating system, for key generation
    /// only: nothing in consensus or state rules may use randomness.
    static func randomBytes(_ count: Int) -> [UInt8] {
        ensureReady()
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, count) }
        return out
    }
}

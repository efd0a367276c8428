import CSodium

/// A secret sealed under a passphrase (specs/crypto.md, "Encrypted key files"): the key is
/// derived with Argon2id (libsodium `crypto_pwhash`, a fresh 16-byte salt), the secret sealed
/// with XSalsa20-Poly1305 (`crypto_secretbox_easy`, a fresh 24-byte nonce). Opening with the
/// wrong passphrase, or a tampered box, fails authentication: nothing half-decrypted leaks out.
public struct PassphraseBox: Equatable, Sendable {
    /// Argon2id cost: passes over memory, and memory in bytes.
    public struct Cost: Equatable, Sendable {
        public let operations: UInt64
        public let memoryBytes: UInt64

        public init(operations: UInt64, memoryBytes: UInt64) {
            self.operations = operations
            self.memoryBytes = memoryBytes
        }

        /// The default for key files: 3 passes over 64 MiB (about a quarter of a second here).
        public static let keyFile = Cost(operations: 3, memoryBytes: 64 << 20)
        /// libsodium's minimum, for tests only.
        public static let minimum = Cost(operations: UInt64(crypto_pwhash_OPSLIMIT_MIN), memoryBytes: UInt64(crypto_pwhash_MEMLIMIT_MIN))

        /// Whether libsodium accepts it, and it is not so large that opening would exhaust the
        /// machine (a box is read from a file someone could have edited).
        public var isAcceptable: Bool {
            operations >= UInt64(crypto_pwhash_OPSLIMIT_MIN) && operations <= 16
                && memoryBytes >= UInt64(crypto_pwhash_MEMLIMIT_MIN) && memoryBytes <= 1 << 30
        }
    }

    public let cost: Cost
    public let salt: [UInt8]
    public let nonce: [UInt8]
    public let ciphertext: [UInt8]

    public static let saltBytes = Int(crypto_pwhash_SALTBYTES)
    public static let nonceBytes = Int(crypto_secretbox_NONCEBYTES)
    public static let tagBytes = Int(crypto_secretbox_MACBYTES)

    public init(cost: Cost, salt: [UInt8], nonce: [UInt8], ciphertext: [UInt8]) {
        self.cost = cost
        self.salt = salt
        self.nonce = nonce
        self.ciphertext = ciphertext
    }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case wrongPassphraseOrDamaged
        case malformed(String)
        case outOfMemory

        public var description: String {
            switch self {
            case .wrongPassphraseOrDamaged: return "the passphrase is wrong, or the file was changed"
            case .malformed(let reason): return reason
            case .outOfMemory: return "not enough memory to derive the key from the passphrase"
            }
        }
    }

    /// Seals `secret` under `passphrase`.
    public static func seal(_ secret: [UInt8], passphrase: String, cost: Cost = .keyFile) throws(Failure) -> PassphraseBox {
        Sodium.ensureReady()
        let salt = Sodium.randomBytes(saltBytes)
        let nonce = Sodium.randomBytes(nonceBytes)
        let key = try derive(passphrase: passphrase, salt: salt, cost: cost)
        var ciphertext = [UInt8](repeating: 0, count: secret.count + tagBytes)
        let status = crypto_secretbox_easy(&ciphertext, secret, UInt64(secret.count), nonce, key)
        precondition(status == 0, "crypto_secretbox_easy failed")
        return PassphraseBox(cost: cost, salt: salt, nonce: nonce, ciphertext: ciphertext)
    }

    /// The secret, if `passphrase` is the one it was sealed with and nothing was changed.
    public func open(passphrase: String) throws(Failure) -> [UInt8] {
        guard cost.isAcceptable else { throw .malformed("unusable Argon2id cost (\(cost.operations) passes, \(cost.memoryBytes) bytes)") }
        guard salt.count == Self.saltBytes, nonce.count == Self.nonceBytes, ciphertext.count >= Self.tagBytes else {
            throw .malformed("salt, nonce or ciphertext has the wrong length")
        }
        let key = try Self.derive(passphrase: passphrase, salt: salt, cost: cost)
        var secret = [UInt8](repeating: 0, count: ciphertext.count - Self.tagBytes)
        guard crypto_secretbox_open_easy(&secret, ciphertext, UInt64(ciphertext.count), nonce, key) == 0 else {
            throw .wrongPassphraseOrDamaged
        }
        return secret
    }

    static func derive(passphrase: String, salt: [UInt8], cost: Cost) throws(Failure) -> [UInt8] {
        Sodium.ensureReady()
        var key = [UInt8](repeating: 0, count: Int(crypto_secretbox_KEYBYTES))
        // NUL-terminated for the C call; the length passed excludes the terminator.
        let password = Array(passphrase.utf8CString)
        let status = crypto_pwhash(&key, UInt64(key.count), password, UInt64(password.count - 1), salt,
                                   cost.operations, Int(cost.memoryBytes), crypto_pwhash_ALG_ARGON2ID13)
        guard status == 0 else { throw .outOfMemory }
        return key
    }
}

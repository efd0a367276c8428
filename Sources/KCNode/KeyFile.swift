import KCCodec
import KCCrypto
import KCTypes

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a key file could not be written or used.
public enum KeyFileError: Error, Equatable, Sendable, CustomStringConvertible {
    case missing(path: String)
    case alreadyExists(path: String)
    case insecurePermissions(path: String, mode: UInt32)
    case malformed(path: String, reason: String)
    case io(path: String, reason: String)
    /// The file is encrypted and no passphrase was given.
    case passphraseNeeded(path: String, how: String)
    case wrongPassphrase(path: String)
    /// The passphrase source itself failed (a missing passphrase file, no terminal).
    case passphraseUnavailable(String)

    public var description: String {
        switch self {
        case .missing(let path):
            return "key file \(path) does not exist (run `node init` first, or pass --key FILE)"
        case .alreadyExists(let path):
            return "key file \(path) already exists; refusing to overwrite a key"
        case .insecurePermissions(let path, let mode):
            return "key file \(path) has mode \(String(mode, radix: 8)) and can be read by other users; run `chmod 600 \(path)` and check who has seen it"
        case .malformed(let path, let reason):
            return "key file \(path) is malformed: \(reason)"
        case .io(let path, let reason):
            return "cannot access key file \(path): \(reason)"
        case .passphraseNeeded(let path, let how):
            return "key file \(path) is encrypted: \(how)"
        case .wrongPassphrase(let path):
            return "key file \(path): the passphrase is wrong (or the file was changed)"
        case .passphraseUnavailable(let reason):
            return reason
        }
    }
}

/// Where the passphrase of an encrypted key file comes from: asked only when a file is
/// encrypted.
public enum KeyPassphrase: Sendable {
    /// Plain key files only: an encrypted one is refused with `hint` (how to supply one).
    case none(hint: String)
    /// The first line of this file (mode 0600, like the keys).
    case file(String)
    /// A passphrase in hand (tests, or one already read).
    case given(String)
    /// Asked on the controlling terminal, without echo.
    case prompt

    func resolve(for path: String) throws(KeyFileError) -> String {
        switch self {
        case .none(let hint): throw .passphraseNeeded(path: path, how: hint)
        case .given(let passphrase): return passphrase
        case .file(let file): return try Self.read(file: file)
        case .prompt: return try Self.ask("Passphrase for \(path): ")
        }
    }

    /// The first line of `file`, which must not be readable by others.
    public static func read(file: String) throws(KeyFileError) -> String {
        var status = stat()
        guard stat(file, &status) == 0 else {
            throw .passphraseUnavailable("cannot read the passphrase file \(file): \(FileIO.errorText(errno))")
        }
        let mode = UInt32(status.st_mode) & 0o777
        guard mode & 0o077 == 0 else {
            throw .passphraseUnavailable("the passphrase file \(file) has mode \(String(mode, radix: 8)); run `chmod 600 \(file)`")
        }
        switch FileIO.read(path: file, limit: 4_096) {
        case .success(let bytes):
            let line = String(decoding: bytes, as: UTF8.self).split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let passphrase = String(line.hasSuffix("\r") ? line.dropLast() : line)
            guard !passphrase.isEmpty else { throw .passphraseUnavailable("the passphrase file \(file) is empty") }
            return passphrase
        case .failure(let failure):
            throw .passphraseUnavailable("cannot read the passphrase file \(file): \(failure.reason)")
        }
    }

    /// Reads a line from the controlling terminal with echo off.
    public static func ask(_ prompt: String) throws(KeyFileError) -> String {
        let terminal = open("/dev/tty", O_RDWR | O_CLOEXEC)
        guard terminal >= 0 else {
            throw .passphraseUnavailable("no terminal to ask for the key passphrase on; set keys.passphrase_file in config.toml (or pass --passphrase-file)")
        }
        defer { close(terminal) }
        _ = prompt.withCString { write(terminal, $0, strlen($0)) }
        var saved = termios()
        let hasAttributes = tcgetattr(terminal, &saved) == 0
        if hasAttributes {
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            _ = tcsetattr(terminal, TCSAFLUSH, &quiet)
        }
        defer {
            if hasAttributes { _ = tcsetattr(terminal, TCSAFLUSH, &saved) }
            _ = write(terminal, "\n", 1)
        }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while Glibc.read(terminal, &byte, 1) == 1 && byte != UInt8(ascii: "\n") && line.count < 4_096 { line.append(byte) }
        let passphrase = String(decoding: line, as: UTF8.self)
        guard !passphrase.isEmpty else { throw .passphraseUnavailable("an empty passphrase was entered") }
        return passphrase
    }
}

/// What a key is used for; written into the file so a key is not used for the wrong job.
public enum KeyRole: String, Sendable, CaseIterable {
    /// Signs transactions (staking, events, attestations) for an account.
    case account
    /// Signs consensus proposals and votes.
    case validator
    /// Identifies the node to its peers in the P2P handshake.
    case node
}

/// Ed25519 key files (specs/crypto.md, "Key files"): a small JSON document, mode 0600, never
/// world- or group-readable. The seed is either in the clear (`seed`) or sealed under a
/// passphrase (`encrypted_seed`: Argon2id and XSalsa20-Poly1305, `PassphraseBox`); the public
/// key is always in the clear, so public keys can be shown without the passphrase.
public enum KeyFile {
    /// Writes a new key file (refusing to overwrite one); sealed if `passphrase` is given.
    public static func write(_ key: SigningKey, role: KeyRole, to path: String, passphrase: String? = nil,
                             cost: PassphraseBox.Cost = .keyFile) throws(KeyFileError) {
        let document = try encode(key, role: role, passphrase: passphrase, cost: cost, path: path)
        try FileIO.writeNew(path: path, contents: document, mode: 0o600).mapKeyError(path)
    }

    /// Rewrites an existing key file atomically (to seal it under a passphrase).
    public static func replace(_ key: SigningKey, role: KeyRole, at path: String, passphrase: String?,
                               cost: PassphraseBox.Cost = .keyFile) throws(KeyFileError) {
        let document = try encode(key, role: role, passphrase: passphrase, cost: cost, path: path)
        try FileIO.replace(path: path, contents: document, mode: 0o600).mapKeyError(path)
    }

    static func encode(_ key: SigningKey, role: KeyRole, passphrase: String?, cost: PassphraseBox.Cost,
                       path: String) throws(KeyFileError) -> [UInt8] {
        var members: [(String, JSONValue)] = [
            ("type", .string("ed25519")),
            ("role", .string(role.rawValue)),
            ("public_key", .string(key.publicKey.hex)),
        ]
        if let passphrase {
            let box: PassphraseBox
            do { box = try PassphraseBox.seal(key.seed.bytes, passphrase: passphrase, cost: cost) } catch {
                throw .io(path: path, reason: error.description)
            }
            members.append(("encrypted_seed", .object([
                ("kdf", .string("argon2id")),
                ("opslimit", .number(String(box.cost.operations))),
                ("memlimit", .number(String(box.cost.memoryBytes))),
                ("salt", .string(Hex.encode(box.salt))),
                ("cipher", .string("xsalsa20poly1305")),
                ("nonce", .string(Hex.encode(box.nonce))),
                ("ciphertext", .string(Hex.encode(box.ciphertext))),
            ])))
        } else {
            members.append(("seed", .string(key.seed.hex)))
        }
        return Array((JSONValue.object(members).rendered() + "\n").utf8)
    }

    /// The key in `path`; an encrypted file asks `passphrase` for its passphrase.
    public static func read(path: String, expecting role: KeyRole,
                            passphrase: KeyPassphrase = .none(hint: "give its passphrase (keys.passphrase_file in config.toml, or --passphrase-file)")) throws(KeyFileError) -> SigningKey {
        let document = try load(path: path, expecting: role)
        let seed: Bytes32
        if let sealed = document.encryptedSeed {
            let box = try parseBox(sealed, path: path)
            let secret: [UInt8]
            do { secret = try box.open(passphrase: try passphrase.resolve(for: path)) } catch let error as KeyFileError {
                throw error
            } catch PassphraseBox.Failure.wrongPassphraseOrDamaged {
                throw .wrongPassphrase(path: path)
            } catch {
                throw .malformed(path: path, reason: "\(error)")
            }
            guard secret.count == 32 else { throw .malformed(path: path, reason: "the sealed seed is not 32 bytes") }
            seed = Bytes32(secret)
        } else {
            guard let plain = document.seed, let parsed = Bytes32(hex: plain) else {
                throw .malformed(path: path, reason: "needs \"seed\" (64 hex digits) or \"encrypted_seed\"")
            }
            seed = parsed
        }
        let key = SigningKey(seed: seed)
        guard key.publicKey == document.publicKey else { throw .malformed(path: path, reason: "public_key does not match the seed") }
        return key
    }

    /// The public key in `path`, without the seed (no passphrase needed).
    public static func publicKey(path: String, expecting role: KeyRole) throws(KeyFileError) -> PublicKey {
        try load(path: path, expecting: role).publicKey
    }

    /// Whether the file at `path` holds an encrypted seed.
    public static func isEncrypted(path: String, role: KeyRole) throws(KeyFileError) -> Bool {
        try load(path: path, expecting: role).encryptedSeed != nil
    }

    struct Document {
        let publicKey: PublicKey
        let seed: String?
        let encryptedSeed: [(String, JSONValue)]?
    }

    static func load(path: String, expecting role: KeyRole) throws(KeyFileError) -> Document {
        var status = stat()
        guard stat(path, &status) == 0 else {
            if errno == ENOENT { throw .missing(path: path) }
            throw .io(path: path, reason: FileIO.errorText(errno))
        }
        let mode = UInt32(status.st_mode) & 0o777
        // Refuse before reading a single byte: a key others could read must be treated as leaked.
        guard mode & 0o077 == 0 else { throw .insecurePermissions(path: path, mode: mode) }
        let bytes: [UInt8]
        switch FileIO.read(path: path, limit: 64 * 1024) {
        case .success(let contents): bytes = contents
        case .failure(let error): throw .io(path: path, reason: error.reason)
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw .malformed(path: path, reason: "not UTF-8 text") }
        let document: JSONValue
        do { document = try StrictJSON.parse(text) } catch { throw .malformed(path: path, reason: error.description) }
        guard case .object(let members) = document else { throw .malformed(path: path, reason: "expected a JSON object") }
        func string(_ name: String) -> String? {
            guard let member = members.first(where: { $0.0 == name }), case .string(let value) = member.1 else { return nil }
            return value
        }
        guard string("type") == "ed25519" else { throw .malformed(path: path, reason: "type must be \"ed25519\"") }
        guard let fileRole = string("role") else { throw .malformed(path: path, reason: "missing string field \"role\"") }
        guard fileRole == role.rawValue else {
            throw .malformed(path: path, reason: "this is a \(fileRole) key, but a \(role.rawValue) key is needed")
        }
        guard let publicHex = string("public_key"), let publicKey = PublicKey(hex: publicHex) else {
            throw .malformed(path: path, reason: "public_key must be 64 hex digits")
        }
        var sealed: [(String, JSONValue)]? = nil
        if let member = members.first(where: { $0.0 == "encrypted_seed" }) {
            guard case .object(let fields) = member.1 else { throw .malformed(path: path, reason: "encrypted_seed must be an object") }
            sealed = fields
        }
        return Document(publicKey: publicKey, seed: string("seed"), encryptedSeed: sealed)
    }

    static func parseBox(_ fields: [(String, JSONValue)], path: String) throws(KeyFileError) -> PassphraseBox {
        func value(_ name: String) throws(KeyFileError) -> String {
            guard let member = fields.first(where: { $0.0 == name }) else {
                throw .malformed(path: path, reason: "encrypted_seed needs \"\(name)\"")
            }
            switch member.1 {
            case .string(let text), .number(let text): return text
            default: throw .malformed(path: path, reason: "encrypted_seed.\(name) must be a string or number")
            }
        }
        guard try value("kdf") == "argon2id", try value("cipher") == "xsalsa20poly1305" else {
            throw .malformed(path: path, reason: "only kdf argon2id with cipher xsalsa20poly1305 is supported")
        }
        guard let operations = UInt64(try value("opslimit")), let memory = UInt64(try value("memlimit")),
              let salt = Hex.decode(try value("salt")), let nonce = Hex.decode(try value("nonce")),
              let ciphertext = Hex.decode(try value("ciphertext")) else {
            throw .malformed(path: path, reason: "encrypted_seed has a field that is not a number or not hex")
        }
        return PassphraseBox(cost: .init(operations: operations, memoryBytes: memory), salt: salt, nonce: nonce, ciphertext: ciphertext)
    }
}

extension Result where Failure == FileIO.Failure {
    func mapKeyError(_ path: String) throws(KeyFileError) {
        if case .failure(let error) = self {
            if error.code == EEXIST { throw .alreadyExists(path: path) }
            throw .io(path: path, reason: error.reason)
        }
    }
}

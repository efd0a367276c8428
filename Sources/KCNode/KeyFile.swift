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
        }
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

/// Ed25519 key files: a small JSON document, mode 0600, never world- or group-readable.
public enum KeyFile {
    public static func write(_ key: SigningKey, role: KeyRole, to path: String) throws(KeyFileError) {
        let document = JSONValue.object([
            ("type", .string("ed25519")),
            ("role", .string(role.rawValue)),
            ("public_key", .string(key.publicKey.hex)),
            ("seed", .string(key.seed.hex)),
        ]).rendered() + "\n"
        try FileIO.writeNew(path: path, contents: Array(document.utf8), mode: 0o600).mapKeyError(path)
    }

    public static func read(path: String, expecting role: KeyRole) throws(KeyFileError) -> SigningKey {
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
        func field(_ name: String) throws(KeyFileError) -> String {
            guard let member = members.first(where: { $0.0 == name }), case .string(let value) = member.1 else {
                throw .malformed(path: path, reason: "missing string field \"\(name)\"")
            }
            return value
        }
        guard try field("type") == "ed25519" else { throw .malformed(path: path, reason: "type must be \"ed25519\"") }
        let fileRole = try field("role")
        guard fileRole == role.rawValue else {
            throw .malformed(path: path, reason: "this is a \(fileRole) key, but a \(role.rawValue) key is needed")
        }
        guard let seed = Bytes32(hex: try field("seed")) else { throw .malformed(path: path, reason: "seed must be 64 hex digits") }
        let key = SigningKey(seed: seed)
        guard key.publicKey.hex == (try field("public_key")).lowercased() else {
            throw .malformed(path: path, reason: "public_key does not match the seed")
        }
        return key
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

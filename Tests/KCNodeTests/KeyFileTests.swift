import Foundation
import KCCodec
import KCCrypto
import KCNode
import Testing

/// Encrypted key files: the seed sealed under a passphrase, the public key readable without it.
struct KeyFileTests {
    static func directory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kc-keys-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func anEncryptedKeyReadsBackOnlyWithItsPassphrase() throws {
        let folder = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let key = SigningKey(seed: Blake2b.hash256(Array("key-file".utf8)))
        let path = folder + "/validator.json"
        try KeyFile.write(key, role: .validator, to: path, passphrase: "s3cret", cost: .minimum)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(!text.contains(key.seed.hex), "the seed is not in the file")
        #expect(text.contains("\"encrypted_seed\"") && text.contains("argon2id"))
        #expect(try KeyFile.publicKey(path: path, expecting: .validator) == key.publicKey)
        #expect(try KeyFile.isEncrypted(path: path, role: .validator))
        #expect(try KeyFile.read(path: path, expecting: .validator, passphrase: .given("s3cret")).publicKey == key.publicKey)
        #expect(throws: KeyFileError.wrongPassphrase(path: path)) { try KeyFile.read(path: path, expecting: .validator, passphrase: .given("nope")) }
        #expect(throws: KeyFileError.self) { try KeyFile.read(path: path, expecting: .validator) }  // no passphrase given
        // From a passphrase file: its first line, and only if others cannot read it.
        let passphraseFile = folder + "/passphrase"
        try "s3cret\nignored\n".write(toFile: passphraseFile, atomically: true, encoding: .utf8)
        #expect(throws: KeyFileError.self) { try KeyFile.read(path: path, expecting: .validator, passphrase: .file(passphraseFile)) }
        chmod(passphraseFile, 0o600)
        #expect(try KeyFile.read(path: path, expecting: .validator, passphrase: .file(passphraseFile)).publicKey == key.publicKey)
    }

    @Test func aPlainKeyIsSealedInPlace() throws {
        let folder = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let key = SigningKey(seed: Blake2b.hash256(Array("plain".utf8)))
        let path = folder + "/node.json"
        try KeyFile.write(key, role: .node, to: path)
        #expect(try !KeyFile.isEncrypted(path: path, role: .node))
        #expect(try KeyFile.read(path: path, expecting: .node).publicKey == key.publicKey, "a plain key needs no passphrase")
        try KeyFile.replace(key, role: .node, at: path, passphrase: "pw", cost: .minimum)
        #expect(try KeyFile.isEncrypted(path: path, role: .node))
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(try KeyFile.read(path: path, expecting: .node, passphrase: .given("pw")).seed == key.seed)
        #expect(!FileManager.default.fileExists(atPath: path + ".new"))
    }
}

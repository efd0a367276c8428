import Foundation
import KCNode
import KCTestSupport
import Testing

/// Encrypted keys and the signer-state move, through the `node` binary.
struct KeysCLITests {
    @Test func encryptedKeysStartWithTheirPassphraseFileAndNotWithout() throws {
        let home = temporaryPath("kc-keys-enc")
        let passphrase = home + ".passphrase"
        defer { try? FileManager.default.removeItem(atPath: home); try? FileManager.default.removeItem(atPath: passphrase) }
        try "correct horse battery\n".write(toFile: passphrase, atomically: true, encoding: .utf8)
        chmod(passphrase, 0o600)
        let initialised = try runNode(["init", "--home", home, "--passphrase-file", passphrase, "--p2p-port", "0", "--rpc-port", "1"])
        #expect(initialised.status != 0, "port 0 is refused for --p2p-port")
        let created = try runNode(["init", "--home", home, "--passphrase-file", passphrase, "--p2p-port", "\(TestPorts.entrypoint + 4)",
                                   "--rpc-port", "\(TestPorts.entrypoint + 5)"])
        #expect(created.status == 0, "\(created.standardError)")
        #expect(created.standardOutput.contains("encrypted"))
        let validatorFile = try String(contentsOfFile: home + "/keys/validator.json", encoding: .utf8)
        #expect(validatorFile.contains("encrypted_seed") && !validatorFile.contains("\"seed\""))
        // Public keys show without the passphrase.
        let shown = try runNode(["keys", "show", "--home", home])
        #expect(shown.status == 0 && shown.standardOutput.contains("consensus key:"), "\(shown.standardError)")

        let node = try ChildProcess(["start", "--home", home])
        #expect(node.wait(seconds: 30) { node.text.contains(" info committed ") }, "\(node.text)")
        node.stop(signal: SIGTERM)

        // Without a passphrase source and without a terminal, start refuses with the fix.
        let configPath = home + "/config.toml"
        let config = try String(contentsOfFile: configPath, encoding: .utf8)
        try config.replacingOccurrences(of: "passphrase_file = \"\(passphrase)\"", with: "passphrase_file = \"\"")
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        let refused = try runNode(["start", "--home", home], detachTerminal: true)
        #expect(refused.status != 0)
        #expect(refused.standardError.contains("keys.passphrase_file"), "\(refused.standardError)")
        // A wrong passphrase is named as such.
        try "wrong\n".write(toFile: passphrase, atomically: true, encoding: .utf8)
        chmod(passphrase, 0o600)
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        let wrong = try runNode(["start", "--home", home])
        #expect(wrong.status != 0 && wrong.standardError.contains("passphrase is wrong"), "\(wrong.standardError)")
    }

    @Test func keysEncryptSealsAPlainHome() throws {
        let home = temporaryPath("kc-keys-seal")
        let passphrase = home + ".passphrase"
        defer { try? FileManager.default.removeItem(atPath: home); try? FileManager.default.removeItem(atPath: passphrase) }
        #expect(try runNode(["init", "--home", home]).status == 0)
        let before = try runNode(["keys", "show", "--home", home, "--output", "json"]).standardOutput
        try "pw\n".write(toFile: passphrase, atomically: true, encoding: .utf8)
        chmod(passphrase, 0o600)
        let sealed = try runNode(["keys", "encrypt", "--home", home, "--passphrase-file", passphrase])
        #expect(sealed.status == 0, "\(sealed.standardError)")
        #expect(sealed.standardOutput.contains("account, validator, node"))
        for role in ["account", "validator", "node"] {
            #expect(try String(contentsOfFile: home + "/keys/\(role).json", encoding: .utf8).contains("encrypted_seed"))
        }
        #expect(try runNode(["keys", "show", "--home", home, "--output", "json"]).standardOutput == before, "the same public keys")
        #expect(try runNode(["keys", "encrypt", "--home", home, "--passphrase-file", passphrase]).standardOutput.contains("already encrypted"))
    }

    @Test func signerStateMovesBetweenHomesAndIsNeverLowered() throws {
        let root = temporaryPath("kc-keys-move")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let genesis = try runNode(["devnet-genesis", "--validators", "1"]).standardOutput
        try genesis.write(toFile: root + "/genesis.json", atomically: true, encoding: .utf8)
        for (name, port) in [("old", TestPorts.entrypoint + 6), ("new", TestPorts.entrypoint + 8)] {
            let made = try runNode(["init", "--home", root + "/" + name, "--genesis", root + "/genesis.json", "--devnet-index", "0",
                                    "--p2p-port", "\(port)", "--rpc-port", "\(port + 1)"])
            #expect(made.status == 0, "\(made.standardError)")
        }
        // The old machine validates for a while.
        let old = try ChildProcess(["start", "--home", root + "/old"])
        #expect(old.wait(seconds: 30) { old.text.components(separatedBy: " info committed ").count > 5 }, "\(old.text)")
        let running = try runNode(["keys", "export-signer-state", "--home", root + "/old"])
        #expect(running.status != 0 && running.standardError.contains("stop it first"), "\(running.standardError)")
        old.stop(signal: SIGTERM)
        let exported = try runNode(["keys", "export-signer-state", "--home", root + "/old"])
        #expect(exported.status == 0, "\(exported.standardError)")
        #expect(exported.standardOutput.contains("\"height\""), "something was signed")
        try exported.standardOutput.write(toFile: root + "/state.json", atomically: true, encoding: .utf8)
        let imported = try runNode(["keys", "import-signer-state", "--home", root + "/new", "--file", root + "/state.json"])
        #expect(imported.status == 0 && imported.standardOutput.contains("signer state in force"), "\(imported.standardError)")
        let again = try runNode(["keys", "import-signer-state", "--home", root + "/new", "--file", root + "/state.json"])
        #expect(again.status == 0, "importing the same state twice is harmless: \(again.standardError)")
        // A home that signed later refuses the older state.
        let oldAgain = try ChildProcess(["start", "--home", root + "/old"])
        #expect(oldAgain.wait(seconds: 30) { oldAgain.text.components(separatedBy: " info committed ").count > 3 }, "\(oldAgain.text)")
        oldAgain.stop(signal: SIGTERM)
        let lowered = try runNode(["keys", "import-signer-state", "--home", root + "/old", "--file", root + "/state.json"])
        #expect(lowered.status != 0 && lowered.standardError.contains("refusing to lower"), "\(lowered.standardError)")
    }
}

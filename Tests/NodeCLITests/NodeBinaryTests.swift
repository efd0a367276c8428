import Foundation
import KCNode
import KCTestSupport
import Testing


struct RunResult {
    let status: Int32
    let standardOutput: String
    let standardError: String
}

/// Runs the binary to completion (bounded: 60 s) and captures both streams. With
/// `detachTerminal` it runs in a session of its own (setsid), with no terminal to ask on.
func runNode(_ arguments: [String], environment: [String: String] = [:], detachTerminal: Bool = false) throws -> RunResult {
    let process = Process()
    if detachTerminal {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setsid")
        process.arguments = ["--wait", nodeBinary()] + arguments
    } else {
        process.executableURL = URL(fileURLWithPath: nodeBinary())
        process.arguments = arguments
    }
    if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    let output = Pipe(), error = Pipe()
    process.standardOutput = output
    process.standardError = error
    try process.run()
    let outputData = output.fileHandleForReading.readDataToEndOfFile()
    let errorData = error.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return RunResult(status: process.terminationStatus,
                     standardOutput: String(decoding: outputData, as: UTF8.self),
                     standardError: String(decoding: errorData, as: UTF8.self))
}

func temporaryPath(_ prefix: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
}

struct NodeBinaryTests {
    @Test func versionPrints() throws {
        let result = try runNode(["--version"])
        #expect(result.status == 0)
        // "0.17.0 (commit 1a2b3c4d5e6f, Swift 6.3)": a semantic version first.
        let semver = result.standardOutput.split(separator: " ").first ?? ""
        #expect(semver.split(separator: ".").count == 3 && semver.split(separator: ".").allSatisfy { UInt($0) != nil }, "\(result.standardOutput)")
        #expect(result.standardOutput.contains("(commit "))
    }

    @Test func initThenKeysShowAgree() throws {
        let home = temporaryPath("kc-cli-init")
        defer { try? FileManager.default.removeItem(atPath: home) }
        let initialised = try runNode(["init", "--home", home, "--moniker", "alice"])
        #expect(initialised.status == 0, "\(initialised.standardError)")
        #expect(initialised.standardOutput.contains("membria-local-"))

        for name in ["config.toml", "genesis.json", "keys/account.json", "keys/validator.json", "keys/node.json"] {
            #expect(FileManager.default.fileExists(atPath: home + "/" + name), "\(name) missing")
        }
        for role in ["account", "validator", "node"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: home + "/keys/\(role).json")
            #expect((attributes[.posixPermissions] as? Int) == 0o600, "\(role) key mode")
        }
        let config = try String(contentsOfFile: home + "/config.toml", encoding: .utf8)
        #expect(config.contains("moniker = \"alice\""))
        #expect(config.contains("# "))  // commented

        let shown = try runNode(["keys", "show", "--home", home, "--output", "json"])
        #expect(shown.status == 0)
        let json = try JSONSerialization.jsonObject(with: Data(shown.standardOutput.utf8)) as! [String: String]
        let address = try #require(json["account_address"])
        #expect(initialised.standardOutput.contains("account address: \(address)"))
        #expect(initialised.standardOutput.contains("node id:         \(try #require(json["node_id"]))"))

        // The one-validator genesis that init wrote names this node's keys.
        let genesis = try NodeHome(path: home).loadGenesis()
        #expect(genesis.validators.first?.address.hex == address)
        #expect(genesis.validators.first?.consensusKey.hex == json["consensus_key"])
    }

    @Test func initRefusesToOverwriteUnlessForced() throws {
        let home = temporaryPath("kc-cli-overwrite")
        defer { try? FileManager.default.removeItem(atPath: home) }
        #expect(try runNode(["init", "--home", home]).status == 0)
        let before = try runNode(["keys", "show", "--home", home]).standardOutput

        let refused = try runNode(["init", "--home", home])
        #expect(refused.status != 0)
        #expect(refused.standardError.contains("already holds a node home"))
        #expect(try runNode(["keys", "show", "--home", home]).standardOutput == before)

        let forced = try runNode(["init", "--home", home, "--force"])
        #expect(forced.status == 0)
        #expect(try runNode(["keys", "show", "--home", home]).standardOutput != before)
    }

    @Test func devnetIndexGivesTheGenesisKeys() throws {
        let home = temporaryPath("kc-cli-devnet")
        defer { try? FileManager.default.removeItem(atPath: home) }
        let genesisFile = packageRoot.appendingPathComponent("Genesis/devnet.json").path
        let result = try runNode(["init", "--home", home, "--genesis", genesisFile, "--devnet-index", "3",
                                  "--p2p-port", "26686", "--rpc-port", "26687"])
        #expect(result.status == 0, "\(result.standardError)")
        let genesis = try NodeHome(path: home).loadGenesis()
        let shown = try runNode(["keys", "show", "--home", home, "--output", "json"])
        let json = try JSONSerialization.jsonObject(with: Data(shown.standardOutput.utf8)) as! [String: String]
        #expect(genesis.validators[3].address.hex == json["account_address"])
        #expect(genesis.validators[3].consensusKey.hex == json["consensus_key"])
        #expect(genesis.validators[3].nodeID.hex == json["node_id"])
        let config = try String(contentsOfFile: home + "/config.toml", encoding: .utf8)
        #expect(config.contains("127.0.0.1:26686") && config.contains("127.0.0.1:26687"))
    }

    @Test func devnetKeysAreRefusedOnOtherChains() throws {
        let home = temporaryPath("kc-cli-devnet-refused")
        defer { try? FileManager.default.removeItem(atPath: home) }
        let genesisFile = packageRoot.appendingPathComponent("Genesis/mainnet-example.json").path
        let result = try runNode(["init", "--home", home, "--genesis", genesisFile, "--devnet-index", "0"])
        #expect(result.status != 0)
        #expect(result.standardError.contains("only allowed for chain ids starting with membria-devnet"))
        #expect(!FileManager.default.fileExists(atPath: home + "/keys"))
    }

    @Test func committedDevnetGenesisMatchesTheDevnetKeys() throws {
        let generated = try runNode(["devnet-genesis"])
        #expect(generated.status == 0)
        let committed = try String(contentsOf: packageRoot.appendingPathComponent("Genesis/devnet.json"), encoding: .utf8)
        #expect(generated.standardOutput == committed,
                "Genesis/devnet.json is stale: regenerate it with `node devnet-genesis > Genesis/devnet.json`")
    }

    @Test func badGenesisFilesAreRefusedWithTheField() throws {
        let devnet = try String(contentsOf: packageRoot.appendingPathComponent("Genesis/devnet.json"), encoding: .utf8)
        let cases: [(String, String)] = [
            (devnet.replacingOccurrences(of: "\"max_parents\": 8", with: "\"max_parents\": 8, \"max_parent\": 9"),
             "genesis field params.events.max_parent: unknown field"),
            (devnet.replacingOccurrences(of: "\"min_dispute_bond\": \"100ACTI\"", with: "\"min_dispute_bond\": \"100 DOGE\""),
             "genesis field params.events.min_dispute_bond: '100 DOGE' is not an amount"),
            (devnet.replacingOccurrences(of: "\"stake\": \"100000ACTI\"", with: "\"stake\": \"9999ACTI\""),
             "genesis field validators[0].stake: stake 9,999 ACTI is below the minimum validator stake 10,000 ACTI"),
            (devnet.replacingOccurrences(of: "\"epoch_length_blocks\": 30", with: "\"epoch_length_blocks\": 30, \"epoch_length_blocks\": 31"),
             "duplicate key \"epoch_length_blocks\""),
        ]
        for (index, (text, expected)) in cases.enumerated() {
            #expect(text != devnet, "case \(index) did not change the file")
            let file = temporaryPath("kc-bad-genesis") + ".json"
            let home = temporaryPath("kc-cli-bad-genesis")
            defer {
                try? FileManager.default.removeItem(atPath: file)
                try? FileManager.default.removeItem(atPath: home)
            }
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            let result = try runNode(["init", "--home", home, "--genesis", file])
            #expect(result.status == 1, "case \(index)")
            #expect(result.standardError.contains(expected), "case \(index): \(result.standardError)")
            #expect(!FileManager.default.fileExists(atPath: home + "/keys"), "case \(index) left keys behind")
        }
    }

    @Test func readableKeyFileIsRefused() throws {
        let home = temporaryPath("kc-cli-perms")
        defer { try? FileManager.default.removeItem(atPath: home) }
        #expect(try runNode(["init", "--home", home]).status == 0)
        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: home + "/keys/validator.json")
        let result = try runNode(["keys", "show", "--home", home])
        #expect(result.status == 1)
        #expect(result.standardError.contains("validator.json has mode 640 and can be read by other users"))
    }

    @Test func missingHomeGivesAPlainError() throws {
        let result = try runNode(["keys", "show", "--home", "/nonexistent/kc-home"])
        #expect(result.status == 1)
        #expect(result.standardError.contains("does not exist (run `node init` first"))
    }

    @Test func invalidOptionsAreRefused() throws {
        let home = temporaryPath("kc-cli-options")
        let badPort = try runNode(["init", "--home", home, "--p2p-port", "70000"])
        #expect(badPort.status != 0)
        #expect(badPort.standardError.contains("--p2p-port must be between 1 and 65535"))
        let badPeer = try runNode(["init", "--home", home, "--peer", "nobody@somewhere"])
        #expect(badPeer.status != 0)
        #expect(badPeer.standardError.contains("is not NODE_ID@HOST:PORT"))
        #expect(!FileManager.default.fileExists(atPath: home))
    }
}

struct KeyFileTests {
    @Test func writeReadRoundTripAndRoleCheck() throws {
        let directory = temporaryPath("kc-keyfile")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let key = DevnetKeys.user(index: 0)
        let path = directory + "/user.json"
        try KeyFile.write(key, role: .account, to: path)
        #expect(try KeyFile.read(path: path, expecting: .account).publicKey == key.publicKey)
        #expect(throws: KeyFileError.malformed(path: path, reason: "this is a account key, but a validator key is needed")) {
            try KeyFile.read(path: path, expecting: .validator)
        }
        #expect(throws: KeyFileError.alreadyExists(path: path)) { try KeyFile.write(key, role: .account, to: path) }
    }

    @Test func tamperedKeyFileIsRefused() throws {
        let directory = temporaryPath("kc-keyfile-tamper")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/k.json"
        try KeyFile.write(DevnetKeys.user(index: 1), role: .account, to: path)
        var text = try String(contentsOfFile: path, encoding: .utf8)
        text = text.replacingOccurrences(of: DevnetKeys.user(index: 1).publicKey.hex, with: DevnetKeys.user(index: 2).publicKey.hex)
        try FileManager.default.removeItem(atPath: path)
        FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
        #expect(throws: KeyFileError.malformed(path: path, reason: "public_key does not match the seed")) {
            try KeyFile.read(path: path, expecting: .account)
        }
    }
}

/// `--help` output is part of the interface operators read: it changes only on purpose. To
/// accept a change, regenerate the files with `COLUMNS=80 .build/debug/node <command> --help`.
struct HelpSnapshotTests {
    static let commands: [(String, [String])] = [
        ("help", []), ("help-init", ["init"]), ("help-start", ["start"]), ("help-keys-show", ["keys", "show"]),
        ("help-simulate", ["simulate"]), ("help-status", ["status"]), ("help-query", ["query"]),
        ("help-query-events", ["query", "events"]), ("help-propose-event", ["propose-event"]), ("help-attest", ["attest"]),
        ("help-dispute", ["dispute"]), ("help-vote-dispute", ["vote-dispute"]), ("help-defend", ["defend"]), ("help-stake", ["stake"]),
        ("help-unstake", ["unstake"]), ("help-withdraw", ["withdraw"]), ("help-register-validator", ["register-validator"]),
        ("help-register-gateway", ["register-gateway"]), ("help-unjail", ["unjail"]), ("help-transfer", ["transfer"]),
        ("help-arweave-dev-server", ["arweave-dev-server"]), ("help-keys-encrypt", ["keys", "encrypt"]),
        ("help-keys-export-signer-state", ["keys", "export-signer-state"]), ("help-keys-import-signer-state", ["keys", "import-signer-state"]),
        ("help-keys-add", ["keys", "add"]), ("help-keys-import", ["keys", "import"]), ("help-keys-export", ["keys", "export"]),
        ("help-keys-list", ["keys", "list"]), ("help-version", ["version"]), ("help-unsafe-reset-all", ["unsafe-reset-all"]),
        ("help-rollback", ["rollback"]), ("help-reindex", ["reindex"]), ("help-export-genesis", ["export-genesis"]),
    ]

    @Test(arguments: Self.commands)
    func helpMatchesTheSnapshot(name: String, command: [String]) throws {
        let expected = try String(contentsOf: packageRoot.appendingPathComponent("Tests/NodeCLITests/Snapshots/\(name).txt"), encoding: .utf8)
        let result = try runNode(command + ["--help"], environment: ["COLUMNS": "80"])
        #expect(result.status == 0)
        #expect(result.standardOutput == expected, "help for `node \(command.joined(separator: " "))` changed")
    }
}

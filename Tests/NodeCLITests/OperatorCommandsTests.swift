import Foundation
import KCCrypto
import KCNode
import KCRuntime
import KCStorage
import KCTestSupport
import KCTypes
import Testing

/// The housekeeping commands operators expect (CometBFT's are the reference): version, a
/// keyring of named account keys, and a reset that keeps what must never be lost.
@Suite(.serialized)
struct OperatorCommandsTests {
    @Test func versionNamesTheReleaseCommitAndCompiler() throws {
        let text = try runNode(["version"])
        #expect(text.status == 0)
        #expect(text.standardOutput.hasPrefix("membria-node \(BuildInfo.version)\ncommit:  \(BuildInfo.commit)\nswift:   \(BuildInfo.swiftVersion)"))
        #expect(BuildInfo.commit.count >= 7, "a commit id, or 'unknown' outside a checkout: \(BuildInfo.commit)")
        let json = try StrictJSON.parse(try runNode(["version", "--output", "json"]).standardOutput)
        #expect(json["version"]?.stringValue == BuildInfo.version && json["commit"]?.stringValue == BuildInfo.commit)
        #expect(try runNode(["--version"]).standardOutput.contains("\(BuildInfo.version) (commit \(BuildInfo.commit)"))
    }

    @Test func theKeyringAddsImportsExportsAndListsAndNeverOverwrites() throws {
        let ring = temporaryPath("kc-keyring")
        defer { try? FileManager.default.removeItem(atPath: ring) }
        let environment = ["MEMBRIA_KEYRING": ring]
        func node(_ arguments: [String]) throws -> RunResult { try runNode(arguments, environment: environment) }
        let added = try node(["keys", "add", "gateway-1", "--unencrypted", "--output", "json"])
        #expect(added.status == 0, "\(added.standardError)")
        let address = try #require(try StrictJSON.parse(added.standardOutput)["address"]?.stringValue)
        let file = ring + "/gateway-1.json"
        #expect(try KeyFile.publicKey(path: file, expecting: .account).hex == address)
        var info = stat()
        #expect(stat(file, &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(stat(ring, &info) == 0 && info.st_mode & 0o777 == 0o700)
        // Sealed under a passphrase by default.
        let passphrase = ring + ".pass"
        try "correct horse\n".write(toFile: passphrase, atomically: true, encoding: .utf8)
        chmod(passphrase, 0o600)
        defer { try? FileManager.default.removeItem(atPath: passphrase) }
        #expect(try node(["keys", "add", "sealed", "--passphrase-file", passphrase]).status == 0)
        #expect(try KeyFile.isEncrypted(path: ring + "/sealed.json", role: .account))
        // Never overwritten; names are names, not paths.
        let again = try node(["keys", "add", "gateway-1", "--unencrypted"])
        #expect(again.status != 0 && again.standardError.contains("already exists"))
        #expect(try KeyFile.publicKey(path: file, expecting: .account).hex == address)
        let escape = try node(["keys", "add", "../outside", "--unencrypted"])
        #expect(escape.status != 0 && escape.standardError.contains("is not a key name"))
        // Export prints the file (warning when the seed is in the clear); import takes it back.
        let exported = try node(["keys", "export", "gateway-1"])
        #expect(exported.standardError.contains("is not encrypted"))
        let copy = ring + ".copy.json"
        try exported.standardOutput.write(toFile: copy, atomically: true, encoding: .utf8)
        chmod(copy, 0o600)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let imported = try node(["keys", "import", "moved", "--file", copy])
        #expect(imported.status == 0 && imported.standardOutput.contains(address), "\(imported.standardError)")
        let notAKey = try node(["keys", "import", "bad", "--file", passphrase])
        #expect(notAKey.status != 0 && notAKey.standardError.contains("is not an account key file"))
        let listed = try StrictJSON.parse(try node(["keys", "list", "--output", "json"]).standardOutput)
        #expect(listed.arrayValue?.compactMap { $0["name"]?.stringValue } == ["gateway-1", "moved", "sealed"])
        #expect(listed.arrayValue?.first?["encrypted"] == .bool(false) && listed.arrayValue?.last?["encrypted"] == .bool(true))
        let missing = try node(["keys", "export", "nobody"])
        #expect(missing.status != 0 && missing.standardError.contains("no key named 'nobody'") && missing.standardError.contains("gateway-1, moved, sealed"))
    }

    /// A transaction signed with `--key NAME` from the keyring.
    @Test func aTransactionSignsWithAKeyringName() throws {
        let ring = temporaryPath("kc-keyring")
        defer { try? FileManager.default.removeItem(atPath: ring) }
        let network = try TestNetwork(validators: 1)
        defer { network.stopAll(); network.remove() }
        try network.start(0)
        #expect(network.waitHeight(2, seconds: 60))
        let user = network.root + "/user0.json"
        try KeyFile.write(DevnetKeys.user(index: 0), role: .account, to: user)
        let environment = ["MEMBRIA_KEYRING": ring]
        #expect(try runNode(["keys", "import", "funded", "--file", user], environment: environment).status == 0)
        let url = "http://127.0.0.1:\(network.rpcPorts[0])"
        let to = DevnetKeys.user(index: 1).publicKey.hex
        let sent = try runNode(["transfer", "--key", "funded", "--to", to, "--amount", "2ACTI", "--wait", "--node", url], environment: environment)
        #expect(sent.status == 0 && sent.standardOutput.contains("committed at height"), "\(sent.standardError)")
        let unknown = try runNode(["transfer", "--key", "nobody", "--to", to, "--amount", "2ACTI", "--node", url], environment: environment)
        #expect(unknown.status != 0 && unknown.standardError.contains("no key named 'nobody'"))
    }

    /// unsafe-reset-all refuses a running node; on a stopped one it drops the chain data and
    /// keeps keys, config and the signer state (the node then refuses to sign what it signed),
    /// unless told to drop that too.
    @Test func unsafeResetAllKeepsKeysAndTheSignerState() throws {
        let network = try TestNetwork(validators: 1)
        defer { network.stopAll(); network.remove() }
        let home = network.home(0)
        try network.start(0)
        #expect(network.waitHeight(4, seconds: 60))
        let running = try runNode(["unsafe-reset-all", "--home", home])
        #expect(running.status != 0 && running.standardError.contains("is running; stop it first"), "\(running.standardError)")
        network.stop(0)
        let signedBefore = try SignerState.current(home: NodeHome(path: home), key: DevnetKeys.key(.validator, index: 0).publicKey)
        let last = try #require(signedBefore)
        let keysBefore = try FileManager.default.contentsOfDirectory(atPath: home + "/keys").sorted()
        let reset = try runNode(["unsafe-reset-all", "--home", home])
        #expect(reset.status == 0, "\(reset.standardError)")
        #expect(reset.standardOutput.contains("blocks up to height"))
        #expect(reset.standardOutput.contains("kept: the signer state (last signed: height \(last.height) round \(last.round) step \(last.step))"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: home + "/keys").sorted() == keysBefore)
        #expect(FileManager.default.fileExists(atPath: home + "/config.toml") && FileManager.default.fileExists(atPath: home + "/genesis.json"))
        let exported = try StrictJSON.parse(try runNode(["keys", "export-signer-state", "--home", home]).standardOutput)
        #expect(exported["last_signed"]?["height"]?.stringValue == "\(last.height)")
        // The lone validator cannot rebuild heights it already signed: it refuses, it does not double sign.
        try network.start(0)
        #expect(network.wait(seconds: 30) { network.output(0).contains("signer refused") })
        network.stop(0)
        let dropped = try runNode(["unsafe-reset-all", "--home", home, "--reset-signer-state"])
        #expect(dropped.status == 0 && dropped.standardOutput.contains("dropped: the signer state"))
        let after = try StrictJSON.parse(try runNode(["keys", "export-signer-state", "--home", home]).standardOutput)
        #expect(after["last_signed"] == .null)
        let nothing = try runNode(["export-genesis", "--home", home, "--chain-id", "membria-fork-9"])
        #expect(nothing.status != 0 && nothing.standardError.contains("there is no chain data in"), "\(nothing.standardError)")
    }

    /// rollback undoes the last height of a stopped validator by rebuilding its store from
    /// its own blocks; restarted, it fetches that height again and agrees with the others
    /// block by block and state root by state root.
    @Test func rollbackUndoesTheLastHeightAndTheNodeCatchesUpAgain() throws {
        let network = try TestNetwork(validators: 4)
        defer { network.stopAll(); network.remove() }
        for index in 0..<4 { try network.start(index) }
        #expect(network.waitHeight(8, seconds: 60), "\(network.describe())")
        let running = try runNode(["rollback", "--home", network.home(3)])
        #expect(running.status != 0 && running.standardError.contains("is running; stop it first"), "\(running.standardError)")
        network.stop(3)
        let before = try storedHeight(network.home(3))
        let result = try runNode(["rollback", "--home", network.home(3)])
        #expect(result.status == 0, "\(result.standardError)")
        #expect(result.standardOutput.contains("rolled back from height \(before) to height \(before - 1)"), "\(result.standardOutput)")
        #expect(try storedHeight(network.home(3)) == before - 1)
        #expect(!FileManager.default.fileExists(atPath: network.home(3) + "/data/store.before-rollback"))
        try network.start(3)
        let target = network.height(0) + 3
        #expect(network.waitHeight(target, nodes: [3], seconds: 60), "the rolled-back node must catch up: \(network.describe())")
        network.stopAll()
        let heights = try network.checkStoresAgree()
        #expect(heights[3] >= before)
        for index in 0..<4 { #expect(!network.output(index).contains("double-sign evidence")) }
    }

    /// reindex rebuilds the query indexes a node stopped keeping (ADR 0027): turned back on
    /// without it, the node refuses to start and names the command; after it, the node starts
    /// and locates a transaction committed while the indexes were off.
    @Test func reindexRebuildsTheIndexesANodeStoppedKeeping() throws {
        let network = try TestNetwork(validators: 1)
        defer { network.stopAll(); network.remove() }
        let home = network.home(0)
        try network.editConfig(0) { $0.replacingOccurrences(of: "indexes = true", with: "indexes = false") }
        try network.start(0)
        #expect(network.waitHeight(2, seconds: 60), "\(network.describe())")
        let key = network.root + "/user0.json"
        try KeyFile.write(DevnetKeys.user(index: 0), role: .account, to: key)
        let sent = try runNode(["transfer", "--key", key, "--to", DevnetKeys.user(index: 1).publicKey.hex, "--amount", "1ACTI",
                                "--node", network.rpc(0), "--output", "json"])
        #expect(sent.status == 0, "\(sent.standardError)")
        let hash = try #require(try StrictJSON.parse(sent.standardOutput)["hash"]?.stringValue)
        #expect(network.wait(seconds: 30) { network.commits(0).contains { $0.transactions > 0 } }, "\(network.describe())")
        let located = EndToEndTests.get(network.rpc(0) + "/txs/\(hash)")
        #expect(located.status == 501 && located.text.contains("index_disabled"), "\(located.text)")
        let running = try runNode(["reindex", "--home", home])
        #expect(running.status != 0 && running.standardError.contains("is running; stop it first"), "\(running.standardError)")
        network.stop(0)

        try network.editConfig(0) { $0.replacingOccurrences(of: "indexes = false", with: "indexes = true") }
        try network.start(0)
        #expect(network.waitExit(0, seconds: 30), "a node may not turn the indexes on over the gap")
        #expect(network.output(0).contains("storage.indexes = false") && network.output(0).contains("node reindex"), "\(network.output(0))")
        let stored = try storedHeight(home)
        let result = try runNode(["reindex", "--home", home])
        #expect(result.status == 0, "\(result.standardError)")
        #expect(result.standardOutput.contains("reindexed heights 1 to \(stored) (the indexes had stopped at height 1)"), "\(result.standardOutput)")
        #expect(!FileManager.default.fileExists(atPath: home + "/data/store.before-reindex"))
        let again = try runNode(["reindex", "--home", home])
        #expect(again.status != 0 && again.standardError.contains("has kept every query index; nothing to rebuild"), "\(again.standardError)")

        try network.start(0)
        #expect(network.wait(seconds: 30) { EndToEndTests.get(network.rpc(0) + "/txs/\(hash)").status == 200 },
                "the reindexed node locates the transaction: \(network.describe())")
        #expect(EndToEndTests.get(network.rpc(0) + "/events?status=finalized").status == 200)
    }

    /// export-genesis writes the state (tip or an earlier height) as a genesis a node loads,
    /// with the active validators and every holding, and says what it cannot carry: the new
    /// supply is the old one less the pools, to the unit.
    @Test func exportGenesisCarriesHoldingsAndValidatorsAndNamesTheRest() throws {
        let network = try TestNetwork(validators: 4)
        defer { network.stopAll(); network.remove() }
        for index in 0..<4 { try network.start(index) }
        #expect(network.waitHeight(6, seconds: 60), "\(network.describe())")
        let home = network.home(0)
        let running = try runNode(["export-genesis", "--home", home, "--chain-id", "membria-fork-1"])
        #expect(running.status != 0 && running.standardError.contains("is running; stop it first"))
        network.stopAll()
        let sameChain = try runNode(["export-genesis", "--home", home, "--chain-id", network.genesis.chainID])
        #expect(sameChain.status != 0 && sameChain.standardError.contains("needs its own chain id"))
        let result = try runNode(["export-genesis", "--home", home, "--chain-id", "membria-fork-1"])
        #expect(result.status == 0, "\(result.standardError)")
        let exported = try GenesisLoader.load(json: result.standardOutput)
        #expect(exported.chainID == "membria-fork-1" && exported.parameters == network.genesis.parameters)
        #expect(Set(exported.validators.map(\.consensusKey)) == Set(network.genesis.validators.map(\.consensusKey)))
        // Supply: what the state holds in accounts and stake goes over; the pools do not, and say so.
        // The store is closed again before the next command opens it.
        let (audit, tip) = try { () throws -> (ChainState.SupplyAudit, UInt64) in
            let store = try RocksDBStore(path: home + "/data/store")
            let state = try BlockStore(store: store).open(genesis: network.genesis, runtime: Runtime(genesis: network.genesis))
            return (state.auditSupply(), state.global.height)
        }()
        let held = try #require(audit.balances.adding(audit.bonded)?.adding(audit.unbonding))
        #expect(exported.totalSupply == held, "exported \(exported.totalSupply.map { "\($0)" } ?? "?") held \(held)")
        if audit.rewardPot > .zero { #expect(result.standardError.contains("not carried: reward pot: \(audit.rewardPot)")) }
        #expect(result.standardError.contains("exported the state at height \(tip) as chain membria-fork-1"))
        // An earlier height, rebuilt from the node's own blocks.
        let early = try runNode(["export-genesis", "--home", home, "--chain-id", "membria-fork-2", "--height", "3"])
        #expect(early.status == 0 && early.standardError.contains("exported the state at height 3"), "\(early.standardError)")
        #expect(try GenesisLoader.load(json: early.standardOutput).validators.count == 4)
        let above = try runNode(["export-genesis", "--home", home, "--chain-id", "membria-fork-2", "--height", "\(tip + 5)"])
        #expect(above.status != 0 && above.standardError.contains("is above the last committed height"))
    }

    /// register-validator reads only the public half of an encrypted home's validator key:
    /// no passphrase is asked for a key it does not sign with.
    @Test func registerValidatorNeedsNoPassphraseForTheConsensusKey() throws {
        let home = temporaryPath("kc-encrypted")
        defer { try? FileManager.default.removeItem(atPath: home); try? FileManager.default.removeItem(atPath: home + ".pass") }
        try "a long passphrase\n".write(toFile: home + ".pass", atomically: true, encoding: .utf8)
        chmod(home + ".pass", 0o600)
        #expect(try runNode(["init", "--home", home, "--passphrase-file", home + ".pass"]).status == 0)
        let result = try runNode(["register-validator", "--home", home, "--node", "http://127.0.0.1:1"])
        #expect(result.status != 0)
        #expect(result.standardError.contains("cannot reach node at http://127.0.0.1:1"), "\(result.standardError)")
    }
}

import Foundation
import KCCodec
import KCConsensus
import KCCrypto
import KCNode
import KCStorage
import KCTypes
import Testing

/// Moving a validator between machines: the last signed position goes along, and an import
/// never lowers what the new home already signed.
struct SignerStateTests {
    static let genesis = LocalGenesis.devnet()
    static let key = DevnetKeys.key(.validator, index: 0)

    /// A devnet home for validator 0.
    static func makeHome() throws -> NodeHome {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("kc-signer-\(UUID().uuidString)").path
        let genesisFile = root + ".genesis.json"
        try genesis.json.rendered().write(toFile: genesisFile, atomically: true, encoding: .utf8)
        let home = NodeHome(path: root)
        _ = try NodeInitializer.initialize(InitOptions(home: home, moniker: "v0", genesisFile: genesisFile, devnetIndex: 0))
        return home
    }

    /// Signs a prevote at (height, round) with the home's signer, as the node would.
    static func sign(in home: NodeHome, height: UInt64, round: UInt32, blockID: Hash256? = nil) throws -> SignedVote {
        try FileManager.default.createDirectory(atPath: home.dataDirectory, withIntermediateDirectories: true)
        let store = try RocksDBStore(path: home.dataDirectory + "/store")
        let signer = try PersistentSigner(key: key, chainID: genesis.chainID, store: store)
        return try signer.signVote(Vote(kind: .prevote, height: height, round: round, blockID: blockID, timestampMilliseconds: 1,
                                        validator: key.publicKey))
    }

    static func remove(_ home: NodeHome) {
        try? FileManager.default.removeItem(atPath: home.path)
        try? FileManager.default.removeItem(atPath: home.path + ".genesis.json")
    }

    @Test func theLastSignedPositionMovesAndIsNeverLowered() throws {
        let old = try Self.makeHome(), new = try Self.makeHome()
        defer { Self.remove(old); Self.remove(new) }
        #expect(try SignerState.export(home: old)["last_signed"] == .null)
        _ = try Self.sign(in: old, height: 7, round: 1)
        let exported = try SignerState.export(home: old)
        #expect(exported["last_signed"]?["height"]?.stringValue == "7")
        let adopted = try SignerState.importState(exported, home: new)
        #expect(adopted?.height == 7 && adopted?.round == 1 && adopted?.step == 1)
        // The new home's signer now refuses at or below it, and signs above it.
        #expect(throws: SignerError.self) { try Self.sign(in: new, height: 7, round: 0) }
        #expect(throws: SignerError.self) { try Self.sign(in: new, height: 7, round: 1, blockID: Blake2b.hash256([1])) }
        _ = try Self.sign(in: new, height: 9, round: 0)
        // Importing the older state again would lower it: refused, and nothing changes.
        #expect(throws: SignerState.Failure.self) { try SignerState.importState(exported, home: new) }
        #expect(try SignerState.export(home: new)["last_signed"]?["height"]?.stringValue == "9")
    }

    @Test func anImportForAnotherKeyChainOrSignatureIsRefused() throws {
        let old = try Self.makeHome(), new = try Self.makeHome()
        defer { Self.remove(old); Self.remove(new) }
        _ = try Self.sign(in: old, height: 3, round: 0)
        let exported = try SignerState.export(home: old)
        func changed(_ name: String, _ value: JSONValue, inLast: Bool = false) -> JSONValue {
            guard case .object(var members) = exported else { return exported }
            if inLast, case .object(var last)? = exported["last_signed"] {
                last = last.map { $0.0 == name ? ($0.0, value) : $0 }
                members = members.map { $0.0 == "last_signed" ? ($0.0, .object(last)) : $0 }
            } else {
                members = members.map { $0.0 == name ? ($0.0, value) : $0 }
            }
            return .object(members)
        }
        #expect(throws: SignerState.Failure.self) { try SignerState.importState(changed("chain_id", .string("membria-other")), home: new) }
        #expect(throws: SignerState.Failure.self) {
            try SignerState.importState(changed("consensus_key", .string(DevnetKeys.key(.validator, index: 1).publicKey.hex)), home: new)
        }
        // A height raised by hand no longer matches its signature.
        #expect(throws: SignerState.Failure.self) { try SignerState.importState(changed("height", .string("1000"), inLast: true), home: new) }
        // This home signed something else at the same step: importing could allow a double sign.
        _ = try Self.sign(in: new, height: 3, round: 0, blockID: Blake2b.hash256([5]))
        #expect(throws: SignerState.Failure.self) { try SignerState.importState(exported, home: new) }
    }
}

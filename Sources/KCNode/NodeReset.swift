import KCCrypto
import KCStorage
import KCTypes

/// `node unsafe-reset-all`: drops a stopped node's chain data (blocks, state, indexes, the
/// consensus WAL) so that it syncs again from genesis, keeping its keys, config and genesis,
/// and, unless told otherwise, the record of what its validator key signed last, so that the
/// reset node cannot sign again at a height it already signed (a double sign).
public enum NodeReset {
    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    public struct Report: Sendable, Equatable {
        /// The height the store held (nil when there was no chain data).
        public let droppedHeight: UInt64?
        /// The signer record kept (nil: nothing was signed yet, or it was dropped).
        public let keptSigner: LastSigned?
        public let droppedSigner: Bool
    }

    public static func resetAll(home: NodeHome, keepSignerState: Bool) throws(Failure) -> Report {
        let storePath = home.dataDirectory + "/store"
        var droppedHeight: UInt64? = nil
        if FileIO.exists(storePath) {
            // Opening the store also proves that no node runs on it (RocksDB's lock).
            do { droppedHeight = try BlockStore(store: try home.openStoppedStore()).height() } catch {
                throw Failure(message: "\(error)")
            }
        }
        var signer: JSONValue? = nil
        if keepSignerState && (FileIO.exists(storePath) || FileIO.exists(home.dataDirectory + "/consensus.wal")) {
            do { signer = try SignerState.export(home: home) } catch { throw Failure(message: "cannot read the signer state to keep it: \(error.message); nothing was removed") }
        }
        if case .failure(let failure) = FileIO.removeTree(home.dataDirectory) {
            throw Failure(message: "cannot remove \(home.dataDirectory): \(failure.reason)")
        }
        var kept: LastSigned? = nil
        if let signer, signer["last_signed"] != .null {
            if case .failure(let failure) = FileIO.makeDirectories(home.dataDirectory, mode: 0o700) {
                throw Failure(message: "cannot create \(home.dataDirectory): \(failure.reason); keep this signer state and import it: \(signer.compact())")
            }
            do { kept = try SignerState.importState(signer, home: home) } catch {
                throw Failure(message: "the chain data is gone but the signer state could not be written back (\(error.message)); import it with `node keys import-signer-state` before starting: \(signer.compact())")
            }
        }
        return Report(droppedHeight: droppedHeight, keptSigner: kept, droppedSigner: !keepSignerState)
    }
}

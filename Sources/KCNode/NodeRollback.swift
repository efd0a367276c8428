import KCStorage
import KCTypes

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `node rollback`: undoes a stopped node's last committed height (its block, state and
/// indexes), for recovery after a bad binary wrote a wrong state; the node then fetches that
/// height again from its peers. The state is kept at the tip only, so the store is rebuilt
/// from genesis through the height before (`ChainReplay`) beside the old one, which it then
/// replaces. The signer's record is never rolled back: the node will not sign again anything
/// it signed at the undone height.
public enum NodeRollback {
    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    public struct Report: Sendable, Equatable {
        public let from: UInt64
        public let to: UInt64
    }

    public static func rollback(home: NodeHome) throws(Failure) -> Report {
        let live = home.dataDirectory + "/store"
        let building = home.dataDirectory + "/store.rollback"
        let replaced = home.dataDirectory + "/store.before-rollback"
        if !FileIO.exists(live) && FileIO.exists(replaced) {
            throw Failure(message: "a rollback was interrupted: move \(replaced) back to \(live), then run it again")
        }
        guard FileIO.exists(live) else { throw Failure(message: "there is no chain data in \(home.dataDirectory); nothing to roll back") }
        let genesis: Genesis
        do { genesis = try home.loadGenesis() } catch { throw Failure(message: "\(error)") }
        if case .failure(let failure) = FileIO.removeTree(building) {
            throw Failure(message: "cannot clear \(building) left by an earlier try: \(failure.reason)")
        }
        let height: UInt64
        do {
            let source: RocksDBStore
            do { source = try home.openStoppedStore() } catch { throw Failure(message: "\(error)") }
            let blocks = BlockStore(store: source)
            do { height = try blocks.height() } catch { throw Failure(message: "\(error)") }
            guard height > 0 else { throw Failure(message: "the store holds only genesis; nothing to roll back") }
            let target: RocksDBStore
            do { target = try RocksDBStore(path: building) } catch { throw Failure(message: "cannot create \(building): \(error)") }
            do { _ = try ChainReplay.rebuild(from: blocks, into: BlockStore(store: target), through: height - 1, genesis: genesis) } catch {
                throw Failure(message: "cannot rebuild the state at height \(height - 1): \(error); the store was not changed")
            }
            // What the validator key signed stays as it is.
            do {
                if let signer = try source.get(PersistentSigner.storeKey) {
                    var batch = WriteBatch()
                    batch.put(PersistentSigner.storeKey, signer)
                    try target.write(batch, sync: true)
                }
            } catch {
                throw Failure(message: "cannot carry the signer record over: \(error); the store was not changed")
            }
        }
        guard rename(live, replaced) == 0 else { throw Failure(message: "cannot move \(live) aside: \(FileIO.errorText(errno)); the store was not changed") }
        guard rename(building, live) == 0 else {
            throw Failure(message: "cannot put the rebuilt store in place: \(FileIO.errorText(errno)); the old store is in \(replaced): move it back to \(live)")
        }
        _ = FileIO.removeTree(replaced)
        return Report(from: height, to: height - 1)
    }
}

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
    public typealias Failure = StoreRebuild.Failure

    public struct Report: Sendable, Equatable {
        public let from: UInt64
        public let to: UInt64
    }

    public static func rollback(home: NodeHome) throws(Failure) -> Report {
        let rebuilt = try StoreRebuild.run(home: home, name: "rollback", doing: "roll back") { height, _ throws(Failure) in
            guard height > 0 else { throw Failure(message: "the store holds only genesis; nothing to roll back") }
            return height - 1
        }
        return Report(from: rebuilt.stored, to: rebuilt.rebuilt)
    }
}

/// `node reindex`: rebuilds a stopped node's store, which stopped keeping the query indexes
/// (`storage.indexes = false`, ADR 0027), from genesis through its tip with every index, so
/// that the setting can be turned on again. Needs every block from genesis (an archive node).
public enum NodeReindex {
    public typealias Failure = StoreRebuild.Failure

    /// The height rebuilt through, and the one the indexes had stopped at.
    public struct Report: Sendable, Equatable {
        public let height: UInt64
        public let indexesOffSince: UInt64
    }

    public static func reindex(home: NodeHome) throws(Failure) -> Report {
        var offSince: UInt64 = 0
        let rebuilt = try StoreRebuild.run(home: home, name: "reindex", doing: "reindex") { height, blocks throws(Failure) in
            let since: UInt64?
            do { since = try blocks.indexesOffSince() } catch { throw Failure(message: "\(error)") }
            guard let since else { throw Failure(message: "the store has kept every query index; nothing to rebuild") }
            offSince = since
            return height
        }
        return Report(height: rebuilt.rebuilt, indexesOffSince: offSince)
    }
}

/// A stopped node's store rebuilt from genesis (`ChainReplay`, which re-executes and
/// re-verifies its own blocks) beside the old one, with every query index, then put in its
/// place; the signer's record is carried over as it is.
public enum StoreRebuild {
    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// `through`: from the stored height (and the store), the height to rebuild through.
    /// `name` names the directories and the interrupted run; `doing` the work in messages.
    static func run(home: NodeHome, name: String, doing: String,
                    through: (UInt64, BlockStore) throws(Failure) -> UInt64) throws(Failure) -> (stored: UInt64, rebuilt: UInt64) {
        let live = home.dataDirectory + "/store"
        let building = home.dataDirectory + "/store.\(name)"
        let replaced = home.dataDirectory + "/store.before-\(name)"
        if !FileIO.exists(live) && FileIO.exists(replaced) {
            throw Failure(message: "a \(name) was interrupted: move \(replaced) back to \(live), then run it again")
        }
        guard FileIO.exists(live) else { throw Failure(message: "there is no chain data in \(home.dataDirectory); nothing to \(doing)") }
        let genesis: Genesis
        do { genesis = try home.loadGenesis() } catch { throw Failure(message: "\(error)") }
        if case .failure(let failure) = FileIO.removeTree(building) {
            throw Failure(message: "cannot clear \(building) left by an earlier try: \(failure.reason)")
        }
        let height: UInt64, target: UInt64
        do {
            let source: RocksDBStore
            do { source = try home.openStoppedStore() } catch { throw Failure(message: "\(error)") }
            let blocks = BlockStore(store: source)
            do { height = try blocks.height() } catch { throw Failure(message: "\(error)") }
            target = try through(height, blocks)
            let rebuilt: RocksDBStore
            do { rebuilt = try RocksDBStore(path: building) } catch { throw Failure(message: "cannot create \(building): \(error)") }
            do { _ = try ChainReplay.rebuild(from: blocks, into: BlockStore(store: rebuilt), through: target, genesis: genesis) } catch {
                throw Failure(message: "cannot rebuild the state at height \(target): \(error); the store was not changed")
            }
            // What the validator key signed stays as it is.
            do {
                if let signer = try source.get(PersistentSigner.storeKey) {
                    var batch = WriteBatch()
                    batch.put(PersistentSigner.storeKey, signer)
                    try rebuilt.write(batch, sync: true)
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
        return (height, target)
    }
}

import KCConsensus
import KCCrypto
import KCRuntime
import KCStorage
import KCTypes

/// Re-executes a store's own blocks from genesis into another store, as block sync would:
/// each block's commit certificate is verified against the validator set of its height and
/// the block is executed by the runtime (the state is kept only at the tip, so an earlier
/// state is rebuilt this way: `node rollback`, `node export-genesis --height`).
public enum ChainReplay {
    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// Rebuilds into `target` (an empty store) the chain of `source` up to `height`, and
    /// returns the state after it. The target is synced once, at the end.
    public static func rebuild(from source: BlockStore, into target: BlockStore, through height: UInt64,
                               genesis: Genesis) throws(Failure) -> ChainState {
        let runtime = Runtime(genesis: genesis)
        let signatures = SignatureCache()
        let factory = BlockFactory(runtime: runtime, signatures: signatures)
        var state: ChainState
        do { state = try target.open(genesis: genesis, runtime: runtime) } catch { throw Failure(message: "cannot start the new store: \(error)") }
        guard state.global.height == 0 else { throw Failure(message: "the target store is not empty") }
        let base: UInt64
        do { base = try source.base() } catch { throw Failure(message: "cannot read the store: \(error)") }
        guard base <= 1 else {
            throw Failure(message: "this store is pruned (it keeps blocks from height \(base), storage.retain_blocks): replaying from genesis needs every block; run this on an archive node")
        }
        for h in stride(from: UInt64(1), through: height, by: 1) {
            do {
                guard let block = try source.block(at: h), let certificate = try source.certificate(at: h) else {
                    throw Failure(message: "block \(h) or its certificate is missing from the store")
                }
                let tip = try target.tip(for: state)
                do { try certificate.verify(validators: tip.validators, chainID: genesis.chainID, cache: signatures) } catch {
                    throw Failure(message: "the commit certificate of block \(h) does not verify: \(error)")
                }
                guard certificate.blockID == block.id, let executed = factory.validate(block, on: tip) else {
                    throw Failure(message: "block \(h) does not execute on the state before it; the store is damaged")
                }
                try target.commit(block, certificate: certificate, executed: executed, sync: h == height, state: &state)
            } catch let failure as Failure {
                throw failure
            } catch {
                throw Failure(message: "at block \(h): \(error)")
            }
        }
        return state
    }
}

import KCCodec
import KCConsensus
import KCCrypto
import KCNode
import KCRuntime
import KCTypes

/// A small chain the stateful targets check against: the devnet genesis (five validators),
/// advanced a few empty blocks so evidence has history to be judged by.
enum Fixture {
    static let genesis = LocalGenesis.devnet()
    static let chainID = genesis.chainID
    static let runtime = Runtime(genesis: genesis)
    static let signatures = SignatureCache(capacity: 10_000)
    static let factory = BlockFactory(runtime: runtime, signatures: signatures)
    static let validators = ValidatorSet(genesis.validators.map { .init(key: $0.consensusKey, power: 100_000) })
    static let validatorKeys = (0..<5).map { DevnetKeys.key(.validator, index: $0) }
    static let users = (0..<4).map { DevnetKeys.user(index: $0) }

    static let state: ChainState = {
        var state = runtime.genesisState()
        for _ in 0..<3 {
            let context = BlockContext(height: state.global.height + 1, timeMilliseconds: state.global.timeMilliseconds + 1_000)
            state.commit(try! runtime.execute([], context: context, on: state))
        }
        return state
    }()

    static let tip = BlockFactory.Tip(state: state, previous: nil, previousValidators: nil, validators: validators)

    /// Large enough that the fuzzer never fills it.
    nonisolated(unsafe) static let mempool = Mempool(runtime: runtime, limits: .init(maxTransactions: 1_000_000, maxBytes: 1 << 30), signatures: signatures)
}

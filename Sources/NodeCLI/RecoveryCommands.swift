// The recovery commands of a stopped node: unsafe-reset-all, rollback, reindex, export-genesis.
import ArgumentParser
import KCCrypto
import KCNode
import KCRuntime
import KCStorage

struct UnsafeResetAllCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unsafe-reset-all",
        abstract: "Delete a stopped node's chain data (blocks, state, consensus WAL); keep its keys, config and signer state.",
        discussion: """
        The node syncs again from genesis at its next start. Keys, config.toml and genesis.json \
        stay. The record of what the validator key signed last stays too, so that the node never \
        signs again at a height it signed before; --reset-signer-state drops it as well, which \
        is safe only for a key that never signed on this chain or a chain that starts over.
        """)

    @Option(name: .long, help: ArgumentHelp("Node home directory (its node stopped).", valueName: "dir"))
    var home: String

    @Flag(name: .long, help: "Also drop the record of what the validator key signed last (risks a double sign on a running chain).")
    var resetSignerState = false

    func run() throws {
        try runReportingErrors {
            let nodeHome = try recoveryHome(home, untouched: "nothing was removed")
            let report: NodeReset.Report
            do { report = try NodeReset.resetAll(home: nodeHome, keepSignerState: !resetSignerState) } catch { throw OperatorError("\(error)") }
            print(report.droppedHeight.map { "removed the chain data in \(nodeHome.dataDirectory) (blocks up to height \($0), state, consensus WAL)" }
                  ?? "there was no chain data in \(nodeHome.dataDirectory)")
            print("kept: the keys in \(nodeHome.keysDirectory), config.toml and genesis.json")
            if report.droppedSigner {
                print("dropped: the signer state (--reset-signer-state); this key may sign any height again")
            } else if let signer = report.keptSigner {
                print("kept: the signer state (last signed: height \(signer.height) round \(signer.round) step \(signer.step)); the node will not sign at or below it")
            } else {
                print("signer state: this key had signed nothing")
            }
            print("the node syncs from genesis at its next start")
        }
    }
}

/// The home a recovery command works on: refused, before anything is touched, when it holds
/// no node config.
func recoveryHome(_ path: String, untouched: String = "nothing was changed") throws -> NodeHome {
    let home = NodeHome(path: path)
    guard FileIO.exists(home.configPath) else { throw OperatorError("\(path) is not a node home (no config.toml); \(untouched)") }
    return home
}

struct RollbackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Undo a stopped node's last committed height (block, state, indexes), for recovery.",
        discussion: """
        For a node whose last block was executed by a faulty binary: the store is rebuilt from \
        genesis through the height before it, by re-executing and re-verifying its own blocks, \
        and then replaces the old one; at its next start the node fetches that height again from \
        its peers. The signer state is never rolled back: the node will not sign again what it \
        signed at the undone height. Takes time in proportion to the chain's height.
        """)

    @Option(name: .long, help: ArgumentHelp("Node home directory (its node stopped).", valueName: "dir"))
    var home: String

    func run() throws {
        try runReportingErrors {
            let nodeHome = try recoveryHome(home)
            let report: NodeRollback.Report
            do { report = try NodeRollback.rollback(home: nodeHome) } catch { throw OperatorError("\(error)") }
            print("rolled back from height \(report.from) to height \(report.to) (state rebuilt from genesis by re-executing \(report.to) blocks)")
            print("kept: the signer state; the node fetches height \(report.from) again from its peers at its next start")
        }
    }
}

struct ReindexCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reindex",
        abstract: "Rebuild the query indexes a stopped node stopped keeping (storage.indexes = false).",
        discussion: """
        The store is rebuilt from genesis through its tip by re-executing and re-verifying its \
        own blocks, with every index (transactions by hash; events by status, author, kind, \
        ArTxID and parent), and then replaces the old one; set storage.indexes = true before the \
        next start. Needs every block from genesis (not a pruned or state-synced store). Takes \
        time in proportion to the chain's height; the signer state is kept as it is.
        """)

    @Option(name: .long, help: ArgumentHelp("Node home directory (its node stopped).", valueName: "dir"))
    var home: String

    func run() throws {
        try runReportingErrors {
            let nodeHome = try recoveryHome(home)
            let report: NodeReindex.Report
            do { report = try NodeReindex.reindex(home: nodeHome) } catch { throw OperatorError("\(error)") }
            print("reindexed heights 1 to \(report.height) (the indexes had stopped at height \(report.indexesOffSince))")
            print("set storage.indexes = true in \(nodeHome.configPath) before the next start, or the node stops keeping them again")
        }
    }
}

struct ExportGenesisCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-genesis",
        abstract: "Write a stopped node's state (at its tip or an earlier height) as the genesis of a new chain.",
        discussion: """
        For restarting a network from a chosen height, or forking it into a testnet. The genesis \
        keeps every account's holdings and the active validators with their stake; what the \
        format cannot hold (reward pot, treasury, dispute escrow, events, disputes, jail state) \
        is listed on standard error. The new chain needs its own --chain-id. Validators that \
        were not in this chain's genesis need --node-id ADDRESS=NODE_ID (the chain does not \
        record node ids). An earlier --height is rebuilt by re-executing the node's own blocks.
        """)

    @Option(name: .long, help: ArgumentHelp("Node home directory (its node stopped).", valueName: "dir"))
    var home: String

    @Option(name: .long, help: ArgumentHelp("Chain id of the new chain (must differ from this one).", valueName: "id"))
    var chainID: String

    @Option(name: .long, help: ArgumentHelp("Height whose state to export (default: the last committed one).", valueName: "height"))
    var height: UInt64?

    @Option(name: .long, help: ArgumentHelp("Genesis time of the new chain, Unix milliseconds (default: the exported block's time).", valueName: "ms"))
    var genesisTimeMs: UInt64?

    @Option(name: .long, help: ArgumentHelp("Node id of a validator not in this chain's genesis (repeat for each).", valueName: "address=node-id"))
    var nodeID: [String] = []

    @Option(name: .long, help: ArgumentHelp("File to write the genesis to (default: standard output).", valueName: "file"))
    var out: String?

    func run() throws {
        try runReportingErrors {
            let nodeHome = NodeHome(path: home)
            var ids: [PublicKey: PublicKey] = [:]
            for pair in nodeID {
                let parts = pair.split(separator: "=")
                guard parts.count == 2, let address = PublicKey(hex: parts[0]), let id = PublicKey(hex: parts[1]) else {
                    throw OperatorError("--node-id \(pair) is not ADDRESS=NODE_ID (two 64-hex keys)")
                }
                ids[address] = id
            }
            let old = try nodeHome.loadGenesis()
            guard FileIO.exists(nodeHome.dataDirectory + "/store") else {
                throw OperatorError("there is no chain data in \(nodeHome.dataDirectory) (a new or reset home): nothing to export")
            }
            let state: ChainState
            do {
                let store: RocksDBStore
                do { store = try nodeHome.openStoppedStore() } catch { throw OperatorError("\(error)") }
                let blocks = BlockStore(store: store)
                let tip = try blocks.height()
                guard tip > 0 else {
                    throw OperatorError("there is no chain data in \(nodeHome.dataDirectory) beyond genesis (a new or reset home): nothing to export; genesis.json is that state")
                }
                if let height, height != tip {
                    guard height < tip else { throw OperatorError("--height \(height) is above the last committed height \(tip)") }
                    do { state = try ChainReplay.rebuild(from: blocks, into: BlockStore(store: MemoryStore()), through: height, genesis: old) } catch {
                        throw OperatorError("cannot rebuild the state at height \(height): \(error)")
                    }
                } else {
                    state = try blocks.open(genesis: old, runtime: Runtime(genesis: old))
                }
            }
            let result: GenesisExport.Result
            do { result = try GenesisExport.export(state: state, old: old, chainID: chainID, genesisTimeMilliseconds: genesisTimeMs, nodeIDs: ids) } catch {
                throw OperatorError("\(error)")
            }
            let text = result.genesis.json.rendered() + "\n"
            if let out {
                if case .failure(let failure) = FileIO.writeNew(path: out, contents: Array(text.utf8), mode: 0o644) {
                    throw OperatorError("cannot write \(out): \(failure.reason) (an existing file is never overwritten)")
                }
            } else {
                print(text, terminator: "")
            }
            printError("exported the state at height \(result.height) as chain \(chainID): \(result.genesis.accounts.count) account(s), "
                       + "\(result.genesis.validators.count) validator(s), genesis hash \(result.genesis.hash.hex)")
            for line in result.dropped { printError("  not carried: \(line)") }
        }
    }
}

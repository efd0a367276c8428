import ArgumentParser
import KCNode

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
            let nodeHome = NodeHome(path: home)
            guard FileIO.exists(nodeHome.configPath) else { throw OperatorError("\(home) is not a node home (no config.toml); nothing was removed") }
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
            let nodeHome = NodeHome(path: home)
            guard FileIO.exists(nodeHome.configPath) else { throw OperatorError("\(home) is not a node home (no config.toml); nothing was changed") }
            let report: NodeRollback.Report
            do { report = try NodeRollback.rollback(home: nodeHome) } catch { throw OperatorError("\(error)") }
            print("rolled back from height \(report.from) to height \(report.to) (state rebuilt from genesis by re-executing \(report.to) blocks)")
            print("kept: the signer state; the node fetches height \(report.from) again from its peers at its next start")
        }
    }
}

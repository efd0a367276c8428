import ArgumentParser
import Foundation
import KCNode
import KCNetwork

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a node home: keys, a commented config.toml and the genesis file.",
        discussion: """
        Without --genesis, init makes a one-validator local chain whose only validator is \
        this node. With --genesis FILE, the file is checked and copied, and the node joins \
        that chain. An existing home is never overwritten unless --force is given.
        """
    )

    @Option(name: .long, help: ArgumentHelp("Node home directory to create.", valueName: "dir"))
    var home: String

    @Option(name: .long, help: ArgumentHelp("Genesis file to copy (default: a new one-validator local chain).", valueName: "file"))
    var genesis: String?

    @Option(name: .long, help: ArgumentHelp("Human-readable name of this node.", valueName: "name"))
    var moniker: String = "node"

    @Option(name: .long, help: ArgumentHelp("P2P listen port.", valueName: "port"))
    var p2pPort: Int = NodePorts.standard.p2pPort

    @Option(name: .long, help: ArgumentHelp("RPC listen port.", valueName: "port"))
    var rpcPort: Int = NodePorts.standard.rpcPort

    @Option(name: .long, parsing: .singleValue,
            help: ArgumentHelp("A persistent peer as NODE_ID@HOST:PORT (repeatable).", valueName: "peer"))
    var peer: [String] = []

    @Option(name: .long, help: ArgumentHelp(
        "Use the public devnet keys of validator N instead of fresh keys (devnet chains only; insecure by design).",
        valueName: "n"))
    var devnetIndex: Int?

    @Flag(name: .long, help: "Delete an existing home at --home (keys and data included) and create a new one.")
    var force = false

    @Option(name: .long, help: ArgumentHelp(
        "Encrypt the key files under the passphrase on this file's first line (mode 0600); config.toml points the node to it.",
        valueName: "file"))
    var passphraseFile: String?

    func validate() throws {
        guard (1...65535).contains(p2pPort) else { throw ValidationError("--p2p-port must be between 1 and 65535") }
        guard (1...65535).contains(rpcPort) else { throw ValidationError("--rpc-port must be between 1 and 65535") }
        guard p2pPort != rpcPort else { throw ValidationError("--p2p-port and --rpc-port must differ") }
        for entry in peer where !PeerAddress.isWellFormed(entry) {
            throw ValidationError("--peer '\(entry)' is not NODE_ID@HOST:PORT (NODE_ID: 64 hex digits)")
        }
    }

    func run() throws {
        try runReportingErrors {
            var options = InitOptions(home: NodeHome(path: home), moniker: moniker, genesisFile: genesis,
                                      devnetIndex: devnetIndex, ports: NodePorts(p2pPort: p2pPort, rpcPort: rpcPort),
                                      persistentPeers: peer, force: force)
            if let passphraseFile {
                options.passphrase = try KeyPassphrase.read(file: passphraseFile)
                options.passphraseFile = URL(fileURLWithPath: passphraseFile).standardizedFileURL.path
            }
            let result = try NodeInitializer.initialize(options)
            print("""
            Initialised node home \(options.home.path)
              chain id:        \(result.chainID)
              genesis hash:    \(result.genesisHash.hex)
              account address: \(result.accountAddress.hex)
              consensus key:   \(result.consensusKey.hex)
              node id:         \(result.nodeID.hex)
            Keys are in \(options.home.keysDirectory) (mode 0600\(options.passphrase == nil ? "" : ", encrypted")); back them up and keep them private.
            """)
        }
    }
}

import ArgumentParser
import KCNode
import KCTypes

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Inspect the node's keys.",
        subcommands: [Show.self]
    )

    enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the public keys of a node home (never the private keys).")

        @Option(name: .long, help: ArgumentHelp("Node home directory.", valueName: "dir"))
        var home: String

        @Option(name: .long, help: "Output format: text or json.")
        var output: OutputFormat = .text

        func run() throws {
            try runReportingErrors {
                let nodeHome = NodeHome(path: home)
                let account = try nodeHome.loadKey(.account)
                let validator = try nodeHome.loadKey(.validator)
                let node = try nodeHome.loadKey(.node)
                switch output {
                case .text:
                    print("""
                    account address: \(account.publicKey.hex)
                    consensus key:   \(validator.publicKey.hex)
                    node id:         \(node.publicKey.hex)
                    """)
                case .json:
                    print(JSONValue.object([
                        ("account_address", .string(account.publicKey.hex)),
                        ("consensus_key", .string(validator.publicKey.hex)),
                        ("node_id", .string(node.publicKey.hex)),
                    ]).rendered())
                }
            }
        }
    }
}

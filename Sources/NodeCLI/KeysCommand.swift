import ArgumentParser
import KCNode
import KCTypes

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Inspect, encrypt and move the node's keys.",
        subcommands: [Show.self, Encrypt.self, ExportSignerState.self, ImportSignerState.self]
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

        func validate() throws {
            errorFormat.withLock { $0 = output }
        }

        func run() throws {
            try runReportingErrors {
                let nodeHome = NodeHome(path: home)
                let account = try nodeHome.publicKey(.account)
                let validator = try nodeHome.publicKey(.validator)
                let node = try nodeHome.publicKey(.node)
                switch output {
                case .text:
                    print("""
                    account address: \(account.hex)
                    consensus key:   \(validator.hex)
                    node id:         \(node.hex)
                    """)
                case .json:
                    print(JSONValue.object([
                        ("account_address", .string(account.hex)),
                        ("consensus_key", .string(validator.hex)),
                        ("node_id", .string(node.hex)),
                    ]).rendered())
                }
            }
        }
    }

    struct Encrypt: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Encrypt a home's plain key files under a passphrase (Argon2id + XSalsa20-Poly1305).",
            discussion: """
            Each plain key file is rewritten atomically with its seed sealed; the public keys stay \
            readable. Point keys.passphrase_file in config.toml at the passphrase file, or leave it \
            empty to be asked at start.
            """)

        @Option(name: .long, help: ArgumentHelp("Node home directory.", valueName: "dir"))
        var home: String

        @Option(name: .long, help: ArgumentHelp("File whose first line is the new passphrase (mode 0600); asked twice if not given.", valueName: "file"))
        var passphraseFile: String?

        func run() throws {
            try runReportingErrors {
                let nodeHome = NodeHome(path: home)
                let passphrase: String
                if let passphraseFile {
                    passphrase = try KeyPassphrase.read(file: passphraseFile)
                } else {
                    passphrase = try KeyPassphrase.ask("New passphrase: ")
                    guard try KeyPassphrase.ask("Again: ") == passphrase else { throw OperatorError("the passphrases differ; nothing was changed") }
                }
                var changed: [String] = []
                for role in KeyRole.allCases where try !KeyFile.isEncrypted(path: nodeHome.keyPath(role), role: role) {
                    let key = try nodeHome.loadKey(role)
                    try KeyFile.replace(key, role: role, at: nodeHome.keyPath(role), passphrase: passphrase)
                    changed.append(role.rawValue)
                }
                print(changed.isEmpty ? "every key file in \(nodeHome.keysDirectory) is already encrypted"
                      : "encrypted the \(changed.joined(separator: ", ")) key file(s) in \(nodeHome.keysDirectory)")
            }
        }
    }

    struct ExportSignerState: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export-signer-state",
            abstract: "Print what this validator key signed last (JSON), to move the validator to another machine.",
            discussion: """
            Stop the node first. Import the output on the new machine with `node keys \
            import-signer-state` before its first start, and never start the old one again.
            """)

        @Option(name: .long, help: ArgumentHelp("Node home directory (its node stopped).", valueName: "dir"))
        var home: String

        func run() throws {
            try runReportingErrors {
                do { print(try SignerState.export(home: NodeHome(path: home)).rendered()) } catch let failure as SignerState.Failure { throw OperatorError(failure.message) }
            }
        }
    }

    struct ImportSignerState: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import-signer-state",
            abstract: "Adopt the signer state exported from another machine, so this one never signs at or below it.",
            discussion: """
            Refused if the state is for another chain or key, if its signature does not verify, or \
            if this home already signed later (an import never lowers the last-signed \
            height/round/step).
            """)

        @Option(name: .long, help: ArgumentHelp("Node home directory (its node stopped).", valueName: "dir"))
        var home: String

        @Option(name: .long, help: ArgumentHelp("The file `node keys export-signer-state` wrote.", valueName: "file"))
        var file: String

        func run() throws {
            try runReportingErrors {
                guard case .success(let bytes) = FileIO.read(path: file, limit: 1 << 20),
                      let document = try? StrictJSON.parse(String(decoding: bytes, as: UTF8.self)) else {
                    throw OperatorError("\(file) is not a readable JSON signer state")
                }
                let adopted: LastSigned?
                do { adopted = try SignerState.importState(document, home: NodeHome(path: home)) } catch let failure as SignerState.Failure { throw OperatorError(failure.message) }
                print(adopted.map { "signer state in force: height \($0.height) round \($0.round) step \($0.step)" }
                      ?? "nothing was signed with this key yet; nothing to import")
            }
        }
    }
}

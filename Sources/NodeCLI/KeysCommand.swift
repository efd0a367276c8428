import ArgumentParser
import KCNode
import KCCrypto
import KCTypes

/// What `keys add` and `keys import` print.
func emitKey(name: String, address: PublicKey, path: String, encrypted: Bool, output: KeysCommand.OutputFormat, note: String) throws {
    switch output {
    case .text:
        print("\(note) key '\(name)': address \(address.hex)\n  file: \(path) (\(encrypted ? "encrypted" : "NOT encrypted"))")
    case .json:
        print(JSONValue.object([("name", .string(name)), ("address", .string(address.hex)), ("file", .string(path)),
                                ("encrypted", .bool(encrypted))]).rendered())
    }
}

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Inspect, encrypt and move the node's keys; keep named account keys in a keyring.",
        discussion: """
        show, encrypt and the signer-state commands work on a node home (--home). add, import, \
        export and list keep named account keys in a keyring directory (--keyring, default \
        MEMBRIA_KEYRING, else ~/.membria/keyring); transaction commands sign with one by --key NAME.
        """,
        subcommands: [Show.self, Add.self, Import.self, Export.self, List.self, Encrypt.self, ExportSignerState.self, ImportSignerState.self]
    )

    struct KeyringOption: ParsableArguments {
        @Option(name: .long, help: ArgumentHelp("Keyring directory (default: MEMBRIA_KEYRING, else ~/.membria/keyring).", valueName: "dir"))
        var keyring: String?

        var value: Keyring { Keyring(directory: keyring ?? Keyring.defaultDirectory()) }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a new account key under a name (sealed under a passphrase unless --unencrypted).")

        @Argument(help: "Name of the key (letters, digits, '.', '_', '-').")
        var name: String

        @OptionGroup var keyring: KeyringOption

        @Option(name: .long, help: ArgumentHelp("File whose first line is the passphrase (mode 0600); asked twice if not given.", valueName: "file"))
        var passphraseFile: String?

        @Flag(name: .long, help: "Store the seed in the clear (test keys only).")
        var unencrypted = false

        @Option(name: .long, help: "Output format: text or json.")
        var output: OutputFormat = .text

        func validate() throws {
            errorFormat.withLock { $0 = output }
            if unencrypted && passphraseFile != nil { throw ValidationError("give --passphrase-file or --unencrypted, not both") }
        }

        func run() throws {
            try runReportingErrors {
                let ring = keyring.value
                var passphrase: String? = nil
                if !unencrypted {
                    if let passphraseFile {
                        passphrase = try KeyPassphrase.read(file: passphraseFile)
                    } else {
                        let first = try KeyPassphrase.ask("Passphrase for the new key: ")
                        guard try KeyPassphrase.ask("Again: ") == first else { throw OperatorError("the passphrases differ; no key was created") }
                        passphrase = first
                    }
                }
                let address: PublicKey
                do { address = try ring.add(name, passphrase: passphrase) } catch { throw OperatorError("\(error)") }
                try emitKey(name: name, address: address, path: try ring.path(name), encrypted: passphrase != nil, output: output,
                            note: "created")
            }
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add an existing account key file (plain or encrypted) to the keyring under a name.")

        @Argument(help: "Name to keep it under.")
        var name: String

        @Option(name: .long, help: ArgumentHelp("The account key file (for example one that `node keys export` printed).", valueName: "file"))
        var file: String

        @OptionGroup var keyring: KeyringOption

        @Option(name: .long, help: "Output format: text or json.")
        var output: OutputFormat = .text

        func validate() throws { errorFormat.withLock { $0 = output } }

        func run() throws {
            try runReportingErrors {
                let ring = keyring.value
                let address: PublicKey
                do { address = try ring.importFile(name, from: file) } catch { throw OperatorError("\(error)") }
                let path = try ring.path(name)
                try emitKey(name: name, address: address, path: path, encrypted: (try? KeyFile.isEncrypted(path: path, role: .account)) ?? false,
                            output: output, note: "imported")
            }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a named key's file, to import it elsewhere (its seed stays sealed if it was encrypted).")

        @Argument(help: "Name of the key.")
        var name: String

        @OptionGroup var keyring: KeyringOption

        func run() throws {
            try runReportingErrors {
                let exported: (text: String, encrypted: Bool)
                do { exported = try keyring.value.export(name) } catch { throw OperatorError("\(error)") }
                if !exported.encrypted {
                    printError("warning: the key '\(name)' is not encrypted: this output is its private key; keep it secret")
                }
                print(exported.text, terminator: exported.text.hasSuffix("\n") ? "" : "\n")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the keyring's keys: name, address, whether encrypted.")

        @OptionGroup var keyring: KeyringOption

        @Option(name: .long, help: "Output format: text or json.")
        var output: OutputFormat = .text

        func run() throws {
            let ring = keyring.value
            let entries = ring.list()
            switch output {
            case .text:
                if entries.isEmpty { print("no keys in \(ring.directory) (add one with `node keys add NAME`)") }
                for entry in entries {
                    print("\(entry.name)  \(entry.address.hex)  \(entry.encrypted ? "encrypted" : "NOT encrypted")")
                }
            case .json:
                print(JSONValue.array(entries.map { entry in
                    .object([("name", .string(entry.name)), ("address", .string(entry.address.hex)), ("encrypted", .bool(entry.encrypted))])
                }).rendered())
            }
        }
    }

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

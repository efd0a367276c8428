import ArgumentParser
import KCNode

@main
struct NodeCommand: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Validator and full node for the Membria knowledge chain.",
        discussion: """
        A node keeps its keys, configuration, genesis and data in one home directory \
        (--home). Start with `node init --home DIR`, then inspect the keys with \
        `node keys show --home DIR`.
        """,
        version: version,
        subcommands: [InitCommand.self, StartCommand.self, KeysCommand.self, StatusCommand.self, QueryCommand.self,
                      ProposeEventCommand.self, AttestCommand.self, DisputeCommand.self, VoteDisputeCommand.self, DefendCommand.self,
                      StakeCommand.self, UnstakeCommand.self, WithdrawCommand.self, RegisterValidatorCommand.self,
                      RegisterGatewayCommand.self, UnjailCommand.self, TransferCommand.self,
                      SimulateCommand.self, ArweaveDevServerCommand.self, DevnetGenesisCommand.self, StoreCrashWriterCommand.self, LoadCommand.self]
    )
}

/// Errors that should reach the operator as one plain sentence, with exit status 1.
struct OperatorError: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// Runs `body`, turning a thrown error into a plain message on stderr and exit status 1.
func runReportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let code as ExitCode {
        throw code
    } catch let error as CustomStringConvertible {
        printError("error: \(error.description)")
        throw ExitCode.failure
    }
}

func printError(_ message: String) {
    var standardError = StandardError()
    print(message, to: &standardError)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        var copy = string
        copy.withUTF8 { buffer in _ = fwriteStandardError(buffer) }
    }
}

import ArgumentParser
import KCNode
import KCTypes
import Synchronization

@main
struct NodeCommand: ParsableCommand {
    static let version = "\(BuildInfo.version) (commit \(BuildInfo.commit), Swift \(BuildInfo.swiftVersion))"

    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Validator and full node for the Membria knowledge chain.",
        discussion: """
        A node keeps its keys, configuration, genesis and data in one home directory \
        (--home). Start with `node init --home DIR`, then inspect the keys with \
        `node keys show --home DIR`.
        """,
        version: version,
        subcommands: [InitCommand.self, StartCommand.self, KeysCommand.self, StatusCommand.self, QueryCommand.self, VersionCommand.self,
                      UnsafeResetAllCommand.self, RollbackCommand.self, ReindexCommand.self, ExportGenesisCommand.self,
                      ProposeEventCommand.self, AttestCommand.self, DisputeCommand.self, VoteDisputeCommand.self, DefendCommand.self,
                      StakeCommand.self, UnstakeCommand.self, WithdrawCommand.self, RegisterValidatorCommand.self,
                      RegisterGatewayCommand.self, UnjailCommand.self, TransferCommand.self,
                      SimulateCommand.self, ArweaveDevServerCommand.self, DevnetGenesisCommand.self, StoreCrashWriterCommand.self, LoadCommand.self,
                      VerifyRateCommand.self]
    )
}

/// Errors that should reach the operator as one plain sentence, with exit status 1. `code`
/// names the kind for scripts (`--output json` prints `{"code", "message"}`): the runtime's or
/// the node's error name where one applies, else `invalid_input`.
struct OperatorError: Error, CustomStringConvertible {
    let message: String
    let code: String
    /// The node's answer that goes with the error (a committed transaction that failed).
    let answer: JSONValue?
    init(_ message: String, code: String = "invalid_input", answer: JSONValue? = nil) {
        self.message = message
        self.code = code
        self.answer = answer
    }
    var description: String { message }
}

/// How the running command reports errors: set from `--output` when the options are parsed.
let errorFormat = Mutex<KeysCommand.OutputFormat>(.text)

/// Runs `body`, turning a thrown error into a plain message on stderr (or, under
/// `--output json`, a JSON object `{"code", "message"}` on stdout) and exit status 1.
func runReportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let code as ExitCode {
        throw code
    } catch let error as CustomStringConvertible {
        if errorFormat.withLock({ $0 }) == .json {
            let known = error as? OperatorError
            var fields: [(String, JSONValue)] = [("code", .string(known?.code ?? "error")), ("message", .string(error.description))]
            if let answer = known?.answer { fields.append(("answer", answer)) }
            print(JSONValue.object(fields).rendered())
        } else {
            printError("error: \(error.description)")
        }
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

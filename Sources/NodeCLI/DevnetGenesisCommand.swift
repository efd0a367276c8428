import ArgumentParser
import KCNode

struct DevnetGenesisCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devnet-genesis",
        abstract: "Print the devnet genesis built from the public devnet keys.",
        discussion: "Genesis/devnet.json is this command's output; a test checks that they agree.",
        shouldDisplay: false
    )

    @Option(name: .long, help: "Number of validators.")
    var validators: Int = 5

    @Option(name: .long, help: "Number of funded user accounts (for load runs).")
    var users: Int = 4

    func validate() throws {
        guard (1...20).contains(validators) else { throw ValidationError("--validators must be between 1 and 20") }
        guard (0...256).contains(users) else { throw ValidationError("--users must be between 0 and 256") }
    }

    func run() throws {
        print(LocalGenesis.devnet(validatorCount: validators, userCount: users).json.rendered())
    }
}

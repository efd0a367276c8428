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

    func validate() throws {
        guard (1...20).contains(validators) else { throw ValidationError("--validators must be between 1 and 20") }
    }

    func run() throws {
        print(LocalGenesis.devnet(validatorCount: validators).json.rendered())
    }
}

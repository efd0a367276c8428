import ArgumentParser
import KCNode
import KCTypes

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version",
        abstract: "Print the node's version, the commit it was built from and the Swift version.")

    @Option(name: .long, help: "Output format: text or json.")
    var output: KeysCommand.OutputFormat = .text

    func run() throws {
        switch output {
        case .text:
            print("""
            membria-node \(BuildInfo.version)
            commit:  \(BuildInfo.commit)
            swift:   \(BuildInfo.swiftVersion)
            """)
        case .json:
            print(JSONValue.object([("version", .string(BuildInfo.version)), ("commit", .string(BuildInfo.commit)),
                                    ("swift", .string(BuildInfo.swiftVersion))]).rendered())
        }
    }
}

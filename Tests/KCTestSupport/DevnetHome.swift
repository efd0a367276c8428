import Foundation
import KCNode
import KCTypes

/// A node home for validator 0 of `genesis` in a new temporary directory, made as
/// `node init --devnet-index 0` makes it, with its P2P port left to the system, its log at
/// warning, its commit pause `commitMilliseconds`, and `consensusLines` added to its
/// [consensus] section. The genesis file sits beside it (`path + ".genesis.json"`);
/// `removeDevnetHome` deletes both.
/// `replacing`: further edits of the config's text (a line of the template and what replaces it).
public func makeDevnetHome(genesis: Genesis, moniker: String, commitMilliseconds: Int, consensusLines: [String] = [],
                           replacing: [(String, String)] = []) throws -> String {
    let home = FileManager.default.temporaryDirectory.appendingPathComponent("kc-\(moniker)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
    let genesisPath = home + ".genesis.json"
    try genesis.json.rendered().write(toFile: genesisPath, atomically: true, encoding: .utf8)
    _ = try NodeInitializer.initialize(InitOptions(home: NodeHome(path: home), moniker: moniker, genesisFile: genesisPath,
                                                   devnetIndex: 0, force: true))
    let configPath = home + "/config.toml"
    var config = try String(contentsOfFile: configPath, encoding: .utf8)
        .replacingOccurrences(of: "timeout_commit_ms = 1000", with: (["timeout_commit_ms = \(commitMilliseconds)"] + consensusLines).joined(separator: "\n"))
        .replacingOccurrences(of: "listen_address = \"127.0.0.1:26656\"", with: "listen_address = \"127.0.0.1:0\"")
        .replacingOccurrences(of: "level = \"info\"", with: "level = \"warning\"")
    for (line, replacement) in replacing {
        precondition(config.contains(line), "the config template has no line \(line)")
        config = config.replacingOccurrences(of: line, with: replacement)
    }
    try config.write(toFile: configPath, atomically: true, encoding: .utf8)
    return home
}

public func removeDevnetHome(_ home: String) {
    try? FileManager.default.removeItem(atPath: home)
    try? FileManager.default.removeItem(atPath: home + ".genesis.json")
}

import Foundation
import KCTestSupport
import Testing

/// The shipped systemd unit starts the node with arguments the binary accepts, and (where
/// systemd's own checker is installed) is a unit systemd accepts.
struct SystemdUnitTests {
    static let unitPath = packageRoot.appendingPathComponent("Deploy/systemd/membria-node.service").path

    func execStart() throws -> [String] {
        let text = try String(contentsOfFile: Self.unitPath, encoding: .utf8)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
        return line.dropFirst("ExecStart=".count).split(separator: " ").map(String.init)
    }

    @Test func itsStartCommandIsOneTheNodeAccepts() throws {
        let command = try execStart()
        #expect(command.first == "/usr/local/bin/membria-node" && command.dropFirst().first == "start")
        // The arguments parse: the run gets as far as the (missing) home, not an argument error.
        let home = temporaryPath("kc-unit")
        let arguments = Array(command.dropFirst()).map { $0 == "/var/lib/membria" ? home : $0 }
        let result = try runNode(arguments)
        #expect(result.status != 0)
        #expect(!result.standardError.contains("Usage") && !result.standardError.contains("Unknown option"), "\(result.standardError)")
        #expect(result.standardError.contains(home), "\(result.standardError)")
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze")))
    func systemdVerifiesTheUnit() throws {
        // The same unit, run by this build's binary (verify checks that ExecStart exists).
        let directory = temporaryPath("kc-unit")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let unit = try String(contentsOfFile: Self.unitPath, encoding: .utf8)
            .replacingOccurrences(of: "/usr/local/bin/membria-node", with: nodeBinary())
        let path = directory + "/membria-node.service"
        try unit.write(toFile: path, atomically: true, encoding: .utf8)
        let check = try runTool("/usr/bin/systemd-analyze", ["verify", path])
        #expect(check.status == 0 && check.output.isEmpty, "systemd-analyze verify: \(check.output)")
    }
}

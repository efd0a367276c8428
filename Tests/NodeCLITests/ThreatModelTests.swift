import Foundation
import KCTestSupport
import Testing

/// specs/threat-model.md names, for each attack, the tests that play it: every one of those
/// names must be a test in this package (that they pass is the rest of the suite's job).
struct ThreatModelTests {
    @Test func everyNamedTestExists() throws {
        let model = try String(contentsOf: packageRoot.appendingPathComponent("specs/threat-model.md"), encoding: .utf8)
        let named = try Regex(#"`([A-Z][A-Za-z]+)\.([a-z][A-Za-z0-9]+)`"#)
        var sources: [String] = []
        let enumerator = FileManager.default.enumerator(atPath: packageRoot.appendingPathComponent("Tests").path)
        while let path = enumerator?.nextObject() as? String {
            guard path.hasSuffix(".swift") else { continue }
            sources.append(try String(contentsOf: packageRoot.appendingPathComponent("Tests/" + path), encoding: .utf8))
        }
        var checked = 0
        for match in model.matches(of: named) {
            let suite = String(model[match.output[1].range!]), test = String(model[match.output[2].range!])
            guard suite != "Runtime" && suite != "Suite" else { continue }  // prose, not tests
            let found = sources.contains { source in
                source.contains("struct \(suite)") || source.contains("extension \(suite)")
            } && sources.contains { $0.contains("func \(test)(") }
            #expect(found, "specs/threat-model.md names \(suite).\(test), which is not a test")
            checked += 1
        }
        #expect(checked >= 40, "only \(checked) tests named")
    }
}

import Foundation
import KCFuzzTargets
import KCTestSupport
import Testing

/// Every committed fuzz input runs through its target here, without the fuzzer: the seed
/// corpora (Fuzz/Corpus/TARGET) and every input that once crashed a target
/// (Fuzz/Regressions/TARGET, one file each). A crash found by Scripts/fuzz.sh is fixed and its
/// input committed there, so it can never come back unnoticed.
struct FuzzCorpusTests {
    static func inputs(_ folder: String, _ target: FuzzTarget) -> [(String, [UInt8])] {
        let directory = packageRoot.appendingPathComponent("Fuzz/\(folder)/\(target.rawValue)").path
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return names.sorted().compactMap { name in
            FileManager.default.contents(atPath: directory + "/" + name).map { (name, Array($0)) }
        }
    }

    @Test(arguments: FuzzTarget.allCases)
    func seedsAndRegressionsRunClean(target: FuzzTarget) {
        let seeds = Self.inputs("Corpus", target)
        #expect(!seeds.isEmpty, "no committed seed corpus for \(target.rawValue)")
        for (_, bytes) in seeds + Self.inputs("Regressions", target) { target.run(bytes) }
        // The generated seeds too (a target must accept its own seeds without trapping).
        for bytes in FuzzSeeds.inputs(target) { target.run(bytes) }
    }
}

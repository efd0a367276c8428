#if canImport(Glibc)
import Glibc
#endif
import KCFuzzTargets

// The fuzz binary: libFuzzer's driver, run from here. The target comes from the environment
// (FUZZ_TARGET=wire-message), so one binary serves every target; FUZZ_WRITE_SEEDS=DIR writes
// that target's seed corpus and exits.

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

nonisolated(unsafe) var selected = FuzzTarget.frames

let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
guard let raw = getenv("FUZZ_TARGET"), let target = FuzzTarget(rawValue: String(cString: raw)) else {
    print("set FUZZ_TARGET to one of: \(names)")
    exit(2)
}
selected = target
if let directory = getenv("FUZZ_WRITE_SEEDS") {
    let written = FuzzSeeds.write(target, to: String(cString: directory))
    print("wrote \(written) seeds for \(target.rawValue)")
    exit(0)
}

var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
let status = LLVMFuzzerRunDriver(&argc, &argv) { data, size in
    let bytes = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    selected.run(bytes)
    return 0
}
exit(status)

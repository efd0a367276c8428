#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes straight to file descriptor 2, so no shared C `FILE*` global is touched.
func fwriteStandardError(_ buffer: UnsafeBufferPointer<UInt8>) -> Int {
    write(2, buffer.baseAddress, buffer.count)
}

/// `print` buffers stdout; a parent process reading our lines needs them now.
func flushStandardOutput() { fflush(nil) }

/// glibc gives each thread that contends for the allocator an arena of its own, up to eight per
/// core, and memory freed in one arena is not reused by the others: with the node's event
/// loops, RocksDB's threads and the signature stage, a million-event run held 443 MiB of RSS
/// with glibc's default and 377 MiB with two arenas, at the same rate (docs/benchmarks.md).
/// The node caps arenas at its core count (at least two) unless the operator set
/// MALLOC_ARENA_MAX. Returns the cap set, nil if none.
@discardableResult
func capMallocArenas(cores: Int) -> Int? {
    #if canImport(Glibc)
    if getenv("MALLOC_ARENA_MAX") != nil { return nil }
    // `mallopt` is declared in <malloc.h>, which Swift's Glibc module leaves out; M_ARENA_MAX
    // is -8 in glibc's ABI.
    typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return nil }
    let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
    let arenas = max(2, cores)
    return mallopt(-8, Int32(clamping: arenas)) == 1 ? arenas : nil
    #else
    return nil
    #endif
}

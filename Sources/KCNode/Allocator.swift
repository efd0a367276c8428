#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's settings of glibc's allocator (ADR 0021). `mallopt` and `malloc_trim` are
/// declared in <malloc.h>, which Swift's Glibc module leaves out, so both are looked up by name;
/// elsewhere (or without them) every call here does nothing.
public enum Allocator {
    /// What `configure` set, for the start-up log (nil: left as it was).
    public struct Applied: Sendable, Equatable {
        public var arenas: Int?
        public var mmapThresholdBytes: Int?
        public var trimThresholdBytes: Int?
        public init() {}
    }

    /// Blocks at least this large are mapped on their own and unmapped when freed.
    public static let mmapThresholdBytes = 1 << 20
    /// The free space at the top of the heap kept rather than given back at once.
    public static let trimThresholdBytes = 64 << 20

    /// Sets the allocator for a long-running node (ADR 0021), leaving alone what the operator
    /// set in the environment:
    /// - arenas capped at the core count (at least two; MALLOC_ARENA_MAX overrides). glibc gives
    ///   each thread that contends for the allocator an arena of its own, up to eight per core,
    ///   and memory freed in one arena is not reused by the others: a million-event run held
    ///   443 MiB of RSS with glibc's default and 377 MiB with two arenas, at the same rate.
    /// - a fixed mmap threshold of 1 MiB with a trim threshold of 64 MiB (MALLOC_MMAP_THRESHOLD_,
    ///   MALLOC_TRIM_THRESHOLD_ or a `glibc.malloc` tunable override both). By default glibc
    ///   raises the mmap threshold to the size of each mapped block freed, so after the first
    ///   block's write batch every large transient buffer comes from the heap and leaves holes
    ///   there. Setting one threshold ends glibc's adjustment of both, so the mmap threshold alone
    ///   would leave the trim threshold at 128 KiB and the heap's top would be given back and
    ///   taken again at nearly every block (+16-32 % CPU per event, measured).
    public static func configure(cores: Int) -> Applied {
        var applied = Applied()
        #if canImport(Glibc)
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return applied }
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        // glibc's ABI: M_TRIM_THRESHOLD -1, M_MMAP_THRESHOLD -3, M_ARENA_MAX -8.
        if getenv("MALLOC_ARENA_MAX") == nil {
            let arenas = max(2, cores)
            if mallopt(-8, Int32(clamping: arenas)) == 1 { applied.arenas = arenas }
        }
        let tunables = getenv("GLIBC_TUNABLES").map { String(cString: $0) } ?? ""
        if getenv("MALLOC_MMAP_THRESHOLD_") == nil, getenv("MALLOC_TRIM_THRESHOLD_") == nil, !tunables.contains("glibc.malloc.") {
            if mallopt(-1, Int32(trimThresholdBytes)) == 1 { applied.trimThresholdBytes = trimThresholdBytes }
            if mallopt(-3, Int32(mmapThresholdBytes)) == 1 { applied.mmapThresholdBytes = mmapThresholdBytes }
        }
        #endif
        return applied
    }

    /// Gives the whole free pages inside every arena back to the system (`malloc_trim(0)`):
    /// glibc by itself returns only the free space at the top of its heap, so memory freed
    /// between blocks still in use stays resident. Returns whether any was released.
    @discardableResult
    public static func trim() -> Bool {
        #if canImport(Glibc)
        typealias MallocTrim = @convention(c) (Int) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return false }
        return unsafeBitCast(symbol, to: MallocTrim.self)(0) == 1
        #else
        return false
        #endif
    }
}

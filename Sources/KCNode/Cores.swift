#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How many cores this process may use.
public enum Cores {
    /// The process's CPU affinity (`Cpus_allowed` in /proc/self/status), so `taskset` limits
    /// it; where that cannot be read, the cores online.
    public static func available() -> Int {
        let online = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        guard case .success(let bytes) = FileIO.read(path: "/proc/self/status", limit: 64 << 10) else { return online }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") }) else { return online }
        let count = line.dropFirst("Cpus_allowed:".count).reduce(0) { sum, character in
            sum + (character.hexDigitValue ?? 0).nonzeroBitCount
        }
        return count > 0 ? count : online
    }
}

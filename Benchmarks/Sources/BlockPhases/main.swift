import BenchmarkFixtures
#if canImport(Glibc)
import Glibc
#endif

// Runs every prepared block of the runtime benchmark once, outside the benchmark framework,
// and prints where the time went: the median of each phase over the blocks, and the
// resulting transactions per second. Usage: Scripts/bench.sh --phases
let fixture = BlockFixture()
var samples: [BlockFixture.Phases] = []
/// CPU time of the whole process (every thread, RocksDB's flush and compaction threads included).
func processCPUNanoseconds() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
    return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
}
let cpuBefore = processCPUNanoseconds()
while fixture.remaining > 0 { samples.append(fixture.runNextMeasured()) }
let cpuUsed = processCPUNanoseconds() - cpuBefore

func median(_ values: [Int64]) -> Int64 { values.sorted()[values.count / 2] }
/// Milliseconds with two decimals, rounded.
func milliseconds(_ nanoseconds: Int64) -> String {
    let hundredths = (nanoseconds + 5_000) / 10_000
    let fraction = hundredths % 100
    return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction) ms"
}

let total = median(samples.map(\.total))
let transactions = samples[0].transactions
print("blocks \(samples.count), \(transactions) transactions each, \(median(samples.map { Int64($0.keysWritten) })) keys written per block (median)")
print("execute \(milliseconds(median(samples.map(\.execute))))  commit \(milliseconds(median(samples.map(\.commit))))  batch \(milliseconds(median(samples.map(\.batch))))  write \(milliseconds(median(samples.map(\.write))))  total \(milliseconds(total))")
print("transactions per second (median block): \(Int64(transactions) * 1_000_000_000 / max(total, 1))")
let allTransactions = samples.reduce(0) { $0 + $1.transactions }
print("process CPU (all threads) per block: \(milliseconds(cpuUsed / Int64(samples.count))); transactions per CPU-second: \(Int64(allTransactions) * 1_000_000_000 / max(cpuUsed, 1))")

#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KCNode
import Synchronization
import Testing

struct HeapTrimmerTests {
    /// The trim runs again and again at its interval, and never once `stop` has returned.
    @Test func trimsAtItsIntervalUntilStopped() async throws {
        let calls = Atomic<Int>(0)
        let observed = Mutex<[Duration]>([])
        let trimmer = HeapTrimmer(intervalMilliseconds: 20, trim: {
            calls.add(1, ordering: .relaxed)
            Thread.sleep(forTimeInterval: 0.002)
        }, observe: { duration in observed.withLock { $0.append(duration) } })
        trimmer.start()
        trimmer.start()  // a second start keeps the one timer
        let deadline = ContinuousClock.now + .seconds(10)
        while calls.load(ordering: .relaxed) < 3, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        trimmer.stop()
        let stopped = calls.load(ordering: .relaxed)
        #expect(stopped >= 3)
        try await Task.sleep(for: .milliseconds(150))
        #expect(calls.load(ordering: .relaxed) == stopped)
        // Each trim is reported once, with the time it took (each slept 2 ms).
        let durations = observed.withLock { $0 }
        #expect(durations.count == stopped)
        #expect(durations.allSatisfy { $0 >= .milliseconds(2) })
    }

    /// What the trimmer relies on: memory freed between blocks still in use stays resident
    /// until trimmed (glibc gives back only the top of its heap by itself), and the trim gives
    /// it back.
    @Test func aTrimGivesBackFreedPagesBetweenLiveBlocks() throws {
        #if canImport(Glibc)
        let count = 96 * 1_024, size = 2_048  // 192 MiB in blocks below the mmap threshold
        var blocks: [UnsafeMutableRawPointer] = []
        blocks.reserveCapacity(count)
        for _ in 0..<count {
            let block = try #require(malloc(size))
            memset(block, 0x5A, size)
            blocks.append(block)
        }
        // Free all but every 64th block: the heap keeps its top, so nothing is given back.
        for (index, block) in blocks.enumerated() where index % 64 != 0 { free(block) }
        let before = try residentBytes()
        Allocator.trim()
        let after = try residentBytes()
        for (index, block) in blocks.enumerated() where index % 64 == 0 { free(block) }
        #expect(before - after > 96 << 20, "RSS \(before >> 20) MiB before the trim, \(after >> 20) MiB after")
        #endif
    }

    private func residentBytes() throws -> Int {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
        let kilobytes = try #require(Int(line.split(separator: " ").dropFirst().first ?? ""))
        return kilobytes * 1_024
    }
}

import Dispatch
import Glibc
import Synchronization
import Testing
@testable import KCNode

/// Snapshot saves run off the node's thread, one at a time.
struct SnapshotWorkerTests {
    @Test func oneSaveAtATimeAndTheNodeCanWaitForIt() {
        let worker = SnapshotWorker()
        let release = DispatchSemaphore(value: 0)
        let runs = Atomic<Int>(0)
        #expect(worker.start {
            release.wait()
            runs.add(1, ordering: .relaxed)
        })
        #expect(worker.isRunning)
        // The next interval's save while the first still runs: refused, never run.
        #expect(!worker.start { runs.add(100, ordering: .relaxed) })
        release.signal()
        worker.wait()
        #expect(runs.load(ordering: .relaxed) == 1)
        #expect(!worker.isRunning)
        // Free again once the first ended.
        #expect(worker.start { runs.add(1, ordering: .relaxed) })
        worker.wait()
        #expect(runs.load(ordering: .relaxed) == 2)
    }

    @Test func aSaveRunsOnAnotherThreadThanTheCaller() {
        let worker = SnapshotWorker()
        let caller = pthread_self()
        let elsewhere = Mutex<Bool?>(nil)
        #expect(worker.start { let other = pthread_equal(pthread_self(), caller) == 0; elsewhere.withLock { $0 = other } })
        worker.wait()
        #expect(elsewhere.withLock { $0 } == true)
    }
}

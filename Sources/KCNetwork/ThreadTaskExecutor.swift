#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A task executor with threads of its own. Services that run async code (the RPC server,
/// the attester) prefer it, so they keep running even when every thread of the shared
/// cooperative pool is blocked elsewhere in the process (a busy test run, a blocking call).
public final class ThreadTaskExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: `jobs` and `stopping` are only touched under `mutex`.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var jobs: [UnownedJob] = []
    private var head = 0

    public init(threads: Int, name: String) {
        precondition(threads > 0)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        for index in 0..<threads {
            let box = Unmanaged.passRetained(self)
            var thread = pthread_t()
            let status = pthread_create(&thread, nil, { argument in
                let executor = Unmanaged<ThreadTaskExecutor>.fromOpaque(argument!).takeRetainedValue()
                executor.work()
                return nil
            }, box.toOpaque())
            precondition(status == 0, "cannot start executor thread \(name)-\(index)")
            pthread_detach(thread)
        }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        pthread_mutex_lock(mutex)
        jobs.append(unowned)
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    private func next() -> UnownedJob {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while head == jobs.count { pthread_cond_wait(condition, mutex) }
        let job = jobs[head]
        head += 1
        if head > 1_024 && head * 2 > jobs.count {
            jobs.removeFirst(head)
            head = 0
        }
        return job
    }

    /// The threads live as long as the process: executors are made once per service.
    private func work() {
        while true {
            next().runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}

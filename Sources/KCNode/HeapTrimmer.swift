import Dispatch
import Synchronization

/// Calls a trim (by default `Allocator.trim`) every `intervalMilliseconds` on a queue of its
/// own, never on the consensus thread (ADR 0021). One per process: `node start` runs it.
public final class HeapTrimmer: Sendable {
    public struct Totals: Sendable, Equatable {
        public var runs = 0
        public var nanoseconds: UInt64 = 0
        public var longestNanoseconds: UInt64 = 0
    }

    public let intervalMilliseconds: Int
    private let trim: @Sendable () -> Void
    private let observe: @Sendable (Duration) -> Void
    private let queue = DispatchQueue(label: "membria.heap-trim", qos: .utility)
    private let state = Mutex<(timer: (any DispatchSourceTimer)?, totals: Totals)>((nil, Totals()))

    /// `intervalMilliseconds` must be positive (a config of 0 means no trimmer at all);
    /// `observe` is told how long each trim took (the node's metrics).
    public init(intervalMilliseconds: Int, trim: @escaping @Sendable () -> Void = { Allocator.trim() },
                observe: @escaping @Sendable (Duration) -> Void = { _ in }) {
        precondition(intervalMilliseconds > 0, "a heap trimmer needs a positive interval")
        self.intervalMilliseconds = intervalMilliseconds
        self.trim = trim
        self.observe = observe
    }

    /// Runs so far, their time in all and the longest (the arenas are locked while trimmed).
    public var totals: Totals { state.withLock { $0.totals } }

    public func start() {
        state.withLock { state in
            guard state.timer == nil else { return }
            let timer = DispatchSource.makeTimerSource(queue: queue)
            let interval = DispatchTimeInterval.milliseconds(intervalMilliseconds)
            timer.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(max(1, intervalMilliseconds / 10)))
            timer.setEventHandler { [weak self] in self?.run() }
            timer.resume()
            state.timer = timer
        }
    }

    /// Stops the timer; a trim already running finishes, none starts after this returns.
    public func stop() {
        state.withLock { state in
            state.timer?.cancel()
            state.timer = nil
        }
        queue.sync {}
    }

    private func run() {
        guard state.withLock({ $0.timer != nil }) else { return }
        let started = DispatchTime.now().uptimeNanoseconds
        trim()
        let spent = DispatchTime.now().uptimeNanoseconds &- started
        state.withLock { state in
            state.totals.runs += 1
            state.totals.nanoseconds &+= spent
            state.totals.longestNanoseconds = max(state.totals.longestNanoseconds, spent)
        }
        observe(.nanoseconds(Int64(clamping: spent)))
    }

    deinit { state.withLock { $0.timer?.cancel() } }
}

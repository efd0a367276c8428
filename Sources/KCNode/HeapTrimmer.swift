import Dispatch
import Synchronization

/// Calls a trim (by default `Allocator.trim`) every `intervalMilliseconds` on a queue of its
/// own, never on the consensus thread (ADR 0021). One per process: `node start` runs it.
public final class HeapTrimmer: Sendable {
    public let intervalMilliseconds: Int
    private let trim: @Sendable () -> Void
    private let observe: @Sendable (Duration) -> Void
    private let queue = DispatchQueue(label: "membria.heap-trim", qos: .utility)
    private let timer = Mutex<(any DispatchSourceTimer)?>(nil)

    /// `intervalMilliseconds` must be positive (a config of 0 means no trimmer at all);
    /// `observe` is told how long each trim took (the node's metrics; the arenas are locked
    /// meanwhile).
    public init(intervalMilliseconds: Int, trim: @escaping @Sendable () -> Void = { Allocator.trim() },
                observe: @escaping @Sendable (Duration) -> Void = { _ in }) {
        precondition(intervalMilliseconds > 0, "a heap trimmer needs a positive interval")
        self.intervalMilliseconds = intervalMilliseconds
        self.trim = trim
        self.observe = observe
    }

    public func start() {
        timer.withLock { current in
            guard current == nil else { return }
            let source = DispatchSource.makeTimerSource(queue: queue)
            let interval = DispatchTimeInterval.milliseconds(intervalMilliseconds)
            source.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(max(1, intervalMilliseconds / 10)))
            source.setEventHandler { [weak self] in self?.run() }
            source.resume()
            current = source
        }
    }

    /// Stops the timer; a trim already running finishes, none starts after this returns.
    public func stop() {
        timer.withLock { current in
            current?.cancel()
            current = nil
        }
        queue.sync {}
    }

    private func run() {
        guard timer.withLock({ $0 != nil }) else { return }
        let started = ContinuousClock.now
        trim()
        observe(ContinuousClock.now - started)
    }

    deinit { timer.withLock { $0?.cancel() } }
}

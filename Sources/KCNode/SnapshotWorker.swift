import Dispatch
import Synchronization

/// Runs the snapshot saves off the node's thread, one at a time, on a queue of its own: a save
/// walks the whole stored state (about a second at 300,000 events, linear in the state), which
/// on the consensus thread stalled every height behind it. The save reads a store snapshot of
/// the height it is for, so the node commits on meanwhile; its result comes back to the node's
/// thread as an event.
final class SnapshotWorker: Sendable {
    private let queue = DispatchQueue(label: "membria.snapshot", qos: .utility)
    private let running = Atomic<Bool>(false)
    private let done = DispatchGroup()

    /// Whether a save is under way.
    var isRunning: Bool { running.load(ordering: .acquiring) }

    /// Starts `save` on the worker's queue, unless a save is under way: then returns false and
    /// runs nothing (the next interval's snapshot will be taken instead).
    func start(_ save: @escaping @Sendable () -> Void) -> Bool {
        guard running.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return false }
        done.enter()
        queue.async { [self] in
            save()
            running.store(false, ordering: .releasing)
            done.leave()
        }
        return true
    }

    /// Returns once no save is under way (the node waits for it before it stops, so the store
    /// is closed after the save's last write).
    func wait() { done.wait() }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A bounded multi-producer queue that one consumer thread drains, waiting with a timeout:
/// network threads push, the consensus thread takes everything waiting at once.
public final class Inbox<Element: Sendable>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var items: [Element] = []
    public let capacity: Int
    private var refused: UInt64 = 0

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Droppable elements refused because the inbox was full, since it was made.
    public var dropped: UInt64 {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return refused
    }

    /// Adds an element; a `droppable` one is refused (false) when the inbox is full, others
    /// are always taken (they are bounded by the protocol, not by the sender's rate).
    @discardableResult
    public func push(_ element: Element, droppable: Bool = false) -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        if droppable && items.count >= capacity {
            refused += 1
            return false
        }
        items.append(element)
        pthread_cond_signal(condition)
        return true
    }

    /// Everything waiting, after waiting up to `milliseconds` for something to arrive.
    public func drain(waitingMilliseconds milliseconds: UInt64) -> [Element] {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        if items.isEmpty && milliseconds > 0 {
            var deadline = timespec()
            clock_gettime(CLOCK_MONOTONIC, &deadline)
            let nanoseconds = Int(deadline.tv_nsec) + Int(milliseconds % 1_000) * 1_000_000
            deadline.tv_sec += Int(milliseconds / 1_000) + nanoseconds / 1_000_000_000
            deadline.tv_nsec = nanoseconds % 1_000_000_000
            while items.isEmpty {
                if pthread_cond_timedwait(condition, mutex, &deadline) != 0 { break }
            }
        }
        let taken = items
        items.removeAll(keepingCapacity: true)
        return taken
    }
}

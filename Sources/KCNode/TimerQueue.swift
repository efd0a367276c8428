import KCConsensus

/// The driver's timers: consensus timeouts and the end of the commit pause, by deadline
/// (monotonic milliseconds), ties in the order they were set. Pure.
struct TimerQueue {
    enum Fire: Equatable {
        /// A consensus timeout to feed the core.
        case timeout(TimeoutStep, height: UInt64, round: UInt32)
        /// The commit pause is over: start the next height.
        case beginHeight
    }

    private var entries: [(deadline: UInt64, sequence: UInt64, fire: Fire)] = []
    private var sequence: UInt64 = 0

    var count: Int { entries.count }

    mutating func set(_ fire: Fire, at deadline: UInt64) {
        sequence &+= 1
        let entry = (deadline, sequence, fire)
        // Kept sorted: insertion after every entry due no later.
        let index = entries.firstIndex { ($0.deadline, $0.sequence) > (deadline, sequence) } ?? entries.endIndex
        entries.insert(entry, at: index)
    }

    /// The earliest timer due at `now`, removed; nil when none is due.
    mutating func due(now: UInt64) -> Fire? {
        guard let first = entries.first, first.deadline <= now else { return nil }
        return entries.removeFirst().fire
    }

    /// Milliseconds until the next timer (at most `limit`).
    func wait(now: UInt64, limit: UInt64) -> UInt64 {
        guard let first = entries.first else { return limit }
        return min(first.deadline >= now ? first.deadline - now : 0, limit)
    }

    mutating func removeAll() { entries.removeAll() }
}

import KCCodec
import KCCrypto

/// SplitMix64: every random choice of a simulation comes from one of these, seeded from the
/// run's seed, so a seed reproduces a run exactly.
public struct SimulationRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in `0..<bound`.
    public mutating func below(_ bound: UInt64) -> UInt64 {
        precondition(bound > 0)
        return UInt64((UInt128(next()) * UInt128(bound)) >> 64)
    }

    public mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(below(UInt64(range.upperBound - range.lowerBound + 1)))
    }

    /// True with probability `perMille`/1000.
    public mutating func chance(perMille: UInt64) -> Bool { below(1_000) < perMille }

    /// An independent stream for one purpose, so adding a draw in one place does not shift
    /// every other choice.
    public mutating func fork() -> SimulationRandom { SimulationRandom(seed: next()) }
}

/// A min-heap of events ordered by (time, insertion sequence): equal times run in the order
/// they were scheduled, as in SwiftNIO's EmbeddedEventLoop.
///
/// The heap orders small (time, sequence, slot) entries; the events themselves (messages carry
/// votes and blocks) wait in `slots` and move once in and once out, not at every sift step.
struct EventQueue<Element> {
    private var heap: [(time: UInt64, sequence: UInt64, slot: Int)] = []
    private var slots: [Element?] = []
    private var freeSlots: [Int] = []
    private var sequence: UInt64 = 0

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }

    mutating func push(_ element: Element, at time: UInt64) {
        let slot: Int
        if let reused = freeSlots.popLast() {
            slot = reused
            slots[slot] = element
        } else {
            slot = slots.count
            slots.append(element)
        }
        heap.append((time, sequence, slot))
        sequence += 1
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard before(child, parent) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> (time: UInt64, element: Element)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count && before(left, smallest) { smallest = left }
            if right < heap.count && before(right, smallest) { smallest = right }
            if smallest == parent { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        guard let element = slots[top.slot] else { preconditionFailure("event queue slot \(top.slot) is empty") }
        slots[top.slot] = nil
        freeSlots.append(top.slot)
        return (top.time, element)
    }

    private func before(_ i: Int, _ j: Int) -> Bool {
        let left = heap[i].time, right = heap[j].time
        return left != right ? left < right : heap[i].sequence < heap[j].sequence
    }
}

/// A running BLAKE2b chain over the events of a run: equal seeds give equal trace hashes.
struct TraceHash {
    private(set) var value = Hash256.zero
    private var pending: [UInt8] = []

    // One overload per arity rather than a variadic list: a variadic call builds an array, and
    // every delivered message records.
    mutating func record(_ a: UInt64) { append(a); flushIfFull() }
    mutating func record(_ a: UInt64, _ b: UInt64) { append(a); append(b); flushIfFull() }
    mutating func record(_ a: UInt64, _ b: UInt64, _ c: UInt64) { append(a); append(b); append(c); flushIfFull() }
    mutating func record(_ a: UInt64, _ b: UInt64, _ c: UInt64, _ d: UInt64) {
        append(a); append(b); append(c); append(d); flushIfFull()
    }
    mutating func record(_ a: UInt64, _ b: UInt64, _ c: UInt64, _ d: UInt64, _ e: UInt64) {
        append(a); append(b); append(c); append(d); append(e); flushIfFull()
    }

    private mutating func append(_ field: UInt64) {
        withUnsafeBytes(of: field.littleEndian) { pending.append(contentsOf: $0) }
    }

    private mutating func flushIfFull() {
        if pending.count >= 4_096 { flush() }
    }

    mutating func flush() {
        guard !pending.isEmpty else { return }
        value = Blake2b.hash256(value.bytes + pending)
        pending.removeAll(keepingCapacity: true)
    }
}

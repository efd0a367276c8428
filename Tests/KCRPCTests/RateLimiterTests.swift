import Foundation
@testable import KCRPC
import KCTestSupport
import Synchronization
import Testing

/// The per-client token buckets (case 2 of the hardening issue: concurrent requests read the
/// clock outside the lock, a time older than the bucket's underflowed, and the node died).
struct TokenBucketTests {
    @Test func timeGoingBackwardsRefillsNothingAndNeverTraps() {
        var buckets = TokenBuckets(perSecond: 2)
        func allow(_ client: String, _ now: UInt64) -> Bool { buckets.allow(client, nowMicroseconds: now) }
        #expect(allow("a", 5_000_000))
        #expect(allow("a", 5_000_000))
        // A request whose clock reading is older than the bucket's, as a racing thread has.
        #expect(!allow("a", 4_000_000))
        #expect(!allow("a", 0))
        // Half a second after the newest reading: one token back.
        #expect(allow("a", 5_500_000))
        #expect(!allow("a", 5_500_000))
    }

    @Test func aLongPauseRefillsOnlyUpToTheBurst() {
        var buckets = TokenBuckets(perSecond: 3)
        func allow(_ client: String, _ now: UInt64) -> Bool { buckets.allow(client, nowMicroseconds: now) }
        for _ in 0..<3 { #expect(allow("a", 0)) }
        let later = UInt64.max - 1
        for _ in 0..<3 { #expect(allow("a", later)) }
        #expect(!allow("a", later))
    }

    @Test func manyClientsForgetOnlyFullBuckets() {
        var buckets = TokenBuckets(perSecond: 1, maxClients: 3)
        func allow(_ client: String, _ now: UInt64) -> Bool { buckets.allow(client, nowMicroseconds: now) }
        #expect(allow("busy", 0))
        #expect(allow("b", 0))
        #expect(allow("c", 0))
        // Two seconds on, b and c would be full again; busy spent its token just now.
        #expect(allow("busy", 2_000_000))
        #expect(allow("d", 2_000_000))
        #expect(buckets.clients == 2, "b and c were forgotten, busy was not")
        #expect(!allow("busy", 2_000_000), "busy keeps its empty bucket")
    }

    @Test func concurrentRequestsFromOneClientNeverTrap() {
        let limiter = RateLimiter(perSecond: 1_000)
        let allowed = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            var mine = 0
            for _ in 0..<50_000 where limiter.allow("127.0.0.1") { mine += 1 }
            allowed.withLock { $0 += mine }
        }
        #expect(allowed.withLock { $0 } >= 1_000, "the burst at least")
    }
}

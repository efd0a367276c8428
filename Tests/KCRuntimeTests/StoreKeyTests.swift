import KCCodec
import KCCrypto
@testable import KCRuntime
import Testing

/// State keys are held inline; these check that they behave exactly like their bytes.
struct StoreKeyTests {
    static let samples: [[UInt8]] = [
        [], [0], [0, 0], [1], Array("acct/".utf8), Array("global".utf8),
        Array("event/".utf8) + [UInt8](repeating: 0xff, count: 32),
        Array("event/".utf8) + [UInt8](repeating: 0x00, count: 32),
        Array("stake/".utf8) + (0..<32).map { UInt8($0) },
        [UInt8](repeating: 7, count: StoreKey.capacity),
        [UInt8](repeating: 7, count: StoreKey.capacity - 1),
    ]

    @Test func bytesRoundTripAndOrderIsByteOrder() {
        for a in Self.samples {
            #expect(StoreKey(a).bytes == a)
            #expect(StoreKey(a).count == a.count)
            for b in Self.samples {
                let (ka, kb) = (StoreKey(a), StoreKey(b))
                #expect((ka == kb) == (a == b), "equality of \(a) and \(b)")
                #expect((ka < kb) == a.lexicographicallyPrecedes(b), "order of \(a) and \(b)")
                if a == b { #expect(ka.hashValue == kb.hashValue) }
            }
        }
    }

    @Test func prefixTestMatchesTheBytes() {
        for a in Self.samples {
            for b in Self.samples { #expect(StoreKey(a).hasPrefix(b) == a.starts(with: b), "\(a) starts with \(b)") }
        }
    }

    @Test func trailingZeroBytesMakeADifferentKey() {
        // The unused inline bytes are zero: a key must still differ from itself plus zeros.
        let short = StoreKey([1, 2]), long = StoreKey([1, 2, 0])
        #expect(short != long)
        #expect(short < long)
        #expect(Set([short, long]).count == 2)
    }

    @Test func prefixedKeysMatchTheirBytes() {
        let id = Blake2b.hash256(Array("some event".utf8))
        #expect(StateKey.event(id).bytes == Array("event/".utf8) + id.bytes)
        #expect(StateKey.event(id) == StoreKey(Array("event/".utf8) + id.bytes))
        #expect(Blake2b.hash256(StateKey.event(id)) == Blake2b.hash256(Array("event/".utf8) + id.bytes))
    }

    @Test func keysLongerThanTheCapacityAreRefused() {
        #expect(StoreKey(validating: [UInt8](repeating: 1, count: StoreKey.capacity + 1)) == nil)
        #expect(StoreKey(validating: [UInt8](repeating: 1, count: StoreKey.capacity)) != nil)
    }
}

import KCCodec
import KCTestSupport
import Testing

/// A structure with every kind of field, to check that composition round-trips.
struct Sample: CanonicalCodable, Equatable {
    var small: UInt8
    var medium: UInt32
    var large: UInt64
    var huge: UInt128
    var flag: Bool
    var blob: [UInt8]
    var name: String
    var numbers: [UInt64]
    var maybe: UInt32?

    func encode(to writer: inout CanonicalWriter) {
        writer.write(small); writer.write(medium); writer.write(large); writer.write(huge); writer.write(flag)
        writer.writeBytes(blob); writer.writeString(name); writer.writeList(numbers); writer.writeOptional(maybe)
    }

    init(from reader: inout CanonicalReader) throws(DecodingError) {
        small = try reader.readUInt8(); medium = try reader.readUInt32(); large = try reader.readUInt64()
        huge = try reader.readUInt128(); flag = try reader.readBool()
        blob = try reader.readBytes("blob", limit: 300); name = try reader.readString("name", limit: 300)
        numbers = try reader.readList(UInt64.self, "numbers", limit: 300); maybe = try reader.readOptional(UInt32.self, "maybe")
    }

    init(random generator: inout SplitMix64) {
        small = UInt8.random(in: .min ... .max, using: &generator)
        medium = UInt32.random(in: .min ... .max, using: &generator)
        large = UInt64.random(in: .min ... .max, using: &generator)
        huge = UInt128(generator.next()) << 64 | UInt128(generator.next())
        flag = Bool.random(using: &generator)
        blob = (0..<Int.random(in: 0...200, using: &generator)).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        name = String((0..<Int.random(in: 0...40, using: &generator)).map { _ in
            Character(Unicode.Scalar(UInt8.random(in: 0x20...0x7e, using: &generator)))
        }) + (Bool.random(using: &generator) ? "ünïcødé" : "")
        numbers = (0..<Int.random(in: 0...200, using: &generator)).map { _ in generator.next() }
        maybe = Bool.random(using: &generator) ? UInt32.random(in: .min ... .max, using: &generator) : nil
    }
}

struct CanonicalCodecTests {
    @Test(arguments: [1, 2, 3, 42, 0xdead_beef] as [UInt64])
    func randomStructuresRoundTrip(seed: UInt64) throws {
        var generator = SplitMix64(seed: seed)
        for _ in 0..<200 {
            let sample = Sample(random: &generator)
            let bytes = sample.canonicalBytes
            #expect(try Sample.decode(exactly: bytes) == sample)
            // Re-encoding the decoded value gives the same bytes: one value, one form.
            #expect(try Sample.decode(exactly: bytes).canonicalBytes == bytes)
        }
    }

    @Test(arguments: [7, 8, 9] as [UInt64])
    func everyTruncationFailsCleanly(seed: UInt64) throws {
        var generator = SplitMix64(seed: seed)
        let bytes = Sample(random: &generator).canonicalBytes
        for cut in 0..<bytes.count {
            #expect(throws: DecodingError.self) { try Sample.decode(exactly: Array(bytes[0..<cut])) }
        }
        #expect(throws: DecodingError.trailingBytes(count: 1)) { try Sample.decode(exactly: bytes + [0]) }
    }

    @Test func randomGarbageNeverCrashes() {
        var generator = SplitMix64(seed: 99)
        var decoded = 0
        for _ in 0..<5_000 {
            let garbage = (0..<Int.random(in: 0...120, using: &generator)).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
            if (try? Sample.decode(exactly: garbage)) != nil { decoded += 1 }
        }
        // Almost all random strings are not canonical encodings of a Sample; the test is that
        // every one of them came back as a typed error rather than a trap.
        #expect(decoded < 50)
    }

    @Test func varintIsShortestForm() throws {
        for value: UInt32 in [0, 1, 127, 128, 255, 16_383, 16_384, 1 << 21, 1 << 28, .max] {
            var writer = CanonicalWriter()
            writer.writeVarint(value)
            var reader = CanonicalReader(writer.bytes)
            #expect(try reader.readVarint() == value)
            try reader.finish()
            let expectedLength = value < 1 << 7 ? 1 : value < 1 << 14 ? 2 : value < 1 << 21 ? 3 : value < 1 << 28 ? 4 : 5
            #expect(writer.bytes.count == expectedLength)
        }
    }

    @Test func lengthLimitIsCheckedBeforeAllocation() {
        // A count of 2^32 - 1 with no items must fail on the limit, not try to reserve memory.
        var reader = CanonicalReader([0xff, 0xff, 0xff, 0xff, 0x0f])
        #expect(throws: DecodingError.overLimit(what: "numbers", length: 4_294_967_295, limit: 300)) {
            _ = try reader.readList(UInt64.self, "numbers", limit: 300)
        }
    }

    @Test func stringsRoundTripAndInvalidUTF8IsRefused() throws {
        for text in ["", "a", "schema:Answer", "a string longer than fifteen bytes", "ünïcødé"] {
            var writer = CanonicalWriter()
            writer.writeString(text)
            var reader = CanonicalReader(writer.bytes)
            #expect(try reader.readString("text", limit: 100) == text)
            try reader.finish()
        }
        var bad = CanonicalReader([2, 0xc3, 0x28])  // a lead byte followed by a non-continuation
        #expect(throws: DecodingError.invalidValue(what: "text", reason: "not valid UTF-8")) { _ = try bad.readString("text", limit: 100) }
        var short = CanonicalReader([5, 0x61, 0x62])
        #expect(throws: DecodingError.truncated(what: "text", needed: 3)) { _ = try short.readString("text", limit: 100) }
        var long = CanonicalReader([5, 0x61, 0x62, 0x63, 0x64, 0x65])
        #expect(throws: DecodingError.overLimit(what: "text", length: 5, limit: 4)) { _ = try long.readString("text", limit: 4) }
    }

    @Test func errorsDescribeTheProblem() {
        #expect(DecodingError.truncated(what: "u32", needed: 2).description == "truncated input: 2 more byte(s) needed for u32")
        #expect(DecodingError.overLimit(what: "parents", length: 9, limit: 8).description
            == "parents has length 9, over the limit of 8")
    }

    @Test func hexRoundTripsAndRejectsJunk() {
        #expect(Hex.encode([0x00, 0xab, 0xff]) == "00abff")
        #expect(Hex.encode([UInt8]()) == "")
        // Every byte value: two lower-case digits, as the standard library writes them, and back.
        let all = (0...255).map { UInt8($0) }
        let expected = all.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        #expect(Hex.encode(all) == expected)
        #expect(Hex.encode(all[16..<32]) == String(expected.dropFirst(32).prefix(32)))
        #expect(Hex.decode(Hex.encode(all)) == all)
        #expect(Hex.decode("00ABff") == [0x00, 0xab, 0xff])
        #expect(Hex.decode("abc") == nil)
        #expect(Hex.decode("zz") == nil)
    }
}

struct ByteOrderTests {
    /// Integers in keys: written most significant byte first, read back whole or from a
    /// slice of a longer key, and they sort as numbers under the byte order.
    @Test func bigEndianIntegersRoundTripAndSortAsNumbers() {
        var key: [UInt8] = [0x61]
        ByteOrder.appendBigEndian(UInt64(0x0102_0304_0506_0708), to: &key)
        ByteOrder.appendBigEndian(UInt32(0xa0b0_c0d0), to: &key)
        #expect(key == [0x61, 1, 2, 3, 4, 5, 6, 7, 8, 0xa0, 0xb0, 0xc0, 0xd0])
        #expect(ByteOrder.bigEndian(key[1..<9], as: UInt64.self) == 0x0102_0304_0506_0708)
        #expect(ByteOrder.bigEndian(key[9...], as: UInt32.self) == 0xa0b0_c0d0)
        #expect(ByteOrder.bigEndian([0x01, 0x00], as: UInt64.self) == 256, "fewer bytes read as the low ones")
        let values: [UInt64] = [0, 1, 255, 256, 65_535, 1 << 32, UInt64.max - 1, UInt64.max]
        for (low, high) in zip(values, values.dropFirst()) {
            var left: [UInt8] = [], right: [UInt8] = []
            ByteOrder.appendBigEndian(low, to: &left)
            ByteOrder.appendBigEndian(high, to: &right)
            #expect(ByteOrder.precedes(left, right), "\(low) before \(high)")
        }
    }

    /// Byte by byte as unsigned values, a prefix before its extensions; agrees with the
    /// standard library's lexicographic order on random keys.
    @Test func ordersLikeMemcmp() {
        #expect(ByteOrder.compare([], []) == 0)
        #expect(ByteOrder.compare([1, 2], [1, 2]) == 0)
        #expect(ByteOrder.precedes([1, 2], [1, 2, 0]))
        #expect(ByteOrder.precedes([0x01], [0xff]))
        #expect(!ByteOrder.precedes([0xff], [0x01, 0x00]))
        var state: UInt64 = 7
        func next() -> UInt8 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
        for _ in 0..<2_000 {
            let left = (0..<Int(next() % 5)).map { _ in next() % 4 }
            let right = (0..<Int(next() % 5)).map { _ in next() % 4 }
            #expect(ByteOrder.precedes(left, right) == left.lexicographicallyPrecedes(right))
        }
    }
}

import Foundation
import KCTypes
import Testing

struct UTCTimeTests {
    @Test func knownInstants() {
        #expect(UTCTime.rfc3339(milliseconds: 0) == "1970-01-01T00:00:00.000Z")
        #expect(UTCTime.rfc3339(milliseconds: 1_767_225_600_000) == "2026-01-01T00:00:00.000Z")
        #expect(UTCTime.rfc3339(milliseconds: 951_782_400_000) == "2000-02-29T00:00:00.000Z")
        #expect(UTCTime.rfc3339(milliseconds: 4_107_542_399_999) == "2100-02-28T23:59:59.999Z")
    }

    /// Against Foundation's formatter over random instants up to the year 9999.
    @Test func agreesWithFoundation() {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        var state: UInt64 = 2_026
        for _ in 0..<2_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let milliseconds = (state >> 11) % 253_402_300_799_999
            let expected = formatter.string(from: Date(timeIntervalSince1970: Double(milliseconds / 1_000)))
                .replacingOccurrences(of: ".000Z", with: String(format: ".%03dZ", Int(milliseconds % 1_000)))
            #expect(UTCTime.rfc3339(milliseconds: milliseconds) == expected, "\(milliseconds)")
        }
    }
}

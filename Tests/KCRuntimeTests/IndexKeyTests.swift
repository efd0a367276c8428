import KCCrypto
import KCTypes
@testable import KCRuntime
import Testing

struct IndexKeyTests {
    @Test func groupingIsIndependentOfInputOrderAndKeepsEveryID() {
        let authors = (0..<3).map { testKey("index-author-\($0)").publicKey }
        var pairs: [(PublicKey, Hash256)] = []
        for index in 0..<30 {
            pairs.append((authors[index % 3], Blake2b.hash256(Array("event-\(index)".utf8))))
        }
        let key = { (author: PublicKey) in EventIndexKey.byAuthor(author, height: 7) }
        let grouped = EventIndexKey.grouped(pairs, key: key)
        #expect(grouped.map(\.0) == authors.map { EventIndexKey.byAuthor($0, height: 7) }.sorted { $0.lexicographicallyPrecedes($1) })
        for (key, value) in grouped {
            let ids = EventIndexKey.groupedIDs(value)
            #expect(ids == pairs.filter { EventIndexKey.byAuthor($0.0, height: 7) == key }.map(\.1).sorted())
        }
        // Other orders of the same pairs: reversed, and every 7th (7 is prime to 30).
        for permuted in [Array(pairs.reversed()), (0..<30).map { pairs[($0 * 7) % 30] }] {
            let again = EventIndexKey.grouped(permuted, key: key)
            #expect(again.map(\.0) == grouped.map(\.0) && again.map(\.1) == grouped.map(\.1))
        }
        #expect(EventIndexKey.groupedIDs([UInt8](repeating: 0, count: 33)) == nil)
    }
}

import KCCodec
import KCCrypto
import KCNetwork
import Testing

struct AddressBookTests {
    func address(_ index: Int, host: String? = nil) -> PeerAddress {
        let id = SigningKey(seed: Blake2b.hash256(Array("peer-\(index)".utf8))).publicKey
        return PeerAddress(nodeID: id, host: host ?? "10.\(index / 65_536 % 256).\(index / 256 % 256).\(index % 256)", port: 26656)
    }

    func book(_ seed: UInt8 = 1) -> AddressBook { AddressBook(key: Bytes32([UInt8](repeating: seed, count: 32))) }

    /// One peer handing out thousands of addresses from thousands of groups fills a few
    /// buckets of the new table, never the book: the addresses from other sources still fit.
    @Test func oneSourceCannotFillTheBook() {
        var book = book()
        for index in 0..<5_000 {
            book.add(address(index, host: "\(index % 250 + 1).\(index / 250 % 250).1.1"), sourceGroup: AddressBook.group("203.0.113.7"))
        }
        let fromFlood = book.count
        #expect(fromFlood <= AddressBook.bucketsPerSourceGroup * AddressBook.slotsPerBucket,
                "one source took \(fromFlood) entries")
        var honest = 0
        for index in 0..<200 where book.add(address(100_000 + index), sourceGroup: AddressBook.group("\(index + 1).51.0.1")) { honest += 1 }
        #expect(honest > 150, "only \(honest) of 200 addresses from distinct sources found a slot")
        #expect(book.count <= AddressBook.capacity)
    }

    /// Dialled successfully: the tried table; a never-reached address that failed several
    /// dials gives up its slot; hearsay never moves a tried entry.
    @Test func triedEntriesStayAndDeadOnesMakeRoom() {
        var book = book(2)
        let peer = address(1)
        let added = book.add(peer, sourceGroup: "v4:10.0")
        #expect(added)
        book.good(peer, now: 1_000)
        #expect(book.entry(peer.nodeID)?.tried == true && book.triedCount == 1)
        let moved = PeerAddress(nodeID: peer.nodeID, host: "10.9.9.9", port: 1)
        let refreshed = book.add(moved, sourceGroup: "v4:66.66")
        #expect(!refreshed)
        #expect(book.entry(peer.nodeID)?.address == peer)
        // Fill one source's buckets, then make every entry dead: newcomers take their slots.
        var crowded = book
        for index in 0..<3_000 { crowded.add(address(10 + index), sourceGroup: "v4:1.1") }
        let before = crowded.count
        let blocked = (20_000..<20_200).filter { !crowded.add(address($0), sourceGroup: "v4:1.1") }.count
        #expect(blocked > 0, "the source's buckets were not full")
        for entry in crowded.allEntries where !entry.tried {
            for _ in 0..<AddressBook.maxFailures { crowded.failed(entry.address.nodeID, now: 5) }
        }
        let admitted = (30_000..<30_200).filter { crowded.add(address($0), sourceGroup: "v4:1.1") }.count
        #expect(admitted > 0 && crowded.count <= before + 1)
    }

    /// The saved book loads back to the same entries, and a corrupt or oversized file is refused.
    @Test func theBookRoundTripsThroughItsEncoding() throws {
        var book = book(3)
        for index in 0..<300 { book.add(address(index), sourceGroup: AddressBook.group("192.0.\(index % 7).1")) }
        book.good(address(5), now: 77)
        book.failed(address(6).nodeID, now: 88)
        let loaded = try AddressBook.decode(exactly: book.canonicalBytes)
        #expect(loaded.allEntries == book.allEntries)
        #expect(loaded.triedCount == 1)
        var truncated = book.canonicalBytes
        truncated.removeLast(3)
        #expect(throws: DecodingError.self) { try AddressBook.decode(exactly: truncated) }
    }

    /// Candidates to dial: not excluded, not retried too soon, tried ones among them.
    @Test func candidatesSkipExcludedAndRecentlyTried() {
        var book = book(4)
        for index in 0..<20 { book.add(address(index), sourceGroup: "v4:\(index).0") }
        book.good(address(0), now: 10)
        book.attempted(address(1).nodeID, now: 1_000)
        var random = SystemRandomNumberGenerator()
        let chosen = book.candidates(50, excluded: [address(2).nodeID], now: 2_000, retryMilliseconds: 5_000, random: &random)
        #expect(!chosen.contains(address(1)) && !chosen.contains(address(2)))
        #expect(chosen.contains(address(0)) && chosen.count == 18)
        #expect(book.sample(5, excluding: address(0).nodeID, random: &random).count == 5)
    }

    /// Wire form of an address: hosts are IP literals or names, never empty or with spaces.
    @Test func addressesAreValidatedWhenDecoded() throws {
        let good = address(1)
        #expect(try PeerAddress.decode(exactly: good.canonicalBytes) == good)
        for host in ["", "a b", "0.0.0.0", String(repeating: "a", count: 254), "evil\n"] {
            var writer = CanonicalWriter()
            writer.write(good.nodeID)
            writer.writeString(host)
            writer.write(UInt16(26656))
            #expect(throws: DecodingError.self, "\(host)") { try PeerAddress.decode(exactly: writer.bytes) }
        }
        #expect(AddressBook.group("203.0.113.7") == AddressBook.group("203.0.1.1"))
        #expect(AddressBook.group("203.0.113.7") != AddressBook.group("203.1.113.7"))
    }
}

struct AddressBookProbingTests {
    /// Twenty addresses from one source and one group (a loopback network) share one bucket of
    /// 32 slots: with probing, every one of them finds a slot, whatever the key.
    @Test(arguments: [UInt8(1), 2, 3, 4, 5, 6, 7, 8])
    func oneGroupFillsItsBucketWithoutLosingAddresses(key: UInt8) {
        var book = AddressBook(key: Bytes32([UInt8](repeating: key, count: 32)))
        var stored = 0
        for index in 0..<20 {
            let id = SigningKey(seed: Blake2b.hash256(Array("loopback-\(index)".utf8))).publicKey
            if book.add(PeerAddress(nodeID: id, host: "127.0.0.1", port: 20_000 + index), sourceGroup: AddressBook.group("127.0.0.1")) { stored += 1 }
        }
        #expect(stored >= 18, "stored \(stored) of 20")
        #expect(book.count == stored && stored <= AddressBook.slotsPerBucket)
    }
}

struct AddressBookFileTests {
    /// A saved book written by someone else: slots out of range or not the entry's own, the
    /// same node twice, far more entries than the tables hold. It loads within the bounds.
    @Test func aHostileSavedBookLoadsWithinTheBounds() throws {
        var writer = CanonicalWriter()
        writer.write(Bytes32([UInt8](repeating: 9, count: 32)))
        let count = AddressBook.capacity
        writer.writeLength(count)
        for index in 0..<count {
            let id = SigningKey(seed: Blake2b.hash256(Array("hostile-\(index % 1_500)".utf8))).publicKey
            writer.write(PeerAddress(nodeID: id, host: "198.18.\(index % 7).\(index % 250)", port: 26656))
            writer.writeString("v4:203.0")
            writer.write(index % 3 == 0)                                 // tried
            writer.write(UInt32(index % 2 == 0 ? 4_000_000_000 : 0))     // a slot out of range, or slot 0 for everyone
            writer.write(UInt32(0))
            writer.write(UInt64(1))
            writer.write(UInt64(1))
        }
        let book = try AddressBook.decode(exactly: writer.bytes)
        #expect(book.count <= AddressBook.capacity && book.count <= 1_500, "\(book.count) entries")
        #expect(book.triedCount <= AddressBook.triedBuckets * AddressBook.slotsPerBucket)
        // One source group: its new entries sit in at most `bucketsPerSourceGroup` buckets.
        #expect(book.count - book.triedCount <= AddressBook.bucketsPerSourceGroup * AddressBook.slotsPerBucket)
        // Past the capacity, the file is refused before anything is read.
        var over = CanonicalWriter()
        over.write(Bytes32([UInt8](repeating: 9, count: 32)))
        over.writeLength(AddressBook.capacity + 1)
        #expect(throws: DecodingError.self) { try AddressBook.decode(exactly: over.bytes) }
    }
}

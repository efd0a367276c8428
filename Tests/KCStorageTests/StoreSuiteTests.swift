import Foundation
import KCStorage
import Testing

/// The backends the suite runs over. Every test below runs once per backend.
enum Backend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case memory, rocksdb
    var testDescription: String { rawValue }

    func open() throws -> (store: any KeyValueStore, cleanup: @Sendable () -> Void) {
        switch self {
        case .memory:
            return (MemoryStore(), {})
        case .rocksdb:
            let directory = TemporaryDirectory.make(prefix: "kc-store-suite")
            return (try RocksDBStore(path: directory), { TemporaryDirectory.remove(directory) })
        }
    }
}

enum TemporaryDirectory {
    static func make(prefix: String) -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func remove(_ path: String) { try? FileManager.default.removeItem(atPath: path) }
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

struct StoreSuiteTests {
    @Test(arguments: Backend.allCases)
    func getReturnsWhatWasPutAndNilOtherwise(backend: Backend) throws {
        let (store, cleanup) = try backend.open()
        defer { cleanup() }
        #expect(try store.get(bytes("missing")) == nil)
        var batch = WriteBatch()
        batch.put(bytes("a"), bytes("1"))
        batch.put(bytes("empty"), [])
        try store.write(batch, sync: true)
        #expect(try store.get(bytes("a")) == bytes("1"))
        #expect(try store.get(bytes("empty")) == [])
    }

    @Test(arguments: Backend.allCases)
    func laterOperationsInABatchWin(backend: Backend) throws {
        let (store, cleanup) = try backend.open()
        defer { cleanup() }
        var batch = WriteBatch()
        batch.put(bytes("k"), bytes("first"))
        batch.put(bytes("k"), bytes("second"))
        batch.put(bytes("gone"), bytes("x"))
        batch.delete(bytes("gone"))
        try store.write(batch, sync: false)
        #expect(try store.get(bytes("k")) == bytes("second"))
        #expect(try store.get(bytes("gone")) == nil)
        var deletion = WriteBatch()
        deletion.delete(bytes("k"))
        deletion.delete(bytes("never-existed"))
        try store.write(deletion, sync: true)
        #expect(try store.get(bytes("k")) == nil)
    }

    @Test(arguments: Backend.allCases)
    func scanIsOrderedBoundedAndReversible(backend: Backend) throws {
        let (store, cleanup) = try backend.open()
        defer { cleanup() }
        var batch = WriteBatch()
        for key in ["b/2", "a/1", "b/1", "b/10", "c", "b", "b0", "a/\u{ff}"] { batch.put(bytes(key), bytes("v" + key)) }
        batch.put([0x62, 0x2f, 0xff, 0xff], [9])
        try store.write(batch, sync: false)

        let prefixed = try store.scan(.prefix(bytes("b/"))).map(\.key)
        #expect(prefixed == [bytes("b/1"), bytes("b/10"), bytes("b/2"), [0x62, 0x2f, 0xff, 0xff]])
        let reversed = try store.scan(.prefix(bytes("b/")), limit: .max, reverse: true).map(\.key)
        #expect(reversed == prefixed.reversed())
        #expect(try store.scan(.prefix(bytes("b/")), limit: 2).map(\.key) == Array(prefixed.prefix(2)))
        #expect(try store.scan(.prefix(bytes("b/")), limit: 2, reverse: true).map(\.key) == Array(prefixed.reversed().prefix(2)))
        #expect(try store.scan(.prefix(bytes("b/")), limit: 0).isEmpty)

        // Half-open range: lower bound included, upper bound excluded.
        let range = KeyRange(lower: bytes("b"), upper: bytes("b0"))
        #expect(try store.scan(range).map(\.key).first == bytes("b"))
        #expect(!(try store.scan(range).map(\.key).contains(bytes("b0"))))
        #expect(try store.scan(range, limit: .max, reverse: true).map(\.key).first == [0x62, 0x2f, 0xff, 0xff])
        #expect(try store.scan(.all).count == 9)
        #expect(try store.scan(.all).map(\.value).first == bytes("va/1"))
        #expect(try store.scan(.prefix(bytes("zzz"))).isEmpty)
    }

    @Test(arguments: Backend.allCases)
    func snapshotDoesNotSeeLaterWrites(backend: Backend) throws {
        let (store, cleanup) = try backend.open()
        defer { cleanup() }
        var first = WriteBatch()
        first.put(bytes("x"), bytes("old"))
        first.put(bytes("y"), bytes("kept"))
        try store.write(first, sync: false)
        let snapshot = store.snapshot()
        var second = WriteBatch()
        second.put(bytes("x"), bytes("new"))
        second.delete(bytes("y"))
        second.put(bytes("z"), bytes("added"))
        try store.write(second, sync: false)

        #expect(try snapshot.get(bytes("x")) == bytes("old"))
        #expect(try snapshot.get(bytes("y")) == bytes("kept"))
        #expect(try snapshot.get(bytes("z")) == nil)
        #expect(try snapshot.scan(.all).map(\.key) == [bytes("x"), bytes("y")])
        #expect(try store.get(bytes("x")) == bytes("new"))
        #expect(try store.scan(.all).map(\.key) == [bytes("x"), bytes("z")])
    }

    /// Many operations on few keys in one batch, in an order unlike key order: whatever
    /// order a store applies them in, the last operation on each key decides.
    @Test(arguments: Backend.allCases)
    func lastOperationOnEachKeyWinsInALargeBatch(backend: Backend) throws {
        let (store, cleanup) = try backend.open()
        defer { cleanup() }
        var model: [[UInt8]: [UInt8]] = [:]
        var batch = WriteBatch()
        for step in 0..<300 {
            let key = [UInt8(7 - (step * 5) % 8)]
            if step % 7 == 3 {
                batch.delete(key)
                model[key] = nil
            } else {
                batch.put(key, [UInt8(step % 256), UInt8(step / 256)])
                model[key] = [UInt8(step % 256), UInt8(step / 256)]
            }
        }
        try store.write(batch, sync: false)
        for key in 0..<8 as Range<UInt8> {
            #expect(try store.get([key]) == model[[key]], "key \(key)")
        }
    }

    @Test(arguments: Backend.allCases)
    func randomOperationsMatchAReferenceModel(backend: Backend) throws {
        let (store, cleanup) = try backend.open()
        defer { cleanup() }
        var model: [[UInt8]: [UInt8]] = [:]
        var state: UInt64 = 0x5eed
        func next(_ bound: UInt64) -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return (state >> 33) % bound
        }
        for _ in 0..<200 {
            var batch = WriteBatch()
            for _ in 0..<Int(next(20)) {
                let key = [UInt8(next(4)), UInt8(next(256))]
                if next(4) == 0 {
                    batch.delete(key)
                    model[key] = nil
                } else {
                    let value = [UInt8(next(256)), UInt8(next(256))]
                    batch.put(key, value)
                    model[key] = value
                }
            }
            try store.write(batch, sync: false)
        }
        let expected = model.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map { KeyValuePair(key: $0.key, value: $0.value) }
        #expect(try store.scan(.all) == expected)
        for prefix: UInt8 in 0..<4 {
            #expect(try store.scan(.prefix([prefix])) == expected.filter { $0.key.first == prefix })
        }
    }
}

struct KeyRangeTests {
    @Test func prefixUpperBoundCarriesOverFF() {
        #expect(KeyRange.prefix([0x01, 0xff]).upper == [0x02])
        #expect(KeyRange.prefix([0xff, 0xff]).upper == nil)
        #expect(KeyRange.prefix([]).upper == nil)
        #expect(KeyRange.prefix([0x61]).contains([0x61, 0xff, 0xff]))
        #expect(!KeyRange.prefix([0x61]).contains([0x62]))
    }
}

import Foundation
import KCCodec
import KCCrypto
import KCNode
import KCStorage
import KCTypes
import Testing

let signerKey = SigningKey(seed: Blake2b.hash256(Array("signer-test".utf8)))
let chain = "membria-signer-test"

func vote(_ kind: VoteKind, _ height: UInt64, _ round: UInt32, _ value: UInt8?, time: UInt64 = 1) -> Vote {
    Vote(kind: kind, height: height, round: round, blockID: value.map { Blake2b.hash256([$0]) },
         timestampMilliseconds: time, validator: signerKey.publicKey)
}

/// A store whose writes can be made to fail, to model a crash before the record is durable.
final class FlakyStore: KeyValueStore, @unchecked Sendable {
    let inner = MemoryStore()
    var failWrites = false
    struct Crash: Error {}

    func get(_ key: [UInt8]) throws(StoreError) -> [UInt8]? { try inner.get(key) }
    func scan(_ range: KeyRange, limit: Int, reverse: Bool) throws(StoreError) -> [KeyValuePair] {
        try inner.scan(range, limit: limit, reverse: reverse)
    }
    func write(_ batch: WriteBatch, sync: Bool) throws(StoreError) {
        if failWrites { throw .io(path: "memory", detail: "simulated crash before the write was durable") }
        try inner.write(batch, sync: sync)
    }
    func snapshot() -> any KeyValueSnapshot { inner.snapshot() }
}

struct SignerTests {
    @Test func identicalRequestGetsTheIdenticalSignature() throws {
        let signer = try PersistentSigner(key: signerKey, chainID: chain, store: MemoryStore())
        let first = try signer.signVote(vote(.prevote, 5, 0, 1))
        let again = try signer.signVote(vote(.prevote, 5, 0, 1))
        #expect(first == again)
        // Same vote, later clock: the vote already signed comes back unchanged.
        let retimed = try signer.signVote(vote(.prevote, 5, 0, 1, time: 99))
        #expect(retimed == first)
        #expect(first.verify(chainID: chain))
    }

    @Test func conflictsAndRegressionsAreRefused() throws {
        let signer = try PersistentSigner(key: signerKey, chainID: chain, store: MemoryStore())
        _ = try signer.signVote(vote(.precommit, 7, 2, 1))
        #expect(throws: SignerError.conflict(at: "height 7 round 2 step 2")) { try signer.signVote(vote(.precommit, 7, 2, 2)) }
        #expect(throws: SignerError.conflict(at: "height 7 round 2 step 2")) { try signer.signVote(vote(.precommit, 7, 2, nil)) }
        #expect(throws: SignerError.self) { try signer.signVote(vote(.prevote, 7, 2, 1)) }   // earlier step
        #expect(throws: SignerError.self) { try signer.signVote(vote(.precommit, 7, 1, 1)) } // earlier round
        #expect(throws: SignerError.self) { try signer.signVote(vote(.prevote, 6, 9, 1)) }   // earlier height
        #expect(throws: SignerError.self) { try signer.signProposal(height: 7, round: 2, bytes: [1]) }
        _ = try signer.signVote(vote(.prevote, 7, 3, 3))  // later rounds are fine
        let proposal = try signer.signProposal(height: 8, round: 0, bytes: [1, 2])
        #expect(try signer.signProposal(height: 8, round: 0, bytes: [1, 2]) == proposal)
        #expect(throws: SignerError.conflict(at: "height 8 round 0 step 0")) { try signer.signProposal(height: 8, round: 0, bytes: [3]) }
    }

    @Test func stateSurvivesARestartOnRocksDB() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kc-signer-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let signed: SignedVote
        do {
            let signer = try PersistentSigner(key: signerKey, chainID: chain, store: try RocksDBStore(path: directory))
            signed = try signer.signVote(vote(.precommit, 3, 0, 1))
        }
        let restarted = try PersistentSigner(key: signerKey, chainID: chain, store: try RocksDBStore(path: directory))
        #expect(restarted.lastSigned?.height == 3)
        #expect(try restarted.signVote(vote(.precommit, 3, 0, 1)) == signed)
        #expect(throws: SignerError.self) { try restarted.signVote(vote(.precommit, 3, 0, 2)) }
    }

    @Test func corruptRecordRefusesToSign() throws {
        let store = MemoryStore()
        var batch = WriteBatch()
        batch.put(PersistentSigner.storeKey, [1, 2, 3])
        try store.write(batch, sync: true)
        #expect(throws: SignerError.self) { _ = try PersistentSigner(key: signerKey, chainID: chain, store: store) }
    }

    /// Random height/round/step requests with crashes: after a signature (crash right after
    /// it was made durable), or in the middle of signing (the write fails: nothing leaves).
    /// Across every signature that ever left, no two conflict.
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func randomSequencesWithCrashesNeverDoubleSign(seed: UInt64) throws {
        var state = seed
        func next(_ bound: UInt64) -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return (state >> 33) % bound
        }
        let store = FlakyStore()
        var signer = try PersistentSigner(key: signerKey, chainID: chain, store: store)
        var released: [String: Hash256?] = [:]
        var signatures = 0
        var base: UInt64 = 1
        for _ in 0..<2_000 {
            switch next(10) {
            case 0:
                signer = try PersistentSigner(key: signerKey, chainID: chain, store: store)  // crash and restart
                continue
            case 1:
                store.failWrites = true  // the next signing crashes before its record is durable
            default:
                store.failWrites = false
            }
            // Mostly moving forward, as consensus does, with stale and repeated requests mixed in.
            if next(20) == 0 { base += 1 }
            let height = base + next(3), round = UInt32(next(3))
            let kind: VoteKind = next(2) == 0 ? .prevote : .precommit
            let value: UInt8? = next(4) == 0 ? nil : UInt8(next(3))
            let slot = "\(height)/\(round)/\(kind.rawValue)"
            guard let signed = try? signer.signVote(vote(kind, height, round, value, time: next(1_000))) else { continue }
            // A new signature needs its record durable first; a repeat returns the stored one.
            #expect(!store.failWrites || released[slot] != nil, "a new signature left although its record was not durable")
            #expect(signed.verify(chainID: chain))
            if let previous = released[slot] {
                #expect(previous == signed.vote.blockID, "two conflicting signatures at \(slot)")
            }
            released[slot] = signed.vote.blockID
            signatures += 1
        }
        #expect(signatures > 20, "the sequence signed almost nothing")
    }
}

struct ConsensusWALTests {
    static func temporaryFile() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("kc-wal-\(UUID().uuidString)").path
    }

    static func records(_ count: Int) -> [[UInt8]] {
        (0..<count).map { index in Array("record \(index) ".utf8) + [UInt8](repeating: UInt8(index % 256), count: index % 40) }
    }

    @Test func appendsAndReadsBack() throws {
        let path = Self.temporaryFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let wal = try ConsensusWAL(path: path)
            #expect(wal.recovered.isEmpty)
            for (index, record) in Self.records(50).enumerated() { try wal.append(record, sync: index % 10 == 0) }
        }
        let reopened = try ConsensusWAL(path: path)
        #expect(reopened.recovered == Self.records(50))
        #expect(reopened.truncatedBytes == 0)
        try reopened.reset()
        #expect(try ConsensusWAL(path: path).recovered.isEmpty)
    }

    /// The file cut at every kind of offset (a crash mid-append) opens cleanly with exactly the
    /// records wholly before the cut, and takes new records afterwards.
    @Test func cutAtRandomOffsetsOpensWithThePrefix() throws {
        let full = Self.records(30).flatMap(ConsensusWAL.frame)
        var boundaries: [Int] = [0]
        for record in Self.records(30) { boundaries.append(boundaries.last! + ConsensusWAL.headerBytes + record.count) }
        var state: UInt64 = 11
        for _ in 0..<60 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let cut = Int((state >> 33) % UInt64(full.count + 1))
            let path = Self.temporaryFile()
            defer { try? FileManager.default.removeItem(atPath: path) }
            FileManager.default.createFile(atPath: path, contents: Data(full[0..<cut]))
            let wal = try ConsensusWAL(path: path)
            let whole = boundaries.lastIndex { $0 <= cut }!
            #expect(wal.recovered == Array(Self.records(30).prefix(whole)), "cut at \(cut)")
            #expect(wal.truncatedBytes == cut - boundaries[whole])
            try wal.append(Array("after".utf8), sync: true)
            #expect(try ConsensusWAL(path: path).recovered.last == Array("after".utf8))
        }
    }

    @Test func flippedBytesCutTheLogAtTheDamage() throws {
        let records = Self.records(20)
        let full = records.flatMap(ConsensusWAL.frame)
        var state: UInt64 = 5
        for _ in 0..<40 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let position = Int((state >> 33) % UInt64(full.count))
            var damaged = full
            damaged[position] ^= UInt8(1 + (state >> 20) % 255)
            let path = Self.temporaryFile()
            defer { try? FileManager.default.removeItem(atPath: path) }
            FileManager.default.createFile(atPath: path, contents: Data(damaged))
            let wal = try ConsensusWAL(path: path)
            // Everything before the damaged record survives; nothing after it is trusted.
            var offset = 0, intact = 0
            for record in records {
                let end = offset + ConsensusWAL.headerBytes + record.count
                if position < end { break }
                intact += 1
                offset = end
            }
            #expect(wal.recovered == Array(records.prefix(intact)), "flip at \(position)")
            #expect(wal.truncatedBytes > 0)
        }
    }
}

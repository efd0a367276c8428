import KCCodec
import KCCrypto
@testable import KCRuntime
import KCTypes
import Testing

struct StateTrieTests {
    static func path(_ n: Int) -> Hash256 { Blake2b.hash256(Array("path-\(n)".utf8)) }
    static func value(_ n: Int) -> Hash256 { Blake2b.hash256(Array("value-\(n)".utf8)) }

    /// The root straight from the definition, by recursion over the sorted entries.
    static func referenceRoot(_ entries: [(Hash256, Hash256)], depth: Int = 0) -> Hash256 {
        if entries.isEmpty { return .zero }
        if entries.count == 1 { return StateTrie.leafHash(path: entries[0].0, valueHash: entries[0].1) }
        let left = entries.filter { !$0.0.bit(at: depth) }, right = entries.filter { $0.0.bit(at: depth) }
        return StateTrie.branchHash(left: referenceRoot(left, depth: depth + 1), right: referenceRoot(right, depth: depth + 1))
    }

    /// The stored forms of positions and nodes (specs/storage.md, `t/`) read back, and bytes
    /// that are not one are refused.
    @Test func positionsAndNodesSurviveTheirStoredForm() {
        let path = Self.path(1)
        for depth in [0, 1, 7, 8, 9, 63, 64, 65, 200, 255, 256] {
            let position = TriePosition(depth: depth, on: path)
            #expect(position.bytes.count == 2 + (depth + 7) / 8)
            #expect(TriePosition(bytes: position.bytes) == position, "depth \(depth)")
            if depth > 0 && depth < 256 {
                // A bit set past the depth is not a position.
                var bytes = position.bytes
                let lastBit = depth % 8
                if lastBit != 0 { bytes[bytes.count - 1] |= UInt8(1) << UInt8(7 - lastBit) ; #expect(TriePosition(bytes: bytes) == nil) }
            }
        }
        #expect(TriePosition(bytes: [0, 9]) == nil, "depth 9 with no prefix bytes")
        #expect(TriePosition(bytes: [1, 1] + [UInt8](repeating: 0, count: 33)) == nil, "depth 257")
        #expect(TriePosition(depth: 3, on: path).child(right: true).prefix.bit(at: 3))
        for node in [TrieNode.leaf(path: path, valueHash: Self.value(1)), .branch(left: .zero, right: Self.value(2)),
                     .branch(left: Self.value(3), right: Self.value(4))] {
            #expect(TrieNode(bytes: node.bytes) == node)
        }
        #expect(TrieNode(bytes: [1] + [UInt8](repeating: 0, count: 64)) == nil, "a branch with two empty sides")
        #expect(TrieNode(bytes: [2] + [UInt8](repeating: 0, count: 64)) == nil, "unknown tag")
        #expect(TrieNode(bytes: [0] + [UInt8](repeating: 0, count: 63)) == nil, "short")
    }

    /// `keepingLeadingBits` and `settingBit` agree with `bit(at:)` at every position.
    @Test func pathBitHelpersAgreeWithBitOrder() {
        let path = Self.path(9)
        for count in 0...256 {
            let kept = path.keepingLeadingBits(count)
            for bit in 0..<256 { #expect(kept.bit(at: bit) == (bit < count && path.bit(at: bit))) }
        }
        for bit in [0, 7, 8, 63, 64, 255] {
            let set = Bytes32.zero.settingBit(bit)
            #expect((0..<256).filter { set.bit(at: $0) } == [bit])
        }
    }

    @Test func emptyTrieHasTheZeroRoot() {
        #expect(StateTrie().rootHash == .zero)
    }

    @Test func rootMatchesTheDefinitionAndIgnoresUpdateOrder() {
        var model: [Hash256: Hash256] = [:]
        var incremental = StateTrie()
        var state: UInt64 = 1
        for round in 0..<30 {
            var changes: [StateTrie.Change] = []
            var touched = Set<Hash256>()
            for _ in 0..<20 {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                let key = Self.path(Int(state >> 58))  // 64 distinct paths: plenty of overwrites
                guard touched.insert(key).inserted else { continue }
                let delete = (state >> 20) % 4 == 0
                let valueHash = delete ? nil : Self.value(Int(state >> 40) + round)
                changes.append(StateTrie.Change(path: key, valueHash: valueHash))
                model[key] = valueHash
            }
            incremental.apply(changes)
            let entries = model.map { ($0.key, $0.value) }.sorted { $0.0 < $1.0 }
            #expect(incremental.rootHash == Self.referenceRoot(entries), "round \(round)")
            #expect(incremental.count == entries.count)
            // Built in one go, in another order: the same root.
            var fresh = StateTrie()
            fresh.apply(entries.reversed().map { StateTrie.Change(path: $0.0, valueHash: $0.1) })
            #expect(fresh.rootHash == incremental.rootHash)
        }
    }

    @Test func oldVersionsStayIntact() {
        var trie = StateTrie()
        trie.apply((0..<10).map { StateTrie.Change(path: Self.path($0), valueHash: Self.value($0)) })
        let snapshot = trie
        let rootBefore = trie.rootHash
        trie.apply([StateTrie.Change(path: Self.path(3), valueHash: nil)])
        #expect(snapshot.rootHash == rootBefore)
        #expect(trie.rootHash != rootBefore)
        #expect(snapshot.count == 10 && trie.count == 9)
    }

    /// Many updates of one tree (inserts, overwrites, deletions that collapse branches): the
    /// nodes it holds are exactly those of the tree built afresh from its entries (every node
    /// an update leaves behind is deleted, so a store of the nodes never grows with history),
    /// and versions kept along the way still give their own root and proofs.
    @Test func updatesLeaveExactlyTheLiveNodes() {
        var model: [Hash256: Hash256] = [:]
        var trie = StateTrie()
        var state: UInt64 = 7
        var kept: [(trie: StateTrie, model: [Hash256: Hash256])] = []
        for round in 0..<160 {
            var changes: [StateTrie.Change] = []
            var touched = Set<Hash256>()
            for _ in 0..<200 {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                let key = Self.path(Int(state >> 54))  // 1,024 distinct paths
                guard touched.insert(key).inserted else { continue }
                // From round 100 on, deletions outnumber than they insert, down to a nearly empty tree.
                let valueHash = (state >> 20) % (round < 100 ? 8 : 2) == 0 ? nil : Self.value(Int(state >> 40) + round)
                changes.append(StateTrie.Change(path: key, valueHash: valueHash))
                model[key] = valueHash
            }
            trie.apply(changes)
            var fresh = StateTrie()
            fresh.apply(model.map { StateTrie.Change(path: $0.key, valueHash: $0.value) })
            #expect(trie.nodes == fresh.nodes, "round \(round): \(trie.nodes.count) nodes, built afresh \(fresh.nodes.count)")
            if round % 20 == 0 { kept.append((trie, model)) }
        }
        // Down to nothing: no node remains.
        var emptied = trie
        emptied.apply(model.map { StateTrie.Change(path: $0.key, valueHash: nil) })
        #expect(emptied.nodes.isEmpty && emptied.rootHash == .zero && emptied.count == 0)
        for (version, versionModel) in kept {
            let entries = versionModel.map { ($0.key, $0.value) }.sorted { $0.0 < $1.0 }
            #expect(version.rootHash == Self.referenceRoot(entries))
            #expect(version.count == entries.count)
            for (path, valueHash) in entries.prefix(5) {
                #expect(StateTrie.verify(proof: version.proof(path: path), root: version.rootHash, path: path, valueHash: valueHash))
            }
        }
    }

    /// Versions of one tree updated on several threads at once (they share one arena): each
    /// gets the root its own changes define.
    @Test func concurrentUpdatesOfSharedVersionsAreIndependent() async {
        var base = StateTrie()
        base.apply((0..<2_000).map { StateTrie.Change(path: Self.path($0), valueHash: Self.value($0)) })
        let shared = base
        let roots = await withTaskGroup(of: (Int, Hash256, Hash256).self) { group in
            for worker in 0..<4 {
                group.addTask {
                    var mine = shared
                    var expected = (0..<2_000).map { (Self.path($0), Self.value($0)) }
                    for step in 0..<50 {
                        let index = (worker * 397 + step * 31) % 2_000
                        let valueHash = Self.value(10_000 * (worker + 1) + step)
                        mine.apply([StateTrie.Change(path: Self.path(index), valueHash: valueHash)])
                        expected[index].1 = valueHash
                    }
                    return (worker, mine.rootHash, Self.referenceRoot(expected.sorted { $0.0 < $1.0 }))
                }
            }
            var results: [(Int, Hash256, Hash256)] = []
            for await result in group { results.append(result) }
            return results
        }
        #expect(roots.count == 4)
        for (worker, actual, expected) in roots { #expect(actual == expected, "worker \(worker)") }
        #expect(shared.rootHash == base.rootHash)
    }

    @Test func proofsOfMembershipAndAbsenceVerify() throws {
        var trie = StateTrie()
        trie.apply((0..<200).map { StateTrie.Change(path: Self.path($0), valueHash: Self.value($0)) })
        let root = trie.rootHash
        for n in [0, 17, 199] {
            let proof = trie.proof(path: Self.path(n))
            #expect(StateTrie.verify(proof: proof, root: root, path: Self.path(n), valueHash: Self.value(n)))
            #expect(!StateTrie.verify(proof: proof, root: root, path: Self.path(n), valueHash: Self.value(n + 1)))
            #expect(!StateTrie.verify(proof: proof, root: root, path: Self.path(n), valueHash: nil))
            #expect(!StateTrie.verify(proof: proof, root: Blake2b.hash256([0]), path: Self.path(n), valueHash: Self.value(n)))
            // A proof survives its canonical encoding.
            #expect(try StateTrie.Proof.decode(exactly: proof.canonicalBytes) == proof)
        }
        for n in [500, 501, 999] {
            let proof = trie.proof(path: Self.path(n))
            #expect(StateTrie.verify(proof: proof, root: root, path: Self.path(n), valueHash: nil), "absence of \(n)")
            #expect(!StateTrie.verify(proof: proof, root: root, path: Self.path(n), valueHash: Self.value(n)))
        }
        // A tampered sibling breaks the proof.
        let proof = trie.proof(path: Self.path(5))
        var siblings = proof.siblings
        siblings[0] = Blake2b.hash256([1])
        #expect(!StateTrie.verify(proof: StateTrie.Proof(siblings: siblings, terminal: proof.terminal), root: root,
                                  path: Self.path(5), valueHash: Self.value(5)))
    }

    @Test func eventInclusionProofVerifiesAgainstTheBlockRoot() throws {
        var chain = TestChain()
        let id = try chain.propose(g[0], label: "proven")
        let root = chain.outcomes.last!.stateRoot
        #expect(root == chain.state.root)
        let key = StateKey.event(id)
        let proof = chain.state.proof(key: key)
        let valueHash = Blake2b.hash256(try #require(chain.state.get(key)))
        #expect(StateTrie.verify(proof: proof, root: root, path: Blake2b.hash256(key.bytes), valueHash: valueHash))
        // The client checks the record it was given against the proven hash.
        let record = try EventRecord.decode(exactly: try #require(chain.state.get(key)))
        #expect(record.header.id == id)
    }
}

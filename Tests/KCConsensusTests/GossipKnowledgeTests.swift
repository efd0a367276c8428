import KCCodec
import KCConsensus
import KCCrypto
import KCTypes
import Testing

struct GossipKnowledgeTests {
    /// Five validators; the announcements below use this set's indices.
    let size = 5

    func bits(_ set: [Int]) -> ValidatorBits {
        var bits = ValidatorBits(count: size)
        for index in set { bits[index] = true }
        return bits
    }

    func state(height: UInt64, round: UInt32 = 0, links: [Int], prevotes: [Int] = [], precommits: [Int] = [],
               proposal: Bool = false, stalled: Bool = false) -> RoundState {
        RoundState(height: height, round: round, phase: .prevote, hasProposal: proposal, prevotes: bits(prevotes),
                   precommits: bits(precommits), links: bits(links), stalled: stalled)
    }

    func vote(_ validator: Int, round: UInt32 = 0, kind: VoteKind = .prevote, block: UInt8 = 1) -> GossipVoteID {
        GossipVoteID(round: round, kind: kind, validator: validator, blockID: Hash256([UInt8](repeating: block, count: 32)))
    }

    @Test func bitsEncodeCanonicallyAndRefuseSetPadding() throws {
        let original = bits([0, 3, 4])
        let bytes = original.canonicalBytes
        #expect(try ValidatorBits.decode(exactly: bytes) == original)
        #expect(original.indices == [0, 3, 4])
        var forged = bytes
        forged[forged.count - 1] |= 0x80  // bit 7 of a 5-bit set
        #expect(throws: DecodingError.self) { try ValidatorBits.decode(exactly: forged) }
        let announcement = state(height: 9, round: 2, links: [1, 2], prevotes: [4], stalled: true)
        #expect(try RoundState.decode(exactly: announcement.canonicalBytes) == announcement)
        #expect(bits([1, 2, 4]).common(with: bits([0, 2, 4])) == [2, 4])
    }

    /// A peer gets a vote once: not back from whom it came, not twice, and not at all when it
    /// is at another height.
    @Test func eachPeerGetsAVoteOnceAndOnlyAtItsHeight() {
        var gossip = GossipKnowledge<Int>()
        for peer in 1...4 { gossip.connected(peer) }
        for peer in 1...3 { _ = gossip.announced(state(height: 7, links: [peer]), by: peer, setSize: size) }
        _ = gossip.announced(state(height: 5, links: [4]), by: 4, setSize: size)
        // A full node (me nil) relays what it got from peer 1 (the signer, validator 1).
        let targets = gossip.relayVote(vote(1), height: 7, from: 1, signer: 1, me: nil)
        #expect(targets == [2, 3], "peer 4 is two heights behind; peer 1 sent it")
        let result1 = gossip.relayVote(vote(1), height: 7, from: 2, signer: 1, me: nil)
        #expect(result1.isEmpty, "already sent to everyone")
        let result2 = gossip.ownVote(vote(0), height: 7)
        #expect(result2 == [1, 2, 3, 4])
        let result3 = gossip.ownVote(vote(0), height: 7)
        #expect(result3 == [4], "peer 4 is not at that height: not marked")
    }

    /// A peer linked to the signer has the signer's messages; relays skip it.
    @Test func relaysSkipPeersLinkedToTheSigner() {
        var gossip = GossipKnowledge<Int>()
        for peer in 1...3 { gossip.connected(peer) }
        _ = gossip.announced(state(height: 3, links: [1, 2]), by: 1, setSize: size)
        _ = gossip.announced(state(height: 3, links: [1, 2]), by: 2, setSize: size)  // linked to validator 1
        _ = gossip.announced(state(height: 3, links: [3]), by: 3, setSize: size)
        // Not from the signer: a full node passes it to 3 only.
        let result4 = gossip.relayVote(vote(1, round: 1), height: 3, from: 4, signer: nil, me: nil)
        #expect(result4 == [3])
        // Proposals likewise.
        let result5 = gossip.relayProposal(height: 3, round: 0, proposer: 1, from: 1, signer: 1, me: nil)
        #expect(result5 == [3])
    }

    /// A transaction from a validator's connection goes on only to the peers that did not
    /// announce a link to that validator (they have it from the source); from a peer that is
    /// no validator, or to a peer that announced nothing, it goes everywhere but back.
    @Test func transactionsSkipPeersLinkedToTheirSource() {
        var gossip = GossipKnowledge<Int>()
        for peer in 1...5 { gossip.connected(peer) }
        _ = gossip.announced(state(height: 3, links: [0, 1, 2]), by: 2, setSize: size)  // linked to validator 1
        _ = gossip.announced(state(height: 3, links: [0, 3]), by: 3, setSize: size)
        _ = gossip.announced(state(height: 3, links: [1, 4]), by: 4, setSize: size)  // linked to validator 1
        // Peer 1 is validator 1; peer 5 never announced.
        #expect(gossip.transactionTargets(from: 1, sourceValidator: 1) == [3, 5])
        #expect(gossip.transactionTargets(from: 1, sourceValidator: nil) == [2, 3, 4, 5], "a source that is no validator")
        #expect(gossip.transactionTargets(from: 3, sourceValidator: 3) == [1, 2, 4, 5], "only peer 3 itself announced validator 3")
        #expect(gossip.transactionTargets(from: 1, sourceValidator: 9) == [2, 3, 4, 5], "an index outside the set links no one")
    }

    /// Of the validators linked to both the signer and a peer, only the ranked few relay: two
    /// validators linked to both agree, and exactly `relayers` of the common neighbours
    /// (here all three candidates compute the ranking) pass the vote on.
    @Test func commonNeighboursAgreeOnWhoRelays() {
        // Validator 0 signs; validators 1, 2, 3 are linked to it and to peer 4 (a validator
        // not linked to 0). Each of 1, 2, 3 runs its own knowledge.
        var relaying = 0
        for me in 1...3 {
            var gossip = GossipKnowledge<Int>()
            gossip.connected(0)
            gossip.connected(4)
            _ = gossip.announced(state(height: 2, links: [0, 1, 2, 3]), by: 0, setSize: size)
            _ = gossip.announced(state(height: 2, links: [1, 2, 3, 4]), by: 4, setSize: size)
            let targets = gossip.relayVote(vote(0), height: 2, from: 0, signer: 0, me: me)
            if targets.contains(4) { relaying += 1 }
            // Received from someone else than its signer, a validator does not relay.
            var second = GossipKnowledge<Int>()
            second.connected(4)
            second.connected(1)
            _ = second.announced(state(height: 2, links: [1, 2, 3, 4]), by: 4, setSize: size)
            let result6 = second.relayVote(vote(0), height: 2, from: 1, signer: nil, me: me)
            #expect(!result6.contains(4))
        }
        #expect(relaying == GossipKnowledge<Int>.relayers)
    }

    /// A stall report is authoritative for its round: a vote sent before but missing from its
    /// bits is offered again; what its bits hold is not.
    @Test func stallReportResendsWhatItLacks() {
        var gossip = GossipKnowledge<Int>()
        gossip.connected(9)
        let result7 = gossip.announced(state(height: 4, links: [0]), by: 9, setSize: size)
        #expect(result7 == .newHeight)
        let result8 = gossip.ownVote(vote(2), height: 4)
        #expect(result8 == [9])
        let result9 = gossip.missingVotes([(vote(2), "v2"), (vote(3), "v3")], height: 4, for: 9)
        #expect(result9 == ["v3"])
        let result10 = gossip.missingVotes([(vote(2), "v2"), (vote(3), "v3")], height: 4, for: 9)
        #expect(result10.isEmpty)
        // It says it holds validator 3's prevote but not 2's: 2's goes again.
        let result11 = gossip.announced(state(height: 4, links: [0], prevotes: [3], stalled: true), by: 9, setSize: size)
        #expect(result11 == .stalled)
        let result12 = gossip.missingVotes([(vote(2), "v2"), (vote(3), "v3")], height: 4, for: 9)
        #expect(result12 == ["v2"])
        let result13 = gossip.missingProposal(height: 4, round: 0, for: 9)
        #expect(result13)
        let result14 = gossip.missingProposal(height: 4, round: 0, for: 9)
        #expect(!result14)
        // A new height forgets the old one; a reconnection forgets everything.
        let result15 = gossip.announced(state(height: 5, links: [0]), by: 9, setSize: size)
        #expect(result15 == .newHeight)
        #expect(gossip.lacks(9, vote: vote(2), height: 5))
        gossip.disconnected(9)
        #expect(!gossip.lacks(9, vote: vote(2), height: 5), "not connected")
        #expect(gossip.peers.isEmpty)
    }

    /// Messages for the height after a peer's are held by it: they count as sent; older or
    /// further ones are not sent at all.
    @Test func thePeersNextHeightCountsAsItsOwn() {
        var gossip = GossipKnowledge<Int>()
        gossip.connected(1)
        _ = gossip.announced(state(height: 10, links: []), by: 1, setSize: size)
        #expect(gossip.lacks(1, vote: vote(0), height: 11))
        #expect(!gossip.lacks(1, vote: vote(0), height: 12))
        #expect(!gossip.lacks(1, vote: vote(0), height: 9))
        let result16 = gossip.ownVote(vote(0), height: 11)
        #expect(result16 == [1])
        // Arriving at 11, it keeps what it was given for 11.
        _ = gossip.announced(state(height: 11, links: []), by: 1, setSize: size)
        #expect(!gossip.lacks(1, vote: vote(0), height: 11))
    }
}

import KCCodec
import KCCrypto
@testable import KCRuntime
import KCTypes
import Testing

/// An event's first `EventRecord.inlineVoteLimit` votes live in its record; later ones under
/// their own `evote/` and `evl/` keys (ADR 0019). Every rule that reads votes sees both.
struct InlineVoteTests {
    static let limit = EventRecord.inlineVoteLimit

    /// g0 proposes; `newcomers` gateways of 10,000 each (registered in epoch 0, voting from
    /// epoch 1) alternate valid and invalid for the record's places, then the rest vote valid.
    static func chainWithVotes(newcomers: Int) throws -> (TestChain, Hash256, [SigningKey]) {
        let voters = ScaleTests.keys("inline-voter", newcomers)
        var chain = TestChain(genesis: TestChain.genesis(extraAccounts: voters.map { GenesisAccount(address: $0.publicKey, balance: .acti(20_000)) }))
        try ScaleTests.run(&chain, voters.flatMap { [($0, Call.bond(amount: .acti(10_000))), ($0, .registerGateway)] })
        while chain.state.global.epoch < 1 { try chain.block() }
        let event = try chain.propose(g[0], label: "many-voters")
        // One block, in this order (the attestation period is shorter than a block per voter).
        let votes = voters.enumerated().map { position, voter in
            chain.transaction(voter, .attest(votes: [AttestationVote(eventID: event, verdict: position < limit && position % 2 == 1 ? .invalid : .valid)]))
        }
        let outcome = try chain.block(votes)
        #expect(outcome.receipts.allSatisfy { $0.succeeded })
        return (chain, event, voters)
    }

    @Test func theFirstVotesLiveInTheRecordAndTheRestUnderTheirOwnKeys() throws {
        var (chain, event, voters) = try Self.chainWithVotes(newcomers: Self.limit + 8)
        let record = try #require(chain.state.event(event))
        #expect(record.inlineVotes.count == Self.limit)
        #expect(record.inlineVotes.map(\.voter) == voters.prefix(Self.limit).map(\.publicKey), "in the order cast")
        #expect(record.validCount == UInt32(Self.limit / 2 + 8) && record.invalidCount == UInt32(Self.limit / 2))
        #expect(record.validWeight == .acti(10_000 * UInt64(Self.limit / 2 + 8)))
        // No key for a vote held in the record; keys for each later one.
        for (position, voter) in voters.enumerated() {
            let stored = chain.state.get(StateKey.eventVote(event, voter.publicKey)) != nil
            #expect(stored == (position >= Self.limit), "voter \(position): stored under its key \(stored)")
        }
        #expect(chain.state.get(StateKey.voterEntry(event, .valid, 0)) == nil)
        #expect(chain.state.get(StateKey.voterEntry(event, .valid, UInt32(Self.limit / 2))) != nil, "the first valid voter past the record")
        // Every vote reads back with its verdict, weight and place in its side's list.
        var sideIndex: [Verdict: UInt32] = [.valid: 0, .invalid: 0]
        for (position, voter) in voters.enumerated() {
            let verdict: Verdict = position < Self.limit && position % 2 == 1 ? .invalid : .valid
            let vote = try #require(chain.state.eventVote(event, voter.publicKey))
            #expect(vote == EventVote(verdict: verdict, weight: .acti(10_000), index: sideIndex[verdict]!))
            sideIndex[verdict]! += 1
        }
        #expect(chain.state.voters(event, .valid).map(\.voter)
                == voters.enumerated().filter { $0.offset >= Self.limit || $0.offset % 2 == 0 }.map(\.element.publicKey))
        #expect(chain.state.voters(event, .invalid).map(\.voter)
                == voters.enumerated().filter { $0.offset < Self.limit && $0.offset % 2 == 1 }.map(\.element.publicKey))
        // A second vote is refused whether the first is held in the record or under its key.
        #expect(try chain.attest(voters[1], event, .valid).code == .alreadyVoted)
        #expect(try chain.attest(voters[Self.limit + 2], event, .invalid).code == .alreadyVoted)
        #expect(chain.state.event(event)?.validCount == record.validCount)
    }

    /// The rewards of a decided event reach its winning voters in the record and past it.
    @Test func creditsReachVotersInTheRecordAndPastIt() throws {
        var (chain, event, voters) = try Self.chainWithVotes(newcomers: Self.limit + 8)
        // 24 newcomers valid (240,000) + g1..g3 (300,000) = 540,000 of 800,000: above 2/3.
        try chain.block([g[1], g[2], g[3]].map { chain.transaction($0, .attest(votes: [AttestationVote(eventID: event, verdict: .valid)])) })
        #expect(chain.status(event) == .accepted)
        try chain.advance(to: chain.time + chain.parameters.events.challengeWindowMilliseconds + 1_000)
        #expect(chain.status(event) == .finalized)
        for (position, voter) in voters.enumerated() {
            let won = position >= Self.limit || position % 2 == 0
            let gateway = try #require(chain.state.gateway(voter.publicKey))
            #expect(gateway.winningVotesThisEpoch == (won ? 1 : 0), "voter \(position)")
        }
    }

    /// The whole-state audit finds a record whose lists disagree with its tallies.
    @Test func theAuditFindsVotesThatDisagreeWithTheTally() throws {
        let (chain, event, _) = try Self.chainWithVotes(newcomers: 3)
        var record = try #require(chain.state.event(event))
        let valid = chain.state.voters(event, .valid), invalid = chain.state.voters(event, .invalid)
        #expect(ChainState.tallyProblems(record, valid: valid, invalid: invalid).isEmpty)
        record.validCount += 1
        #expect(ChainState.tallyProblems(record, valid: valid, invalid: invalid).count == 2, "a count off, and votes missing from a record with room")
        record.validCount -= 1
        record.validWeight = .acti(1)
        #expect(ChainState.tallyProblems(record, valid: valid, invalid: invalid).count == 1)
    }

    /// A stored record claiming more votes held than counted does not decode.
    @Test func aRecordHoldingMoreVotesThanItCountsIsRefused() throws {
        let (chain, event, _) = try Self.chainWithVotes(newcomers: 3)
        var record = try #require(chain.state.event(event))
        record.validCount = 0
        record.invalidCount = 0
        #expect(throws: DecodingError.self) { _ = try EventRecord.decode(exactly: record.canonicalBytes) }
    }
}

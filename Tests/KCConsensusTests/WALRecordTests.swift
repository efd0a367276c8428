import KCCodec
import KCConsensus
import KCCrypto
import KCTypes
import Testing

struct WALRecordTests {
    static let proposer = SigningKey(seed: Blake2b.hash256(Array("wal-proposer".utf8)))

    static func block(height: UInt64) -> Block {
        Block(header: BlockHeader(chainID: chainID, height: height, timeMilliseconds: 5, previousBlockID: .zero, lastCommitHash: .zero,
                                  transactionsHash: .zero, evidenceHash: .zero, stateRoot: Blake2b.hash256([1]), validatorsHash: .zero,
                                  proposer: proposer.publicKey),
              transactions: [], evidence: [], lastCommit: nil)
    }

    static func signedProposal(height: UInt64, round: UInt32, validRound: UInt32?) -> SignedProposal {
        let proposal = Proposal(height: height, round: round, value: block(height: height), validRound: validRound, proposer: proposer.publicKey)
        return SignedProposal(proposal: proposal, signature: proposer.sign(domain: .proposal, chainID: chainID, message: ProposalSigning.bytes(proposal)))
    }

    @Test func everyRecordKindRoundTrips() throws {
        let vote = Vote(kind: .precommit, height: 3, round: 1, blockID: nil, timestampMilliseconds: 9, validator: Self.proposer.publicKey)
            .signed(with: Self.proposer, chainID: chainID)
        let records: [WALRecord] = [
            .height(3), .proposal(Self.signedProposal(height: 3, round: 1, validRound: 0)), .vote(vote),
            .timeout(.prevote, height: 3, round: 1), .proposeValue(Self.block(height: 3), height: 3, round: 2),
        ]
        for record in records { #expect(try WALRecord.decode(exactly: record.canonicalBytes) == record) }
        #expect(Self.signedProposal(height: 3, round: 1, validRound: 0).verify(chainID: chainID))
        #expect(!Self.signedProposal(height: 3, round: 1, validRound: 0).verify(chainID: "another"))
        #expect(throws: DecodingError.unknownTag(what: "WAL record", tag: 9)) { try WALRecord.decode(exactly: [9]) }
    }

    @Test func proposalWithAValidRoundNotBelowItsRoundIsRefused() {
        let bad = Self.signedProposal(height: 3, round: 1, validRound: 1)
        #expect(throws: DecodingError.self) { try SignedProposal.decode(exactly: bad.canonicalBytes) }
    }

    @Test func onlyTheCurrentHeightIsReplayed() {
        let vote = WALRecord.timeout(.propose, height: 5, round: 0)
        let records: [WALRecord] = [.height(4), .timeout(.propose, height: 4, round: 0), .height(5), vote]
        #expect(WALRecord.replayable(records, nextHeight: 5) == [vote])
        #expect(WALRecord.replayable(records, nextHeight: 6).isEmpty, "height 5 is already in the block store")
        #expect(WALRecord.replayable([], nextHeight: 1).isEmpty)
    }
}

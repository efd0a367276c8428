#if canImport(Glibc)
import Glibc
#endif
import KCCodec
import KCConsensus
import KCCrypto
import KCNetwork
import KCNode
import KCRuntime
import KCTypes

/// Seed corpora: one valid example of each input, and the hostile shapes worth starting from
/// (a count that disagrees with the bytes, a length prefix of 2^63, a validator out of the set).
public enum FuzzSeeds {
    public static func inputs(_ target: FuzzTarget) -> [[UInt8]] {
        let chainID = Fixture.chainID
        let user = Fixture.users[0]
        let transfer = TransactionBody(chainID: chainID, sender: user.publicKey, nonce: 0, fee: Fixture.genesis.parameters.fees.minFee,
                                       call: .transfer(to: Fixture.users[1].publicKey, amount: .acti(1))).signed(with: user)
        let attest = TransactionBody(chainID: chainID, sender: user.publicKey, nonce: 1, fee: Fixture.genesis.parameters.fees.minFee,
                                     call: .attest(votes: [.init(eventID: Blake2b.hash256([1]), verdict: .valid),
                                                           .init(eventID: Blake2b.hash256([2]), verdict: .invalid)])).signed(with: user)
        let built = Fixture.factory.build(on: Fixture.tip, proposer: Fixture.validatorKeys[0].publicKey,
                                          candidates: [try! transfer.verified(chainID: chainID)], maxTransactions: 10, evidence: [])!.block
        func vote(_ index: Int, _ kind: VoteKind, height: UInt64, _ id: Hash256?) -> SignedVote {
            Vote(kind: kind, height: height, round: 0, blockID: id, timestampMilliseconds: 1_767_225_700_000,
                 validator: Fixture.validatorKeys[index].publicKey).signed(with: Fixture.validatorKeys[index], chainID: chainID)
        }
        let certificate = CommitCertificate(height: built.header.height, round: 0, blockID: built.id,
                                            precommits: (0..<4).map { vote($0, .precommit, height: built.header.height, built.id) }
                                                .sorted { $0.vote.validator < $1.vote.validator })
        let stranger = SigningKey(seed: Blake2b.hash256(Array("fuzz-stranger".utf8)))
        let strangerVote = Vote(kind: .precommit, height: built.header.height, round: 0, blockID: built.id,
                                timestampMilliseconds: 1, validator: stranger.publicKey).signed(with: stranger, chainID: chainID)
        let outsideSet = CommitCertificate(height: certificate.height, round: 0, blockID: built.id,
                                           precommits: (certificate.precommits + [strangerVote]).sorted { $0.vote.validator < $1.vote.validator })
        let evidence = DoubleSignEvidence(vote(0, .prevote, height: 2, Blake2b.hash256([7])), vote(0, .prevote, height: 2, nil))!
        let proposalValue = Proposal(height: built.header.height, round: 0, value: built, validRound: nil,
                                     proposer: Fixture.validators.proposer(height: built.header.height, round: 0))
        let proposerKey = Fixture.validatorKeys.first { $0.publicKey == proposalValue.proposer }!
        let proposal = SignedProposal(proposal: proposalValue,
                                      signature: proposerKey.sign(domain: .proposal, chainID: chainID, message: ProposalSigning.bytes(proposalValue)))
        // A varint of 2^63 (non-canonical: more than 5 bytes) and one of 2^32 - 1.
        let hugeLength: [UInt8] = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]
        let maxLength: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]
        let transactionsTag: [UInt8] = [0x01]

        switch target {
        case .frames:
            func frame(_ payload: [UInt8]) -> [UInt8] {
                let length = UInt32(payload.count)
                return [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + payload
            }
            return [[0x00] + frame(Array("MBR1".utf8) + [UInt8](repeating: 7, count: 32)),
                    [0x07] + frame([1, 2, 3]) + frame([4]),
                    [0x01] + [0xFF, 0xFF, 0xFF, 0xFF],
                    [0x00] + [0, 0, 0, 0],
                    [0x02] + frame([UInt8](repeating: 9, count: 300))]
        case .handshake:
            let ephemeral = EphemeralKeyPair()
            let hello = Array("MBR1".utf8) + ephemeral.publicKey.bytes
            let auth = HandshakeAuth(key: stranger, chainID: chainID, transcript: Blake2b.hash256(hello), genesisHash: Fixture.genesis.hash,
                                     listenPort: 26656)
            var identity = [UInt8](repeating: 0, count: 32)
            identity[0] = 1
            return [hello + auth.canonicalBytes, Array("MBR1".utf8) + identity + auth.canonicalBytes]
        case .wireMessage:
            let messages: [WireMessage] = [.status(height: 42), .transactions([transfer, attest]), .proposal(proposal),
                                           .vote(vote(1, .prevote, height: 4, built.id)), .evidence(evidence),
                                           .blockRequest(height: 3), .block(built, certificate), .noBlock(height: 9),
                                           .roundState(RoundState(height: 4, round: 1, phase: .prevote, hasProposal: true,
                                                                  prevotes: ValidatorBits(count: 4), precommits: ValidatorBits(count: 4),
                                                                  links: ValidatorBits(count: 4), stalled: true)),
                                           .snapshotsRequest, .snapshots([SnapshotOffer(height: 20, chunkHashes: [built.id])]),
                                           .chunkRequest(height: 20, index: 0), .chunk(height: 20, index: 0, bytes: [0x01, 0x02]),
                                           .lightBlockRequest(after: 0, target: 20),
                                           .lightBlock(after: 0, target: 20, LightBlock(header: built.header, certificate: certificate,
                                                                                        nextSets: .init(record: [0x00], proof: [0x00, 0x00])))]
            return messages.map(\.canonicalBytes) + [
                transactionsTag + [0x05] + transfer.canonicalBytes,   // a count of 5 with one transaction
                transactionsTag + hugeLength + transfer.canonicalBytes,
                transactionsTag + maxLength,
            ]
        case .transaction:
            return [transfer.canonicalBytes, attest.canonicalBytes, Array(transfer.canonicalBytes.dropLast(10)),
                    [0x10] + Array(chainID.utf8) + hugeLength]
        case .block:
            return [built.canonicalBytes, Block(header: built.header, transactions: built.transactions, evidence: [evidence],
                                                lastCommit: certificate).canonicalBytes]
        case .vote:
            return [vote(2, .precommit, height: 5, nil).canonicalBytes, strangerVote.canonicalBytes]
        case .proposal:
            return [proposal.canonicalBytes]
        case .certificate:
            return [certificate.canonicalBytes, outsideSet.canonicalBytes]
        case .evidence:
            let conflicting = DoubleSignEvidence(vote(3, .precommit, height: 1, Blake2b.hash256([8])), vote(3, .precommit, height: 1, built.id))!
            let strangers = DoubleSignEvidence(
                Vote(kind: .prevote, height: 2, round: 0, blockID: nil, timestampMilliseconds: 1, validator: stranger.publicKey)
                    .signed(with: stranger, chainID: chainID),
                Vote(kind: .prevote, height: 2, round: 0, blockID: built.id, timestampMilliseconds: 1, validator: stranger.publicKey)
                    .signed(with: stranger, chainID: chainID))!
            return [evidence.canonicalBytes, conflicting.canonicalBytes, strangers.canonicalBytes,
                    evidence.second.canonicalBytes + evidence.first.canonicalBytes]  // wrong order
        case .walRecord:
            return [WALRecord.height(4).canonicalBytes, WALRecord.vote(vote(0, .prevote, height: 4, nil)).canonicalBytes,
                    WALRecord.proposal(proposal).canonicalBytes, WALRecord.timeout(.prevote, height: 4, round: 2).canonicalBytes,
                    WALRecord.proposeValue(built, height: 4, round: 0).canonicalBytes]
        case .genesis:
            return [Array(Fixture.genesis.json.rendered().utf8), Array(#"{"chain_id":"x","params":{}}"#.utf8)]
        case .config:
            return [Array(ConfigTemplate.render(moniker: "fuzz", ports: NodePorts(p2pPort: 26656, rpcPort: 26657),
                                                persistentPeers: ["\(stranger.publicKey.hex)@127.0.0.1:26656"]).utf8),
                    Array("[p2p]\npersistent_peers = [\"a\", \n".utf8)]
        case .rpcBody:
            return [Array(#"{"tx":"\#(Hex.encode(transfer.canonicalBytes))"}"#.utf8), Array(#"{"tx":"zz"}"#.utf8),
                    Array(#"[{"tx":1}]"#.utf8)]
        case .amount:
            return ["1ACTI", "1.5ACTI", "1000", "0.000000000000000001ACTI", "340282366920938463463374607431768211455",
                    "1,5ACTI", "-5"].map { Array($0.utf8) }
        }
    }

    /// Writes the seeds as files named seed-N in `directory`; returns how many.
    public static func write(_ target: FuzzTarget, to directory: String) -> Int {
        let inputs = inputs(target)
        for (index, input) in inputs.enumerated() {
            let path = "\(directory)/seed-\(index)"
            guard let file = fopen(path, "wb") else { continue }
            _ = input.withUnsafeBytes { fwrite($0.baseAddress, 1, input.count, file) }
            fclose(file)
        }
        return inputs.count
    }
}

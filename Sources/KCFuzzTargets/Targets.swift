import KCCodec
import KCConsensus
import KCCrypto
import KCNetwork
import KCNode
import KCRuntime
import KCTypes
import NIOCore
import NIOEmbedded

/// Every decoder of bytes that come from outside the node (peers, clients, files an operator
/// edits), each as a fuzz target: it must refuse what it cannot use with an error, never trap,
/// and never take time or memory out of proportion to its input.
public enum FuzzTarget: String, CaseIterable, Sendable {
    case frames, handshake, wireMessage = "wire-message", transaction, block, vote, proposal, certificate, evidence
    case walRecord = "wal-record", genesis, config, rpcBody = "rpc-body", amount

    /// Runs one input; a broken rule traps (which the fuzzer reports as a crash).
    public func run(_ bytes: [UInt8]) {
        switch self {
        case .frames: Self.frames(bytes)
        case .handshake: Self.handshake(bytes)
        case .wireMessage:
            // A message that decodes must encode back to the same bytes (one encoding).
            if let message = try? WireMessage.decode(exactly: bytes) { precondition(message.canonicalBytes == bytes, "wire message re-encodes differently") }
        case .transaction:
            if let signed = try? SignedTransaction.decode(exactly: bytes) {
                precondition(signed.canonicalBytes == bytes, "transaction re-encodes differently")
                _ = try? signed.verified(chainID: Fixture.chainID, cache: Fixture.signatures)
                _ = try? Fixture.mempool.add(bytes: bytes, state: Fixture.state)
            }
        case .block:
            if let block = try? Block.decode(exactly: bytes) {
                precondition(block.canonicalBytes == bytes, "block re-encodes differently")
                _ = Fixture.factory.validate(block, on: Fixture.tip)
            }
        case .vote:
            if let vote = try? SignedVote.decode(exactly: bytes) { _ = vote.verify(chainID: Fixture.chainID) }
        case .proposal:
            if let proposal = try? SignedProposal.decode(exactly: bytes) {
                _ = proposal.verify(chainID: Fixture.chainID)
                var core = ConsensusCore<Block>(height: proposal.proposal.height, validators: Fixture.validators, me: nil,
                                                timeouts: TimeoutConfig())
                _ = core.start()
                if core.screen(.proposal(proposal.proposal, valid: false)) == .useful {
                    _ = core.apply(.proposal(proposal.proposal, valid: false))
                }
            }
        case .certificate:
            if let certificate = try? CommitCertificate.decode(exactly: bytes) {
                _ = try? certificate.verify(validators: Fixture.validators, chainID: Fixture.chainID)
                _ = certificate.medianTime(validators: Fixture.validators)
            }
        case .evidence:
            if let evidence = try? DoubleSignEvidence.decode(exactly: bytes) {
                var pool = EvidencePool()
                _ = pool.add(evidence, runtime: Fixture.runtime, state: Fixture.state)
                _ = Fixture.runtime.checkEvidence(evidence, height: Fixture.state.global.height + 1,
                                                  timeMilliseconds: Fixture.state.global.timeMilliseconds + 1, in: Fixture.state)
            }
        case .walRecord:
            if let record = try? WALRecord.decode(exactly: bytes) { precondition(record.canonicalBytes == bytes, "WAL record re-encodes differently") }
        case .genesis:
            if let genesis = try? GenesisLoader.load(json: String(decoding: bytes, as: UTF8.self)) {
                // A genesis the loader accepts must start a chain.
                _ = Runtime(genesis: genesis).genesisState()
            }
        case .config:
            _ = try? NodeConfig.parse(String(decoding: bytes, as: UTF8.self))
        case .rpcBody:
            if let transaction = try? TransactionSubmission.transactionBytes(fromBody: String(decoding: bytes, as: UTF8.self)) {
                _ = try? Fixture.mempool.add(bytes: transaction, state: Fixture.state)
            }
        case .amount:
            // What parses names an exact amount: its base units and its plain text parse back
            // to it, and only digits, one point, the unit and spaces were in the input.
            let text = String(decoding: bytes, as: UTF8.self)
            if let amount = try? Amount(parsing: text) {
                precondition((try? Amount(parsing: String(amount.units))) == amount, "an amount does not round-trip through base units")
                precondition((try? Amount(parsing: amount.plainText)) == amount, "an amount does not round-trip through its plain text")
                precondition(text.uppercased().allSatisfy { ("0"..."9").contains($0) || "ACTI. ".contains($0) || $0.isWhitespace },
                             "an amount parsed from text with a character outside the form")
            }
        }
    }

    /// The P2P framing through the real decoder: the first byte picks the frame limit and the
    /// size of the chunks the stream arrives in.
    static func frames(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return }
        let limit = FrameLimit(bytes: first & 1 == 0 ? 256 : 1 << 20)
        let chunk = Int(first >> 1) + 1
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(limit: limit)))
        var offset = 1
        var total = 0
        do {
            while offset < bytes.count {
                let end = min(bytes.count, offset + chunk)
                var buffer = channel.allocator.buffer(capacity: end - offset)
                buffer.writeBytes(bytes[offset..<end])
                try channel.writeInbound(buffer)
                offset = end
                while let frame = try channel.readInbound(as: ByteBuffer.self) {
                    precondition(frame.readableBytes > 0 && frame.readableBytes <= limit.bytes, "a frame outside the limit came out")
                    total += frame.readableBytes + 4
                }
            }
        } catch {
            // A bad length: the connection would be closed.
        }
        precondition(total <= bytes.count, "more frame bytes out than in")
        _ = try? channel.finish()
    }

    /// The two handshake frames a stranger controls: the 36-byte hello (magic and ephemeral
    /// key) and the authentication (here unencrypted: what decrypts is what counts).
    static func handshake(_ bytes: [UInt8]) {
        guard bytes.count >= 36 else { return }
        if Array(bytes[0..<4]) == Array("MBR1".utf8) {
            let ephemeral = EphemeralKeyPair()
            if let keys = ephemeral.sessionKeys(peer: Bytes32(Array(bytes[4..<36]))) {
                precondition(keys.send != keys.receive, "both directions share a key")
            }
        }
        if let auth = try? HandshakeAuth.decode(exactly: Array(bytes[36...])) {
            _ = auth.verify(chainID: Fixture.chainID, transcript: Blake2b.hash256(Array(bytes[0..<36])))
        }
    }
}

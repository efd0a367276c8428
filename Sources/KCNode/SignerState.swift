import KCCodec
import KCConsensus
import KCCrypto
import KCStorage
import KCTypes

/// Moving a validator to another machine without double signing (after EIP-3076's slashing
/// protection interchange, and CometBFT's `priv_validator_state.json`): the last thing the key
/// signed is exported from the old home and imported into the new one before it starts, so the
/// new signer refuses everything at or below it. See specs/storage.md, "Signer state".
///
/// The document is JSON: `chain_id`, `consensus_key`, and `last_signed` (null, or `height`
/// as a decimal string, `round`, `step` (0 proposal, 1 prevote, 2 precommit), `signed_bytes`
/// and `signature` in hex).
public enum SignerState {
    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// What the home's validator key signed last: the signer's record or, if later, the latest
    /// own message in the consensus WAL (the node writes the record unsynced and the WAL synced).
    /// The node must be stopped: its store is locked while it runs.
    public static func current(home: NodeHome, key: PublicKey) throws(Failure) -> LastSigned? {
        let store: RocksDBStore
        do { store = try home.openStoppedStore() } catch { throw Failure(message: "\(error)") }
        var latest: LastSigned? = nil
        do {
            if let bytes = try store.get(PersistentSigner.storeKey) { latest = try LastSigned.decode(exactly: bytes) }
        } catch {
            throw Failure(message: "the signer record in \(home.dataDirectory) cannot be read: \(error)")
        }
        let walPath = home.dataDirectory + "/consensus.wal"
        if FileIO.exists(walPath) {
            guard case .success(let bytes) = FileIO.read(path: walPath, limit: Int.max) else {
                throw Failure(message: "cannot read the consensus WAL \(walPath)")
            }
            let records = ConsensusWAL.parse(bytes).records.compactMap { try? WALRecord.decode(exactly: $0) }
            if let logged = LastSigned.latest(signedBy: key, in: records), latest.map({ logged.isAfter($0) }) ?? true {
                latest = logged
            }
        }
        return latest
    }

    /// The export document for the home's validator key.
    public static func export(home: NodeHome) throws(Failure) -> JSONValue {
        let (genesis, key) = try identity(home)
        let last = try current(home: home, key: key)
        return .object([
            ("chain_id", .string(genesis.chainID)),
            ("consensus_key", .string(key.hex)),
            ("last_signed", last.map { last in
                .object([("height", .string(String(last.height))), ("round", .number(String(last.round))),
                         ("step", .number(String(last.step))), ("signed_bytes", .string(Hex.encode(last.signedBytes))),
                         ("signature", .string(last.signature.hex))])
            } ?? .null),
        ])
    }

    /// Imports `document` into the home (stopped): the record must be for this chain and this
    /// validator key, its signature must verify, and it must not be below what the home already
    /// signed. Returns the record now in force.
    @discardableResult
    public static func importState(_ document: JSONValue, home: NodeHome) throws(Failure) -> LastSigned? {
        let (genesis, key) = try identity(home)
        guard document["chain_id"]?.stringValue == genesis.chainID else {
            throw Failure(message: "the signer state is for chain \(document["chain_id"]?.stringValue ?? "?"), this home runs \(genesis.chainID)")
        }
        guard document["consensus_key"]?.stringValue?.lowercased() == key.hex else {
            throw Failure(message: "the signer state is for consensus key \(document["consensus_key"]?.stringValue ?? "?"), this home's is \(key.hex)")
        }
        guard let lastValue = document["last_signed"] else { throw Failure(message: "the signer state has no \"last_signed\"") }
        if case .null = lastValue { return try current(home: home, key: key) }
        guard let heightText = lastValue["height"]?.stringValue, let height = UInt64(heightText),
              let round = lastValue["round"]?.numberText.flatMap({ UInt32($0) }),
              let step = lastValue["step"]?.numberText.flatMap({ UInt8($0) }), step <= 2,
              let signedBytes = lastValue["signed_bytes"]?.stringValue.flatMap({ Hex.decode($0) }),
              let signature = lastValue["signature"]?.stringValue.flatMap({ Signature(hex: $0) }) else {
            throw Failure(message: "last_signed needs height (a decimal string), round, step (0 to 2), signed_bytes and signature (hex)")
        }
        let domain: SigningDomain = step == 0 ? .proposal : .vote
        guard key.verify(signature: signature, domain: domain, chainID: genesis.chainID, message: signedBytes) else {
            throw Failure(message: "the signature in last_signed does not verify for this key and chain; the file was changed or is from another key")
        }
        // The position must be the one the signature covers, not numbers edited beside it.
        guard let signed = Self.position(of: signedBytes, step: step, key: key),
              signed.height == height, signed.round == round else {
            throw Failure(message: "last_signed's height, round and step are not those of its signed bytes; the file was changed")
        }
        let imported = LastSigned(height: height, round: round, step: step, signedBytes: signedBytes, signature: signature)
        if let existing = try current(home: home, key: key) {
            if existing.isAfter(imported) {
                throw Failure(message: "refusing to lower the last-signed position from \(existing.position) to \(imported.position): this home already signed later")
            }
            if !imported.isAfter(existing) {
                guard existing.signedBytes == imported.signedBytes else {
                    throw Failure(message: "this home signed different content at \(existing.position); importing would allow a double sign")
                }
                return existing
            }
        }
        let store: RocksDBStore
        do { store = try home.openStoppedStore() } catch { throw Failure(message: "\(error)") }
        var batch = WriteBatch()
        batch.put(PersistentSigner.storeKey, imported.canonicalBytes)
        do { try store.write(batch, sync: true) } catch { throw Failure(message: "cannot write the signer record: \(error)") }
        return imported
    }

    /// The (height, round) that signed bytes of `step` cover: a vote's fields (its kind must
    /// be the step's, its validator the key), or a proposal's leading u64 height and u32 round.
    static func position(of signedBytes: [UInt8], step: UInt8, key: PublicKey) -> (height: UInt64, round: UInt32)? {
        if step == 0 {
            var reader = CanonicalReader(signedBytes)
            guard let height = try? reader.readUInt64("height"), let round = try? reader.readUInt32("round") else { return nil }
            return (height, round)
        }
        guard let vote = try? Vote.decode(exactly: signedBytes), vote.validator == key,
              LastSigned.step(of: vote.kind) == step else { return nil }
        return (vote.height, vote.round)
    }

    static func identity(_ home: NodeHome) throws(Failure) -> (Genesis, PublicKey) {
        let genesis: Genesis
        do { genesis = try home.loadGenesis() } catch { throw Failure(message: "\(error)") }
        let key: PublicKey
        do { key = try home.publicKey(.validator) } catch { throw Failure(message: "\(error)") }
        if case .failure(let failure) = FileIO.makeDirectories(home.dataDirectory, mode: 0o700) {
            throw Failure(message: failure.reason)
        }
        return (genesis, key)
    }
}

extension LastSigned {
    /// Strictly later in (height, round, step).
    func isAfter(_ other: LastSigned) -> Bool { (height, round, step) > (other.height, other.round, other.step) }
}

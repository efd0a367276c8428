import KCConsensus
import KCCrypto
import KCStorage

/// The double-sign look-back in the driver (ADR 0020): `LookBack` decides; here it is fed from
/// the store at start, kept marked in the store while it watches, and told of each commit.
extension NodeDriver {
    /// The look-back at start: watching with an empty WAL or a mark left by an earlier run,
    /// seeded with the WAL's own precommits and the last N stored certificates.
    static func openLookBack(heights: Int, store: any KeyValueStore, blocks: BlockStore, tip: UInt64, key: PublicKey,
                             recoveredWAL: [WALRecord]) throws -> LookBack {
        let marked = try store.get(LookBack.storeKey) != nil
        var lookBack = LookBack(heights: UInt64(heights), watching: recoveredWAL.isEmpty || marked)
        guard lookBack.watching else { return lookBack }
        // Precommits this machine signed before a restart are its own (the WAL holds those of
        // the last height it ran, stored or not).
        for case .vote(let vote) in recoveredWAL where vote.vote.validator == key { lookBack.signed(vote) }
        for height in stride(from: tip > lookBack.heights ? tip - lookBack.heights + 1 : 1, through: tip, by: 1) where height > 0 {
            if let certificate = try blocks.certificate(at: height) { lookBack.committed(certificate, key: key) }
        }
        if lookBack.watching != marked { try markLookBack(lookBack.watching, in: store) }
        return lookBack
    }

    /// A certificate was stored: the look-back learns of it, and its mark goes when it ends.
    func lookBackCommitted(_ certificate: CommitCertificate) throws {
        guard lookBack.watching else { return }
        lookBack.committed(certificate, key: key.publicKey)
        guard !lookBack.watching else { return }
        try Self.markLookBack(false, in: store)
        log.info("look-back ends: a commit carries this machine's own precommit", ["height": "\(certificate.height)"])
    }

    /// Writes or deletes the mark, synced.
    static func markLookBack(_ watching: Bool, in store: any KeyValueStore) throws {
        var batch = WriteBatch()
        if watching { batch.put(LookBack.storeKey, []) } else { batch.delete(LookBack.storeKey) }
        try store.write(batch, sync: true)
    }
}

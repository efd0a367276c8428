import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import KCCodec
import KCCrypto
import KCNetwork
import KCNode
import KCRuntime
import KCStorage
import KCTypes
import Synchronization

/// The automatic attester of a gateway node (config `[attester]`, `[arweave]`): after each
/// commit it looks at the pending events it has not voted on (and did not author), decides a
/// verdict for each it can, and sends them as one batched `attest` transaction.
///
/// - `format`: the header was already checked by the runtime, so each pending event gets
///   `valid`.
/// - `fetch`: the payload is downloaded from `{gateway}/{ArTxID}` (timeout, retries, size
///   cap) and its SHA-256 compared with the content hash: equal → `valid`, different →
///   `invalid`. A payload that cannot be had (unreachable, 404, too large, timed out) gets no
///   vote and is tried again after the next commit until its deadline: never a false
///   `invalid`.
public final class Attester: Sendable {
    public enum Mode: Sendable { case format, fetch }

    public struct Settings: Sendable {
        public var mode: Mode
        public var gateway: String
        public var timeoutMilliseconds: UInt64
        public var maxPayloadBytes: Int
        public var retries = 2
        /// Events voted on per commit at most, oldest first; nil: as many as one `attest`
        /// transaction of the chain can hold (`votesPerTransaction`).
        public var maxEventsPerRound: Int? = nil

        public init(mode: Mode, gateway: String, timeoutMilliseconds: UInt64, maxPayloadBytes: Int) {
            self.mode = mode
            self.gateway = gateway.hasSuffix("/") ? String(gateway.dropLast()) : gateway
            self.timeoutMilliseconds = timeoutMilliseconds
            self.maxPayloadBytes = maxPayloadBytes
        }
    }

    /// Verdicts one `attest` transaction can carry within the chain's transaction size limit
    /// (33 bytes each: event id and verdict; 512 bytes left for the rest), at most the
    /// decoder's 4,096.
    public static func votesPerTransaction(maxTransactionBytes: UInt64) -> Int {
        let fitting = (Int(clamping: maxTransactionBytes) - 512) / 33
        return max(1, min(TransactionLimits.maxVotesPerAttestation, fitting))
    }

    let node: NodeHandle
    let key: SigningKey
    let settings: Settings
    let log: NodeLogger
    private let task = Mutex<Task<Void, Never>?>(nil)
    /// Votes sent and not yet seen committed, by event.
    private let sent = Mutex<[Hash256: UInt64]>([:])
    /// Pending events this gateway will not vote on (its vote is on chain, it wrote them, or
    /// it has no weight in their electorate): skipped without a store read while they wait
    /// for the other gateways. Bounded: cleared past `maxSettled` (each then costs one read).
    private let settled = Mutex<Set<Hash256>>([])
    private let sweep = Mutex(PendingSweep())
    private let nonces = Mutex(AttestNonce())
    static let maxSettled = 100_000

    static let executor = ThreadTaskExecutor(threads: 1, name: "attester")
    /// At most five rounds a second.
    static let minimumRoundInterval = Duration.milliseconds(200)

    public init(node: NodeHandle, key: SigningKey, settings: Settings, log: NodeLogger) {
        self.node = node
        self.key = key
        self.settings = settings
        self.log = log
    }

    public func start() {
        let running = Task(executorPreference: Self.executor) { [self] in
            var seen = node.commits.height
            while !Task.isCancelled {
                seen = await node.commits.wait(beyond: seen, timeoutMilliseconds: 2_000)
                let started = ContinuousClock.now
                await round()
                // A fast chain commits hundreds of times a second; a round scans up to four
                // transactions' worth of pending events, so rounds are spaced out (one
                // transaction a round still carries thousands of votes a second).
                let rest = Self.minimumRoundInterval - (ContinuousClock.now - started)
                if rest > .zero { try? await Task.sleep(for: rest) }
            }
        }
        task.withLock { $0 = running }
        log.info("attester started", ["mode": settings.mode == .fetch ? "fetch" : "format", "gateway": settings.gateway])
    }

    public func stop() {
        task.withLock { $0?.cancel() }
    }

    /// One pass: verdicts for what can be decided now, sent as one transaction.
    func round() async {
        let snapshot = node.store.snapshot()
        func state<T: CanonicalDecodable>(_ type: T.Type, _ key: StoreKey) -> T? {
            (try? snapshot.get(StatePersistence.storeKey(key))).flatMap { $0 }.flatMap { try? T.decode(exactly: $0) }
        }
        guard state(StakeRecord.self, StateKey.stake(key.publicKey))?.isGateway == true else { return }
        let account = state(AccountRecord.self, StateKey.account(key.publicKey)) ?? AccountRecord()
        let height = node.commits.height
        let perRound = settings.maxEventsPerRound ?? Self.votesPerTransaction(maxTransactionBytes: UInt64(node.genesis.parameters.block.maxTransactionBytes))
        // Events this gateway already voted on stay pending until the others vote: each round
        // looks at up to four rounds' worth of them, going on where the last one stopped. The
        // attestation queue lists the pending events, oldest first (ADR 0030).
        let window = 4 * perRound
        let fromStart = sweep.withLock { $0.atStart }
        let look = (try? PendingEvents.page(in: snapshot, after: sweep.withLock { $0.after }, limit: window)) ?? PendingEvents.Page()
        var lastLooked: PendingEvents.Position? = nil
        var candidates: [(Hash256, EventRecord)] = []
        let inFlight = sent.withLock { sent in
            // A vote sent more than a few heights ago and still not on chain was lost.
            sent = sent.filter { $0.value + 5 > height }
            return Set(sent.keys)
        }
        var known = settled.withLock { $0 }
        var pendingIDs = Set<Hash256>()
        defer {
            // Looked at to the end: the next round starts over. What left the pending set is
            // forgotten when one look saw all of it.
            let reachedEnd = look.reachedEnd && lastLooked == look.events.last?.position
            if fromStart && reachedEnd { known.formIntersection(pendingIDs) }
            if known.count > Self.maxSettled { known.removeAll() }
            settled.withLock { $0 = known }
            // A look that found only emptied entries goes on after the last of them.
            sweep.withLock { $0.looked(last: look.events.isEmpty ? look.resumeAfter : lastLooked, reachedEnd: reachedEnd) }
        }
        for (position, id) in look.events {
            guard candidates.count < perRound else { break }  // the rest waits for the next round
            lastLooked = position
            pendingIDs.insert(id)
            guard !inFlight.contains(id), !known.contains(id) else { continue }
            guard let record = state(EventRecord.self, StateKey.event(id)) else { continue }
            guard record.vote(of: key.publicKey, event: id, stored: { state(EventVote.self, $0) }) == nil else {
                known.insert(id)
                continue
            }
            guard record.header.author != key.publicKey,
                  // Only the gateways of the event's electorate vote on it (a gateway that
                  // joined since has no weight there: its vote would fail the whole batch).
                  StoredState(snapshot).electoralWeight(key.publicKey, epoch: record.electorateEpoch) > .zero else {
                known.insert(id)
                continue
            }
            candidates.append((id, record))
        }
        guard !candidates.isEmpty else { return }
        var votes: [AttestationVote] = []
        for (id, record) in candidates {
            if let verdict = await verdict(for: record) { votes.append(AttestationVote(eventID: id, verdict: verdict)) }
        }
        guard !votes.isEmpty else { return }
        let fee = node.genesis.parameters.fees.minFee
        // Taken as sent before the mempool answers: the node's thread admits it between
        // blocks, and the next round must not wait for that (with blocks of a second it would
        // vote once a block, fewer events than are proposed). A refusal takes it back.
        let nonce = nonces.withLock { nonces in
            let nonce = nonces.next(committed: account.nonce)
            nonces.sent(nonce)
            return nonce
        }
        let transaction = TransactionBody(chainID: node.genesis.chainID, sender: key.publicKey, nonce: nonce, fee: fee,
                                          call: .attest(votes: votes)).signed(with: key)
        let voted = votes.map(\.eventID), valid = votes.filter { $0.verdict == .valid }.count
        sent.withLock { for id in voted { $0[id] = height } }
        node.send(transaction) { [self] result in
            switch result {
            case .success(let submitted):
                // Waiting for earlier nonces the mempool no longer holds (a restart, a full
                // mempool): the next round starts again from the committed nonce, and the
                // mempool names the one it wants from there.
                if submitted.queued { nonces.withLock { $0.queued() } }
                log.info("attested", ["events": "\(voted.count)", "valid": "\(valid)", "queued": "\(submitted.queued)"])
            case .failure(let rejection):
                nonces.withLock { $0.refused(rejection) }
                sent.withLock { for id in voted { $0.removeValue(forKey: id) } }
                log.debug("attestation not sent", ["reason": rejection.description])
            }
        }
    }

    func verdict(for record: EventRecord) async -> Verdict? {
        switch settings.mode {
        case .format:
            return .valid
        case .fetch:
            guard let payload = await fetch(record.header.arTxID) else { return nil }
            return SHA256.hash(payload) == record.header.contentHash ? .valid : .invalid
        }
    }

    /// The payload, or nil when it cannot be had now (after the retries).
    func fetch(_ id: ArTxID) async -> [UInt8]? {
        for attempt in 0...settings.retries {
            switch await Self.download(settings.gateway + "/" + id.text, timeoutMilliseconds: settings.timeoutMilliseconds,
                                       maxBytes: settings.maxPayloadBytes) {
            case .payload(let bytes): return bytes
            case .missing, .tooLarge: return nil
            case .failed:
                if attempt < settings.retries { try? await Task.sleep(nanoseconds: UInt64(200_000_000 << attempt)) }
            }
        }
        return nil
    }

    enum Download: Equatable { case payload([UInt8]), missing, tooLarge, failed }

    /// One GET, stopped as soon as the body passes `maxBytes`.
    static func download(_ address: String, timeoutMilliseconds: UInt64, maxBytes: Int) async -> Download {
        guard let url = URL(string: address) else { return .missing }
        var request = URLRequest(url: url)
        request.timeoutInterval = Double(timeoutMilliseconds) / 1_000
        let collector = Collector(maxBytes: maxBytes)
        let session = URLSession(configuration: .ephemeral, delegate: collector, delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        return await withCheckedContinuation { continuation in
            collector.finish = { continuation.resume(returning: $0) }
            session.dataTask(with: request).resume()
        }
    }

    /// Gathers a response body with a cap; reports once.
    final class Collector: NSObject, URLSessionDataDelegate, @unchecked Sendable {
        let maxBytes: Int
        var data: [UInt8] = []
        var status = 0
        var outcome: Download? = nil
        var finish: ((Download) -> Void)? = nil
        let lock = NSLock()

        init(maxBytes: Int) { self.maxBytes = maxBytes }

        func report(_ download: Download) {
            lock.lock()
            let callback = outcome == nil ? finish : nil
            if outcome == nil { outcome = download }
            lock.unlock()
            callback?(download)
        }

        func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                        completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
            status = (response as? HTTPURLResponse)?.statusCode ?? 0
            if response.expectedContentLength > Int64(maxBytes) {
                report(.tooLarge)
                completionHandler(.cancel)
                return
            }
            completionHandler(.allow)
        }

        func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive chunk: Data) {
            data += chunk
            if data.count > maxBytes {
                report(.tooLarge)
                dataTask.cancel()
            }
        }

        func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
            if error != nil { return report(.failed) }
            switch status {
            case 200: report(.payload(data))
            case 404, 410: report(.missing)
            default: report(.failed)
            }
        }
    }
}

/// Where the attester looks next in the pending-event index. That index is ordered by event
/// id, not by age, so a window always taken from its start would keep showing the same events
/// (those this gateway already voted on, waiting for the others) and never the rest: the sweep
/// goes on after the last key it looked at, and starts over once it reaches the end.
/// The nonce of the attester's next transaction. Taken from the committed state alone, it
/// would repeat the nonce of a transaction still waiting in the mempool (refused as not next),
/// so a chain whose blocks take a second would carry one attest transaction a block and its
/// events would expire waiting for votes; it goes on past the attester's own sent
/// transactions instead, and takes the mempool's word when one is refused.
public struct AttestNonce: Sendable, Equatable {
    /// The nonce after the last transaction the mempool took; nil: none waiting.
    public private(set) var following: UInt64? = nil

    public init() {}

    /// The nonce to use, the account's committed nonce being `committed`.
    public mutating func next(committed: UInt64) -> UInt64 {
        guard let following, following > committed else {
            self.following = nil
            return committed
        }
        return following
    }

    /// A transaction with `nonce` went to the mempool.
    public mutating func sent(_ nonce: UInt64) { following = nonce + 1 }

    /// The mempool took one but it waits for earlier nonces it does not hold: start again from
    /// the committed nonce (a used one is refused naming the right one).
    public mutating func queued() { following = nil }

    /// The mempool refused one: a wrong nonce names the right one; anything else starts again
    /// from the committed nonce.
    public mutating func refused(_ rejection: MempoolRejection) {
        if case .nonce(let expected, _) = rejection { following = expected } else { following = nil }
    }
}

/// Where the attester's next look at the pending events starts: each round looks at a window
/// of them and the next goes on where it stopped, so every pending event is reached however
/// many this gateway has already voted on.
public struct PendingSweep: Sendable, Equatable {
    /// The position after which the next look starts; nil: from the oldest pending event.
    public private(set) var after: PendingEvents.Position? = nil

    public init() {}

    /// After a look: `last` is the last position looked at; `reachedEnd` when the look went
    /// through the queue's last entry and every event it found.
    public mutating func looked(last: PendingEvents.Position?, reachedEnd: Bool) {
        after = reachedEnd ? nil : (last ?? after)
    }

    /// Whether the next look starts from the oldest pending event.
    public var atStart: Bool { after == nil }
}

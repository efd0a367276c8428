import Dispatch
import KCCrypto
import KCNetwork
import KCNode
import KCTypes
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// How long a peer's single transaction waits in the signature stage behind another peer's
// full message of 10,000 (ADR 0024): the stage with a turn as large as the message (the order
// of before: whole batches in arrival order) and with its default turn, alternated, on every
// core. Usage: Scripts/bench.sh --turns  (KC_TURNS_ROUNDS, default 5)
let chainID = "membria-stage-turns"
let flooder = SigningKey(seed: Blake2b.hash256(Array("turns-flooder".utf8)))
let other = SigningKey(seed: Blake2b.hash256(Array("turns-other".utf8)))
func transfer(_ key: SigningKey, nonce: UInt64) -> SignedTransaction {
    TransactionBody(chainID: chainID, sender: key.publicKey, nonce: nonce, fee: Amount(units: 10),
                    call: .transfer(to: other.publicKey, amount: .acti(1))).signed(with: key)
}
let flood = (0..<UInt64(WireMessage.maxTransactionsPerMessage)).map { transfer(flooder, nonce: $0) }
let single = [transfer(other, nonce: 0)]
let rounds = getenv("KC_TURNS_ROUNDS").flatMap { Int(String(cString: $0)) } ?? 5
let threads = Cores.available()

/// Milliseconds with one decimal.
func milliseconds(_ duration: Duration) -> String {
    let tenths = (duration.components.seconds * 1_000_000_000_000_000_000 + duration.components.attoseconds) / 100_000_000_000_000
    return "\(tenths / 10).\(tenths % 10) ms"
}
func median(_ values: [Duration]) -> Duration { values.sorted()[values.count / 2] }

var waited: [String: [Duration]] = [:], backlog: [String: [Duration]] = [:]
print("\(threads) thread(s), a backlog of \(flood.count) from one peer, then one transaction from another; \(rounds) rounds")
for _ in 0..<rounds {
    for (name, turn) in [("whole batches", flood.count), ("default turn", nil)] as [(String, Int?)] {
        // A fresh cache each time, so every signature is checked.
        let stage = SignatureStage(chainID: chainID, cache: SignatureCache(), parallelism: threads, sliceSize: turn)
        let times = Mutex<(single: Duration?, flood: Duration?)>((nil, nil))
        let done = DispatchSemaphore(value: 0)
        let start = ContinuousClock.now
        stage.check(flood, from: flooder.publicKey) { _ in times.withLock { $0.flood = ContinuousClock.now - start }; done.signal() }
        stage.check(single, from: other.publicKey) { _ in times.withLock { $0.single = ContinuousClock.now - start }; done.signal() }
        done.wait()
        done.wait()
        let (one, all) = times.withLock { ($0.single!, $0.flood!) }
        waited[name, default: []].append(one)
        backlog[name, default: []].append(all)
        print("\(name) (turn \(stage.sliceSize)): the single transaction after \(milliseconds(one)), the backlog after \(milliseconds(all))")
    }
}
for name in ["whole batches", "default turn"] {
    let w = waited[name]!, b = backlog[name]!
    print("\(name): single transaction median \(milliseconds(median(w))) (\(milliseconds(w.min()!))-\(milliseconds(w.max()!))), backlog median \(milliseconds(median(b))) (\(milliseconds(b.min()!))-\(milliseconds(b.max()!)))")
}

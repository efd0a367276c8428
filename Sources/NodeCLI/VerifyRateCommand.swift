import ArgumentParser
import Dispatch
import Foundation
import KCCrypto
import KCNode
import KCTypes
import Synchronization

/// The machine's own ceiling for the benchmarks: how many Ed25519 verifications of a signed
/// transaction's bytes libsodium runs per second on one thread and on `threads` threads at
/// once. Every validator checks every transaction's signature once, so a network of n
/// validators sharing these cores commits at most (all-thread rate) / n transactions a second.
struct VerifyRateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-rate",
        abstract: "Measure Ed25519 verifications per second on one thread and on all cores.",
        discussion: "For benchmarks: prints one JSON object. Each measurement runs for --milliseconds.",
        shouldDisplay: false
    )

    @Option(name: .long, help: "Threads for the all-cores measurement (default: the cores this process may use).")
    var threads: Int? = nil

    @Option(name: .long, help: "Length of each measurement.")
    var milliseconds: Int = 1_000

    func validate() throws {
        if let threads, !(1...256).contains(threads) { throw ValidationError("--threads must be between 1 and 256") }
        guard (100...60_000).contains(milliseconds) else { throw ValidationError("--milliseconds must be between 100 and 60000") }
    }

    func run() throws {
        // A real transfer's signed bytes, so the message length is the workload's.
        let key = SigningKey(seed: Blake2b.hash256(Array("verify-rate".utf8)))
        let body = TransactionBody(chainID: "membria-devnet-1", sender: key.publicKey, nonce: 7, fee: Amount(units: 1),
                                   call: .transfer(to: key.publicKey, amount: Amount(units: 1)))
        let signed = SigningDomain.transaction.signingBytes(chainID: body.chainID, message: body.canonicalBytes)
        let signature = key.sign(rawMessage: signed)
        let cores = threads ?? Cores.available()
        let one = Self.measure(threads: 1, milliseconds: milliseconds) { key.publicKey.verify(signature: signature, rawMessage: signed) }
        let all = Self.measure(threads: cores, milliseconds: milliseconds) { key.publicKey.verify(signature: signature, rawMessage: signed) }
        let fields: [(String, JSONValue)] = [
            ("threads", .number("\(cores)")),
            ("per_second_one_thread", .number("\(one)")),
            ("per_second_all_threads", .number("\(all)")),
            ("message_bytes", .number("\(signed.count)")),
        ]
        print(JSONValue.object(fields).rendered())
    }

    /// Verifications per second by `threads` threads verifying at once for `milliseconds`:
    /// everything they verified over the wall-clock window they shared.
    static func measure(threads: Int, milliseconds: Int, _ verify: @escaping @Sendable () -> Bool) -> Int {
        let total = Atomic<Int>(0)
        let finished = DispatchGroup()
        let start = LoadClock.microseconds() + 20_000  // all threads begin together
        let end = start + UInt64(milliseconds) * 1_000
        for _ in 0..<threads {
            finished.enter()
            let thread = Thread {
                while LoadClock.microseconds() < start {}
                var count = 0
                while LoadClock.microseconds() < end {
                    for _ in 0..<16 { precondition(verify(), "a valid signature failed to verify") }
                    count += 16
                }
                total.add(count, ordering: .relaxed)
                finished.leave()
            }
            thread.start()
        }
        finished.wait()
        return total.load(ordering: .relaxed) * 1_000_000 / Int(end - start)
    }
}

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import KCCodec
import KCCrypto
import KCNetwork
import KCNode
import KCRPC
import KCAttester
import KCTestSupport
import KCTypes
import Synchronization

/// A one-validator node running in this process (its driver on a thread of its own) with its
/// RPC on a free port: the chain has short event windows, the validator is a gateway, and
/// four funded devnet users can become gateways.
final class LiveNode: @unchecked Sendable {
    let home: String
    let driver: NodeDriver
    let rpc: RPCServer
    let attester: Attester?
    let port: Int
    let genesis: Genesis
    private let stopFlag = Mutex(false)
    private let finished = Mutex(false)
    private var thread: Thread? = nil

    static let validatorAccount = DevnetKeys.key(.account, index: 0)

    init(rateLimit: Int = 100_000, maxBodyBytes: Int = 1 << 20, limits: HTTPLimits = HTTPLimits(), maxConcurrentChecks: Int = 4,
         attester attesterSettings: Attester.Settings? = nil, queryIndexes: Bool = true) throws {
        var genesis = LocalGenesis.devnet(validatorCount: 1, userCount: 4)
        genesis.chainID = "membria-devnet-rpc-test"
        genesis.parameters.events.attestationPeriodMilliseconds = 4_000
        genesis.parameters.events.challengeWindowMilliseconds = 1_500
        genesis.parameters.events.revotePeriodMilliseconds = 2_000
        self.genesis = genesis
        home = try makeDevnetHome(genesis: genesis, moniker: "rpc-test", commitMilliseconds: 100,
                                  replacing: queryIndexes ? [] : [("indexes = true", "indexes = false")])
        driver = try NodeDriver(home: NodeHome(path: home)) { _ in }
        var settings = RPCSettings()
        settings.port = 0
        settings.rateLimitPerSecond = rateLimit
        settings.maxBodyBytes = maxBodyBytes
        settings.limits = limits
        settings.maxConcurrentChecks = maxConcurrentChecks
        rpc = RPCServer(node: driver.handle, settings: settings, log: .silent)
        port = try rpc.start()
        let handle = driver.handle
        attester = attesterSettings.map { Attester(node: handle, key: Self.validatorAccount, settings: $0, log: .silent) }
        attester?.start()
        let thread = Thread { [self] in
            try? driver.run { stopFlag.withLock { $0 } }
            finished.withLock { $0 = true }
        }
        self.thread = thread
        thread.start()
    }

    var base: String { "http://127.0.0.1:\(port)" }

    func stop() {
        attester?.stop()
        stopFlag.withLock { $0 = true }
        for _ in 0..<500 where !finished.withLock({ $0 }) { usleep(10_000) }
        rpc.stop()
        removeDevnetHome(home)
    }

    // MARK: HTTP

    struct Answer {
        let status: Int
        let json: JSONValue?
        let text: String
        let headers: [AnyHashable: Any]
        /// Why no answer came, when none did.
        let error: String?
    }

    func request(_ method: String, _ path: String, body: String? = nil, headers: [String: String] = [:]) -> Answer {
        requestURL(base + path, method: method, body: body, headers: headers)
    }

    func requestURL(_ address: String, method: String = "GET", body: String? = nil, headers: [String: String] = [:]) -> Answer {
        var request = URLRequest(url: URL(string: address)!)
        request.httpMethod = method
        request.timeoutInterval = 60
        if let body { request.httpBody = Data(body.utf8) }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        final class Box: @unchecked Sendable { var result: (Data?, URLResponse?, Error?) = (nil, nil, nil) }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        // A session per request, closed after it: no idle keep-alive connection outlives the
        // test and holds up the server's graceful shutdown. `finishTasksAndInvalidate`, not
        // `invalidateAndCancel`: the latter walks the session's task registry off its work
        // queue, racing the finished task's removal, and trapped the test process in a CI run.
        let session = URLSession(configuration: .ephemeral)
        session.dataTask(with: request) { data, response, error in
            box.result = (data, response, error)
            done.signal()
        }.resume()
        done.wait()
        session.finishTasksAndInvalidate()
        let response = box.result.1 as? HTTPURLResponse
        let text = String(decoding: box.result.0 ?? Data(), as: UTF8.self)
        return Answer(status: response?.statusCode ?? -1, json: try? StrictJSON.parse(text), text: text,
                      headers: response?.allHeaderFields ?? [:], error: box.result.2.map { "\($0)" })
    }

    func get(_ path: String) -> Answer { request("GET", path) }

    var height: UInt64 { self.get("/status").json?["height"]?.numberText.flatMap { UInt64($0) } ?? 0 }

    func waitHeight(_ target: UInt64, seconds: Double = 30) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if height >= target { return true }
            usleep(20_000)
        }
        return false
    }

    // MARK: transactions

    private let nonces = Mutex<[PublicKey: UInt64]>([:])

    /// Signs `call` with the next nonce of `key` and submits it, waiting for the commit.
    @discardableResult
    func send(_ call: Call, from key: SigningKey, wait: Bool = true) -> Answer {
        let nonce = nonces.withLock { nonces -> UInt64 in
            let next = nonces[key.publicKey] ?? 0
            nonces[key.publicKey] = next + 1
            return next
        }
        let transaction = TransactionBody(chainID: genesis.chainID, sender: key.publicKey, nonce: nonce,
                                          fee: genesis.parameters.fees.minFee, call: call).signed(with: key)
        return request("POST", wait ? "/txs?wait=true&timeout_ms=20000" : "/txs",
                       body: "{\"tx\":\"\(Hex.encode(transaction.canonicalBytes))\"}")
    }

    /// Makes `key` a gateway with the minimum stake.
    func makeGateway(_ key: SigningKey) {
        send(.bond(amount: genesis.parameters.staking.minGatewayStake), from: key)
        send(.registerGateway, from: key)
    }
}

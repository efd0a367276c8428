import ArgumentParser
import Foundation
import KCCodec
import KCCrypto
import KCNode
import KCTypes

/// Where the node is and how to print: shared by every command that talks to a node.
struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Node home directory: its account key signs, its config names the node.", valueName: "dir"))
    var home: String?

    @Option(name: .long, help: ArgumentHelp("Node RPC URL (default: from --home's config, else http://127.0.0.1:26657).", valueName: "url"))
    var node: String?

    @Option(name: .long, help: "Output format: text or json.")
    var output: KeysCommand.OutputFormat = .text

    func validate() throws {
        errorFormat.withLock { $0 = output }
    }

    var nodeURL: String {
        if let node { return node }
        if let home, let config = try? NodeConfig.parse(String(contentsOfFile: NodeHome(path: home).configPath, encoding: .utf8)) {
            let address = config.rpcListenAddress.replacingOccurrences(of: "0.0.0.0:", with: "127.0.0.1:")
            return "http://" + address
        }
        return "http://127.0.0.1:26657"
    }

    func client(timeoutSeconds: Double = 60) -> NodeClient { NodeClient(base: nodeURL, timeoutSeconds: timeoutSeconds) }

    /// Prints `json` as JSON, or `text` for people.
    func emit(_ json: JSONValue, text: () -> String) {
        switch output {
        case .json: print(json.rendered())
        case .text: print(text())
        }
    }
}

/// What a transaction command adds: the signing key, the fee, and whether to wait.
struct TransactionOptions: ParsableArguments {
    @OptionGroup var connection: ConnectionOptions

    @Option(name: .long, help: ArgumentHelp("Account key to sign with (instead of --home's): a key file, or the name of a key in the keyring (`node keys list`).",
                                            valueName: "file|name"))
    var key: String?

    @Option(name: .long, help: ArgumentHelp("File whose first line is the passphrase of an encrypted key (default: --home's keys.passphrase_file, else asked).", valueName: "file"))
    var passphraseFile: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Fee (default: the chain's minimum fee), e.g. 0.001ACTI.", valueName: "amount"))
    var fee: String?

    @Flag(name: .long, help: "Wait until the transaction is committed and print its receipt.")
    var wait = false

    @Flag(name: .long, help: "Sign and send without first asking the node whether the transaction would succeed.")
    var skipChecks = false

    @Option(name: .long, help: ArgumentHelp("Seconds to wait for the commit with --wait.", valueName: "seconds"))
    var timeout: Int = 30

    /// Loads the key and the chain, runs `check` (refusals before signing), then signs and
    /// sends the call and reports it (`summary` is read after the check, which may narrow the call).
    func send(_ summary: @autoclosure () -> String, check: (ChainView, SigningKey) throws -> Void = { _, _ in }, _ call: (SigningKey) throws -> Call) throws {
        try runClient {
            let key = try signingKey()
            let chain = try ChainView(client: connection.client())
            try check(chain, key)
            try sendTransaction(try call(key), options: self, chain: chain, key: key, summary: summary())
        }
    }

    func signingKey() throws -> SigningKey {
        var passphrase = passphraseFile.map { KeyPassphrase.file($0) } ?? .prompt
        if passphraseFile == nil, let home = connection.home,
           let config = try? NodeConfig.parse(String(contentsOfFile: NodeHome(path: home).configPath, encoding: .utf8)) {
            passphrase = config.keyPassphrase
        }
        if let key {
            // A bare name that is not a file here is a keyring key.
            if !key.contains("/") && !FileIO.exists(key) && Keyring.isValidName(key) {
                let path: String
                do { path = try Keyring(directory: Keyring.defaultDirectory()).existing(key) } catch { throw OperatorError("\(error)") }
                return try KeyFile.read(path: path, expecting: .account, passphrase: passphrase)
            }
            return try KeyFile.read(path: key, expecting: .account, passphrase: passphrase)
        }
        if let home = connection.home { return try NodeHome(path: home).loadKey(.account, passphrase: passphrase) }
        throw OperatorError("give --home DIR or --key FILE: the transaction needs an account key to sign it")
    }
}

/// Chain facts a command checks before it signs anything.
struct ChainView {
    let client: NodeClient
    let chainID: String
    let params: JSONValue

    init(client: NodeClient) throws {
        self.client = client
        let status = try client.get("/status")
        guard let chainID = status["chain_id"]?.stringValue else { throw OperatorError("the node's /status has no chain_id") }
        self.chainID = chainID
        params = try client.get("/params")
    }

    func amount(_ section: String, _ name: String) throws -> Amount {
        guard let text = params[section]?[name]?.stringValue else { throw OperatorError("the node's parameters lack \(section).\(name)") }
        return try Amount(parsing: text)
    }

    func number(_ section: String, _ name: String) throws -> UInt64 {
        guard let text = params[section]?[name]?.numberText, let value = UInt64(text) else {
            throw OperatorError("the node's parameters lack \(section).\(name)")
        }
        return value
    }

    func account(_ address: PublicKey) throws -> JSONValue { try client.get("/accounts/\(address.hex)") }
}

extension Amount {
    init(option text: String, name: String) throws {
        do { try self.init(parsing: text) } catch { throw OperatorError("--\(name): \(error)") }
    }

    init(json value: JSONValue?) throws {
        guard let text = value?.stringValue, let units = UInt128(text) else { throw OperatorError("the node sent an amount that is not a number") }
        self.init(units: units)
    }
}

/// Builds, signs and sends one transaction, then reports it (and its receipt with --wait).
///
/// `committed`: what the commit makes known (e.g. a new event's id, which covers the height of
/// the block that includes it), from the height and the nonce; given, the command waits for the
/// commit whatever `--wait` says, adds these fields to the JSON answer and prints them as lines.
func sendTransaction(_ call: Call, options: TransactionOptions, chain: ChainView, key: SigningKey, summary: String,
                     committed: ((_ height: UInt64, _ nonce: UInt64) -> [(String, JSONValue)])? = nil) throws {
    var options = options
    if committed != nil { options.wait = true }
    let account = try chain.account(key.publicKey)
    guard let nonceText = account["nonce"]?.numberText, let nonce = UInt64(nonceText) else {
        throw OperatorError("the node's account answer has no nonce")
    }
    let fee = try options.fee.map { try Amount(option: $0, name: "fee") } ?? chain.amount("fees", "min_fee")
    let balance = try Amount(json: account["balance"])
    if balance < fee {
        throw OperatorError("balance \(balance) of \(key.publicKey.hex.prefix(12))… cannot pay the fee of \(fee)")
    }
    let body = TransactionBody(chainID: chain.chainID, sender: key.publicKey, nonce: nonce, fee: fee, call: call)
    if !options.skipChecks { try checkBeforeSigning(body, chain: chain, summary: summary) }
    let transaction = body.signed(with: key)
    let waitClient = NodeClient(base: chain.client.base, timeoutSeconds: Double(options.timeout) + 10)
    let path = options.wait ? "/txs?wait=true&timeout_ms=\(options.timeout * 1_000)" : "/txs"
    var answer: JSONValue
    do {
        answer = try waitClient.post(path, .object([("tx", .string(Hex.encode(transaction.canonicalBytes)))]))
    } catch let failure as NodeClient.Failure {
        if failure.code == "timeout" {
            throw OperatorError("\(summary): sent as transaction \(transaction.hash.hex), but not committed within \(options.timeout) s; "
                                + "it may still be committed: node query tx \(transaction.hash.hex) tells (--timeout waits longer)", code: "timeout")
        }
        throw OperatorError(failure.message, code: failure.code ?? "node_error")
    }
    let hash = answer["hash"]?.stringValue ?? transaction.hash.hex
    let receipt = answer["transaction"]?["receipt"]
    let height = answer["transaction"]?["height"]?.numberText ?? "?"
    if options.wait, let receipt, receipt["succeeded"]?.boolValue != true {
        // Committed but refused by the rules: the fee is spent, the call did nothing.
        throw OperatorError("\(summary) failed at height \(height) (transaction \(hash)): \(receipt["message"]?.stringValue ?? "?")",
                            code: receipt["name"]?.stringValue ?? "failed", answer: answer)
    }
    var learned: [(String, JSONValue)] = []
    if let committed, let committedHeight = UInt64(height), case .object(let fields) = answer {
        learned = committed(committedHeight, nonce)
        answer = .object(fields + learned)
    }
    options.connection.emit(answer) {
        guard options.wait else {
            return "\(summary): sent as transaction \(hash); not yet included (--wait waits for the commit; node query tx \(hash) tells later)"
        }
        let lines = learned.map { "\($0.0.replacingOccurrences(of: "_", with: " ")): \($0.1.stringValue ?? $0.1.rendered())" }
        return (["\(summary): committed at height \(height) in transaction \(hash)"] + lines).joined(separator: "\n")
    }
}

/// Asks the node to run the transaction's checks against its latest state (`POST /txs/check`)
/// and refuses, before anything is signed or paid, one that would fail.
func checkBeforeSigning(_ body: TransactionBody, chain: ChainView, summary: String) throws {
    let answer: JSONValue
    do {
        answer = try chain.client.post("/txs/check", .object([("body", .string(Hex.encode(body.canonicalBytes)))]))
    } catch let failure as NodeClient.Failure {
        throw OperatorError("the node could not check the transaction (\(failure.message)); nothing was sent; --skip-checks sends it unchecked")
    }
    guard answer["would_succeed"]?.boolValue != true else { return }
    let reason: String
    if let receipt = answer["receipt"], receipt != .null {
        reason = "\(receipt["message"]?.stringValue ?? "?") [\(receipt["name"]?.stringValue ?? "?")]"
    } else {
        reason = answer["refused"]?.stringValue ?? "the node gave no reason"
    }
    let code = answer["receipt"]?["name"]?.stringValue ?? "refused"
    throw OperatorError("\(summary) would fail: \(reason); nothing was signed or sent (checked against height \(answer["height"]?.numberText ?? "?"); --skip-checks sends it anyway)",
                        code: code)
}

/// Parses a 64-hex id option, naming the option when it is wrong.
func parseID(_ text: String, option: String) throws -> Hash256 {
    guard text.count == 64, let value = Hash256(hex: text) else { throw OperatorError("--\(option) '\(text.prefix(80))' is not 64 hex characters") }
    return value
}

func parseKey(_ text: String, option: String) throws -> PublicKey {
    guard text.count == 64, let value = PublicKey(hex: text) else { throw OperatorError("--\(option) '\(text.prefix(80))' is not a 64-character hex key") }
    return value
}

func parseArTxID(_ text: String, option: String) throws -> ArTxID {
    do { return try ArTxID(parsing: text) } catch { throw OperatorError("--\(option): \(error)") }
}

/// Runs a client command, turning node-side failures into plain errors (with the node's code).
func runClient(_ body: () throws -> Void) throws {
    try runReportingErrors {
        do { try body() } catch let failure as NodeClient.Failure {
            throw OperatorError(failure.message, code: failure.code ?? (failure.status == nil ? "unreachable" : "node_error"))
        }
    }
}

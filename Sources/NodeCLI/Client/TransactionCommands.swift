import ArgumentParser
import Foundation
import KCCodec
import KCCrypto
import KCNode
import KCRuntime
import KCTypes

struct ProposeEventCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "propose-event",
        abstract: "Propose a knowledge event (the sender must be a registered gateway).",
        discussion: "Give the payload's SHA-256 with --content-hash, or --payload FILE to have it computed. It always waits for the commit and prints the event id (which covers the height of the block that includes it).")

    @OptionGroup var options: TransactionOptions
    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Arweave transaction id of the payload (43 base64url characters).", valueName: "id"))
    var arTxId: String
    @Option(name: .long, help: ArgumentHelp("SHA-256 of the payload, 64 hex characters.", valueName: "hex"))
    var contentHash: String?
    @Option(name: .long, help: ArgumentHelp("The payload file, hashed here with SHA-256.", valueName: "file"))
    var payload: String?
    @Option(name: .long, help: ArgumentHelp("A parent event id (repeatable).", valueName: "id"))
    var parent: [String] = []
    @Option(name: .long, help: ArgumentHelp("The event's kind (an ontology type name).", valueName: "kind"))
    var kind: String

    func run() throws {
        try runClient {
            guard (contentHash == nil) != (payload == nil) else { throw OperatorError("give exactly one of --content-hash and --payload") }
            let hash: Hash256
            if let contentHash {
                hash = try parseID(contentHash, option: "content-hash")
            } else {
                guard let data = FileManager.default.contents(atPath: payload!) else { throw OperatorError("cannot read --payload \(payload!)") }
                hash = SHA256.hash([UInt8](data))
            }
            let parents = try parent.map { try parseID($0, option: "parent") }
            let arTxID = try parseArTxID(arTxId, option: "ar-tx-id")
            let key = try options.signingKey()
            let chain = try ChainView(client: options.connection.client())
            let account = try chain.account(key.publicKey)
            guard account["gateway"]?.boolValue == true else {
                throw OperatorError("account \(key.publicKey.hex.prefix(12))… is not a registered gateway; run `node stake` and `node register-gateway` first")
            }
            for parentID in parents {
                let event: JSONValue
                do { event = try chain.client.get("/events/\(parentID.hex)") } catch let failure as NodeClient.Failure where failure.status == 404 {
                    throw OperatorError("parent \(parentID.hex.prefix(12))… is not on chain")
                }
                if event["status"]?.stringValue == "rejected" { throw OperatorError("parent \(parentID.hex.prefix(12))… was rejected") }
            }
            // The event id covers the height of the block that includes it: known at the commit.
            try sendTransaction(.proposeEvent(parents: parents, arTxID: arTxID, contentHash: hash, kind: kind),
                                options: options, chain: chain, key: key, summary: "event of kind \(kind) proposed") { height, nonce in
                let header = EventHeader(author: key.publicKey, nonce: nonce, height: height, parents: parents,
                                         arTxID: arTxID, contentHash: hash, kind: kind)
                return [("event_id", .string(header.id.hex))]
            }
        }
    }
}

struct AttestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attest",
        abstract: "Attest events as a gateway: one verdict, or a batch from a file.",
        discussion: "The batch file has one line per event: EVENT_ID valid|invalid (blank lines and # comments are skipped).")

    @OptionGroup var options: TransactionOptions
    @Option(name: .long, help: ArgumentHelp("The event to attest.", valueName: "id"))
    var event: String?
    @Flag(name: .long, help: "The payload matches its content hash.")
    var valid = false
    @Flag(name: .long, help: "The payload does not match.")
    var invalid = false
    @Option(name: .long, help: ArgumentHelp("A batch of verdicts, one 'EVENT_ID valid|invalid' per line.", valueName: "file"))
    var file: String?

    func votes() throws -> [AttestationVote] {
        if let file {
            guard event == nil, !valid, !invalid else { throw OperatorError("--file replaces --event, --valid and --invalid") }
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw OperatorError("cannot read --file \(file)") }
            var votes: [AttestationVote] = []
            for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first?.trimmingCharacters(in: .whitespaces) ?? ""
                if line.isEmpty { continue }
                let parts = line.split(separator: " ", omittingEmptySubsequences: true)
                guard parts.count == 2, let id = Hash256(hex: parts[0]), parts[0].count == 64, parts[1] == "valid" || parts[1] == "invalid" else {
                    throw OperatorError("\(file) line \(number + 1): expected 'EVENT_ID valid|invalid', found '\(line.prefix(100))'")
                }
                votes.append(AttestationVote(eventID: id, verdict: parts[1] == "valid" ? .valid : .invalid))
            }
            guard !votes.isEmpty else { throw OperatorError("\(file) holds no verdicts") }
            return votes
        }
        guard let event else { throw OperatorError("give --event ID with --valid or --invalid, or --file FILE") }
        guard valid != invalid else { throw OperatorError("give exactly one of --valid and --invalid") }
        return [AttestationVote(eventID: try parseID(event, option: "event"), verdict: valid ? .valid : .invalid)]
    }

    func run() throws {
        try runClient {
            var votes = try votes()
            // The rules skip (and still charge for) a verdict on an event that is no longer
            // pending: leave such verdicts out before signing, and refuse a call left empty.
            let open: (ChainView, SigningKey) throws -> Void = { chain, _ in
                guard !options.skipChecks else { return }
                var closed: [String] = []
                votes = try votes.filter { vote in
                    let status = try chain.client.get("/events/\(vote.eventID.hex)")["status"]?.stringValue ?? "?"
                    if status != "pending" { closed.append("\(vote.eventID.hex.prefix(12))… is \(status)") }
                    return status == "pending"
                }
                if votes.isEmpty {
                    throw OperatorError("nothing to attest: \(closed.joined(separator: "; ")), no longer open for verdicts; nothing was signed or sent",
                                        code: "not_pending")
                }
                if !closed.isEmpty { printError("left out (no longer open for verdicts): \(closed.joined(separator: "; "))") }
            }
            try options.send("\(votes.count) attestation(s)", check: open) { _ in .attest(votes: votes) }
        }
    }
}

struct DisputeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dispute", abstract: "Dispute an accepted event inside its challenge window, posting a bond.")

    @OptionGroup var options: TransactionOptions
    @Option(name: .long, help: ArgumentHelp("The event to dispute.", valueName: "id")) var event: String
    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("The bond, e.g. 100ACTI.", valueName: "amount")) var bond: String
    // An Arweave id is base64url: it may start with '-', which must not read as an option.
    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Arweave id of the written reason.", valueName: "id")) var reason: String

    func run() throws {
        try runClient {
            let id = try parseID(event, option: "event")
            let amount = try Amount(option: bond, name: "bond")
            let reasonID = try parseArTxID(reason, option: "reason")
            let key = try options.signingKey()
            let chain = try ChainView(client: options.connection.client())
            let record: JSONValue
            do { record = try chain.client.get("/events/\(id.hex)") } catch let failure as NodeClient.Failure where failure.status == 404 {
                throw OperatorError("event \(id.hex.prefix(12))… is not on chain")
            }
            // Each dispute of an event posts at least twice the largest bond of the rounds before it.
            let required = try Amount(json: record["disputes"]?["next_bond_at_least"])
            guard amount >= required else {
                throw OperatorError("bond \(amount) is below the \(required) this event's next dispute must post (the minimum dispute bond, and twice any earlier round's bond)")
            }
            let status = record["status"]?.stringValue ?? "?"
            guard status == "accepted" else {
                let open = status == "disputed" ? "; dispute \(Show.field(record["dispute"]?["id"]).prefix(12))… is open until block time \(Show.time(record["dispute"]?["deadline_ms"]))" : ""
                throw OperatorError("event \(id.hex.prefix(12))… is not in its challenge window (it is \(status)\(open))")
            }
            if let closes = record["challenge_window_closes_ms"]?.numberText.flatMap(UInt64.init),
               let now = try chain.client.get("/status")["latest_block_time_ms"]?.numberText.flatMap(UInt64.init), now >= closes {
                throw OperatorError("event \(id.hex.prefix(12))… is not in its challenge window (closed at block time \(UTCTime.rfc3339(milliseconds: closes)), now \(UTCTime.rfc3339(milliseconds: now)))")
            }
            try sendTransaction(.dispute(eventID: id, bond: amount, reason: reasonID), options: options, chain: chain, key: key,
                                summary: "dispute of \(id.hex.prefix(12))… with a bond of \(amount)")
        }
    }
}

struct VoteDisputeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vote-dispute", abstract: "Vote on a dispute as a juror (a validator the dispute does not accuse).")

    @OptionGroup var options: TransactionOptions
    @Option(name: .long, help: ArgumentHelp("The dispute id (GET /events/ID shows it).", valueName: "id")) var dispute: String
    @Flag(name: .long, help: "The dispute is right: the event should be rejected.") var uphold = false
    @Flag(name: .long, help: "The dispute is wrong: the event stands.") var reject = false

    func run() throws {
        try runClient {
            guard uphold != reject else { throw OperatorError("give exactly one of --uphold and --reject") }
            let id = try parseID(dispute, option: "dispute")
            try options.send("vote to \(uphold ? "uphold" : "reject") dispute \(id.hex.prefix(12))…") { _ in
                .voteDispute(disputeID: id, uphold: uphold)
            }
        }
    }
}

struct DefendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "defend", abstract: "Defend an event in a dispute's bond round, posting at least the dispute's bond.")

    @OptionGroup var options: TransactionOptions
    @Option(name: .long, help: ArgumentHelp("The dispute id (GET /events/ID shows it).", valueName: "id")) var dispute: String
    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("The defence bond, at least the dispute's, e.g. 100ACTI.", valueName: "amount")) var bond: String

    func run() throws {
        try runClient {
            let id = try parseID(dispute, option: "dispute")
            let amount = try Amount(option: bond, name: "bond")
            let key = try options.signingKey()
            let chain = try ChainView(client: options.connection.client())
            let record: JSONValue
            do { record = try chain.client.get("/disputes/\(id.hex)") } catch let failure as NodeClient.Failure where failure.status == 404 {
                throw OperatorError("dispute \(id.hex.prefix(12))… does not exist")
            }
            guard record["mode"]?.stringValue == "bonds" else {
                throw OperatorError("dispute \(id.hex.prefix(12))… is judged by the validators' vote, not by bonds: a defence cannot settle it")
            }
            guard record["status"]?.stringValue == "open" else {
                throw OperatorError("dispute \(id.hex.prefix(12))… is \(Show.field(record["status"])), not open")
            }
            let required = try Amount(json: record["defense_bond_at_least"])
            guard amount >= required else { throw OperatorError("bond \(amount) is below the dispute's bond \(required)") }
            try sendTransaction(.defend(disputeID: id, bond: amount), options: options, chain: chain, key: key,
                                summary: "defence of dispute \(id.hex.prefix(12))… with a bond of \(amount)")
        }
    }
}

struct StakeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stake", abstract: "Bond ACTI from the account's balance.")
    @OptionGroup var options: TransactionOptions
    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("How much, e.g. 10000ACTI.", valueName: "amount")) var amount: String

    func run() throws {
        try runClient {
            let value = try Amount(option: amount, name: "amount")
            try options.send("stake of \(value)") { _ in .bond(amount: value) }
        }
    }
}

struct UnstakeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unstake", abstract: "Start unbonding stake (withdrawable after the unbonding period).")
    @OptionGroup var options: TransactionOptions
    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("How much, e.g. 500ACTI.", valueName: "amount")) var amount: String

    func run() throws {
        try runClient {
            let value = try Amount(option: amount, name: "amount")
            try options.send("unstake of \(value)") { _ in .unbond(amount: value) }
        }
    }
}

struct WithdrawCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "withdraw", abstract: "Withdraw unbonded stake whose period has passed.")
    @OptionGroup var options: TransactionOptions

    func run() throws {
        try options.send("withdrawal") { _ in .withdrawUnbonded }
    }
}

/// Checks the bonded stake against a minimum before a registration is sent.
func requireStake(_ chain: ChainView, _ key: SigningKey, minimum name: String) throws {
    let minimum = try chain.amount("staking", name)
    let bonded = try Amount(json: try chain.account(key.publicKey)["bonded"])
    guard bonded >= minimum else {
        throw OperatorError("stake \(bonded) is below the minimum \(minimum); run `node stake --amount \(minimum.units / Amount.unitsPerACTI)ACTI` first")
    }
}

struct RegisterValidatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "register-validator", abstract: "Register the account as a validator with a consensus key.")
    @OptionGroup var options: TransactionOptions
    @Option(name: .long, help: ArgumentHelp("Consensus public key (default: --home's validator key).", valueName: "hex"))
    var consensusKey: String?

    func run() throws {
        try runClient {
            let consensus: PublicKey
            if let consensusKey {
                consensus = try parseKey(consensusKey, option: "consensus-key")
            } else if let home = options.connection.home {
                consensus = try NodeHome(path: home).publicKey(.validator)  // the public half: no passphrase needed
            } else {
                throw OperatorError("give --consensus-key HEX (or --home with a validator key)")
            }
            try options.send("validator registration", check: { try requireStake($0, $1, minimum: "min_validator_stake") }) { _ in
                .registerValidator(consensusKey: consensus)
            }
        }
    }
}

struct RegisterGatewayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "register-gateway", abstract: "Register the account as a gateway.")
    @OptionGroup var options: TransactionOptions

    func run() throws {
        try options.send("gateway registration", check: { try requireStake($0, $1, minimum: "min_gateway_stake") }) { _ in
            .registerGateway
        }
    }
}

struct UnjailCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unjail", abstract: "Ask to leave jail after a downtime jailing has expired.")
    @OptionGroup var options: TransactionOptions

    func run() throws {
        try options.send("unjail") { _ in .unjail }
    }
}

struct TransferCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "transfer", abstract: "Send ACTI to another account.")
    @OptionGroup var options: TransactionOptions
    @Option(name: .long, help: ArgumentHelp("Recipient address (hex).", valueName: "address")) var to: String
    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("How much, e.g. 1.5ACTI.", valueName: "amount")) var amount: String

    func run() throws {
        try runClient {
            let recipient = try parseKey(to, option: "to")
            let value = try Amount(option: amount, name: "amount")
            try options.send("transfer of \(value) to \(recipient.hex.prefix(12))…") { _ in .transfer(to: recipient, amount: value) }
        }
    }
}

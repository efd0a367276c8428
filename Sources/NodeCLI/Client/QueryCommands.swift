import ArgumentParser
import Foundation
import KCCrypto
import KCNode
import KCTypes

/// Human forms of the node's JSON for `--output text`.
enum Show {
    static func acti(_ value: JSONValue?) -> String {
        guard let text = value?.stringValue, let units = UInt128(text) else { return "?" }
        return Amount(units: units).description
    }

    /// A block time in milliseconds since 1970 as RFC 3339 UTC (`2026-01-01T00:00:00.000Z`);
    /// `-` when absent or zero.
    static func time(_ value: JSONValue?) -> String {
        guard let text = value?.numberText, let milliseconds = UInt64(text), milliseconds > 0 else { return "-" }
        return rfc3339(milliseconds)
    }

    static func rfc3339(_ milliseconds: UInt64) -> String { UTCTime.rfc3339(milliseconds: milliseconds) }

    /// How long ago a block time was, against this machine's clock: `3.2 s ago`.
    static func age(_ value: JSONValue?) -> String {
        guard let text = value?.numberText, let milliseconds = UInt64(text), milliseconds > 0 else { return "-" }
        let now = UInt64(max(0, Date().timeIntervalSince1970 * 1_000))
        guard now >= milliseconds else { return "in the future by \((milliseconds - now)) ms" }
        let elapsed = now - milliseconds
        return elapsed < 120_000 ? "\(elapsed / 1_000).\(elapsed % 1_000 / 100) s ago" : "\(elapsed / 60_000) min ago"
    }

    static func field(_ value: JSONValue?) -> String {
        switch value {
        case .string(let text)?: return text
        case .number(let text)?: return text
        case .bool(let flag)?: return flag ? "yes" : "no"
        case .null?, nil: return "-"
        case .array(let items)?: return items.isEmpty ? "-" : items.map { field($0) }.joined(separator: ", ")
        case .object?: return value!.compact()
        }
    }

    static func account(_ key: PublicKey, _ account: JSONValue) -> String {
        var lines = [
            "account \(key.hex)",
            "  balance:   \(acti(account["balance"]))",
            "  bonded:    \(acti(account["bonded"]))",
            "  nonce:     \(field(account["nonce"]))",
            "  gateway:   \(field(account["gateway"]))",
        ]
        for entry in account["unbonding"]?.arrayValue ?? [] {
            lines.append("  unbonding: \(acti(entry["amount"])), withdrawable from \(time(entry["completion_time_ms"]))")
        }
        if account["stake_locked"] == .bool(true) {
            lines.append("  locked:    until \(time(account["locked_until_ms"])) (votes, proposals or jury duty not yet settled; withdraw waits for it)")
        }
        if let gateway = account["gateway_detail"], gateway != .null {
            lines.append("  weight:    \(acti(gateway["electoral_weight_this_epoch"])) in this epoch's electorate; reward weight so far \(field(gateway["reward_weight_this_epoch"])) from \(field(gateway["winning_votes_this_epoch"])) winning votes")
        }
        return lines.joined(separator: "\n")
    }

    static func event(_ e: JSONValue) -> String {
        var lines = [
            "event \(field(e["id"]))",
            "  status:        \(field(e["status"])) (since height \(field(e["status_changed_at_height"])))",
            "  author:        \(field(e["author"]))",
            "  kind:          \(field(e["kind"]))",
            "  ar_tx_id:      \(field(e["ar_tx_id"]))",
            "  content hash:  \(field(e["content_hash"]))",
            "  parents:       \(field(e["parents"]))",
            "  height:        \(field(e["height"]))",
            "  electorate:    epoch \(field(e["electorate"]?["epoch"])), total \(acti(e["electorate"]?["total"])) (accepted above 2/3 valid, rejected above 1/3 invalid)",
            "  attestations:  valid \(acti(e["tally"]?["valid_weight"])) from \(field(e["tally"]?["valid_count"])), invalid \(acti(e["tally"]?["invalid_weight"])) from \(field(e["tally"]?["invalid_count"]))",
            "  attestation:   ends \(time(e["attestation_ends_ms"]))",
        ]
        if e["challenge_window_closes_ms"] != .null {
            lines.append("  challenge:     window closes \(time(e["challenge_window_closes_ms"])); a dispute needs a bond of at least \(acti(e["disputes"]?["next_bond_at_least"]))")
        }
        if e["waiting_on"] != .null { lines.append("  waiting on:    parent \(field(e["waiting_on"])) to be final") }
        if e["rejected_parent"] != .null { lines.append("  rejected:      because parent \(field(e["rejected_parent"])) was rejected or expired") }
        lines.append("  votes settle:  \(time(e["votes_settle_ms"])) (voters' stake is locked until then)")
        if let dispute = e["dispute"], dispute != .null {
            lines.append("  dispute:       \(field(dispute["id"])) \(field(dispute["status"])) (\(field(dispute["mode"]))), bond \(acti(dispute["bond"])), deadline \(time(dispute["deadline_ms"]))")
        }
        return lines.joined(separator: "\n")
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show the node's chain, height, sync state and peers.")
    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        try runClient {
            let status = try connection.client().get("/status")
            connection.emit(status) {
                """
                chain:    \(Show.field(status["chain_id"]))
                height:   \(Show.field(status["height"])) (block \(Show.field(status["latest_block_id"]).prefix(16))…, \(Show.time(status["latest_block_time_ms"])), \(Show.age(status["latest_block_time_ms"])))
                syncing:  \(Show.field(status["syncing"]))
                peers:    \(Show.field(status["peers"]))
                validator: \(Show.field(status["validator"]))
                mempool:  \(Show.field(status["mempool"]?["transactions"])) transactions
                """
            }
        }
    }
}

struct QueryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Read chain data from a node.",
        subcommands: [Event.self, Events.self, Block.self, Tx.self, Account.self, Validators.self, Gateways.self, Dispute.self])

    struct Event: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One event: header, status, tallies, dispute.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Event id (64 hex characters).") var id: String

        func run() throws {
            try runClient {
                let event = try connection.client().get("/events/\(try parseID(id, option: "id").hex)")
                connection.emit(event) { Show.event(event) }
            }
        }
    }

    struct Events: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List events by author, ArTxID, kind or status, a page at a time.")
        @OptionGroup var connection: ConnectionOptions
        @Option(name: .long, help: ArgumentHelp("Author address.", valueName: "address")) var author: String?
        @Option(name: .long, help: ArgumentHelp("Arweave id.", valueName: "id")) var arTxId: String?
        @Option(name: .long, help: "Event kind.") var kind: String?
        @Option(name: .long, help: "pending, accepted, rejected, expired, disputed or finalized.") var status: String?
        @Option(name: .long, help: "Cursor from the previous page.") var cursor: String?
        @Option(name: .long, help: "Events per page (1 to 500).") var limit: Int = 50

        func run() throws {
            try runClient {
                var query: [String] = ["limit=\(limit)"]
                if let author { query.append("author=\(author)") }
                if let arTxId { query.append("ar_tx_id=\(arTxId)") }
                if let kind { query.append("kind=\(kind.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? kind)") }
                if let status { query.append("status=\(status)") }
                if let cursor { query.append("cursor=\(cursor)") }
                let page = try connection.client().get("/events?" + query.joined(separator: "&"))
                connection.emit(page) {
                    let events = page["events"]?.arrayValue ?? []
                    var lines = events.map { "\(Show.field($0["id"]))  \(Show.field($0["status"]))  \(Show.field($0["kind"]))  height \(Show.field($0["height"]))" }
                    if events.isEmpty { lines.append("no events") }
                    if let next = page["next_cursor"]?.stringValue { lines.append("more: --cursor \(next)") }
                    return lines.joined(separator: "\n")
                }
            }
        }
    }

    struct Block: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A block by height (default: the latest).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Height, or latest.") var height: String = "latest"

        func run() throws {
            try runClient {
                guard height == "latest" || UInt64(height) != nil else { throw OperatorError("height '\(height)' is not a whole number or latest") }
                let block = try connection.client().get("/blocks/\(height)")
                connection.emit(block) {
                    """
                    block \(Show.field(block["height"])) \(Show.field(block["id"]))
                      time:         \(Show.time(block["time_ms"]))
                      proposer:     \(Show.field(block["proposer"]))
                      state root:   \(Show.field(block["state_root"]))
                      transactions: \((block["transactions"]?.arrayValue ?? []).count)
                    """
                }
            }
        }
    }

    struct Tx: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A committed transaction and its receipt.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Transaction hash.") var hash: String

        func run() throws {
            try runClient {
                let tx = try connection.client().get("/txs/\(try parseID(hash, option: "hash").hex)")
                connection.emit(tx) {
                    """
                    transaction \(Show.field(tx["hash"])) at height \(Show.field(tx["height"]))
                      sender: \(Show.field(tx["sender"])) nonce \(Show.field(tx["nonce"])) fee \(Show.acti(tx["fee"]))
                      call:   \(Show.field(tx["call"]?["type"]))
                      result: \(Show.field(tx["receipt"]?["name"])) \(Show.field(tx["receipt"]?["message"]))
                    """
                }
            }
        }
    }

    struct Account: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Balance, nonce and stake of an account (default: --home's).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Address (hex).") var address: String?

        func run() throws {
            try runClient {
                let key: PublicKey
                if let address { key = try parseKey(address, option: "address") } else if let home = connection.home {
                    key = try NodeHome(path: home).loadKey(.account).publicKey
                } else { throw OperatorError("give an ADDRESS or --home") }
                let account = try connection.client().get("/accounts/\(key.hex)")
                connection.emit(account) { Show.account(key, account) }
            }
        }
    }

    struct Validators: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Registered validators, their stake and state.")
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            try runClient {
                let answer = try connection.client().allPages("/validators", list: "validators")
                connection.emit(answer) {
                    (answer["validators"]?.arrayValue ?? []).map { v in
                        var line = "\(Show.field(v["address"]))  bonded \(Show.acti(v["bonded"]))  power \(Show.field(v["power"]))"
                        line += "  missed \(Show.field(v["missed_in_window"])) in the window, signed \(Show.field(v["signed_this_epoch"])) this epoch"
                        if v["tombstoned"]?.boolValue == true { line += "  TOMBSTONED (double sign)" }
                        else if v["jailed"]?.boolValue == true { line += "  JAILED until \(Show.time(v["jailed_until_ms"]))" }
                        return line
                    }.joined(separator: "\n")
                }
            }
        }
    }

    struct Gateways: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Registered gateways and their stake.")
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            try runClient {
                let answer = try connection.client().allPages("/gateways", list: "gateways")
                connection.emit(answer) {
                    (answer["gateways"]?.arrayValue ?? []).map {
                        "\(Show.field($0["address"]))  bonded \(Show.acti($0["bonded"]))  weight this epoch \(Show.acti($0["electoral_weight_this_epoch"]))  locked until \(Show.time($0["locked_until_ms"]))"
                    }.joined(separator: "\n")
                }
            }
        }
    }

    struct Dispute: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A dispute and its re-vote.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Dispute id.") var id: String

        func run() throws {
            try runClient {
                let dispute = try connection.client().get("/disputes/\(try parseID(id, option: "id").hex)")
                connection.emit(dispute) {
                    """
                    dispute \(Show.field(dispute["id"])) of event \(Show.field(dispute["event_id"])) (round \(Show.field(dispute["sequence"])))
                      status:   \(Show.field(dispute["status"])), deadline \(Show.time(dispute["deadline_ms"]))
                      bond:     \(Show.acti(dispute["bond"])) by \(Show.field(dispute["disputer"]))
                      decided:  \(dispute["mode"]?.stringValue == "bonds" ? "by bonds: upheld at the deadline unless defended with at least \(Show.acti(dispute["defense_bond_at_least"]))" : "by the validators not accused: uphold above 2/3 of \(Show.field(dispute["eligible_power"])) power (of \(Show.field(dispute["set_power"])))")
                      votes:    uphold \(Show.field(dispute["uphold_power"])), reject \(Show.field(dispute["reject_power"])) power
                    """
                }
            }
        }
    }
}

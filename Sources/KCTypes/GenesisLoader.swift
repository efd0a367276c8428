import KCCodec
import KCCrypto

/// A genesis file that cannot be used, with the dotted path of the field at fault.
public struct GenesisError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Dotted path of the offending field, e.g. `validators[2].stake`; empty for the whole file.
    public let field: String
    public let message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String {
        field.isEmpty ? "genesis: \(message)" : "genesis field \(field): \(message)"
    }
}

/// Reads one JSON object, remembering which members were used, so that unknown members are
/// reported instead of silently ignored (a misspelt parameter must not fall back to a default).
struct ObjectReader {
    let path: String
    let members: [(String, JSONValue)]
    private var used: Set<String> = []

    init(_ value: JSONValue, path: String) throws(GenesisError) {
        guard case .object(let members) = value else {
            throw GenesisError(field: path, message: "expected an object, found \(value.kindName)")
        }
        self.path = path
        self.members = members
    }

    func fieldPath(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }

    mutating func value(_ name: String) throws(GenesisError) -> JSONValue {
        used.insert(name)
        guard let member = members.first(where: { $0.0 == name }) else {
            throw GenesisError(field: fieldPath(name), message: "is required but missing")
        }
        return member.1
    }

    mutating func object(_ name: String) throws(GenesisError) -> ObjectReader {
        try ObjectReader(try value(name), path: fieldPath(name))
    }

    mutating func string(_ name: String) throws(GenesisError) -> String {
        let found = try value(name)
        guard case .string(let text) = found else {
            throw GenesisError(field: fieldPath(name), message: "expected a string, found \(found.kindName)")
        }
        return text
    }

    mutating func bool(_ name: String) throws(GenesisError) -> Bool {
        let found = try value(name)
        guard case .bool(let flag) = found else {
            throw GenesisError(field: fieldPath(name), message: "expected true or false, found \(found.kindName)")
        }
        return flag
    }

    mutating func unsigned<T: FixedWidthInteger & UnsignedInteger>(_ name: String, _ type: T.Type = T.self,
                                                                    range: ClosedRange<T>? = nil) throws(GenesisError) -> T {
        let found = try value(name)
        guard case .number(let text) = found else {
            throw GenesisError(field: fieldPath(name), message: "expected a whole number, found \(found.kindName)")
        }
        guard let number = T(text) else {
            throw GenesisError(field: fieldPath(name),
                               message: "'\(text)' is not a whole number between 0 and \(T.max)")
        }
        if let range, !range.contains(number) {
            throw GenesisError(field: fieldPath(name),
                               message: "\(number) is outside the allowed range \(range.lowerBound)...\(range.upperBound)")
        }
        return number
    }

    mutating func basisPoints(_ name: String) throws(GenesisError) -> UInt32 {
        try unsigned(name, UInt32.self, range: 0...10_000)
    }

    /// Amounts are strings (`"10000ACTI"`, `"1.5ACTI"` or base units), never JSON numbers,
    /// because 10^18-scale integers do not survive most JSON tools.
    mutating func amount(_ name: String) throws(GenesisError) -> Amount {
        let found = try value(name)
        guard case .string(let text) = found else {
            throw GenesisError(field: fieldPath(name),
                               message: "amounts are strings such as \"10000ACTI\" or base units \"1000\", found \(found.kindName)")
        }
        do {
            return try Amount(parsing: text)
        } catch {
            throw GenesisError(field: fieldPath(name), message: error.description)
        }
    }

    mutating func publicKey(_ name: String) throws(GenesisError) -> PublicKey {
        let text = try string(name)
        guard let key = PublicKey(hex: text) else {
            throw GenesisError(field: fieldPath(name), message: "'\(text)' is not a 32-byte public key in hex (64 hex digits)")
        }
        return key
    }

    mutating func array(_ name: String) throws(GenesisError) -> [JSONValue] {
        let found = try value(name)
        guard case .array(let items) = found else {
            throw GenesisError(field: fieldPath(name), message: "expected an array, found \(found.kindName)")
        }
        return items
    }

    /// Fails on the first member that was never asked for.
    func finish() throws(GenesisError) {
        for (name, _) in members where !used.contains(name) {
            throw GenesisError(field: fieldPath(name), message: "unknown field (check the spelling against specs/genesis.md)")
        }
    }
}

public enum GenesisLoader {
    public static let maximumFileBytes = 16 << 20

    /// Parses and validates a genesis file's text.
    public static func load(json text: String) throws(GenesisError) -> Genesis {
        guard text.utf8.count <= maximumFileBytes else {
            throw GenesisError(field: "", message: "file is larger than \(maximumFileBytes) bytes")
        }
        let root: JSONValue
        do {
            root = try StrictJSON.parse(text)
        } catch {
            throw GenesisError(field: "", message: "not valid JSON: \(error.description)")
        }
        var reader = try ObjectReader(root, path: "")
        let chainID = try reader.string("chain_id")
        try validateChainID(chainID)
        let genesisTime = try reader.unsigned("genesis_time_unix_ms", UInt64.self)
        var paramsReader = try reader.object("params")
        let parameters = try readParameters(&paramsReader)
        try paramsReader.finish()

        var accounts: [GenesisAccount] = []
        var accountAddresses = Set<PublicKey>()
        for (index, item) in try reader.array("accounts").enumerated() {
            var entry = try ObjectReader(item, path: "accounts[\(index)]")
            let account = GenesisAccount(address: try entry.publicKey("address"), balance: try entry.amount("balance"))
            try entry.finish()
            guard accountAddresses.insert(account.address).inserted else {
                throw GenesisError(field: entry.fieldPath("address"), message: "duplicate account \(account.address.hex)")
            }
            accounts.append(account)
        }

        var validators: [GenesisValidator] = []
        var validatorAddresses = Set<PublicKey>(), consensusKeys = Set<PublicKey>(), nodeIDs = Set<PublicKey>()
        let validatorItems = try reader.array("validators")
        guard !validatorItems.isEmpty else {
            throw GenesisError(field: "validators", message: "at least one validator is required")
        }
        for (index, item) in validatorItems.enumerated() {
            var entry = try ObjectReader(item, path: "validators[\(index)]")
            let moniker = try entry.string("moniker")
            guard !moniker.isEmpty && moniker.utf8.count <= 64 else {
                throw GenesisError(field: entry.fieldPath("moniker"), message: "must be 1 to 64 bytes long")
            }
            let validator = GenesisValidator(moniker: moniker,
                                             address: try entry.publicKey("address"),
                                             consensusKey: try entry.publicKey("consensus_key"),
                                             nodeID: try entry.publicKey("node_id"),
                                             stake: try entry.amount("stake"),
                                             gateway: try entry.bool("gateway"))
            try entry.finish()
            guard validatorAddresses.insert(validator.address).inserted else {
                throw GenesisError(field: entry.fieldPath("address"), message: "duplicate validator address \(validator.address.hex)")
            }
            guard consensusKeys.insert(validator.consensusKey).inserted else {
                throw GenesisError(field: entry.fieldPath("consensus_key"), message: "duplicate consensus key \(validator.consensusKey.hex)")
            }
            guard nodeIDs.insert(validator.nodeID).inserted else {
                throw GenesisError(field: entry.fieldPath("node_id"), message: "duplicate node id \(validator.nodeID.hex)")
            }
            if validator.stake < parameters.staking.minValidatorStake {
                throw GenesisError(field: entry.fieldPath("stake"),
                                   message: "stake \(validator.stake) is below the minimum validator stake \(parameters.staking.minValidatorStake)")
            }
            if validator.gateway && validator.stake < parameters.staking.minGatewayStake {
                throw GenesisError(field: entry.fieldPath("stake"),
                                   message: "stake \(validator.stake) is below the minimum gateway stake \(parameters.staking.minGatewayStake)")
            }
            validators.append(validator)
        }
        guard validators.count <= Int(parameters.staking.maxValidators) else {
            throw GenesisError(field: "validators",
                               message: "\(validators.count) validators exceed params.staking.max_validators (\(parameters.staking.maxValidators))")
        }
        try reader.finish()

        let genesis = Genesis(chainID: chainID, genesisTimeUnixMilliseconds: genesisTime, parameters: parameters,
                              accounts: accounts, validators: validators)
        guard genesis.totalSupply != nil else {
            throw GenesisError(field: "accounts", message: "the total supply overflows 128 bits")
        }
        return genesis
    }

    static func validateChainID(_ chainID: String) throws(GenesisError) {
        let allowed = chainID.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
        }
        guard !chainID.isEmpty, chainID.utf8.count <= 64, allowed else {
            throw GenesisError(field: "chain_id", message: "'\(chainID)' must be 1 to 64 characters of a-z, 0-9, '-' and '.'")
        }
    }

    static func readParameters(_ params: inout ObjectReader) throws(GenesisError) -> ChainParameters {
        var block = try params.object("block")
        let blockParameters = ChainParameters.Block(
            maxBytes: try block.unsigned("max_bytes", UInt32.self, range: 1024...(64 << 20)),
            maxTransactions: try block.unsigned("max_transactions", UInt32.self, range: 1...1_000_000),
            maxTransactionBytes: try block.unsigned("max_transaction_bytes", UInt32.self, range: 256...(1 << 20)))
        try block.finish()
        guard blockParameters.maxTransactionBytes <= blockParameters.maxBytes else {
            throw GenesisError(field: "params.block.max_transaction_bytes", message: "must not exceed params.block.max_bytes")
        }

        var staking = try params.object("staking")
        let stakingParameters = ChainParameters.Staking(
            minValidatorStake: try staking.amount("min_validator_stake"),
            minGatewayStake: try staking.amount("min_gateway_stake"),
            maxValidators: try staking.unsigned("max_validators", UInt32.self, range: 1...1_000),
            unbondingPeriodMilliseconds: try staking.unsigned("unbonding_period_ms", UInt64.self),
            epochLengthBlocks: try staking.unsigned("epoch_length_blocks", UInt64.self, range: 1...UInt64(UInt32.max)),
            validatorSetChangeDelayBlocks: try staking.unsigned("validator_set_change_delay_blocks", UInt64.self, range: 1...100))
        try staking.finish()

        var slashing = try params.object("slashing")
        let slashingParameters = ChainParameters.Slashing(
            doubleSignSlashBasisPoints: try slashing.basisPoints("double_sign_slash_bps"),
            downtimeSlashBasisPoints: try slashing.basisPoints("downtime_slash_bps"),
            signedBlocksWindow: try slashing.unsigned("signed_blocks_window", UInt64.self, range: 1...1_000_000),
            minSignedBasisPoints: try slashing.basisPoints("min_signed_bps"),
            downtimeJailMilliseconds: try slashing.unsigned("downtime_jail_ms", UInt64.self),
            disputeSlashBasisPoints: try slashing.basisPoints("dispute_slash_bps"),
            maxEvidenceAgeBlocks: try slashing.unsigned("max_evidence_age_blocks", UInt64.self, range: 1...1_000_000),
            maxEvidenceAgeMilliseconds: try slashing.unsigned("max_evidence_age_ms", UInt64.self, range: 1...UInt64.max))
        try slashing.finish()
        // Evidence must be provable while the stake that signed is still slashable: stake
        // leaves only after the unbonding period, so the evidence window must end before it.
        guard slashingParameters.maxEvidenceAgeMilliseconds <= stakingParameters.unbondingPeriodMilliseconds else {
            throw GenesisError(field: "params.slashing.max_evidence_age_ms",
                               message: "\(slashingParameters.maxEvidenceAgeMilliseconds) exceeds params.staking.unbonding_period_ms (\(stakingParameters.unbondingPeriodMilliseconds)): a double signer could withdraw before its evidence expires; lower it or raise the unbonding period")
        }

        var events = try params.object("events")
        let eventParameters = ChainParameters.Events(
            maxParents: try events.unsigned("max_parents", UInt32.self, range: 0...64),
            maxKindBytes: try events.unsigned("max_kind_bytes", UInt32.self, range: 1...256),
            attestationPeriodMilliseconds: try events.unsigned("attestation_period_ms", UInt64.self, range: 1...UInt64.max),
            challengeWindowMilliseconds: try events.unsigned("challenge_window_ms", UInt64.self),
            revotePeriodMilliseconds: try events.unsigned("revote_period_ms", UInt64.self, range: 1...UInt64.max),
            minDisputeBond: try events.amount("min_dispute_bond"),
            disputerRewardBasisPoints: try events.basisPoints("disputer_reward_bps"))
        try events.finish()
        guard stakingParameters.minGatewayStake > .zero else {
            throw GenesisError(field: "params.staking.min_gateway_stake", message: "must be more than zero: free gateway registrations would fill the registry")
        }
        guard stakingParameters.minValidatorStake > .zero else {
            throw GenesisError(field: "params.staking.min_validator_stake", message: "must be more than zero: free validator registrations would fill the registry")
        }
        guard eventParameters.minDisputeBond > .zero else {
            throw GenesisError(field: "params.events.min_dispute_bond", message: "must be more than zero: disputes must cost a bond that grows with each round")
        }
        // Stake that voted must still be there when the vote is judged: an event is decided at
        // the latest after its attestation, challenge window and one re-vote.
        let (lifetime, lifetimeOverflow) = eventParameters.attestationPeriodMilliseconds
            .addingReportingOverflow(eventParameters.challengeWindowMilliseconds)
        let (fullLifetime, revoteOverflow) = lifetime.addingReportingOverflow(eventParameters.revotePeriodMilliseconds)
        guard !lifetimeOverflow && !revoteOverflow && fullLifetime <= stakingParameters.unbondingPeriodMilliseconds else {
            let sum = lifetimeOverflow || revoteOverflow ? "more than 2^64" : String(fullLifetime)
            throw GenesisError(field: "params.staking.unbonding_period_ms",
                               message: "\(stakingParameters.unbondingPeriodMilliseconds) is shorter than an event's life: attestation_period_ms + challenge_window_ms + revote_period_ms = \(sum); a gateway could withdraw before its vote is judged; raise the unbonding period to at least \(sum) or shorten the event periods")
        }

        var rewards = try params.object("rewards")
        let rewardParameters = ChainParameters.Rewards(
            blockReward: try rewards.amount("block_reward"),
            operatorsShareBasisPoints: try rewards.basisPoints("operators_share_bps"),
            treasuryShareBasisPoints: try rewards.basisPoints("treasury_share_bps"),
            gatewayShareBasisPoints: try rewards.basisPoints("gateway_share_bps"))
        try rewards.finish()
        guard rewardParameters.operatorsShareBasisPoints + rewardParameters.treasuryShareBasisPoints == 10_000 else {
            throw GenesisError(field: "params.rewards",
                               message: "operators_share_bps + treasury_share_bps must be 10000, is \(rewardParameters.operatorsShareBasisPoints + rewardParameters.treasuryShareBasisPoints)")
        }

        var fees = try params.object("fees")
        let feeParameters = ChainParameters.Fees(minFee: try fees.amount("min_fee"))
        try fees.finish()

        return ChainParameters(block: blockParameters, staking: stakingParameters, slashing: slashingParameters,
                               events: eventParameters, rewards: rewardParameters, fees: feeParameters)
    }
}

extension Genesis {
    /// The genesis as JSON, in the layout `GenesisLoader` reads. Whole amounts are written
    /// as `"NACTI"`, others in base units.
    public var json: JSONValue {
        func amount(_ value: Amount) -> JSONValue {
            value.units % Amount.unitsPerACTI == 0 ? .string("\(value.units / Amount.unitsPerACTI)ACTI") : .string(String(value.units))
        }
        func number<T: BinaryInteger>(_ value: T) -> JSONValue { .number(String(value)) }
        let p = parameters
        let params: JSONValue = .object([
            ("block", .object([("max_bytes", number(p.block.maxBytes)),
                               ("max_transactions", number(p.block.maxTransactions)),
                               ("max_transaction_bytes", number(p.block.maxTransactionBytes))])),
            ("staking", .object([("min_validator_stake", amount(p.staking.minValidatorStake)),
                                 ("min_gateway_stake", amount(p.staking.minGatewayStake)),
                                 ("max_validators", number(p.staking.maxValidators)),
                                 ("unbonding_period_ms", number(p.staking.unbondingPeriodMilliseconds)),
                                 ("epoch_length_blocks", number(p.staking.epochLengthBlocks)),
                                 ("validator_set_change_delay_blocks", number(p.staking.validatorSetChangeDelayBlocks))])),
            ("slashing", .object([("double_sign_slash_bps", number(p.slashing.doubleSignSlashBasisPoints)),
                                  ("downtime_slash_bps", number(p.slashing.downtimeSlashBasisPoints)),
                                  ("signed_blocks_window", number(p.slashing.signedBlocksWindow)),
                                  ("min_signed_bps", number(p.slashing.minSignedBasisPoints)),
                                  ("downtime_jail_ms", number(p.slashing.downtimeJailMilliseconds)),
                                  ("dispute_slash_bps", number(p.slashing.disputeSlashBasisPoints)),
                                  ("max_evidence_age_blocks", number(p.slashing.maxEvidenceAgeBlocks)),
                                  ("max_evidence_age_ms", number(p.slashing.maxEvidenceAgeMilliseconds))])),
            ("events", .object([("max_parents", number(p.events.maxParents)),
                                ("max_kind_bytes", number(p.events.maxKindBytes)),
                                ("attestation_period_ms", number(p.events.attestationPeriodMilliseconds)),
                                ("challenge_window_ms", number(p.events.challengeWindowMilliseconds)),
                                ("revote_period_ms", number(p.events.revotePeriodMilliseconds)),
                                ("min_dispute_bond", amount(p.events.minDisputeBond)),
                                ("disputer_reward_bps", number(p.events.disputerRewardBasisPoints))])),
            ("rewards", .object([("block_reward", amount(p.rewards.blockReward)),
                                 ("operators_share_bps", number(p.rewards.operatorsShareBasisPoints)),
                                 ("treasury_share_bps", number(p.rewards.treasuryShareBasisPoints)),
                                 ("gateway_share_bps", number(p.rewards.gatewayShareBasisPoints))])),
            ("fees", .object([("min_fee", amount(p.fees.minFee))])),
        ])
        return .object([
            ("chain_id", .string(chainID)),
            ("genesis_time_unix_ms", number(genesisTimeUnixMilliseconds)),
            ("params", params),
            ("accounts", .array(accounts.map { .object([("address", .string($0.address.hex)), ("balance", amount($0.balance))]) })),
            ("validators", .array(validators.map {
                .object([("moniker", .string($0.moniker)), ("address", .string($0.address.hex)),
                         ("consensus_key", .string($0.consensusKey.hex)), ("node_id", .string($0.nodeID.hex)),
                         ("stake", amount($0.stake)), ("gateway", .bool($0.gateway))])
            })),
        ])
    }
}

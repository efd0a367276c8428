import Foundation
import KCTypes
import Testing

struct GenesisTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func committed(_ name: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent("Genesis/\(name)"), encoding: .utf8)
    }

    /// The devnet genesis as JSON, with `edit` applied to its parsed form.
    static func devnetEdited(_ edit: (inout [String: Any]) -> Void) throws -> String {
        var object = try JSONSerialization.jsonObject(with: Data(try committed("devnet.json").utf8)) as! [String: Any]
        edit(&object)
        return String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    /// The devnet genesis with `fields` of `params` changed: section → field → value.
    static func devnetParams(_ fields: [String: [String: Any]]) throws -> String {
        try devnetEdited { object in
            var params = object["params"] as! [String: Any]
            for (section, values) in fields {
                var part = params[section] as! [String: Any]
                for (field, value) in values { part[field] = value }
                params[section] = part
            }
            object["params"] = params
        }
    }

    static func failure(_ text: String) -> GenesisError? {
        do {
            _ = try GenesisLoader.load(json: text)
            return nil
        } catch {
            return error
        }
    }

    @Test func committedGenesisFilesLoad() throws {
        let devnet = try GenesisLoader.load(json: try Self.committed("devnet.json"))
        #expect(devnet.chainID == "membria-devnet-1")
        #expect(devnet.validators.count == 5)
        #expect(devnet.validators.allSatisfy { $0.gateway })
        #expect(devnet.accounts.count > devnet.validators.count)  // plus funded user accounts
        // Short windows: a whole lifecycle fits in about a minute.
        #expect(devnet.parameters.events.attestationPeriodMilliseconds + devnet.parameters.events.challengeWindowMilliseconds <= 60_000)

        let mainnet = try GenesisLoader.load(json: try Self.committed("mainnet-example.json"))
        #expect(mainnet.parameters.events.challengeWindowMilliseconds == 24 * 3600 * 1000)
        #expect(mainnet.parameters.staking.minValidatorStake == .acti(10_000))
        #expect(mainnet.parameters.staking.minGatewayStake == .acti(10_000))
        #expect(mainnet.parameters.rewards.operatorsShareBasisPoints == 7_000)
        #expect(mainnet.parameters.rewards.treasuryShareBasisPoints == 3_000)
        #expect(mainnet.parameters.staking.unbondingPeriodMilliseconds > 0)
        #expect(mainnet.parameters.slashing.doubleSignSlashBasisPoints > mainnet.parameters.slashing.downtimeSlashBasisPoints)
    }

    @Test func jsonRenderingLoadsBackToTheSameGenesis() throws {
        let devnet = try GenesisLoader.load(json: try Self.committed("devnet.json"))
        let again = try GenesisLoader.load(json: devnet.json.rendered())
        #expect(again == devnet)
        #expect(again.hash == devnet.hash)
    }

    @Test func hashChangesWithAnyParameter() throws {
        let devnet = try GenesisLoader.load(json: try Self.committed("devnet.json"))
        var changed = devnet
        changed.parameters.events.maxParents += 1
        #expect(changed.hash != devnet.hash)
    }

    @Test func unknownFieldIsNamed() throws {
        let text = try Self.devnetEdited { object in
            var params = object["params"] as! [String: Any]
            var staking = params["staking"] as! [String: Any]
            staking["min_validatr_stake"] = "1ACTI"
            params["staking"] = staking
            object["params"] = params
        }
        let error = try #require(Self.failure(text))
        #expect(error.field == "params.staking.min_validatr_stake")
        #expect(error.message.contains("unknown field"))
    }

    /// Stake that voted must still be there when its vote is judged: an unbonding period
    /// shorter than attestation + challenge window + re-vote is refused, naming both numbers;
    /// so are zero minimum stakes and a zero dispute bond.
    @Test func anUnbondingPeriodShorterThanAnEventsLifeIsRefused() throws {
        let life: [String: Any] = ["attestation_period_ms": 20_000, "challenge_window_ms": 30_000, "revote_period_ms": 15_000]
        let short = try Self.devnetParams(["events": life, "staking": ["unbonding_period_ms": 64_999]])
        let error = try #require(Self.failure(short))
        #expect(error.field == "params.staking.unbonding_period_ms")
        #expect(error.message.contains("64999") && error.message.contains("65000"), "\(error.message)")
        let exact = try Self.devnetParams(["events": life, "staking": ["unbonding_period_ms": 65_000],
                                           "slashing": ["max_evidence_age_ms": 60_000]])
        #expect(Self.failure(exact) == nil, "an unbonding period equal to the event's life is enough")
        for (section, field) in [("events", "min_dispute_bond"), ("staking", "min_gateway_stake"), ("staking", "min_validator_stake")] {
            let zero = try Self.devnetParams([section: [field: "0ACTI"]])
            #expect(Self.failure(zero)?.field == "params.\(section).\(field)", "\(field) = 0 must be refused")
        }
    }

    /// Evidence must expire before the stake that signed can leave: a window longer than the
    /// unbonding period would let a double signer withdraw first.
    @Test func anEvidenceWindowLongerThanUnbondingIsRefused() throws {
        let text = try Self.devnetEdited { object in
            var params = object["params"] as! [String: Any]
            var slashing = params["slashing"] as! [String: Any]
            let staking = params["staking"] as! [String: Any]
            slashing["max_evidence_age_ms"] = (staking["unbonding_period_ms"] as! Int) + 1
            params["slashing"] = slashing
            object["params"] = params
        }
        let error = try #require(Self.failure(text))
        #expect(error.field == "params.slashing.max_evidence_age_ms")
        #expect(error.message.contains("unbonding_period_ms"))
        let zero = try Self.devnetEdited { object in
            var params = object["params"] as! [String: Any]
            var slashing = params["slashing"] as! [String: Any]
            slashing["max_evidence_age_blocks"] = 0
            params["slashing"] = slashing
            object["params"] = params
        }
        #expect(Self.failure(zero)?.field == "params.slashing.max_evidence_age_blocks")
    }

    @Test func unknownTopLevelFieldIsNamed() throws {
        let text = try Self.devnetEdited { $0["extra"] = 1 }
        #expect(Self.failure(text)?.field == "extra")
    }

    @Test func badAmountIsNamed() throws {
        let text = try Self.devnetEdited { object in
            var accounts = object["accounts"] as! [[String: Any]]
            accounts[1]["balance"] = "12.5.3ACTI"
            object["accounts"] = accounts
        }
        let error = try #require(Self.failure(text))
        #expect(error.field == "accounts[1].balance")
        #expect(error.description.contains("12.5.3ACTI"))
    }

    @Test func amountAsJSONNumberIsRefused() throws {
        let text = try Self.devnetEdited { object in
            var accounts = object["accounts"] as! [[String: Any]]
            accounts[0]["balance"] = 1000
            object["accounts"] = accounts
        }
        let error = try #require(Self.failure(text))
        #expect(error.field == "accounts[0].balance")
        #expect(error.message.contains("amounts are strings"))
    }

    @Test func duplicateJSONKeyIsRefused() throws {
        let original = try Self.committed("devnet.json")
        let text = original.replacingOccurrences(of: "\"chain_id\": \"membria-devnet-1\",",
                                                 with: "\"chain_id\": \"membria-devnet-1\", \"chain_id\": \"other\",")
        #expect(text != original)
        let error = try #require(Self.failure(text))
        #expect(error.message.contains("duplicate key \"chain_id\""))
    }

    @Test func duplicateAccountIsRefused() throws {
        let text = try Self.devnetEdited { object in
            var accounts = object["accounts"] as! [[String: Any]]
            accounts.append(accounts[0])
            object["accounts"] = accounts
        }
        let error = try #require(Self.failure(text))
        #expect(error.field.hasSuffix(".address") && error.field.hasPrefix("accounts["))
        #expect(error.message.contains("duplicate account"))
    }

    @Test func duplicateValidatorKeysAreRefused() throws {
        for field in ["address", "consensus_key", "node_id"] {
            let text = try Self.devnetEdited { object in
                var validators = object["validators"] as! [[String: Any]]
                validators[3][field] = validators[1][field]
                object["validators"] = validators
            }
            let error = try #require(Self.failure(text))
            #expect(error.field == "validators[3].\(field)")
            #expect(error.message.contains("duplicate"))
        }
    }

    @Test func stakeUnderTheMinimumIsRefused() throws {
        let text = try Self.devnetEdited { object in
            var validators = object["validators"] as! [[String: Any]]
            validators[2]["stake"] = "5000ACTI"
            object["validators"] = validators
        }
        let error = try #require(Self.failure(text))
        #expect(error.field == "validators[2].stake")
        #expect(error.message == "stake 5,000 ACTI is below the minimum validator stake 10,000 ACTI")
    }

    @Test func missingFieldWrongTypeAndRangesAreNamed() throws {
        let missing = try Self.devnetEdited { $0["chain_id"] = nil }
        #expect(Self.failure(missing) == GenesisError(field: "chain_id", message: "is required but missing"))

        let wrongType = try Self.devnetEdited { $0["genesis_time_unix_ms"] = "soon" }
        #expect(Self.failure(wrongType)?.field == "genesis_time_unix_ms")

        let badShare = try Self.devnetEdited { object in
            var params = object["params"] as! [String: Any]
            var rewards = params["rewards"] as! [String: Any]
            rewards["treasury_share_bps"] = 2000
            params["rewards"] = rewards
            object["params"] = params
        }
        #expect(Self.failure(badShare)?.field == "params.rewards")

        let overBasisPoints = try Self.devnetEdited { object in
            var params = object["params"] as! [String: Any]
            var slashing = params["slashing"] as! [String: Any]
            slashing["double_sign_slash_bps"] = 10_001
            params["slashing"] = slashing
            object["params"] = params
        }
        #expect(Self.failure(overBasisPoints)?.field == "params.slashing.double_sign_slash_bps")

        let badKey = try Self.devnetEdited { object in
            var validators = object["validators"] as! [[String: Any]]
            validators[0]["consensus_key"] = "abcd"
            object["validators"] = validators
        }
        #expect(Self.failure(badKey)?.field == "validators[0].consensus_key")

        let noValidators = try Self.devnetEdited { $0["validators"] = [] }
        #expect(Self.failure(noValidators)?.field == "validators")

        let badChain = try Self.devnetEdited { $0["chain_id"] = "Bad Chain!" }
        #expect(Self.failure(badChain)?.field == "chain_id")
    }

    @Test func malformedJSONGivesAPosition() {
        let error = Self.failure("{\n  \"chain_id\": \"x\",\n  oops\n}")
        #expect(error?.message.contains("line 3") == true)
        #expect(Self.failure("") != nil)
        #expect(Self.failure("[]")?.message.contains("expected an object") == true)
    }
}

struct StrictJSONTests {
    @Test func parsesAndKeepsNumbersExactly() throws {
        let value = try StrictJSON.parse(#"{"a": [1, 2.5, -3e2, true, null, "x\u00e9\n"], "big": 340282366920938463463374607431768211455}"#)
        guard case .object(let members) = value else { Issue.record("not an object"); return }
        #expect(members.map(\.0) == ["a", "big"])
        #expect(members[1].1 == .number("340282366920938463463374607431768211455"))
        #expect(members[0].1 == .array([.number("1"), .number("2.5"), .number("-3e2"), .bool(true), .null, .string("xé\n")]))
    }

    @Test func refusesWhatStrictJSONForbids() {
        for bad in ["{\"a\":1,\"a\":2}", "[1,]", "{\"a\" 1}", "01", "\"unterminated", "[1] 2", "{'a':1}", "\"\u{01}\"",
                    String(repeating: "[", count: 100) + String(repeating: "]", count: 100)] {
            #expect(throws: JSONSyntaxError.self, "\(bad) should be refused") { try StrictJSON.parse(bad) }
        }
    }

    @Test func renderingRoundTrips() throws {
        let value = JSONValue.object([("k", .string("q\"uote\\")), ("n", .array([.number("1"), .object([])]))])
        #expect(try StrictJSON.parse(value.rendered()) == value)
    }
}

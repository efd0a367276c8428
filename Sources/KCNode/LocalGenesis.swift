import KCCrypto
import KCTypes

/// Genesis values for development chains: short windows so that a whole event lifecycle
/// (propose, attest, challenge window, final) takes about a minute of block time. The
/// unbonding period (two minutes) covers an event's whole life (attestation 20 s, challenge
/// window 30 s, re-vote 15 s), as the loader requires.
public enum LocalGenesis {
    public static let developmentParameters = ChainParameters(
        block: .init(maxBytes: 4 << 20, maxTransactions: 10_000, maxTransactionBytes: 64 << 10),
        staking: .init(minValidatorStake: .acti(10_000), minGatewayStake: .acti(10_000), maxValidators: 50,
                       unbondingPeriodMilliseconds: 120_000, epochLengthBlocks: 30, validatorSetChangeDelayBlocks: 2),
        slashing: .init(doubleSignSlashBasisPoints: 500, downtimeSlashBasisPoints: 100, signedBlocksWindow: 50,
                        minSignedBasisPoints: 5_000, downtimeJailMilliseconds: 30_000, disputeSlashBasisPoints: 1_000,
                        maxEvidenceAgeBlocks: 10_000, maxEvidenceAgeMilliseconds: 60_000),
        events: .init(maxParents: 8, maxKindBytes: 64, attestationPeriodMilliseconds: 20_000,
                      challengeWindowMilliseconds: 30_000, revotePeriodMilliseconds: 15_000,
                      minDisputeBond: .acti(100), disputerRewardBasisPoints: 5_000),
        rewards: .init(blockReward: .acti(1), operatorsShareBasisPoints: 7_000, treasuryShareBasisPoints: 3_000,
                       gatewayShareBasisPoints: 5_000),
        fees: .init(minFee: Amount(units: 1_000_000_000_000_000 / 1_000)))

    /// A one-validator chain for `node init` without `--genesis`.
    public static func make(moniker: String, account: PublicKey, consensusKey: PublicKey, nodeID: PublicKey) -> Genesis {
        Genesis(chainID: "membria-local-" + String(account.hex.prefix(8)),
                genesisTimeUnixMilliseconds: 1_767_225_600_000,  // 2026-01-01T00:00:00Z
                parameters: developmentParameters,
                accounts: [GenesisAccount(address: account, balance: .acti(1_000_000))],
                validators: [GenesisValidator(moniker: moniker, address: account, consensusKey: consensusKey,
                                              nodeID: nodeID, stake: .acti(100_000), gateway: true)])
    }

    /// The committed `Genesis/devnet.json`: five validators that are also gateways, built
    /// from the well-known devnet keys, plus funded user accounts.
    public static func devnet(validatorCount: Int = 5, userCount: Int = 4) -> Genesis {
        var accounts: [GenesisAccount] = []
        var validators: [GenesisValidator] = []
        for index in 0..<validatorCount {
            let account = DevnetKeys.key(.account, index: index).publicKey
            accounts.append(GenesisAccount(address: account, balance: .acti(1_000_000)))
            validators.append(GenesisValidator(moniker: "devnet-\(index)", address: account,
                                               consensusKey: DevnetKeys.key(.validator, index: index).publicKey,
                                               nodeID: DevnetKeys.key(.node, index: index).publicKey,
                                               stake: .acti(100_000), gateway: true))
        }
        for index in 0..<userCount {
            accounts.append(GenesisAccount(address: DevnetKeys.user(index: index).publicKey, balance: .acti(1_000_000)))
        }
        return Genesis(chainID: "membria-devnet-1", genesisTimeUnixMilliseconds: 1_767_225_600_000,
                       parameters: developmentParameters, accounts: accounts, validators: validators)
    }
}

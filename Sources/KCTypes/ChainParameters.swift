import KCCodec

/// Every rule parameter of the chain. All come from the genesis file (their JSON names are in
/// `specs/genesis.md`); none is read from local configuration, so every node applies the same.
/// Durations are in milliseconds of block time; fractions are in basis points (1/10,000).
public struct ChainParameters: Equatable, Sendable {
    public struct Block: Equatable, Sendable {
        public var maxBytes: UInt32
        public var maxTransactions: UInt32
        public var maxTransactionBytes: UInt32

        public init(maxBytes: UInt32, maxTransactions: UInt32, maxTransactionBytes: UInt32) {
            self.maxBytes = maxBytes
            self.maxTransactions = maxTransactions
            self.maxTransactionBytes = maxTransactionBytes
        }
    }

    public struct Staking: Equatable, Sendable {
        public var minValidatorStake: Amount
        public var minGatewayStake: Amount
        public var maxValidators: UInt32
        public var unbondingPeriodMilliseconds: UInt64
        public var epochLengthBlocks: UInt64
        /// A validator-set change decided at height h takes effect at h + this delay.
        public var validatorSetChangeDelayBlocks: UInt64

        public init(minValidatorStake: Amount, minGatewayStake: Amount, maxValidators: UInt32, unbondingPeriodMilliseconds: UInt64, epochLengthBlocks: UInt64, validatorSetChangeDelayBlocks: UInt64) {
            self.minValidatorStake = minValidatorStake
            self.minGatewayStake = minGatewayStake
            self.maxValidators = maxValidators
            self.unbondingPeriodMilliseconds = unbondingPeriodMilliseconds
            self.epochLengthBlocks = epochLengthBlocks
            self.validatorSetChangeDelayBlocks = validatorSetChangeDelayBlocks
        }
    }

    public struct Slashing: Equatable, Sendable {
        public var doubleSignSlashBasisPoints: UInt32
        public var downtimeSlashBasisPoints: UInt32
        public var signedBlocksWindow: UInt64
        public var minSignedBasisPoints: UInt32
        public var downtimeJailMilliseconds: UInt64
        /// Slash of gateways that attested `valid` on an event whose dispute is upheld.
        public var disputeSlashBasisPoints: UInt32
        /// Double-sign evidence older than this many blocks, or than `maxEvidenceAgeMilliseconds`
        /// of block time, is expired: no block may carry it.
        public var maxEvidenceAgeBlocks: UInt64
        public var maxEvidenceAgeMilliseconds: UInt64

        public init(doubleSignSlashBasisPoints: UInt32, downtimeSlashBasisPoints: UInt32, signedBlocksWindow: UInt64, minSignedBasisPoints: UInt32, downtimeJailMilliseconds: UInt64, disputeSlashBasisPoints: UInt32, maxEvidenceAgeBlocks: UInt64, maxEvidenceAgeMilliseconds: UInt64) {
            self.doubleSignSlashBasisPoints = doubleSignSlashBasisPoints
            self.downtimeSlashBasisPoints = downtimeSlashBasisPoints
            self.signedBlocksWindow = signedBlocksWindow
            self.minSignedBasisPoints = minSignedBasisPoints
            self.downtimeJailMilliseconds = downtimeJailMilliseconds
            self.disputeSlashBasisPoints = disputeSlashBasisPoints
            self.maxEvidenceAgeBlocks = maxEvidenceAgeBlocks
            self.maxEvidenceAgeMilliseconds = maxEvidenceAgeMilliseconds
        }
    }

    public struct Events: Equatable, Sendable {
        public var maxParents: UInt32
        public var maxKindBytes: UInt32
        public var attestationPeriodMilliseconds: UInt64
        public var challengeWindowMilliseconds: UInt64
        public var revotePeriodMilliseconds: UInt64
        public var minDisputeBond: Amount
        /// The disputer's share of the amount slashed when a dispute is upheld.
        public var disputerRewardBasisPoints: UInt32

        public init(maxParents: UInt32, maxKindBytes: UInt32, attestationPeriodMilliseconds: UInt64, challengeWindowMilliseconds: UInt64, revotePeriodMilliseconds: UInt64, minDisputeBond: Amount, disputerRewardBasisPoints: UInt32) {
            self.maxParents = maxParents
            self.maxKindBytes = maxKindBytes
            self.attestationPeriodMilliseconds = attestationPeriodMilliseconds
            self.challengeWindowMilliseconds = challengeWindowMilliseconds
            self.revotePeriodMilliseconds = revotePeriodMilliseconds
            self.minDisputeBond = minDisputeBond
            self.disputerRewardBasisPoints = disputerRewardBasisPoints
        }
    }

    public struct Rewards: Equatable, Sendable {
        public var blockReward: Amount
        public var operatorsShareBasisPoints: UInt32
        public var treasuryShareBasisPoints: UInt32
        /// The gateways' pool: this share of the operators' part; validators get the rest.
        public var gatewayShareBasisPoints: UInt32

        public init(blockReward: Amount, operatorsShareBasisPoints: UInt32, treasuryShareBasisPoints: UInt32,
                    gatewayShareBasisPoints: UInt32) {
            self.blockReward = blockReward
            self.operatorsShareBasisPoints = operatorsShareBasisPoints
            self.treasuryShareBasisPoints = treasuryShareBasisPoints
            self.gatewayShareBasisPoints = gatewayShareBasisPoints
        }
    }

    public struct Fees: Equatable, Sendable {
        public var minFee: Amount

        public init(minFee: Amount) {
            self.minFee = minFee
        }
    }

    public var block: Block
    public var staking: Staking
    public var slashing: Slashing
    public var events: Events
    public var rewards: Rewards
    public var fees: Fees

    public init(block: Block, staking: Staking, slashing: Slashing, events: Events, rewards: Rewards, fees: Fees) {
        self.block = block
        self.staking = staking
        self.slashing = slashing
        self.events = events
        self.rewards = rewards
        self.fees = fees
    }
}

extension ChainParameters: CanonicalEncodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.write(block.maxBytes)
        writer.write(block.maxTransactions)
        writer.write(block.maxTransactionBytes)
        writer.write(staking.minValidatorStake)
        writer.write(staking.minGatewayStake)
        writer.write(staking.maxValidators)
        writer.write(staking.unbondingPeriodMilliseconds)
        writer.write(staking.epochLengthBlocks)
        writer.write(staking.validatorSetChangeDelayBlocks)
        writer.write(slashing.doubleSignSlashBasisPoints)
        writer.write(slashing.downtimeSlashBasisPoints)
        writer.write(slashing.signedBlocksWindow)
        writer.write(slashing.minSignedBasisPoints)
        writer.write(slashing.downtimeJailMilliseconds)
        writer.write(slashing.disputeSlashBasisPoints)
        writer.write(slashing.maxEvidenceAgeBlocks)
        writer.write(slashing.maxEvidenceAgeMilliseconds)
        writer.write(events.maxParents)
        writer.write(events.maxKindBytes)
        writer.write(events.attestationPeriodMilliseconds)
        writer.write(events.challengeWindowMilliseconds)
        writer.write(events.revotePeriodMilliseconds)
        writer.write(events.minDisputeBond)
        writer.write(events.disputerRewardBasisPoints)
        writer.write(rewards.blockReward)
        writer.write(rewards.operatorsShareBasisPoints)
        writer.write(rewards.treasuryShareBasisPoints)
        writer.write(rewards.gatewayShareBasisPoints)
        writer.write(fees.minFee)
    }
}

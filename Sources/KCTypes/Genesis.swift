import KCCodec
import KCCrypto

/// An account funded at genesis.
public struct GenesisAccount: Equatable, Sendable {
    public var address: PublicKey
    public var balance: Amount

    public init(address: PublicKey, balance: Amount) {
        self.address = address
        self.balance = balance
    }
}

/// A validator in the genesis set. Its stake is bonded from `address`; with `gateway` it is
/// also registered as a gateway from the first block.
public struct GenesisValidator: Equatable, Sendable {
    public var moniker: String
    /// The account that owns the stake and receives rewards.
    public var address: PublicKey
    /// The key that signs consensus votes.
    public var consensusKey: PublicKey
    /// The node's P2P identity key (its node id).
    public var nodeID: PublicKey
    public var stake: Amount
    public var gateway: Bool

    public init(moniker: String, address: PublicKey, consensusKey: PublicKey, nodeID: PublicKey, stake: Amount, gateway: Bool) {
        self.moniker = moniker
        self.address = address
        self.consensusKey = consensusKey
        self.nodeID = nodeID
        self.stake = stake
        self.gateway = gateway
    }
}

/// The genesis file: the chain's identity, its parameters and its first state.
public struct Genesis: Equatable, Sendable {
    public var chainID: String
    public var genesisTimeUnixMilliseconds: UInt64
    public var parameters: ChainParameters
    public var accounts: [GenesisAccount]
    public var validators: [GenesisValidator]

    /// BLAKE2b-256 of the canonical encoding: peers with different genesis hashes are on
    /// different chains and refuse each other.
    public var hash: Hash256 { Blake2b.hash256(canonicalBytes) }

    /// Total supply at genesis: balances plus bonded stake. Nil on overflow (the loader
    /// rejects such a file, so a loaded genesis always has a total).
    public var totalSupply: Amount? {
        var total = Amount.zero
        for account in accounts {
            guard let sum = total.adding(account.balance) else { return nil }
            total = sum
        }
        for validator in validators {
            guard let sum = total.adding(validator.stake) else { return nil }
            total = sum
        }
        return total
    }

    public init(chainID: String, genesisTimeUnixMilliseconds: UInt64, parameters: ChainParameters, accounts: [GenesisAccount], validators: [GenesisValidator]) {
        self.chainID = chainID
        self.genesisTimeUnixMilliseconds = genesisTimeUnixMilliseconds
        self.parameters = parameters
        self.accounts = accounts
        self.validators = validators
    }
}

extension Genesis: CanonicalEncodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.writeString(chainID)
        writer.write(genesisTimeUnixMilliseconds)
        writer.write(parameters)
        writer.writeLength(accounts.count)
        for account in accounts {
            writer.write(account.address)
            writer.write(account.balance)
        }
        writer.writeLength(validators.count)
        for validator in validators {
            writer.writeString(validator.moniker)
            writer.write(validator.address)
            writer.write(validator.consensusKey)
            writer.write(validator.nodeID)
            writer.write(validator.stake)
            writer.write(validator.gateway)
        }
    }
}

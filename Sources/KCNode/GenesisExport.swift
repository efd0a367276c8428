import KCCrypto
import KCRuntime
import KCTypes

/// `node export-genesis`: a state as the genesis of a new chain (a restart after a halt, a
/// fork for a testnet). The genesis format holds balances and a validator set only, so the
/// export keeps every account's holdings and the active validators' stake, and reports
/// everything it cannot carry: the pools (reward pot, treasury, dispute escrow), events,
/// disputes and jail state. Balances: balance + unbonding + bonded stake that is not a
/// validator's in the new set (gateway-only stake, jailed validators). See specs/genesis.md.
public enum GenesisExport {
    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    public struct Result: Sendable {
        public let genesis: Genesis
        /// What the new genesis does not carry, one line each, for the operator.
        public let dropped: [String]
        public let height: UInt64
    }

    /// `state` at some height of the chain of `old`; `nodeIDs` gives the node id of validators
    /// that were not in the old genesis (the chain does not record node ids).
    public static func export(state: ChainState, old: Genesis, chainID: String, genesisTimeMilliseconds: UInt64?,
                              nodeIDs: [PublicKey: PublicKey]) throws(Failure) -> Result {
        guard chainID != old.chainID else {
            throw Failure(message: "the new chain needs its own chain id (\(chainID) is this chain's): signatures made for one chain must not be valid on the other")
        }
        let known = Dictionary(old.validators.map { ($0.address, $0) }, uniquingKeysWith: { first, _ in first })
        let active = state.validatorSets().current
        var validators: [GenesisValidator] = []
        var missingNodeIDs: [String] = []
        for entry in active.sorted(by: { $0.address < $1.address }) {
            let stake = state.stake(entry.address)
            guard let nodeID = nodeIDs[entry.address] ?? known[entry.address]?.nodeID else {
                missingNodeIDs.append(entry.address.hex)
                continue
            }
            validators.append(GenesisValidator(moniker: known[entry.address]?.moniker ?? "validator-\(entry.address.hex.prefix(8))",
                                               address: entry.address, consensusKey: entry.consensusKey, nodeID: nodeID,
                                               stake: stake.bonded, gateway: stake.isGateway))
        }
        guard missingNodeIDs.isEmpty else {
            throw Failure(message: "the chain does not record node ids; give one for each validator that was not in the genesis: "
                          + missingNodeIDs.map { "--node-id \($0)=NODE_ID" }.joined(separator: " "))
        }
        let inSet = Set(validators.map(\.address))
        var accounts: [GenesisAccount] = []
        var paidOutStake = Amount.zero, unbonding = Amount.zero, gatewaysDropped = 0, jailed = 0
        for holding in state.holdings() {
            var balance = holding.balance
            func add(_ amount: Amount) throws(Failure) {
                guard let sum = balance.adding(amount) else { throw Failure(message: "the holdings of \(holding.address.hex) overflow") }
                balance = sum
            }
            try add(holding.stake.unbondingTotal)
            unbonding = unbonding.adding(holding.stake.unbondingTotal) ?? unbonding
            if !inSet.contains(holding.address) && holding.stake.bonded > .zero {
                try add(holding.stake.bonded)
                paidOutStake = paidOutStake.adding(holding.stake.bonded) ?? paidOutStake
                if holding.stake.isGateway { gatewaysDropped += 1 }
                if state.validator(holding.address)?.jailed == true { jailed += 1 }
            }
            if balance > .zero { accounts.append(GenesisAccount(address: holding.address, balance: balance)) }
        }
        let global = state.global
        var genesis = old
        genesis.chainID = chainID
        genesis.genesisTimeUnixMilliseconds = genesisTimeMilliseconds ?? global.timeMilliseconds
        genesis.accounts = accounts
        genesis.validators = validators
        // The loader is the judge: the export must be a genesis a node accepts.
        do { genesis = try GenesisLoader.load(json: genesis.json.rendered()) } catch {
            throw Failure(message: "the exported genesis would not load: \(error)")
        }
        var dropped: [String] = []
        for (name, amount) in [("reward pot", global.rewardPot), ("treasury", global.treasury), ("dispute escrow", global.disputeEscrow)] where amount > .zero {
            dropped.append("\(name): \(amount) (no genesis field holds it; it is not in the new supply)")
        }
        if unbonding > .zero { dropped.append("unbonding entries: \(unbonding), paid out to their owners' balances") }
        if paidOutStake > .zero {
            dropped.append("bonded stake outside the new validator set: \(paidOutStake), paid out to balances (\(gatewaysDropped) gateway(s) that are not validators must register again; \(jailed) jailed validator(s))")
        }
        let events = state.count(prefix: "event/"), disputes = state.count(prefix: "disp/")
        if events > 0 || disputes > 0 { dropped.append("\(events) knowledge event(s) and \(disputes) dispute(s): the new chain starts without them") }
        dropped.append("account nonces restart at 0 (the new chain id keeps old signatures from replaying)")
        return Result(genesis: genesis, dropped: dropped, height: global.height)
    }
}

import KCCodec
import KCCrypto
import KCTypes

/// Whole-state checks for tests, the simulator and operators: slow (they read every entry),
/// never part of block execution.
extension ChainState {
    public struct SupplyAudit: Equatable, Sendable {
        public var balances = Amount.zero
        public var bonded = Amount.zero
        public var unbonding = Amount.zero
        public var rewardPot = Amount.zero
        public var treasury = Amount.zero
        public var disputeEscrow = Amount.zero
        /// genesis supply + minted − burned, as the global record tracks it.
        public var expected = Amount.zero

        public var total: Amount? {
            balances.adding(bonded)?.adding(unbonding)?.adding(rewardPot)?.adding(treasury)?.adding(disputeEscrow)
        }

        /// balances + bonded + unbonding + pot + treasury + escrow == genesis + minted − burned.
        public var isConserved: Bool { total == expected }
    }

    public var global: GlobalRecord {
        guard let record = decode(GlobalRecord.self, at: StateKey.global) else { preconditionFailure("state has no global record") }
        return record
    }

    public func auditSupply() -> SupplyAudit {
        var audit = SupplyAudit()
        let accountPrefix = Array("acct/".utf8), stakePrefix = Array("stake/".utf8)
        forEachEntry { key, value in
            if key.hasPrefix(accountPrefix) {
                let record = try! AccountRecord.decode(exactly: value)
                audit.balances = audit.balances.adding(record.balance)!
            } else if key.hasPrefix(stakePrefix) {
                let record = try! StakeRecord.decode(exactly: value)
                audit.bonded = audit.bonded.adding(record.bonded)!
                audit.unbonding = audit.unbonding.adding(record.unbondingTotal)!
            }
        }
        let global = self.global
        audit.rewardPot = global.rewardPot
        audit.treasury = global.treasury
        audit.disputeEscrow = global.disputeEscrow
        audit.expected = global.expectedSupply ?? .zero
        return audit
    }

    /// Every address that holds an account or a stake record, in address order, with its
    /// balance and stake (for exporting the state as a new genesis).
    public func holdings() -> [(address: PublicKey, balance: Amount, stake: StakeRecord)] {
        let accountPrefix = Array("acct/".utf8), stakePrefix = Array("stake/".utf8)
        var addresses = Set<PublicKey>()
        forEachEntry { key, _ in
            let bytes = key.bytes
            if key.hasPrefix(accountPrefix) { addresses.insert(PublicKey(Bytes32(bytes[accountPrefix.count...]))) }
            else if key.hasPrefix(stakePrefix) { addresses.insert(PublicKey(Bytes32(bytes[stakePrefix.count...]))) }
        }
        return addresses.sorted().map { ($0, account($0).balance, stake($0)) }
    }

    /// How many state entries start with `prefix` (e.g. "event/", "disp/").
    public func count(prefix: String) -> Int {
        let bytes = Array(prefix.utf8)
        var count = 0
        forEachEntry { key, _ in if key.hasPrefix(bytes) { count += 1 } }
        return count
    }

    // Typed reads for tests, RPC and the node.
    public func account(_ address: PublicKey) -> AccountRecord { decode(AccountRecord.self, at: StateKey.account(address)) ?? AccountRecord() }
    public func stake(_ address: PublicKey) -> StakeRecord { decode(StakeRecord.self, at: StateKey.stake(address)) ?? StakeRecord() }
    public func validator(_ address: PublicKey) -> ValidatorRecord? { decode(ValidatorRecord.self, at: StateKey.validator(address)) }
    public func event(_ id: Hash256) -> EventRecord? { decode(EventRecord.self, at: StateKey.event(id)) }
    public func dispute(_ id: Hash256) -> DisputeRecord? { decode(DisputeRecord.self, at: StateKey.dispute(id)) }
    public func validatorSets() -> ValidatorSets {
        guard let sets = decode(ValidatorSets.self, at: StateKey.validatorSets) else { preconditionFailure("state has no validator sets") }
        return sets
    }
    public func gateway(_ address: PublicKey) -> GatewayRecord? { decode(GatewayRecord.self, at: StateKey.gateway(address)) }
    public func epoch(_ number: UInt64) -> EpochRecord? { decode(EpochRecord.self, at: StateKey.epoch(number)) }
    public func gatewayHistory(_ address: PublicKey) -> GatewayHistory? { decode(GatewayHistory.self, at: StateKey.gatewayHistory(address)) }
    public func jury(_ dispute: Hash256) -> JuryRecord? { decode(JuryRecord.self, at: StateKey.jury(dispute)) }
    public func eventVote(_ event: Hash256, _ voter: PublicKey) -> EventVote? {
        self.event(event)?.vote(of: voter, event: event) { decode(EventVote.self, at: $0) }
    }
    /// The valid or invalid voters of an event, in the order they voted.
    public func voters(_ event: Hash256, _ verdict: Verdict) -> [VoterEntry] {
        guard let record = self.event(event) else { return [] }
        return voters(event, record, verdict)
    }

    /// The same, for a record already read.
    func voters(_ event: Hash256, _ record: EventRecord, _ verdict: Verdict) -> [VoterEntry] {
        let count = verdict == .valid ? record.validCount : record.invalidCount
        return (0..<count).compactMap { record.voter(verdict, at: $0, event: event) { decode(VoterEntry.self, at: $0) } }
    }
    public var gatewayRegistry: [PublicKey] { registryMembers(.gateways, count: global.gatewayCount) }
    public var validatorRegistry: [PublicKey] { registryMembers(.validators, count: global.validatorCount) }
}

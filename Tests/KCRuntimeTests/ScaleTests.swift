import KCCodec
import KCCrypto
@testable import KCRuntime
import KCTypes
import Testing

/// The rules at the sizes a public network reaches: tens of thousands of gateways voting on
/// one event, a dispute that slashes every one of them, an epoch that pays them, and the
/// registries filled to their capacity.
struct ScaleTests {
    static func keys(_ prefix: String, _ count: Int) -> [SigningKey] { (0..<count).map { testKey("\(prefix)-\($0)") } }

    /// Runs `calls` (one per key, each key's next nonce) in blocks of `perBlock`; every one must succeed.
    static func run(_ chain: inout TestChain, _ calls: [(SigningKey, Call)], perBlock: Int = 2_000) throws {
        for start in stride(from: 0, to: calls.count, by: perBlock) {
            let batch = calls[start..<min(start + perBlock, calls.count)].map { chain.transaction($0.0, $0.1) }
            let outcome = try chain.block(batch)
            let failed = outcome.receipts.filter { !$0.succeeded }
            #expect(failed.isEmpty, "\(failed.count) failed, first: \(failed.first?.message ?? "")")
        }
    }

    @Test func twentyThousandGatewaysVoteAreSlashedAndPaid() throws {
        let count = 20_000
        let gateways = Self.keys("scale-gateway", count)
        var chain = TestChain(genesis: TestChain.genesis(extraAccounts: gateways.map {
            GenesisAccount(address: $0.publicKey, balance: .acti(20_000))
        }))
        chain.auditing = false
        try Self.run(&chain, gateways.flatMap { [($0, Call.bond(amount: .acti(10_000))), ($0, .registerGateway)] })
        #expect(chain.state.global.gatewayCount == UInt32(count + 4))
        // They vote from the next epoch on.
        let joined = chain.state.global.epoch
        while chain.state.global.epoch == joined { try chain.block() }
        let total = Amount.acti(400_000 + 10_000 * UInt64(count))
        #expect(chain.state.epoch(chain.state.global.epoch)?.gatewayTotal == total)

        // One event; every new gateway votes valid, 2,000 a block. The event record holds its
        // first votes (ADR 0019) and then keeps its size; each later vote writes the same few
        // entries, whatever the number before it.
        let event = try chain.propose(g[0], label: "popular")
        let recordSize = chain.state.get(StateKey.event(event))?.count
        var writesPerBlock: [Int] = []
        for start in stride(from: 0, to: count, by: 2_000) {
            let votes = gateways[start..<(start + 2_000)].map { chain.transaction($0, .attest(votes: [AttestationVote(eventID: event, verdict: .valid)])) }
            try chain.block(votes)
            writesPerBlock.append(chain.lastExecuted!.changes.count)
            if chain.status(event) != .pending { break }
        }
        let record = try #require(chain.state.event(event))
        #expect(record.status == .accepted)
        let inlineBytes = InlineVote(voter: g[0].publicKey, verdict: .valid, weight: .acti(1)).canonicalBytes.count * EventRecord.inlineVoteLimit
        #expect(chain.state.get(StateKey.event(event))?.count == recordSize.map { $0 + inlineBytes }, "the event record grows only by its inline votes")
        #expect(Set(writesPerBlock.dropFirst().dropLast()).count == 1, "2,000 votes write as many entries at any point: \(writesPerBlock)")
        #expect(writesPerBlock[0] < writesPerBlock[1], "the first votes, held in the record, write no entries of their own")
        #expect(record.validCount > 10_000, "past the old decoder limit of 10,000 voters")
        #expect(chain.state.decodeEveryEntry().isEmpty)

        // The validators g1..g3 are not accused (they did not vote): they are the jury, and uphold.
        #expect(try chain.submit(u[0], .dispute(eventID: event, bond: .acti(100), reason: arTxID("wrong"))).succeeded)
        let dispute = try chain.disputeID(of: event)
        #expect(chain.state.dispute(dispute)?.mode == .validators)
        let votes = [g[1], g[2]].map { chain.transaction($0, .voteDispute(disputeID: dispute, uphold: true)) }
        try chain.block(votes)
        #expect(chain.status(event) == .disputed)
        let upheld = try chain.block([chain.transaction(g[3], .voteDispute(disputeID: dispute, uphold: true))])
        #expect(chain.status(event) == .rejected)
        let slashed = upheld.slashes.filter { $0.reason == .lostDispute }
        #expect(slashed.count == Int(record.validCount) + 1, "every valid voter and the author")
        #expect(slashed.filter { $0.address != g[0].publicKey }.allSatisfy { $0.amount == .acti(1_000) }, "10% of the 10,000 each voted with")
        chain.audit(upheld)

        // An epoch end pays the registry's 20,004 gateways and 4 validators.
        let epoch = chain.state.global.epoch
        while chain.state.global.epoch == epoch { try chain.block() }
        chain.audit(chain.outcomes.last!)
    }

    /// Each registry holds its capacity (10,000 validators, 100,000 gateways): the next
    /// registration is refused with the registry's own code and leaves nothing behind; a member
    /// leaving makes room, its place taken by the last.
    @Test(arguments: Registry.allCases)
    func aRegistryStopsAtItsCapacity(registry: Registry) throws {
        let capacity = Int(registry.capacity)
        let candidates = Self.keys("scale-\(registry.name)", capacity - 4 + 1)
        var chain = TestChain(genesis: TestChain.genesis(extraAccounts: candidates.map {
            GenesisAccount(address: $0.publicKey, balance: .acti(20_000))
        }))
        chain.auditing = false
        func register(_ key: SigningKey) -> Call {
            registry == .validators ? .registerValidator(consensusKey: testKey("scale-consensus-\(key.publicKey.hex)").publicKey) : .registerGateway
        }
        func member(_ key: SigningKey) -> UInt32? {
            registry == .validators ? chain.state.validator(key.publicKey)?.registryIndex : chain.state.gateway(key.publicKey)?.registryIndex
        }
        func members() -> [PublicKey] { registry == .validators ? chain.state.validatorRegistry : chain.state.gatewayRegistry }
        try Self.run(&chain, candidates.dropLast().flatMap { [($0, Call.bond(amount: .acti(10_000))), ($0, register($0))] })
        #expect(members().count == capacity)
        let last = candidates.last!
        #expect(try chain.submit(last, .bond(amount: .acti(10_000))).succeeded)
        let refused = try chain.submit(last, register(last))
        #expect(refused.code == (registry == .validators ? .validatorRegistryFull : .gatewayRegistryFull))
        #expect(member(last) == nil && chain.state.validator(last.publicKey) == nil && !chain.state.stake(last.publicKey).isGateway,
                "a refused registration leaves nothing")
        // The first of them leaves: the last member moves into its place, and there is room.
        let leaving = candidates[0]
        let position = try #require(member(leaving))
        #expect(try chain.submit(leaving, .unbond(amount: .acti(10_000))).succeeded)
        let moved = members()[Int(position)]
        #expect(registry == .validators ? chain.state.validator(moved)?.registryIndex == position : chain.state.gateway(moved)?.registryIndex == position)
        #expect(try chain.submit(last, register(last)).succeeded)
        #expect(members().count == capacity)
        chain.audit(chain.outcomes.last!)
        // An epoch end computes the set from the full registry: still the top 4 by stake.
        while chain.state.global.epoch < 1 { try chain.block() }
        #expect(chain.state.validatorSets().scheduled.last.map { $0.validators.count } ?? 4 == 4)
    }
}

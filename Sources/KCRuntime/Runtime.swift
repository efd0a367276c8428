import KCCodec
import KCCrypto
import KCTypes

/// The knowledge-chain rules: turns a block of transactions into the next state.
///
/// Pure and deterministic: no clock (time comes in `BlockContext`), no I/O, no randomness,
/// no floating point, and no iteration over unordered collections that could reach the state.
/// `execute` never changes the state it is given; the caller commits the result once the
/// block is decided. specs/runtime.md is the specification of everything here.
public struct Runtime: Sendable {
    public let chainID: String
    public let parameters: ChainParameters
    public let genesis: Genesis
    /// Test-only fault injection: one rule deliberately broken, to prove that the property
    /// tests and the rule audit catch it. Never set outside tests (not public).
    var brokenRule: BrokenRule? = nil

    /// Precondition: the parameters are within the protocol's bounds, as the genesis loader
    /// checks them (the records that hold sets, windows and headers are sized by these bounds).
    public init(genesis: Genesis) {
        let parameters = genesis.parameters
        precondition(parameters.staking.maxValidators <= ValidatorSetEntry.maxSetSize, "max_validators beyond the set size a record holds")
        precondition(parameters.staking.validatorSetChangeDelayBlocks <= ScheduledValidatorSet.maxScheduled, "set change delay beyond the schedule a record holds")
        precondition(parameters.slashing.signedBlocksWindow <= 1_000_000, "signed-blocks window beyond what a validator record holds")
        precondition(parameters.events.maxParents <= UInt32(TransactionLimits.maxParents), "max_parents beyond what a header holds")
        precondition(parameters.events.maxKindBytes <= UInt32(TransactionLimits.maxKindBytes), "max_kind_bytes beyond what a header holds")
        precondition(parameters.staking.epochLengthBlocks >= 1, "an epoch has at least one block")
        self.genesis = genesis
        self.chainID = genesis.chainID
        self.parameters = parameters
    }

    /// The state at height 0.
    public func genesisState() -> ChainState {
        guard let supply = genesis.totalSupply else { preconditionFailure("genesis supply overflows; the loader refuses such files") }
        let global = GlobalRecord(height: 0, timeMilliseconds: genesis.genesisTimeUnixMilliseconds, genesisSupply: supply)
        var executor = BlockExecutor(runtime: self, state: ExecutionState(base: ChainState()), global: global,
                                     context: BlockContext(height: 0, timeMilliseconds: genesis.genesisTimeUnixMilliseconds))
        for account in genesis.accounts {
            executor.state.write(StateKey.account(account.address), AccountRecord(balance: account.balance))
        }
        for validator in genesis.validators {
            var stake = StakeRecord(bonded: validator.stake, consensusKey: validator.consensusKey)
            stake.isGateway = validator.gateway
            executor.state.write(StateKey.stake(validator.address), stake)
            executor.state.write(StateKey.consensusKey(validator.consensusKey), validator.address)
            // The loader allows at most `max_validators` (≤ 1,000) validators: the registries have room.
            do {
                var record = ValidatorRecord(consensusKey: validator.consensusKey, windowLength: parameters.slashing.signedBlocksWindow)
                record.registryIndex = try executor.registryAppend(.validators, validator.address)
                executor.state.write(StateKey.validator(validator.address), record)
                if validator.gateway {
                    let position = try executor.registryAppend(.gateways, validator.address)
                    executor.state.write(StateKey.gateway(validator.address), GatewayRecord(registryIndex: position))
                    executor.global.gatewayStake = executor.plus(executor.global.gatewayStake, validator.stake)
                }
            } catch {
                preconditionFailure("genesis registries overflow: \(error.message)")
            }
            if executor.state.get(StateKey.account(validator.address)) == nil {
                executor.state.write(StateKey.account(validator.address), AccountRecord())
            }
        }
        // Epoch 0's electorate: the genesis gateways.
        executor.openEpoch(0, startHeight: 1)
        executor.state.write(StateKey.global, executor.global)
        let initialSet = executor.computeValidatorSet()
        precondition(!initialSet.isEmpty, "genesis has no eligible validator")
        executor.state.write(StateKey.validatorSets, ValidatorSets(previous: initialSet, current: initialSet, currentSince: 1, scheduled: []))
        executor.state.write(StateKey.validatorSet(since: 1), HistoricValidatorSet(validators: initialSet))

        var entries: [StoreKey: [UInt8]] = [:]
        for (key, value) in executor.state.changes {
            if let value { entries[key] = value }
        }
        return ChainState(entries: entries)
    }

    /// Executes a block against `state` without changing it.
    public func execute(_ transactions: [VerifiedTransaction], context: BlockContext, on state: ChainState) throws(BlockError) -> ExecutedBlock {
        guard let global = state.decode(GlobalRecord.self, at: StateKey.global) else {
            preconditionFailure("state has no global record")
        }
        guard context.height == global.height + 1 else {
            throw .wrongHeight(expected: global.height + 1, found: context.height)
        }
        guard context.timeMilliseconds > global.timeMilliseconds else {
            throw .timeNotIncreasing(previous: global.timeMilliseconds, found: context.timeMilliseconds)
        }
        try checkLimits(transactions)
        // At most about two state writes per transaction (a record it creates or updates, the
        // sender's account) and a few per block: sized once rather than rehashed a dozen times
        // as the block grows.
        let state = ExecutionState(base: state, expectedWrites: 2 * transactions.count + 16)
        var executor = BlockExecutor(runtime: self, state: state, global: global, context: context)
        try executor.run(transactions)
        return executor.finish()
    }

    func checkLimits(_ transactions: [VerifiedTransaction]) throws(BlockError) {
        let block = parameters.block
        guard transactions.count <= Int(block.maxTransactions) else {
            throw .tooManyTransactions(count: transactions.count, limit: block.maxTransactions)
        }
        var total = 0
        for (index, transaction) in transactions.enumerated() {
            guard transaction.encodedSize <= Int(block.maxTransactionBytes) else {
                throw .transactionTooLarge(index: index, bytes: transaction.encodedSize, limit: block.maxTransactionBytes)
            }
            total += transaction.encodedSize
        }
        guard total <= Int(block.maxBytes) else { throw .tooManyBytes(bytes: total, limit: block.maxBytes) }
    }

    /// The checks a mempool runs before admitting a transaction: the same stateful checks a
    /// block applies (fee, nonce, balance for the fee), against a given state.
    public func admissionError(_ transaction: VerifiedTransaction, expectedNonce: UInt64? = nil, in state: ChainState) -> String? {
        let body = transaction.body
        guard body.fee >= parameters.fees.minFee else {
            return "fee \(body.fee) is below the minimum fee \(parameters.fees.minFee)"
        }
        let account = state.decode(AccountRecord.self, at: StateKey.account(body.sender)) ?? AccountRecord()
        let nonce = expectedNonce ?? account.nonce
        guard body.nonce == nonce else { return "nonce \(body.nonce) is not the next nonce \(nonce)" }
        guard account.balance >= body.fee else { return "balance \(account.balance) cannot pay the fee \(body.fee)" }
        return nil
    }
}

/// The rules a test can break on purpose (`Runtime.brokenRule`), each a bug the issue-16
/// rules exist to prevent.
enum BrokenRule: CaseIterable, Sendable {
    /// Tallies against the gateway stake of the moment instead of the electorate's total.
    case tallyAgainstCurrentStake
    /// Lets the accused validators sit on the jury.
    case accusedJudge
    /// A failed dispute finalizes the event at once (the window shortened).
    case disputeClosesWindow
    /// Children finalize whatever their parents' fate.
    case childIgnoresParents
    /// Events decided before their attestation deadline stay in its queue.
    case decidedEventsStayQueued
}

/// One block's execution. Holds the overlay, the global record (written back at the end) and
/// the outcome collected so far.
struct BlockExecutor {
    let runtime: Runtime
    var state: ExecutionState
    var global: GlobalRecord
    let context: BlockContext

    var receipts: [Receipt] = []
    /// What the block produced so far besides state writes.
    var effects = Effects()
    /// What the call in progress produced; joins `effects` only if the call succeeds.
    var pending = Effects()
    /// The global record as it was before the call in progress (restored if it fails).
    var pendingGlobal: GlobalRecord? = nil
    var ignoredEvidence = 0

    var parameters: ChainParameters { runtime.parameters }
    var now: UInt64 { context.timeMilliseconds }
    var height: UInt64 { context.height }

    init(runtime: Runtime, state: ExecutionState, global: GlobalRecord, context: BlockContext) {
        self.runtime = runtime
        self.state = state
        self.global = global
        self.context = context
    }

    mutating func run(_ transactions: [VerifiedTransaction]) throws(BlockError) {
        global.height = height
        global.timeMilliseconds = now
        recordHeight()
        beginBlock()
        try processEvidence()
        for (index, transaction) in transactions.enumerated() {
            try apply(transaction, index: index)
        }
        endBlock()
    }

    // MARK: transactions

    mutating func apply(_ transaction: VerifiedTransaction, index: Int) throws(BlockError) {
        let body = transaction.body
        let minimumFee = parameters.fees.minFee
        guard body.fee >= minimumFee else { throw .feeBelowMinimum(index: index, fee: body.fee, minimum: minimumFee) }
        var account = account(body.sender)
        guard body.nonce == account.nonce else { throw .wrongNonce(index: index, expected: account.nonce, found: body.nonce) }
        guard let afterFee = account.balance.subtracting(body.fee) else {
            throw .cannotPayFee(index: index, fee: body.fee, balance: account.balance)
        }
        // The fee and the nonce stand whatever the call does.
        account.balance = afterFee
        account.nonce += 1
        state.write(StateKey.account(body.sender), account)
        global.rewardPot = plus(global.rewardPot, body.fee)

        state.beginCall()
        pendingGlobal = global
        let result: CallError?
        do {
            try call(body.call, sender: body.sender, nonce: body.nonce)
            result = nil
        } catch {
            result = error
        }
        if let result {
            state.rollbackCall()
            global = pendingGlobal!
            receipts.append(Receipt(transactionHash: transaction.hash, code: result.code, message: result.message, feePaid: body.fee))
        } else {
            state.commitCall()
            effects.absorb(pending)
            receipts.append(Receipt(transactionHash: transaction.hash, code: .ok, message: "", feePaid: body.fee))
        }
        pending = Effects()
        pendingGlobal = nil
    }

    mutating func call(_ call: Call, sender: PublicKey, nonce: UInt64) throws(CallError) {
        switch call {
        case .transfer(let to, let amount): try transfer(from: sender, to: to, amount: amount)
        case .bond(let amount): try bond(sender, amount)
        case .unbond(let amount): try unbond(sender, amount)
        case .withdrawUnbonded: try withdrawUnbonded(sender)
        case .registerValidator(let key): try registerValidator(sender, key)
        case .registerGateway: try registerGateway(sender)
        case .unjail: try unjail(sender)
        case .proposeEvent(let parents, let arTxID, let contentHash, let kind):
            try proposeEvent(sender, nonce: nonce, parents: parents, arTxID: arTxID, contentHash: contentHash, kind: kind)
        case .attest(let votes): try attest(sender, votes)
        case .dispute(let eventID, let bond, let reason): try openDispute(sender, eventID: eventID, bond: bond, reason: reason)
        case .voteDispute(let disputeID, let uphold): try voteDispute(sender, disputeID: disputeID, uphold: uphold)
        case .defend(let disputeID, let bond): try defend(sender, disputeID: disputeID, bond: bond)
        }
    }

    // MARK: records

    func account(_ address: PublicKey) -> AccountRecord {
        state.read(AccountRecord.self, StateKey.account(address)) ?? AccountRecord()
    }

    func stake(_ address: PublicKey) -> StakeRecord {
        state.read(StakeRecord.self, StateKey.stake(address)) ?? StakeRecord()
    }

    func event(_ id: Hash256) -> EventRecord? { state.read(EventRecord.self, StateKey.event(id)) }

    /// Addition of amounts the supply bounds: total supply fits in 128 bits, so any sum of
    /// its parts does too. Overflow here means the books are already wrong.
    func plus(_ a: Amount, _ b: Amount) -> Amount {
        guard let sum = a.adding(b) else { preconditionFailure("amount overflow in a sum bounded by the supply") }
        return sum
    }

    func minus(_ a: Amount, _ b: Amount) -> Amount {
        guard let difference = a.subtracting(b) else { preconditionFailure("amount underflow: \(a) - \(b)") }
        return difference
    }

    /// Queues `id` for a deadline. Ids pushed during one block share their push time, so
    /// they are written at the end of the block as one queue entry (one state write per queue
    /// per block instead of one per id). Returns the position of the entry that will hold `id`.
    @discardableResult
    mutating func push(_ queue: StateKey.Queue, _ id: Hash256) -> UInt64 {
        let before = effects.queuePushes.ids(queue).count + pending.queuePushes.ids(queue).count
        pending.queuePushes.append(id, to: queue)
        return queueBounds(queue).tail + UInt64(before / QueueEntry.maxIDs)
    }

    /// Writes this block's pushes: one `QueueEntry` per queue, at the queue's tail. Events
    /// pushed and decided in this block are left out of their attestation entry (which is
    /// still written, maybe empty, so that every position named by a record exists).
    mutating func flushQueuePushes() {
        let firstNew = global.attestationQueue.tail
        // Only pending events can be decided, by attestation calls: the earlier entries were pruned before the deadline.
        precondition(effects.leftPending.allSatisfy { $0.entry >= firstNew }, "an event decided after the attestation queue was pruned")
        let decidedNow = Set(effects.leftPending.map(\.id))
        for queue in [StateKey.Queue.attestation, .challenge, .revote] {
            let ids = effects.queuePushes.ids(queue)
            guard !ids.isEmpty else { continue }
            var bounds = queueBounds(queue)
            // Entries hold at most `QueueEntry.maxIDs` ids: a busier block writes several. The
            // chunks are the ones `push` numbered (records name them; the rule audit checks it).
            for start in stride(from: 0, to: ids.count, by: QueueEntry.maxIDs) {
                var chunk = Array(ids[start..<min(start + QueueEntry.maxIDs, ids.count)])
                if queue == .attestation && !decidedNow.isEmpty { chunk.removeAll { decidedNow.contains($0) } }
                state.write(StateKey.queueEntry(queue, bounds.tail), QueueEntry(timeMilliseconds: now, ids: chunk))
                bounds.tail += 1
            }
            setQueueBounds(queue, bounds)
        }
        effects.queuePushes = QueuePushes()
        effects.leftPending.removeAll()
    }

    /// Events decided before their attestation deadline leave the entries of earlier blocks
    /// that hold them (each rewritten once, in position order), so the deadline reads only
    /// the records of events still pending. Runs before the deadline pops its entries.
    mutating func pruneAttestationQueue() {
        let tail = global.attestationQueue.tail
        var byEntry: [UInt64: Set<Hash256>] = [:]
        for (entry, id) in effects.leftPending where entry < tail { byEntry[entry, default: []].insert(id) }
        for entry in byEntry.keys.sorted() {
            precondition(entry >= global.attestationQueue.head, "a pending event's attestation entry was already popped")
            let key = StateKey.queueEntry(.attestation, entry)
            guard let stored = state.read(QueueEntry.self, key) else { preconditionFailure("attestation entry \(entry) missing") }
            let decided = byEntry[entry]!
            let kept = stored.ids.filter { !decided.contains($0) }
            precondition(stored.ids.count - kept.count == decided.count, "a decided event was not in its attestation entry")
            state.write(key, QueueEntry(timeMilliseconds: stored.timeMilliseconds, ids: kept))
        }
        effects.leftPending.removeAll { $0.entry < tail }
    }

    func queueBounds(_ queue: StateKey.Queue) -> QueueBounds {
        switch queue {
        case .attestation: return global.attestationQueue
        case .challenge: return global.challengeQueue
        case .revote: return global.revoteQueue
        }
    }

    mutating func setQueueBounds(_ queue: StateKey.Queue, _ bounds: QueueBounds) {
        switch queue {
        case .attestation: global.attestationQueue = bounds
        case .challenge: global.challengeQueue = bounds
        case .revote: global.revoteQueue = bounds
        }
    }

    // MARK: finishing

    mutating func finish() -> ExecutedBlock {
        state.write(StateKey.global, global)
        let sets = state.read(ValidatorSets.self, StateKey.validatorSets)!
        var trieChanges: [StateTrie.Change] = []
        trieChanges.reserveCapacity(state.changes.count)
        for (key, value) in state.changes {
            // A key written and deleted within the block that never existed before is no change.
            if value == nil && state.base.get(key) == nil { continue }
            trieChanges.append(StateTrie.Change(path: Blake2b.hash256(key), valueHash: value.map { Blake2b.hash256($0) }))
        }
        let trie = StateTrie.update(trieChanges, over: state.base)
        let outcome = BlockOutcome(height: height, stateRoot: trie.rootHash, receipts: receipts, eventChanges: effects.eventChanges,
                                   slashes: effects.slashes, validatorSetUpdate: scheduledThisBlock, nextValidators: sets.current,
                                   ignoredEvidence: ignoredEvidence)
        return ExecutedBlock(baseRoot: state.base.root, changes: state.changes, trieWrites: trie.writes, outcome: outcome,
                             indexWrites: effects.indexWrites + groupedIndexWrites())
    }

    /// The grouped author and kind index writes of this block (specs/runtime.md).
    func groupedIndexWrites() -> [([UInt8], [UInt8])] {
        EventIndexKey.grouped(effects.eventsByAuthor) { EventIndexKey.byAuthor($0, height: height) }
            + EventIndexKey.grouped(effects.eventsByKind) { EventIndexKey.byKind($0, height: height) }
    }

    var scheduledThisBlock: ScheduledValidatorSet? = nil
}

/// What a call or a block produces besides its state writes. A call collects into its own
/// value, which joins the block's only if the call succeeds (a failed call leaves nothing).
struct Effects {
    var eventChanges: [EventStatusChange] = []
    var slashes: [SlashRecord] = []
    var indexWrites: [([UInt8], [UInt8])] = []
    /// Entries of the grouped author and kind indexes, written at the end of the block.
    var eventsByAuthor: [(PublicKey, Hash256)] = []
    var eventsByKind: [(String, Hash256)] = []
    /// Ids queued for a deadline, written at the end of the block (`flushQueuePushes`).
    var queuePushes = QueuePushes()
    /// Events that left `pending` before their deadline, with their attestation entry
    /// (`pruneAttestationQueue`, `flushQueuePushes`).
    var leftPending: [(entry: UInt64, id: Hash256)] = []
    /// Set when a jail, unjail, tombstone, slash or unbond of a validator happened: the
    /// validator set is recomputed at block end.
    var validatorSetDirty = false
    /// Events that reached a final status (their waiting children are settled at block end).
    var wakeups: [Hash256] = []
    /// Events decided with a winning side, whose votes on it earn reward weight at block end.
    var credits: [(Hash256, Verdict)] = []

    mutating func absorb(_ call: Effects) {
        eventChanges += call.eventChanges
        slashes += call.slashes
        indexWrites += call.indexWrites
        eventsByAuthor += call.eventsByAuthor
        eventsByKind += call.eventsByKind
        queuePushes.append(call.queuePushes)
        leftPending += call.leftPending
        wakeups += call.wakeups
        credits += call.credits
        validatorSetDirty = validatorSetDirty || call.validatorSetDirty
    }
}

/// A block's (or a call's) pushes, per queue, in push order.
struct QueuePushes {
    private var attestation: [Hash256] = []
    private var challenge: [Hash256] = []
    private var revote: [Hash256] = []

    func ids(_ queue: StateKey.Queue) -> [Hash256] {
        switch queue {
        case .attestation: return attestation
        case .challenge: return challenge
        case .revote: return revote
        }
    }

    mutating func append(_ id: Hash256, to queue: StateKey.Queue) {
        switch queue {
        case .attestation: attestation.append(id)
        case .challenge: challenge.append(id)
        case .revote: revote.append(id)
        }
    }

    mutating func append(_ other: QueuePushes) {
        attestation += other.attestation
        challenge += other.challenge
        revote += other.revote
    }
}

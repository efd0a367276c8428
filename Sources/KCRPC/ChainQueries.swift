import KCCodec
import KCConsensus
import KCCrypto
import KCNode
import KCRuntime
import KCStorage
import KCTypes

/// Read-only queries over one consistent snapshot of the node's store (state under `s/`,
/// blocks, results and indexes): safe on any thread, never blocking the node.
struct ChainQueries {
    let snapshot: any KeyValueSnapshot
    let genesis: Genesis

    static let defaultLimit = 50
    static let maxLimit = 500
    static let maxDepth = 16
    static let maxWalk = 1_000

    init(store: any KeyValueStore, genesis: Genesis) {
        snapshot = store.snapshot()
        self.genesis = genesis
    }

    func read<T: CanonicalDecodable>(_ type: T.Type, raw key: [UInt8], what: String) throws -> T? {
        guard let bytes = try snapshot.get(key) else { return nil }
        do { return try T.decode(exactly: bytes) } catch {
            throw RPCError(.internalServerError, "store_damaged", "stored \(what) does not decode: \(error)")
        }
    }

    /// A state entry. While state sync writes a restored state over the genesis state, the
    /// store's state is neither: reads are refused until it is whole.
    func state<T: CanonicalDecodable>(_ type: T.Type, _ key: StoreKey, what: String) throws -> T? {
        try requireWholeState()
        return try read(type, raw: StatePersistence.storeKey(key), what: what)
    }

    func requireWholeState() throws {
        guard try snapshot.get(BlockStore.restoringKey) == nil else {
            throw RPCError(.serviceUnavailable, "restoring",
                           "the node is restoring a snapshot of the state (state sync); state reads answer once it has finished")
        }
    }

    var height: UInt64 {
        get throws { try read(UInt64.self, raw: Array("m/height".utf8), what: "height") ?? 0 }
    }

    static func heightKey(_ prefix: String, _ height: UInt64) -> [UInt8] {
        var key = Array(prefix.utf8)
        ByteOrder.appendBigEndian(height, to: &key)
        return key
    }

    /// Refuses a query that reads the query indexes when this node does not keep them
    /// (`storage.indexes = false`): their answers would be empty or partial, not "not found".
    /// `advice`: what to do instead (by default, ask another node).
    func requireIndexes(_ what: String, advice: String = "ask a node that keeps the query indexes") throws {
        let offSince: UInt64?
        do { offSince = try BlockStore.indexesOffSince(in: snapshot) } catch {
            throw RPCError(.internalServerError, "store_damaged", "\(error)")
        }
        guard let offSince else { return }
        throw RPCError(.notImplemented, "index_disabled",
                       "this node keeps no \(what) index (storage.indexes = false since height \(offSince)): \(advice)")
    }

    func block(_ height: UInt64) throws -> Block? { try read(Block.self, raw: Self.heightKey("b/", height), what: "block") }
    func results(_ height: UInt64) throws -> BlockResults? { try read(BlockResults.self, raw: Self.heightKey("r/", height), what: "block results") }

    // MARK: lookups

    /// The lowest height whose block the node keeps (`storage.retain_blocks`).
    var base: UInt64 {
        get throws { try read(UInt64.self, raw: Array("m/base".utf8), what: "base height") ?? 1 }
    }

    /// The answer for a height this node pruned.
    func pruned(_ height: UInt64) throws -> RPCError {
        RPCError(.gone, "pruned", "height \(height) is pruned: this node keeps blocks from height \(try base) (storage.retain_blocks); ask an archive node")
    }

    func blockJSON(_ height: UInt64) throws -> JSONValue {
        guard let block = try block(height) else {
            if height > 0, height < (try base) { throw try pruned(height) }
            throw RPCError.notFound("no block at height \(height) (the chain is at \(try self.height))")
        }
        return View.block(block, results: try results(height))
    }

    func transactionJSON(_ hash: Hash256) throws -> JSONValue {
        try requireIndexes("transaction")
        guard let location = try read(TransactionLocation.self, raw: NodeIndexKey.transaction(hash), what: "transaction location") else {
            throw RPCError.notFound("no committed transaction \(hash.hex)")
        }
        guard let block = try block(location.height), Int(location.index) < block.transactions.count else {
            if location.height < (try base) {
                throw RPCError(.gone, "pruned", "transaction \(hash.hex) was committed at height \(location.height), which this node pruned (it keeps blocks from height \(try base)); ask an archive node")
            }
            throw RPCError.notFound("no committed transaction \(hash.hex)")
        }
        let receipt = try results(location.height)?.receipts[safe: Int(location.index)]
        return View.transaction(block.transactions[Int(location.index)], location: location, receipt: receipt)
    }

    var global: GlobalRecord {
        get throws {
            guard let record = try state(GlobalRecord.self, StateKey.global, what: "global record") else {
                throw RPCError(.internalServerError, "store_damaged", "the store has no global record")
            }
            return record
        }
    }

    func accountJSON(_ address: PublicKey) throws -> JSONValue {
        let account = try state(AccountRecord.self, StateKey.account(address), what: "account") ?? AccountRecord()
        let stake = try state(StakeRecord.self, StateKey.stake(address), what: "stake")
        let global = try self.global
        var gateway: JSONValue = .null
        if stake?.isGateway == true, let record = try state(GatewayRecord.self, StateKey.gateway(address), what: "gateway") {
            gateway = View.gatewayDetail(record, weightNow: StoredState(snapshot).electoralWeight(address, epoch: global.epoch))
        }
        return View.account(address, account, stake: stake, now: global.timeMilliseconds, gateway: gateway)
    }

    /// One page of a registry, by position: `cursor` is the position to start at (decimal).
    func registryPage(_ registry: Registry, cursor: String?, limit: Int) throws -> (members: [PublicKey], next: Int?) {
        let count = Int(registry == .validators ? try global.validatorCount : try global.gatewayCount)
        let start = try cursor.map { text -> Int in
            guard let position = Int(text), position >= 0 else { throw RPCError.badRequest("cursor '\(text.prefix(80))' is not a registry position") }
            return position
        } ?? 0
        var members: [PublicKey] = []
        var position = start
        while position < count && members.count < limit {
            let page = UInt64(position / RegistryPage.capacity)
            guard let keys = try state(RegistryPage.self, StateKey.registryPage(registry, page), what: "registry page") else {
                throw RPCError(.internalServerError, "store_damaged", "\(registry.name) registry page \(page) is missing")
            }
            let slot = position % RegistryPage.capacity
            guard slot < keys.keys.count else { break }
            let take = min(keys.keys.count - slot, limit - members.count)
            members += keys.keys[slot..<(slot + take)]
            position += take
        }
        return (members, position < count ? position : nil)
    }

    func validatorsJSON(cursor: String?, limit: Int) throws -> JSONValue {
        let (members, next) = try registryPage(.validators, cursor: cursor, limit: limit)
        let sets = try state(ValidatorSets.self, StateKey.validatorSets, what: "validator sets")
        var power: [PublicKey: UInt64] = [:]
        for entry in sets?.current ?? [] { power[entry.address] = entry.power }
        var items: [JSONValue] = []
        for address in members {
            guard let stake = try state(StakeRecord.self, StateKey.stake(address), what: "stake"),
                  let record = try state(ValidatorRecord.self, StateKey.validator(address), what: "validator") else { continue }
            items.append(View.validator(address, stake: stake, record: record, power: power[address]))
        }
        return .object([("height", View.number(try height)), ("validators", .array(items)),
                        ("next_cursor", next.map { .string(String($0)) } ?? .null)])
    }

    func gatewaysJSON(cursor: String?, limit: Int) throws -> JSONValue {
        let (members, next) = try registryPage(.gateways, cursor: cursor, limit: limit)
        let epoch = try global.epoch
        var items: [JSONValue] = []
        for address in members {
            guard let stake = try state(StakeRecord.self, StateKey.stake(address), what: "stake"),
                  let record = try state(GatewayRecord.self, StateKey.gateway(address), what: "gateway") else { continue }
            items.append(View.gateway(address, stake: stake, record: record,
                                      weightNow: StoredState(snapshot).electoralWeight(address, epoch: epoch)))
        }
        return .object([("height", View.number(try height)), ("gateways", .array(items)),
                        ("next_cursor", next.map { .string(String($0)) } ?? .null)])
    }

    /// The live epochs and their electorates.
    func epochsJSON() throws -> JSONValue {
        let global = try self.global
        var epochs: [JSONValue] = []
        for number in global.oldestLiveEpoch...global.epoch {
            guard let record = try state(EpochRecord.self, StateKey.epoch(number), what: "epoch") else { continue }
            epochs.append(View.epoch(number, record))
        }
        return .object([("height", View.number(global.height)), ("epoch", View.number(global.epoch)),
                        ("oldest_live_epoch", View.number(global.oldestLiveEpoch)),
                        ("gateway_stake_now", View.amount(global.gatewayStake)), ("epochs", .array(epochs))])
    }

    func disputeJSON(_ id: Hash256) throws -> JSONValue {
        guard let record = try state(DisputeRecord.self, StateKey.dispute(id), what: "dispute") else {
            throw RPCError.notFound("no dispute \(id.hex)")
        }
        var jury: [JSONValue] = []
        if record.mode == .validators, let members = try state(JuryRecord.self, StateKey.jury(id), what: "jury")?.members {
            for (position, member) in members.enumerated() {
                let vote = try state(DisputeVote.self, StateKey.disputeVote(id, juror: UInt16(position)), what: "dispute vote")
                jury.append(View.juror(member, vote: vote))
            }
        }
        return View.dispute(id, record, jury: jury)
    }

    /// The votes on an event, valid first then invalid (or one verdict), `cursor` being
    /// `valid:N` or `invalid:N` (where to go on).
    func eventVotesJSON(_ id: Hash256, verdict only: Verdict?, cursor: String?, limit: Int) throws -> JSONValue {
        guard let record = try event(id) else { throw RPCError.notFound("no event \(id.hex)") }
        var verdict: Verdict = only ?? .valid
        var position: UInt32 = 0
        if let cursor {
            let parts = cursor.split(separator: ":")
            guard parts.count == 2, let index = UInt32(parts[1]),
                  let named = Verdict.allCases.first(where: { View.verdictName($0) == String(parts[0]) }),
                  only == nil || only == named else {
                throw RPCError.badRequest("cursor '\(cursor.prefix(80))' does not belong to this list")
            }
            verdict = named
            position = index
        }
        var items: [JSONValue] = []
        while items.count < limit {
            let count = verdict == .valid ? record.validCount : record.invalidCount
            if position < count {
                var failure: Error? = nil
                let entry = record.voter(verdict, at: position, event: id) { key in
                    do { return try state(VoterEntry.self, key, what: "voter entry") } catch { failure = error; return nil }
                }
                if let failure { throw failure }
                guard let entry else {
                    throw RPCError(.internalServerError, "store_damaged", "vote \(position) of event \(id.hex) is missing")
                }
                items.append(View.vote(entry, verdict: verdict))
                position += 1
                continue
            }
            guard only == nil, verdict == .valid else { break }
            verdict = .invalid
            position = 0
        }
        let count = verdict == .valid ? record.validCount : record.invalidCount
        let more = position < count || (only == nil && verdict == .valid && record.invalidCount > 0)
        let next: JSONValue = more ? .string("\(View.verdictName(verdict)):\(position)") : .null
        return .object([("event_id", View.hex(id)), ("votes", .array(items)), ("next_cursor", next)])
    }

    func event(_ id: Hash256) throws -> EventRecord? { try state(EventRecord.self, StateKey.event(id), what: "event") }

    func eventJSON(_ id: Hash256) throws -> JSONValue {
        guard let record = try event(id) else { throw RPCError.notFound("no event \(id.hex)") }
        return try eventView(id, record)
    }

    func eventView(_ id: Hash256, _ record: EventRecord) throws -> JSONValue {
        let dispute = try record.disputeID.flatMap { disputeID in
            try state(DisputeRecord.self, StateKey.dispute(disputeID), what: "dispute").map { (disputeID, $0) }
        }
        return View.event(id, record, dispute: dispute, parameters: genesis.parameters)
    }

    // MARK: lists with cursors

    /// Events listed by the index under `prefix`, in order, after the opaque `cursor`, at most
    /// `limit`. An entry's position is `key ‖ event id`: in an ungrouped index that is the key
    /// itself; in a grouped one (`grouped`: author, kind, the final statuses) each key holds a
    /// block's sorted ids. The cursor is the hex of the last position returned.
    func eventPage(prefix: [UInt8], grouped: Bool = false, cursor: String?, limit: Int,
                   filter: (EventRecord) -> Bool = { _ in true }) throws -> JSONValue {
        try requireIndexes("event")
        var lower = prefix
        var after: [UInt8]? = nil
        if let cursor {
            guard let position = Hex.decode(cursor), position.starts(with: prefix), position.count >= prefix.count + 32 else {
                throw RPCError.badRequest("cursor '\(cursor.prefix(80))' does not belong to this list")
            }
            // A grouped key may hold entries after the cursor: start at that key and skip.
            lower = grouped ? Array(position.dropLast(32)) : position + [0]
            after = position
        }
        guard let upper = KeyRange.prefix(prefix).upper else { throw RPCError.badRequest("empty index prefix") }
        var items: [JSONValue] = []
        var last: [UInt8]? = nil
        var more = false
        var walked = 0
        // Filtered lists may skip entries; the walk is bounded so one request stays cheap.
        scan: for pair in try snapshot.scan(KeyRange(lower: lower, upper: upper), limit: Self.maxWalk, reverse: false) {
            let entries: [([UInt8], Hash256)]
            if grouped {
                guard let ids = EventIndexKey.groupedIDs(pair.value) else {
                    throw RPCError(.internalServerError, "store_damaged", "index entry \(Hex.encode(pair.key)) is not a list of ids")
                }
                entries = ids.map { (pair.key + $0.bytes, $0) }
            } else {
                guard let id = EventIndexKey.eventID(fromKey: pair.key) else { continue }
                entries = [(pair.key, id)]
            }
            for (position, id) in entries {
                if let after, ByteOrder.compare(position, after) <= 0 { continue }
                if items.count == limit || walked == Self.maxWalk { more = true; break scan }
                walked += 1
                last = position
                guard let record = try event(id), filter(record) else { continue }
                items.append(try eventView(id, record))
            }
        }
        if walked == Self.maxWalk && !more { more = true }
        return .object([("events", .array(items)), ("next_cursor", more ? (last.map { .string(Hex.encode($0)) } ?? .null) : .null)])
    }

    /// The pending events, oldest first, from the attestation queue (ADR 0030; kept without
    /// the query indexes too), after the opaque `cursor` (the hex of a queue position), at
    /// most `limit`.
    func pendingPage(cursor: String?, limit: Int) throws -> JSONValue {
        try requireWholeState()  // the queue is state
        var after: PendingEvents.Position? = nil
        if let cursor {
            guard let bytes = Hex.decode(cursor), let position = PendingEvents.Position(bytes: bytes) else {
                throw RPCError.badRequest("cursor '\(cursor.prefix(80))' does not belong to this list")
            }
            after = position
        }
        let page: PendingEvents.Page
        do { page = try PendingEvents.page(in: snapshot, after: after, limit: limit) } catch {
            throw RPCError(.internalServerError, "store_damaged", error.description)
        }
        var items: [JSONValue] = []
        for (_, id) in page.events {
            // Read from the same snapshot as the queue, so every listed event is there and pending.
            guard let record = try event(id) else {
                throw RPCError(.internalServerError, "store_damaged", "pending event \(id.hex) has no record")
            }
            items.append(try eventView(id, record))
        }
        let next: JSONValue = page.reachedEnd ? .null
            : page.resumeAfter.map { .string(Hex.encode($0.bytes)) } ?? .null
        return .object([("events", .array(items)), ("next_cursor", next)])
    }

    /// Parents (depth 1) or ancestors up to `depth` of an event, breadth first, each once.
    func ancestors(_ id: Hash256, depth: Int) throws -> JSONValue {
        try walk(from: id, depth: depth, what: "ancestors") { current in try event(current)?.header.parents ?? [] }
    }

    /// Children (depth 1) or descendants up to `depth`, breadth first, each once.
    func descendants(_ id: Hash256, depth: Int) throws -> JSONValue {
        try requireIndexes("children")
        return try walk(from: id, depth: depth, what: "descendants") { current in
            try snapshot.scan(.prefix(EventIndexKey.childrenPrefix(current)), limit: Self.maxWalk, reverse: false)
                .compactMap { EventIndexKey.eventID(fromKey: $0.key) }
        }
    }

    /// A breadth-first walk of the DAG along `neighbours`, level by level, each event once,
    /// at most `maxWalk` events in all.
    private func walk(from id: Hash256, depth: Int, what: String, neighbours: (Hash256) throws -> [Hash256]) throws -> JSONValue {
        guard try event(id) != nil else { throw RPCError.notFound("no event \(id.hex)") }
        var seen: Set<Hash256> = [id]
        var frontier = [id]
        var levels: [JSONValue] = []
        for level in 1...depth {
            var next: [Hash256] = []
            for current in frontier {
                for neighbour in try neighbours(current) where seen.insert(neighbour).inserted { next.append(neighbour) }
            }
            if next.isEmpty { break }
            guard seen.count <= Self.maxWalk else { throw RPCError.badRequest("more than \(Self.maxWalk) \(what); ask for a smaller depth") }
            let events = try next.compactMap { id in try event(id).map { try eventView(id, $0) } }
            levels.append(.object([("depth", View.number(level)), ("events", .array(events))]))
            frontier = next
        }
        return .object([("event_id", View.hex(id)), ("levels", .array(levels))])
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}

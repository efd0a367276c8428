import KCCodec
import KCCrypto

/// The addresses a node knows of other nodes (specs/p2p.md, "Peer discovery"), in the spirit
/// of Bitcoin's addrman and CometBFT's addrbook: bounded tables of buckets, so that one source
/// cannot fill the book.
///
/// - New addresses (heard of, never reached) go to one of `newBuckets` buckets chosen by a
///   keyed hash of the source's address group and of the address's group, such that all the
///   addresses one source hands out land in at most `bucketsPerSourceGroup` buckets; in its
///   bucket an address takes the first free of `probes` slots from a keyed hash of itself.
///   An occupied slot is given up only by an address that looks dead (several failed dials,
///   never reached).
/// - Tried addresses (dialled successfully) go to one of `triedBuckets` buckets chosen by
///   their own group (at most `bucketsPerTriedGroup` per group); one that loses its slot goes
///   back to the new table.
/// - The bucketing key is secret to the node (random, kept with the book), so an attacker
///   cannot compute which addresses collide.
/// Pure: the caller supplies time (milliseconds) and randomness; the book is saved as JSON by
/// `AddressBookFile`.
public struct AddressBook: Sendable {
    public static let newBuckets = 64
    public static let triedBuckets = 16
    public static let slotsPerBucket = 32
    public static let bucketsPerSourceGroup = 8
    public static let bucketsPerTriedGroup = 4
    /// Slots of its bucket an address may take: the one its hash gives and the next ones
    /// (wrapping inside the bucket), so addresses of one group rarely lose a slot to a
    /// collision while the bucket has room.
    public static let probes = 4
    /// Failed dials after which a never-reached address gives up its slot to a newcomer.
    public static let maxFailures = 3
    public static var capacity: Int { (newBuckets + triedBuckets) * slotsPerBucket }

    public struct Entry: Sendable, Equatable {
        public var address: PeerAddress
        /// The address group of whoever told us (or "self"/"config" for our own sources).
        public var sourceGroup: String
        public var tried: Bool
        public var failures: Int
        public var lastSuccessMilliseconds: UInt64
        public var lastAttemptMilliseconds: UInt64
    }

    let key: Bytes32
    /// Slot -> node id, per table; the entries by node id.
    private var newTable: [Int: PublicKey] = [:]
    private var triedTable: [Int: PublicKey] = [:]
    private(set) var entries: [PublicKey: Entry] = [:]
    /// Where each entry sits: (tried, slot).
    private var position: [PublicKey: (tried: Bool, slot: Int)] = [:]

    public init(key: Bytes32) { self.key = key }

    public var count: Int { entries.count }
    public var triedCount: Int { triedTable.count }
    public var allEntries: [Entry] { entries.values.sorted { $0.address.nodeID < $1.address.nodeID } }
    public func entry(_ nodeID: PublicKey) -> Entry? { entries[nodeID] }

    /// The group an address belongs to: the first two octets of an IPv4 address (its /16), the
    /// first four groups of an IPv6 one as written, else the host name itself.
    public static func group(_ host: String) -> String {
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        if octets.count == 4, octets.allSatisfy({ UInt8($0) != nil }) { return "v4:\(octets[0]).\(octets[1])" }
        if host.contains(":") { return "v6:" + host.split(separator: ":", omittingEmptySubsequences: false).prefix(4).joined(separator: ":") }
        return "name:" + host.lowercased()
    }

    func hash(_ parts: String...) -> UInt64 {
        var writer = CanonicalWriter()
        writer.writeFixed(key.bytes)
        for part in parts { writer.writeString(part) }
        let digest = Blake2b.hash256(writer.bytes).bytes
        return ByteOrder.bigEndian(digest[0..<8], as: UInt64.self)
    }

    func newSlot(_ address: PeerAddress, sourceGroup: String) -> Int {
        let within = hash("new-group", Self.group(address.host)) % UInt64(Self.bucketsPerSourceGroup)
        let bucket = Int(hash("new-bucket", sourceGroup, "\(within)") % UInt64(Self.newBuckets))
        return bucket * Self.slotsPerBucket + Int(hash("new-slot", "\(bucket)", address.nodeID.hex) % UInt64(Self.slotsPerBucket))
    }

    func triedSlot(_ address: PeerAddress) -> Int {
        let within = hash("tried-address", address.nodeID.hex, address.host) % UInt64(Self.bucketsPerTriedGroup)
        let bucket = Int(hash("tried-bucket", Self.group(address.host), "\(within)") % UInt64(Self.triedBuckets))
        return bucket * Self.slotsPerBucket + Int(hash("tried-slot", "\(bucket)", address.nodeID.hex) % UInt64(Self.slotsPerBucket))
    }

    /// The slots an address hashed to `slot` may take, in order.
    static func probing(_ slot: Int) -> [Int] {
        let bucket = slot / slotsPerBucket * slotsPerBucket
        return (0..<probes).map { bucket + (slot - bucket + $0) % slotsPerBucket }
    }

    /// Whether an entry may be pushed out of its slot by a newcomer.
    func isTerrible(_ entry: Entry) -> Bool { !entry.tried && entry.lastSuccessMilliseconds == 0 && entry.failures >= Self.maxFailures }

    /// Adds an address heard from `source` (an address group, see `group`). A known node id
    /// keeps its entry (a tried one is never moved by hearsay). Returns whether it was stored.
    @discardableResult
    public mutating func add(_ address: PeerAddress, sourceGroup: String) -> Bool {
        if let known = entries[address.nodeID] {
            // Hearsay may refresh the address of an entry never reached, not of a tried one.
            guard !known.tried, known.lastSuccessMilliseconds == 0, known.address != address else { return false }
            remove(address.nodeID)
        }
        let candidates = Self.probing(newSlot(address, sourceGroup: sourceGroup))
        guard let slot = candidates.first(where: { newTable[$0] == nil })
            ?? candidates.first(where: { newTable[$0].flatMap { entries[$0] }.map(isTerrible) == true }) else { return false }
        if let occupant = newTable[slot] { remove(occupant) }
        newTable[slot] = address.nodeID
        position[address.nodeID] = (false, slot)
        entries[address.nodeID] = Entry(address: address, sourceGroup: sourceGroup, tried: false, failures: 0,
                                        lastSuccessMilliseconds: 0, lastAttemptMilliseconds: 0)
        return true
    }

    public mutating func remove(_ nodeID: PublicKey) {
        guard let place = position.removeValue(forKey: nodeID) else { return }
        if place.tried { triedTable[place.slot] = nil } else { newTable[place.slot] = nil }
        entries[nodeID] = nil
    }

    /// A dial is starting.
    public mutating func attempted(_ nodeID: PublicKey, now: UInt64) {
        entries[nodeID]?.lastAttemptMilliseconds = now
    }

    /// A dial failed.
    public mutating func failed(_ nodeID: PublicKey, now: UInt64) {
        guard entries[nodeID] != nil else { return }
        entries[nodeID]!.failures += 1
        entries[nodeID]!.lastAttemptMilliseconds = now
    }

    /// The node at `address` answered and authenticated: it moves to the tried table (adding
    /// it if unknown). The entry it displaces there goes back to the new table.
    public mutating func good(_ address: PeerAddress, now: UInt64) {
        var entry = entries[address.nodeID] ?? Entry(address: address, sourceGroup: "self", tried: false, failures: 0,
                                                      lastSuccessMilliseconds: 0, lastAttemptMilliseconds: now)
        remove(address.nodeID)
        entry.address = address
        entry.tried = true
        entry.failures = 0
        entry.lastSuccessMilliseconds = now
        let candidates = Self.probing(triedSlot(address))
        let slot = candidates.first { triedTable[$0] == nil } ?? candidates[0]
        if let occupant = triedTable[slot], var displaced = entries[occupant] {
            remove(occupant)
            displaced.tried = false
            if let newSlot = Self.probing(newSlot(displaced.address, sourceGroup: displaced.sourceGroup)).first(where: { newTable[$0] == nil }) {
                newTable[newSlot] = occupant
                position[occupant] = (false, newSlot)
                entries[occupant] = displaced
            }
        }
        triedTable[slot] = address.nodeID
        position[address.nodeID] = (true, slot)
        entries[address.nodeID] = entry
    }

    /// Up to `count` addresses to dial, not in `excluded`, not attempted in the last
    /// `retryMilliseconds`: half from the tried table when it has any, the rest new, each
    /// drawn at random.
    public func candidates<R: RandomNumberGenerator>(_ count: Int, excluded: Set<PublicKey>, now: UInt64, retryMilliseconds: UInt64,
                                                     random: inout R) -> [PeerAddress] {
        func eligible(_ entry: Entry) -> Bool {
            !excluded.contains(entry.address.nodeID)
                && (entry.lastAttemptMilliseconds == 0 || now >= entry.lastAttemptMilliseconds &+ retryMilliseconds)
        }
        var tried = allEntries.filter { $0.tried && eligible($0) }.map(\.address)
        var fresh = allEntries.filter { !$0.tried && eligible($0) }.map(\.address)
        tried.shuffle(using: &random)
        fresh.shuffle(using: &random)
        var chosen: [PeerAddress] = []
        while chosen.count < count && (!tried.isEmpty || !fresh.isEmpty) {
            if !tried.isEmpty && (chosen.count % 2 == 0 || fresh.isEmpty) { chosen.append(tried.removeLast()) } else { chosen.append(fresh.removeLast()) }
        }
        return chosen
    }

    /// Up to `count` addresses to hand to a peer that asked, at random, reached ones first.
    public func sample<R: RandomNumberGenerator>(_ count: Int, excluding peer: PublicKey, random: inout R) -> [PeerAddress] {
        var tried = allEntries.filter { $0.tried && $0.address.nodeID != peer }.map(\.address)
        var fresh = allEntries.filter { !$0.tried && $0.address.nodeID != peer && $0.failures < Self.maxFailures }.map(\.address)
        tried.shuffle(using: &random)
        fresh.shuffle(using: &random)
        return Array((tried + fresh).prefix(count))
    }
}

extension AddressBook: CanonicalCodable {
    /// The saved book: its key, then every entry (node id, host, port, source group, tried,
    /// its slot, failures, last success and last attempt in milliseconds). Loading puts each
    /// entry back in its slot when that slot is free and one its hash allows, else re-adds it:
    /// the tables' bounds hold whatever the file says.
    public func encode(to writer: inout CanonicalWriter) {
        writer.write(key)
        let list = allEntries
        writer.writeLength(list.count)
        for entry in list {
            writer.write(entry.address)
            writer.writeString(entry.sourceGroup)
            writer.write(entry.tried)
            writer.write(UInt32(clamping: position[entry.address.nodeID]?.slot ?? 0))
            writer.write(UInt32(clamping: entry.failures))
            writer.write(entry.lastSuccessMilliseconds)
            writer.write(entry.lastAttemptMilliseconds)
        }
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        self.init(key: try reader.read(Bytes32.self))
        let count = try reader.readLength("address book entries", limit: Self.capacity)
        for _ in 0..<count {
            let address = try reader.read(PeerAddress.self)
            let source = try reader.readString("source group", limit: 300)
            let tried = try reader.readBool("tried")
            let slot = Int(try reader.readUInt32("slot"))
            let failures = Int(try reader.readUInt32("failures"))
            let success = try reader.readUInt64("last success")
            let attempt = try reader.readUInt64("last attempt")
            guard entries[address.nodeID] == nil else { continue }
            let allowed = Self.probing(tried ? triedSlot(address) : newSlot(address, sourceGroup: source)).contains(slot)
            if allowed && (tried ? triedTable[slot] : newTable[slot]) == nil {
                if tried { triedTable[slot] = address.nodeID } else { newTable[slot] = address.nodeID }
                position[address.nodeID] = (tried, slot)
                entries[address.nodeID] = Entry(address: address, sourceGroup: source, tried: tried, failures: failures,
                                                lastSuccessMilliseconds: success, lastAttemptMilliseconds: attempt)
                continue
            }
            if tried {
                good(address, now: success)
            } else if add(address, sourceGroup: source) {
                entries[address.nodeID]?.failures = failures
            }
            entries[address.nodeID]?.lastSuccessMilliseconds = success
            entries[address.nodeID]?.lastAttemptMilliseconds = attempt
            entries[address.nodeID]?.sourceGroup = source
        }
    }
}

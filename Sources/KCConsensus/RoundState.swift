import KCCodec
import KCCrypto
import KCTypes

/// One bit per member of a height's validator set, in the set's order (sorted by key).
/// Encoded as `length count | ceil(count / 8) bytes`, bit i in byte i / 8 at position i % 8
/// (least significant first); padding bits must be zero, so each set has one encoding.
public struct ValidatorBits: Sendable, Equatable, CanonicalCodable {
    /// A set never has more members than a commit certificate may carry.
    public static let maxCount = CommitCertificate.maxPrecommits
    public let count: Int
    private var bytes: [UInt8]

    public init(count: Int) {
        precondition(count >= 0 && count <= Self.maxCount, "validator bits beyond the set limit")
        self.count = count
        bytes = [UInt8](repeating: 0, count: (count + 7) / 8)
    }

    public subscript(index: Int) -> Bool {
        get { index >= 0 && index < count && bytes[index / 8] & (1 << UInt8(index % 8)) != 0 }
        set {
            guard index >= 0 && index < count else { return }
            if newValue { bytes[index / 8] |= 1 << UInt8(index % 8) } else { bytes[index / 8] &= ~(1 << UInt8(index % 8)) }
        }
    }

    /// The indices whose bit is set, ascending.
    public var indices: [Int] { common(with: self) }

    /// The indices set in both (of equal counts; none otherwise), ascending.
    public func common(with other: ValidatorBits) -> [Int] {
        guard other.count == count else { return [] }
        var result: [Int] = []
        for position in 0..<bytes.count {
            var both = bytes[position] & other.bytes[position]
            while both != 0 {
                result.append(position * 8 + both.trailingZeroBitCount)
                both &= both - 1
            }
        }
        return result
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.writeLength(count)
        writer.writeFixed(bytes)
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        count = try reader.readLength("validator bits", limit: Self.maxCount)
        bytes = try reader.readFixed((count + 7) / 8, "validator bits")
        if count % 8 != 0, let last = bytes.last, last >> UInt8(count % 8) != 0 {
            throw .invalidValue(what: "validator bits", reason: "padding bits are set")
        }
    }
}

/// Where a node stands in consensus, announced to its peers (wire message `round state`) when
/// its height or round changes, and again each gossip interval in which its height, round and
/// step did not change, then flagged `stalled` ("send me what I lack"). Peers use it to send
/// each vote and proposal to each peer at most once, and only what it lacks
/// (`GossipKnowledge`). The bits refer to the validator set of `height`.
public struct RoundState: Sendable, Equatable, CanonicalCodable {
    public enum Phase: UInt8, Sendable, Equatable {
        /// `height` is the next height, whose consensus has not started yet (the commit pause,
        /// the start-up hold); messages for it are held until it starts.
        case waiting = 0
        case propose, prevote, precommit
    }

    /// The height being decided (the last committed height + 1).
    public let height: UInt64
    public let round: UInt32
    public let phase: Phase
    /// Whether the sender holds the proposal of `round`.
    public let hasProposal: Bool
    /// The validators whose prevote / precommit of `round` the sender holds.
    public let prevotes: ValidatorBits
    public let precommits: ValidatorBits
    /// The validators of `height`'s set the sender is connected to (itself included): they
    /// send it their own votes and proposals directly, so nobody relays those to it.
    public let links: ValidatorBits
    /// Nothing moved for a gossip interval: a request for what the sender lacks.
    public let stalled: Bool

    public init(height: UInt64, round: UInt32, phase: Phase, hasProposal: Bool, prevotes: ValidatorBits,
                precommits: ValidatorBits, links: ValidatorBits, stalled: Bool = false) {
        self.stalled = stalled
        self.height = height
        self.round = round
        self.phase = phase
        self.hasProposal = hasProposal
        self.prevotes = prevotes
        self.precommits = precommits
        self.links = links
    }

    /// The same announcement as a stall report.
    public func stallReport() -> RoundState {
        RoundState(height: height, round: round, phase: phase, hasProposal: hasProposal, prevotes: prevotes,
                   precommits: precommits, links: links, stalled: true)
    }

    /// (height, round, phase).
    public var position: Position { Position(height: height, round: round, phase: phase) }

    public struct Position: Sendable, Equatable, Hashable {
        public let height: UInt64
        public let round: UInt32
        public let phase: Phase
        public init(height: UInt64, round: UInt32, phase: Phase) {
            self.height = height
            self.round = round
            self.phase = phase
        }
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(height); writer.write(round); writer.write(phase.rawValue); writer.write(hasProposal)
        writer.write(prevotes); writer.write(precommits); writer.write(links); writer.write(stalled)
    }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        height = try reader.readUInt64("height")
        round = try reader.readUInt32("round")
        let raw = try reader.readUInt8("phase")
        guard let phase = Phase(rawValue: raw) else { throw .unknownTag(what: "phase", tag: UInt32(raw)) }
        self.phase = phase
        hasProposal = try reader.readBool("has proposal")
        prevotes = try reader.read(ValidatorBits.self)
        precommits = try reader.read(ValidatorBits.self)
        links = try reader.read(ValidatorBits.self)
        stalled = try reader.readBool("stalled")
    }
}

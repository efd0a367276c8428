import KCCodec

/// A gateway's verdict on an event: its payload matches the header, or it does not.
/// Encoded as a tagged enum: varint tag 0 = valid, 1 = invalid; any other tag is refused.
public enum Verdict: UInt32, Sendable, CaseIterable, CanonicalCodable {
    case valid = 0
    case invalid = 1

    public func encode(to writer: inout CanonicalWriter) { writer.writeVarint(rawValue) }

    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        let tag = try reader.readVarint("verdict tag")
        guard let verdict = Verdict(rawValue: tag) else { throw .unknownTag(what: "verdict", tag: tag) }
        self = verdict
    }
}

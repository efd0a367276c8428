import KCCodec

/// A gateway's verdict on an event: its payload matches the header, or it does not.
/// Encoded as a tagged enum: varint tag 0 = valid, 1 = invalid; any other tag is refused.
public enum Verdict: UInt32, Sendable, CaseIterable, CanonicalTag {
    case valid = 0
    case invalid = 1

    public static let tagName = "verdict"
}

/// Sums of block times and durations. The genesis loader keeps every sum the rules form
/// below 2^64; saturating keeps hand-built parameters (tests, tools) from trapping.
extension UInt64 {
    public func addingSaturating(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}

extension ChainParameters.Events {
    /// The longest an event can stay undecided: attestation, the challenge window, and the
    /// re-vote of a dispute opened at its last moment. Votes lock stake for this long, and the
    /// unbonding period must cover it.
    public var lifetimeMilliseconds: UInt64 {
        attestationPeriodMilliseconds.addingSaturating(challengeWindowMilliseconds).addingSaturating(revotePeriodMilliseconds)
    }
}

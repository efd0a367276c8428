import KCConsensus
import KCCrypto
import KCNetwork
import KCRuntime
import KCTypes

/// What the node must tell its operator at warning level or above, with the figures: a
/// slash, a jailing, a height that needs a round above 0, a height that does not commit, and
/// peers that no longer reach a quorum of voting power. Pure: the driver feeds it what it
/// sees and logs the alerts it returns; each trouble is reported when it starts (and a stall
/// again at growing intervals), not on every tick.
public struct FaultWatch: Sendable {
    public struct Alert: Sendable, Equatable {
        public let level: LogLevel
        public let message: String
        public let fields: [String: String]
    }

    /// A height that has not committed after this long is stalled.
    public let stallMilliseconds: UInt64
    /// How long a downtime jail lasts (genesis), for the release time in the alert.
    public let downtimeJailMilliseconds: UInt64

    var reportedRound: (height: UInt64, round: UInt32) = (0, 0)
    /// The stall of the height being decided, and when the next report of it is due.
    var stall: (height: UInt64, nextReportAt: UInt64)? = nil
    var quorumLost = false

    public init(stallMilliseconds: UInt64, downtimeJailMilliseconds: UInt64) {
        precondition(stallMilliseconds > 0, "a stall threshold of 0 would report every tick")
        self.stallMilliseconds = stallMilliseconds
        self.downtimeJailMilliseconds = downtimeJailMilliseconds
    }

    /// A committed block's slashes (and the jailings that come with double-sign and downtime).
    /// `own` is this node's validator account: its own slashes are errors.
    public mutating func committed(height: UInt64, blockTimeMilliseconds: UInt64, slashes: [SlashRecord], own: PublicKey? = nil) -> [Alert] {
        stall = nil
        var alerts: [Alert] = []
        for slash in slashes {
            let own = slash.address == own
            let level: LogLevel = own ? .error : .warning
            alerts.append(Alert(level: level, message: own ? "THIS validator was slashed" : "validator slashed",
                                fields: ["address": slash.address.hex, "reason": slash.reason.name,
                                         "amount": slash.amount.description, "height": "\(height)"]))
            switch slash.reason {
            case .doubleSign:
                alerts.append(Alert(level: level, message: own ? "THIS validator was jailed for ever (tombstoned) for double signing" : "validator tombstoned",
                                    fields: ["address": slash.address.hex, "height": "\(height)"]))
            case .downtime:
                let until = blockTimeMilliseconds.addingReportingOverflow(downtimeJailMilliseconds)
                let release = until.overflow ? "never" : UTCTime.rfc3339(milliseconds: until.partialValue)
                alerts.append(Alert(level: level, message: own ? "THIS validator was jailed for downtime; unjail after the release time" : "validator jailed",
                                    fields: ["address": slash.address.hex, "height": "\(height)", "until": release]))
            case .lostDispute, .disputeBond:
                break
            }
        }
        return alerts
    }

    /// The consensus core of `height` moved to `round`: a round above 0 means the round
    /// before it failed (no proposal in time, or no quorum of votes).
    public mutating func entered(height: UInt64, round: UInt32, proposer: PublicKey) -> [Alert] {
        guard round > 0, (height, round) > reportedRound else { return [] }
        reportedRound = (height, round)
        return [Alert(level: .warning, message: "round failed; consensus moves to the next round",
                      fields: ["height": "\(height)", "round": "\(round)", "failed_round": "\(round - 1)", "proposer": proposer.hex])]
    }

    /// Called periodically while `height` is being decided, `waited` milliseconds after it
    /// started (or after the last commit). Reports at the threshold, then at 2, 4, 8… times it.
    public mutating func waiting(height: UInt64, round: UInt32, step: String, waitedMilliseconds: UInt64, peers: Int) -> [Alert] {
        if stall?.height != height { stall = (height, stallMilliseconds) }
        guard let due = stall, waitedMilliseconds >= due.nextReportAt else { return [] }
        let next = due.nextReportAt.multipliedReportingOverflow(by: 2)
        stall = (height, next.overflow ? .max : next.partialValue)
        return [Alert(level: .warning, message: "height is stalled: no commit",
                      fields: ["height": "\(height)", "round": "\(round)", "step": step,
                               "waited_ms": "\(waitedMilliseconds)", "peers": "\(peers)"])]
    }

    /// The validators this node reaches: its own power plus that of connected peers that proved
    /// a validator key. At most 2/3 of the total cannot commit anything.
    public mutating func reach(ownPower: UInt64, peerPower: UInt64, totalPower: UInt64, peers: Int) -> [Alert] {
        guard totalPower > 0 else { return [] }
        let reached = ownPower.addingReportingOverflow(peerPower)
        let reachedPower = reached.overflow ? UInt64.max : reached.partialValue
        let quorum = UInt128(reachedPower) * 3 > UInt128(totalPower) * 2
        let fields = ["reached_power": "\(reachedPower)", "total_power": "\(totalPower)", "peers": "\(peers)"]
        if !quorum && !quorumLost {
            quorumLost = true
            return [Alert(level: .warning, message: "lost a quorum of peers: the validators this node reaches hold 2/3 of the power or less",
                          fields: fields)]
        }
        if quorum && quorumLost {
            quorumLost = false
            return [Alert(level: .notice, message: "quorum of peers restored", fields: fields)]
        }
        return []
    }
}

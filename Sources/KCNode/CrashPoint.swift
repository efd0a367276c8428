#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a test asks the node to kill itself (`KC_CRASH_POINT=name`, from height
/// `KC_CRASH_HEIGHT`, default 3): one point per persistence step of a commit, and one in a
/// restore by state sync.
public struct CrashPoint: Sendable {
    public enum Step: String, Sendable, CaseIterable {
        /// A vote was signed (the signer state is synced) but not yet logged or sent.
        case afterSign = "after-sign"
        /// A block was decided but its batch is not written.
        case beforeCommit = "before-commit"
        /// The block's batch is written; the WAL still holds the decided height.
        case afterCommit = "after-commit"
        /// The WAL was reset for the next height.
        case afterWALHeight = "after-wal-height"
        /// State sync wrote every chunk of the restored state; `m/restoring` is still there and
        /// the restored height's markers are not written (the height is the snapshot's).
        case restoreWritten = "restore-written"
    }

    public let step: Step
    public let height: UInt64

    static func fromEnvironment() -> CrashPoint? {
        guard let raw = getenv("KC_CRASH_POINT"), let step = Step(rawValue: String(cString: raw)) else { return nil }
        let height = getenv("KC_CRASH_HEIGHT").flatMap { UInt64(String(cString: $0)) } ?? 3
        return CrashPoint(step: step, height: height)
    }

    func reached(_ point: Step, height: UInt64) {
        guard point == step, height >= self.height else { return }
        print("crash point \(step.rawValue) reached at height \(height): killing this process")
        flushAll()
        kill(getpid(), SIGKILL)
    }

    private func flushAll() { fflush(nil) }
}

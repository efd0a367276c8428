import Synchronization

/// At most `limit` calls of one kind waiting for or running on the node's thread (dry runs
/// of `POST /txs/check`): a client that floods them is answered 503 at once instead of
/// queueing work in front of consensus. The per-client rate limit bounds one address; this
/// bounds all of them together.
final class CallGate: Sendable {
    let limit: Int
    private let inFlight = Mutex(0)

    init(limit: Int) { self.limit = max(0, limit) }

    /// Takes a slot; false when all are taken.
    func enter() -> Bool {
        inFlight.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    func leave() {
        inFlight.withLock { count in
            precondition(count > 0, "a call gate left more often than entered")
            count -= 1
        }
    }

    var current: Int { inFlight.withLock { $0 } }
}

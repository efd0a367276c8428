import KCCodec
import KCCrypto
@testable import KCRuntime
import KCTypes
import Testing

/// The attestation queue holds only pending events (format 6): an event decided before its
/// deadline leaves the entry its record names, so the deadline reads back only the records of
/// events it expires. The chain's audit after every block checks the whole queue against the
/// records (`auditEventQueues`).
struct EventQueueTests {
    static func entry(_ chain: TestChain, _ position: UInt64) -> [Hash256]? {
        chain.state.decode(QueueEntry.self, at: StateKey.queueEntry(.attestation, position))?.ids
    }

    static func proposal(_ chain: inout TestChain, _ author: SigningKey, label: String) -> (VerifiedTransaction, Hash256) {
        let transaction = chain.transaction(author, .proposeEvent(parents: [], arTxID: arTxID(label),
                                                                  contentHash: SHA256.hash(Array(label.utf8)), kind: "k"))
        let header = EventHeader(author: author.publicKey, nonce: transaction.body.nonce, height: chain.height + 1, parents: [],
                                 arTxID: arTxID(label), contentHash: SHA256.hash(Array(label.utf8)), kind: "k")
        return (transaction, header.id)
    }

    @Test func eventsDecidedBeforeTheirDeadlineLeaveTheirEntry() throws {
        var chain = TestChain()
        let made = (0..<3).map { Self.proposal(&chain, g[$0], label: "queued-\($0)") }
        let outcome = try chain.block(made.map(\.0))
        #expect(outcome.receipts.allSatisfy { $0.succeeded })
        let (accepted, rejected, ignored) = (made[0].1, made[1].1, made[2].1)
        let position = try #require(chain.state.event(accepted)).attestationEntry
        #expect([rejected, ignored].allSatisfy { chain.state.event($0)?.attestationEntry == position }, "one block, one entry")
        #expect(Self.entry(chain, position) == [accepted, rejected, ignored])

        // Three of four equal gateways accept the first; two reject the second.
        for voter in 1...3 { try chain.attest(g[voter], accepted) }
        #expect(chain.status(accepted) == .accepted)
        #expect(Self.entry(chain, position) == [rejected, ignored])
        for voter in 2...3 { try chain.attest(g[voter], rejected, .invalid) }
        #expect(chain.status(rejected) == .rejected)
        #expect(Self.entry(chain, position) == [ignored])

        // At the deadline only the undecided one is read and expires; the entry is gone.
        let proposedAt = try #require(chain.state.event(ignored)).proposedAtMilliseconds
        try chain.advance(to: proposedAt + chain.parameters.events.attestationPeriodMilliseconds)
        let expiries = chain.outcomes.last!.eventChanges
        #expect(expiries.map(\.eventID) == [ignored] && expiries.map(\.to) == [.expired])
        #expect(chain.state.global.attestationQueue.isEmpty)
        #expect(Self.entry(chain, position) == nil)
        #expect(chain.status(accepted) == .accepted && chain.status(rejected) == .rejected)
    }

    /// Proposed and accepted in one block: the block's entry is written without it, and an
    /// entry left empty is still written (the records of its block name it).
    @Test func anEventDecidedInTheBlockThatProposedItIsNotQueued() throws {
        var chain = TestChain()
        let (first, decided) = Self.proposal(&chain, g[0], label: "same-block")
        let votes = (1...3).map { chain.transaction(g[$0], .attest(votes: [AttestationVote(eventID: decided, verdict: .valid)])) }
        let (second, waiting) = Self.proposal(&chain, g[0], label: "same-block-undecided")
        let outcome = try chain.block([first] + votes + [second])
        #expect(outcome.receipts.allSatisfy { $0.succeeded }, "\(outcome.receipts.map(\.message))")
        #expect(chain.status(decided) == .accepted && chain.status(waiting) == .pending)
        let position = try #require(chain.state.event(waiting)).attestationEntry
        #expect(chain.state.event(decided)?.attestationEntry == position)
        #expect(Self.entry(chain, position) == [waiting])

        let (alone, soon) = Self.proposal(&chain, g[1], label: "alone")
        let accepting = (2...3).map { chain.transaction(g[$0], .attest(votes: [AttestationVote(eventID: soon, verdict: .valid)])) }
            + [chain.transaction(g[0], .attest(votes: [AttestationVote(eventID: soon, verdict: .valid)]))]
        #expect(try chain.block([alone] + accepting).receipts.allSatisfy { $0.succeeded })
        let empty = try #require(chain.state.event(soon)).attestationEntry
        #expect(empty == position + 1 && Self.entry(chain, empty) == [])
        try chain.advance(to: chain.time + chain.parameters.events.attestationPeriodMilliseconds)
        #expect(chain.status(waiting) == .expired && chain.status(decided) == .accepted && chain.status(soon) == .accepted)
        #expect(chain.state.global.attestationQueue.isEmpty)
    }

    /// A block with more proposals than an entry holds: each record names the entry of its
    /// own chunk, and events decided in the block leave the chunk they were pushed in.
    @Test func recordsNameTheChunkTheirBlockWroteThemIn() throws {
        var chain = TestChain()
        chain.auditing = false
        let made = (0..<(QueueEntry.maxIDs + 10)).map { Self.proposal(&chain, g[$0 % 4], label: "chunk-\($0)") }
        let early = made[3], late = made[QueueEntry.maxIDs + 5]
        var votes: [VerifiedTransaction] = []
        for (transaction, id) in [early, late] {
            let author = transaction.body.sender
            for voter in g.filter({ $0.publicKey != author }).prefix(3) {
                votes.append(chain.transaction(voter, .attest(votes: [AttestationVote(eventID: id, verdict: .valid)])))
            }
        }
        let outcome = try chain.block(made.map(\.0) + votes)
        #expect(outcome.receipts.allSatisfy { $0.succeeded })
        #expect(chain.status(early.1) == .accepted && chain.status(late.1) == .accepted)
        let head = chain.state.global.attestationQueue.head
        #expect(chain.state.event(early.1)?.attestationEntry == head && chain.state.event(late.1)?.attestationEntry == head + 1)
        #expect(Self.entry(chain, head)?.count == QueueEntry.maxIDs - 1 && Self.entry(chain, head + 1)?.count == 9)
        #expect(chain.state.auditRules(outcome, parameters: chain.parameters).isEmpty)
    }

    /// The attacker's play: hold back the deciding votes, then decide one event in each live
    /// entry in one block, so that the block rewrites every entry. The block's write set holds
    /// each entry once (one store write, one trie path), whatever the number of calls and
    /// votes, and an entry holds at most `QueueEntry.maxIDs` ids (8 KiB).
    @Test func decisionsSpreadOverManyEntriesRewriteEachOnce() throws {
        var chain = TestChain()
        var byBlock: [[Hash256]] = []
        for block in 0..<5 {
            let made = (0..<3).map { Self.proposal(&chain, g[0], label: "spread-\(block)-\($0)") }
            #expect(try chain.block(made.map(\.0)).receipts.allSatisfy { $0.succeeded })
            byBlock.append(made.map(\.1))
        }
        // Two honest votes on everything; the third, deciding one comes later, split over
        // two calls per voter and aimed at the first event of every entry.
        for voter in 1...2 {
            try chain.submit(g[voter], .attest(votes: byBlock.joined().map { AttestationVote(eventID: $0, verdict: .valid) }))
        }
        let targets = byBlock.map { $0[0] }
        let deciding = [Array(targets.prefix(2)), Array(targets.dropFirst(2))].map { part in
            chain.transaction(g[3], .attest(votes: part.map { AttestationVote(eventID: $0, verdict: .valid) }))
        }
        #expect(try chain.block(deciding).receipts.allSatisfy { $0.succeeded })
        #expect(targets.allSatisfy { chain.status($0) == .accepted })
        let rewritten = try #require(chain.lastExecuted).changes.keys.filter { $0.hasPrefix(Array("q/attest/".utf8)) }
        #expect(rewritten.count == 5, "one write per entry touched")
        for (block, ids) in byBlock.enumerated() {
            let position = try #require(chain.state.event(ids[0])).attestationEntry
            #expect(Self.entry(chain, position) == Array(ids.dropFirst()), "entry of block \(block)")
        }
    }

    /// A call that decides an event and then fails leaves the event queued: its removal is an
    /// effect of the call, dropped with it.
    @Test func aFailedCallDoesNotTakeAnEventOutOfTheQueue() throws {
        var chain = TestChain()
        let id = try chain.propose(g[0], label: "kept")
        let position = try #require(chain.state.event(id)).attestationEntry
        try chain.attest(g[1], id)
        try chain.attest(g[2], id)
        // The third vote would accept it, but the batch also names an event that does not exist.
        let failing = try chain.submit(g[3], .attest(votes: [AttestationVote(eventID: id, verdict: .valid),
                                                              AttestationVote(eventID: Blake2b.hash256([9]), verdict: .valid)]))
        #expect(!failing.succeeded)
        #expect(chain.status(id) == .pending && Self.entry(chain, position) == [id])
    }

    /// The audit sees a queue that keeps decided events (a deliberately broken rule).
    @Test func theAuditCatchesADecidedEventLeftInTheQueue() throws {
        var chain = TestChain(genesis: TestChain.genesis(), brokenRule: .decidedEventsStayQueued)
        chain.auditing = false
        let id = try chain.propose(g[0], label: "stays")
        for voter in 1...3 { try chain.attest(g[voter], id) }
        #expect(chain.status(id) == .accepted)
        let problems = chain.state.auditRules(chain.outcomes.last!, parameters: chain.parameters)
        #expect(problems.contains { $0.contains("is accepted but still queued for its attestation deadline") }, "\(problems)")
    }
}

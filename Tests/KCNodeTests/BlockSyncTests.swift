import KCConsensus
import KCCrypto
import KCNode
import Testing

/// Block-sync bookkeeping: who is asked for what, in which order blocks come out, and which
/// peers are reported for a ban.
struct BlockSyncTests {
    static let peers = (1...3).map { SigningKey(seed: Blake2b.hash256([UInt8($0)])).publicKey }.sorted()

    static func block(_ height: UInt64) -> (Block, CommitCertificate) {
        let header = BlockHeader(chainID: "sync-test", height: height, timeMilliseconds: height, previousBlockID: .zero,
                                 lastCommitHash: .zero, transactionsHash: .zero, evidenceHash: .zero, stateRoot: .zero,
                                 validatorsHash: .zero, proposer: peers[0])
        let block = Block(header: header, transactions: [], evidence: [], lastCommit: nil)
        return (block, CommitCertificate(height: height, round: 0, blockID: block.id, precommits: []))
    }

    @Test func requestsSpreadOverPeersThatClaimTheHeights() {
        var sync = BlockSync()
        sync.window = 12
        sync.noteStatus(Self.peers[0], height: 100, mine: 0, now: 0)
        sync.noteStatus(Self.peers[1], height: 100, mine: 0, now: 0)
        sync.noteStatus(Self.peers[2], height: 3, mine: 0, now: 0)
        let requests = sync.requests(from: 1, now: 0)
        #expect(requests.map(\.1) == Array(1...12))
        // Heights above 3 only go to the peers that claim them; the load is even.
        #expect(requests.filter { $0.1 > 3 }.allSatisfy { $0.0 != Self.peers[2] })
        let load = Dictionary(grouping: requests, by: \.0).mapValues(\.count)
        #expect(abs(load[Self.peers[0], default: 0] - load[Self.peers[1], default: 0]) <= 1)
        #expect(load[Self.peers[2], default: 0] >= 1, "the third peer serves what it has")
        // Nothing is asked twice while outstanding.
        let again = sync.requests(from: 1, now: 1)
        #expect(again.isEmpty)
        #expect(sync.bestHeight == 100)
    }

    @Test func blocksComeOutInHeightOrderAndOnlyFromWhoWasAsked() {
        var sync = BlockSync()
        sync.noteStatus(Self.peers[0], height: 5, mine: 0, now: 0)
        let requests = sync.requests(from: 1, now: 0)
        #expect(requests.count == 5)
        let (b2, c2) = Self.block(2)
        let tookSecond = sync.deliver(b2, c2, from: Self.peers[0])
        #expect(tookSecond)
        let early = sync.take(height: 1)
        #expect(early == nil, "height 1 has not arrived")
        let (b1, c1) = Self.block(1)
        let fromStranger = sync.deliver(b1, c1, from: Self.peers[1])
        #expect(!fromStranger, "a peer that was not asked")
        let tookFirst = sync.deliver(b1, c1, from: Self.peers[0])
        #expect(tookFirst)
        let first = sync.take(height: 1), second = sync.take(height: 2)
        #expect(first?.0 == b1 && second?.0 == b2)
    }

    @Test func aPeerThatDeniesAClaimedHeightIsReported() {
        var sync = BlockSync()
        sync.noteStatus(Self.peers[0], height: 1_000_000, mine: 0, now: 0)
        sync.noteStatus(Self.peers[1], height: 10, mine: 0, now: 0)
        let asked = sync.requests(from: 1, now: 0).first { $0.0 == Self.peers[0] }!
        let liarReason = sync.refused(asked.1, by: Self.peers[0])
        #expect(liarReason != nil)
        #expect(sync.bestHeight == 10, "the liar's claim is forgotten")
        // An honest "no block" above the claimed height is not held against a peer.
        let honestReason = sync.refused(11, by: Self.peers[1])
        #expect(honestReason == nil)
    }

    @Test func unansweredRequestsMoveOnAndEndInABan() {
        var sync = BlockSync()
        sync.timeoutMilliseconds = 100
        sync.maxStrikes = 3
        sync.window = 1
        sync.noteStatus(Self.peers[0], height: 50, mine: 0, now: 0)
        var now: UInt64 = 0
        var banned: [(PublicKey, String)] = []
        for _ in 0..<3 {
            let sent = sync.requests(from: 1, now: now)
            #expect(sent.count == 1)
            now += 100
            banned += sync.expire(now: now)
        }
        #expect(banned.map(\.0) == [Self.peers[0]])
        #expect(!sync.hasStatus)
        let left = sync.requests(from: 1, now: now)
        #expect(left.isEmpty, "no one left to ask")
    }

    /// A block nobody asked for is blamed whatever its height, above or below the tip; a late
    /// answer to a real request is not, even after the tip moved past it.
    @Test func unsolicitedBlocksAreRefusedAtAnyHeightLateAnswersAreNot() {
        var sync = BlockSync()
        sync.timeoutMilliseconds = 100
        sync.lateAnswerMilliseconds = 1_000
        sync.noteStatus(Self.peers[0], height: 3, mine: 0, now: 0)
        let requests = sync.requests(from: 1, now: 0)
        #expect(requests.count == 3)
        let (b1, c1) = Self.block(1), (b9, c9) = Self.block(9)
        let unsolicited = sync.deliver(b9, c9, from: Self.peers[0])
        #expect(!unsolicited, "a height never asked")
        // The tip moves past height 1 (consensus decided it); the request timed out.
        sync.noteHeight(2, now: 150)
        _ = sync.expire(now: 150)
        let late = sync.deliver(b1, c1, from: Self.peers[0])
        #expect(late, "a late answer to a real request")
        let kept = sync.take(height: 1)
        #expect(kept == nil, "below the tip: not kept")
        let again = sync.deliver(b1, c1, from: Self.peers[0])
        #expect(!again, "the same block again was not asked twice")
        // Long after the deadline the answer is no longer awaited.
        let (b2, c2) = Self.block(2)
        _ = sync.expire(now: 2_000)
        let tooLate = sync.deliver(b2, c2, from: Self.peers[0])
        #expect(!tooLate)
    }

    @Test func theLagClockRestartsWhenTheTipMoves() {
        var sync = BlockSync()
        sync.noteStatus(Self.peers[0], height: 5, mine: 4, now: 10)
        #expect(sync.aheadSince == 10)
        sync.noteHeight(5, now: 20)
        #expect(sync.aheadSince == nil)
        sync.noteStatus(Self.peers[0], height: 6, mine: 5, now: 30)
        #expect(sync.aheadSince == 30)
    }
}

/// The start-up hold of a validator new to its machine: claims prolong it a bounded time,
/// verified progress for as long as it lasts.
struct CatchUpTests {
    @Test func claimsProlongTheHoldOnlySoFarVerifiedBlocksAsLongAsTheyArrive() {
        var liarsOnly = CatchUp(startedAt: 1_000, hold: true)
        // Peers claim far more than the tip and nothing verified arrives: a slow peer is given
        // time, a liar no more than that.
        let early = liarsOnly.release(now: 3_000, heardPeers: true, bestClaimed: 1 << 63, tip: 10)
        let almost = liarsOnly.release(now: 15_999, heardPeers: true, bestClaimed: 1 << 63, tip: 10)
        let waited = liarsOnly.release(now: 16_000, heardPeers: true, bestClaimed: 1 << 63, tip: 10)
        let again = liarsOnly.release(now: 17_000, heardPeers: true, bestClaimed: 1 << 63, tip: 10)
        #expect(!early && !almost && waited && !again, "released once, after the longer wait")
        #expect(!liarsOnly.holding)

        // Nobody spoke, or the peers are one height ahead: the short wait.
        var silent = CatchUp(startedAt: 1_000, hold: true)
        let silentEarly = silent.release(now: 2_999, heardPeers: false, bestClaimed: 0, tip: 0)
        let silentWaited = silent.release(now: 3_000, heardPeers: false, bestClaimed: 0, tip: 0)
        #expect(!silentEarly && silentWaited)
        var oneAhead = CatchUp(startedAt: 1_000, hold: true)
        let oneAheadWaited = oneAhead.release(now: 3_000, heardPeers: true, bestClaimed: 11, tip: 10)
        #expect(oneAheadWaited)

        // Peers at the tip: released at once, even right after a block came by sync.
        var caughtUp = CatchUp(startedAt: 1_000, hold: true)
        caughtUp.noteSynced(now: 1_050)
        let atOnce = caughtUp.release(now: 1_100, heardPeers: true, bestClaimed: 10, tip: 10)
        #expect(atOnce)

        // Verified blocks keep arriving: held past every wait, released 2 s after the last one.
        var syncing = CatchUp(startedAt: 1_000, hold: true)
        var releasedWhileSyncing = false
        for now in stride(from: 1_500 as UInt64, through: 20_000, by: 500) {
            syncing.noteSynced(now: now)
            #expect(syncing.catchingUp(now: now))
            if syncing.release(now: now, heardPeers: true, bestClaimed: 401, tip: 400) { releasedWhileSyncing = true }
        }
        let tooSoon = syncing.release(now: 21_999, heardPeers: true, bestClaimed: 401, tip: 400)
        let after = syncing.release(now: 22_000, heardPeers: true, bestClaimed: 401, tip: 400)
        #expect(!releasedWhileSyncing && !tooSoon && after)

        // Held again (sync moved a key the look-back still watches): the wait starts over.
        #expect(syncing.hold(now: 30_000) && !syncing.hold(now: 30_001), "one hold at a time")
        let reheldEarly = syncing.release(now: 31_999, heardPeers: true, bestClaimed: 401, tip: 400)
        let reheldAfter = syncing.release(now: 32_000, heardPeers: true, bestClaimed: 401, tip: 400)
        #expect(!reheldEarly && reheldAfter)

        // Without a hold, nothing to release; catching up is still reported.
        var plain = CatchUp(startedAt: 0, hold: false)
        let nothing = plain.release(now: 10_000, heardPeers: false, bestClaimed: 0, tip: 0)
        #expect(!nothing)
        plain.noteSynced(now: 10_000)
        #expect(plain.catchingUp(now: 11_999) && !plain.catchingUp(now: 12_000))
    }
}

struct BlockSyncPruningTests {
    let pruned = SigningKey(seed: Blake2b.hash256(Array("pruned".utf8))).publicKey
    let archive = SigningKey(seed: Blake2b.hash256(Array("archive".utf8))).publicKey

    /// A peer that pruned below its base is not asked for those heights, and its "no block"
    /// for one is no lie; the same answer inside its kept range is.
    @Test func prunedHeightsAreAskedOfPeersThatKeepThem() {
        var sync = BlockSync()
        sync.noteStatus(pruned, height: 500, base: 400, mine: 10, now: 0)
        #expect(!sync.isServed(11) && sync.isServed(450))
        #expect(sync.requests(from: 11, now: 0).isEmpty, "nobody keeps heights 11...")
        sync.noteStatus(archive, height: 500, base: 1, mine: 10, now: 0)
        let asked = sync.requests(from: 11, now: 0)
        #expect(!asked.isEmpty && asked.allSatisfy { $0.0 == archive })
        #expect(sync.refused(11, by: pruned) == nil)
        #expect(sync.refused(450, by: pruned) != nil)
    }
}

/// The commented `config.toml` that `node init` writes. Local settings only: anything every
/// node must agree on lives in the genesis file instead.
public enum ConfigTemplate {
    public static func render(moniker: String, ports: NodePorts, persistentPeers: [String], passphraseFile: String? = nil) -> String {
        let peers = persistentPeers.map { "\"\($0)\"" }.joined(separator: ", ")
        return """
        # Membria knowledge-chain node configuration.
        # Everything here is local to this node. Rules every node must agree on (stake minimums,
        # windows, slash fractions) live in genesis.json, not here.

        # A human-readable name for this node, shown to peers and in logs.
        moniker = "\(moniker)"

        [log]
        # One of: trace, debug, info, notice, warning, error, critical (`--log-level` overrides).
        level = "info"
        # "text" (time, level, message, key=value fields) or "json" (one object per line;
        # `--log-format` overrides).
        format = "text"

        [p2p]
        # Address and port to accept peer connections on.
        listen_address = "127.0.0.1:\(ports.p2pPort)"
        # Peers to keep connected to, as "NODE_ID@HOST:PORT" (NODE_ID: the peer's node key in hex).
        persistent_peers = [\(peers)]
        # Nodes to ask for addresses of other nodes when this one knows too few
        # ("NODE_ID@HOST:PORT"); they answer and hang up.
        seeds = []
        # Peer exchange: learn addresses from peers, keep them in data/addrbook, and dial
        # from it until max_outbound_peers are connected.
        pex = true
        # Run as a seed node: crawl the network, hand out addresses, and hang up on peers.
        seed_mode = false
        # HOST:PORT other nodes should dial to reach this one ("": the address they see and
        # the listen port).
        external_address = ""
        # Connection limits. Inbound peers from one IP address are limited too; when the
        # slots are full a newcomer replaces the least useful inbound peer (past a 10 s grace).
        max_inbound_peers = 40
        max_outbound_peers = 10
        max_inbound_peers_per_address = 8
        # Node ids (hex) always admitted and never evicted, besides the persistent peers.
        unconditional_peer_ids = []
        # Prove this node's validator key in handshakes, so peers keep a slot for it while it
        # validates (turn off to keep the validator's identity from the peers it talks to).
        announce_validator = true
        # What one peer may send per second; beyond it the node reads that peer more slowly.
        max_inbound_frames_per_second = 2000
        max_inbound_bytes_per_second = 20971520

        [rpc]
        # HTTP + JSON and WebSocket API. Keep it on 127.0.0.1 unless it sits behind a proxy.
        listen_address = "127.0.0.1:\(ports.rpcPort)"
        # Largest accepted request body, in bytes.
        max_body_bytes = 1048576
        # Requests per second allowed per client address before answering 429.
        rate_limit_per_second = 200
        # Open connections in all and per client address; more are answered 503.
        max_connections = 1024
        max_connections_per_address = 64
        # A request must arrive whole (head and body) within this time, else 408 and close;
        # a connection with nothing in progress is closed after the idle time.
        request_timeout_ms = 10000
        idle_timeout_ms = 30000
        # GET /health answers 503 when no block was committed for this long (a halt), and also
        # while the node is syncing or, in a network of several validators, has no peer.
        health_max_block_age_ms = 60000
        # POST /txs/check runs a transaction's checks on the node's own thread: at most this
        # many at once over all clients, beyond that 503 (0 turns the endpoint off).
        max_concurrent_checks = 4

        [consensus]
        # Round timeouts in milliseconds; each grows by its *_delta_ms every round.
        timeout_propose_ms = 1000
        timeout_propose_delta_ms = 500
        timeout_prevote_ms = 500
        timeout_prevote_delta_ms = 250
        timeout_precommit_ms = 500
        timeout_precommit_delta_ms = 250
        # Longest pause after a commit before the next height starts: it sets the pace of an
        # idle chain. The next height starts at once when transactions are waiting or peers
        # already sent a proposal or votes for it.
        timeout_commit_ms = 1000
        # This node's proposals hold no more transactions than it executes in this time, at the
        # pace it built its recent proposals (the genesis limits still apply); unset: a quarter of
        # timeout_propose_ms, so a proposal reaches the others in time; 0: the genesis limits only.
        # proposal_budget_ms = 250
        # Refuse to sign when this validator key signed any of the last N committed blocks,
        # checked once the node has caught up, on a data directory whose consensus WAL holds
        # nothing this key signed (a new or moved node; 0 turns the check off). It catches a key
        # still running on another machine.
        double_sign_check_heights = 0

        [mempool]
        # Caps on pending transactions; beyond them new transactions are refused as "mempool full".
        max_transactions = 50000
        max_bytes = 67108864
        # The most one peer's transactions may hold (unset: a quarter of max_transactions).
        # max_per_peer = 12500
        # A transaction up to this many nonces ahead of its sender's next one waits for the ones
        # before it; at most max_queued wait in all (unset: an eighth of max_transactions), each
        # for at most queued_heights heights. max_nonce_gap = 0 (or max_queued = 0) refuses them.
        max_nonce_gap = 64
        # max_queued = 6250
        queued_heights = 300

        [attester]
        # off: never attest; format: check only the header; fetch: download the payload by ArTxID
        # from arweave.gateway and check its SHA-256.
        mode = "off"

        [arweave]
        # Where payloads are fetched from: GET {gateway}/{ArTxID}.
        gateway = "https://arweave.net"
        timeout_ms = 5000
        max_payload_bytes = 10485760

        [keys]
        # Encrypted key files (`node init --passphrase-file`, `node keys encrypt`) need their
        # passphrase: the first line of this file (mode 0600), or, when empty, asked on the
        # terminal at start.
        passphrase_file = "\(passphraseFile ?? "")"

        [storage]
        # Blocks to keep below the tip; older blocks, certificates and results are deleted
        # (their transactions are still located, and answered as pruned). 0 keeps everything:
        # an archive node, which peers far behind need to catch up block by block.
        retain_blocks = 0
        # A snapshot of the state every this many heights (0: none), served to nodes that join
        # by state sync; the newest snapshot_keep are kept.
        snapshot_interval = 0
        snapshot_keep = 2
        # Memory (MiB) for the state's most used entries and Merkle-tree nodes; the rest is
        # read from the store. More makes blocks cheaper to execute on a large state.
        state_cache_mb = 64
        # RocksDB: block cache (MiB) and memtable size (MiB; two may be held at once).
        block_cache_mb = 64
        write_buffer_mb = 32
        # Every this many milliseconds, give the memory the allocator holds free back to the
        # system (glibc keeps what is freed between blocks still in use). 0: never.
        heap_trim_interval_ms = 10000
        # Keep the indexes the RPC's lists and GET /txs/{hash} read (transactions by hash; events
        # by status, author, kind, ArTxID and parent). A validator that serves no queries may
        # turn them off, as CometBFT's tx_index.indexer = "null": an eighth less CPU per event.
        # Once off, they can be turned on again only after `node reindex` (they would have a gap).
        indexes = true

        [statesync]
        # On an empty data directory, restore the state from a peer's snapshot (checked
        # against a header verified from genesis through commit certificates) instead of
        # replaying every block; the node then syncs blocks from there.
        enable = false

        """
    }
}
